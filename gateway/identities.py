"""Turning forwarded beacon ids into customers, for consenting customers only.

Static iBeacon ids are a dictionary lookup; Eddystone-EIDs go through the `EidResolver`
tables. Anything that does not resolve to a customer with recognition consent is not a
person we may recognise: it is counted and dropped, never stored.
"""

from __future__ import annotations

from gateway.customers import Identity
from gateway.eid import EidResolver


class IdentityResolver:
    def __init__(self, identities: list[Identity] = ()):  # type: ignore[assignment]
        self._static: dict[str, str] = {}
        self._eid = EidResolver()
        self._by_customer: dict[str, list[Identity]] = {}
        for ident in identities:
            self.add(ident)

    def add(self, ident: Identity) -> None:
        self._by_customer.setdefault(ident.customer_id, []).append(ident)
        if ident.kind == "eid":
            self._eid.add(ident.customer_id, bytes.fromhex(ident.value), ident.k, ident.epoch)
        else:
            self._static[ident.value] = ident.customer_id

    def forget(self, customer_id: str) -> None:
        """Consent withdrawn or customer erased: stop recognising them at once."""
        for ident in self._by_customer.pop(customer_id, []):
            if ident.kind == "eid":
                self._eid.remove(ident.customer_id)
            else:
                self._static.pop(ident.value, None)

    def resolve(self, observed_id: str, now: float) -> str | None:
        if observed_id.startswith("eid:"):
            return self._eid.resolve(bytes.fromhex(observed_id[4:]), now)
        return self._static.get(observed_id)

    def __len__(self) -> int:
        return len(self._by_customer)
