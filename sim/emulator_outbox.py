"""Our WhatsApp emulator's idempotency-key lookup, and an outbox worker that reconciles with it.

The real Cloud API cannot say whether it took a message with a given key; our emulator can
(``GET /_emulator/messages?biz_opaque_callback_data=KEY``). Tests, the crash harness and the
benchmarks inject this lookup into the outbox; production code never chooses it. Run a worker
with it as ``python -m sim.emulator_outbox`` with the arguments of ``python -m cloud_sync.outbox``.
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx

from cloud_sync import outbox


def emulator_lookup(base_url: str, *, timeout_s: float = 5.0) -> outbox.Lookup:
    """``key -> wamid | None`` from the emulator at `base_url`; raises ``httpx.HTTPError`` when it
    cannot answer (the worker then keeps the row parked and asks again later)."""
    http = httpx.Client(timeout=timeout_s)
    url = f"{base_url.rstrip('/')}/_emulator/messages"

    def lookup(key: str) -> str | None:
        resp = http.get(url, params={"biz_opaque_callback_data": key})
        resp.raise_for_status()
        ids = resp.json().get("ids") or []
        return str(ids[0]) if ids else None

    return lookup


def main(argv: Sequence[str] | None = None) -> int:
    return outbox.main(argv, lookup_for=emulator_lookup)


if __name__ == "__main__":
    raise SystemExit(main())
