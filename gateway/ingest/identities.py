"""Turning forwarded beacon ids into customers, for consenting customers only.

iBeacon ids are a dict look-up, EIDs go through `EidResolver` (one entry per identity,
`<customer>/<key hex>`); anything not resolving to a customer with recognition consent is counted
and dropped, never stored. Answers are kept while `now` stays the same: all nodes' windows of a
second hear the same phones, so each id is resolved once per second, not once per node.
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway.engines.eid import EidResolver
from gateway.storage.customers import Identity


class IdentityResolver:
    def __init__(self, identities: Iterable[Identity] = ()):
        self._static: dict[str, str] = {}
        self._eid = EidResolver()
        self._by_customer: dict[str, list[Identity]] = {}
        self._now: float | None = None  # the `now` the cached answers hold for
        self._cache: dict[str, str | None] = {}
        for ident in identities:
            self.add(ident)

    def add(self, ident: Identity) -> None:
        self._cache.clear()
        self._by_customer.setdefault(ident.customer_id, []).append(ident)
        if ident.kind == "eid":
            self._eid.add(_eid_id(ident), bytes.fromhex(ident.value), ident.k, ident.epoch)
        else:
            self._static[ident.value] = ident.customer_id

    def forget(self, customer_id: str) -> None:
        """Consent withdrawn or customer erased: stop recognising them at once."""
        self._cache.clear()
        for ident in self._by_customer.pop(customer_id, []):
            if ident.kind == "eid":
                self._eid.remove(_eid_id(ident))
            else:
                self._static.pop(ident.value, None)

    def resolve(self, observed_id: str, now: float) -> str | None:
        return self.resolve_many([observed_id], now)[0]

    def resolve_many(self, observed_ids: list[str], now: float) -> list[str | None]:
        """The customer behind each observed id at time `now` (None: not one we may recognise)."""
        if now != self._now:
            self._now = now
            self._cache.clear()
        cache = self._cache
        new = [i for i in dict.fromkeys(observed_ids) if i not in cache]
        if new:
            eids = [i for i in new if i.startswith("eid:")]
            if eids:
                found = self._eid.resolve_many([bytes.fromhex(i[4:]) for i in eids], now)
                cache.update((i, f.rpartition("/")[0] if f else None) for i, f in zip(eids, found, strict=True))
            get = self._static.get
            cache.update((i, get(i)) for i in new if not i.startswith("eid:"))
        return [cache[i] for i in observed_ids]

    def __len__(self) -> int:
        return len(self._by_customer)


def _eid_id(ident: Identity) -> str:
    return f"{ident.customer_id}/{ident.value}"
