"""`instore fob provision`: register a loyalty key fob (gateway/channels/fob_provision.py), then bind its
identity key to the customer at the gateway over its API.

The gateway is asked first whether the customer may be recognised, so a refusal touches no fob;
the key is sent only after the fob confirmed it (docs/carriers.md).
"""

from __future__ import annotations

import httpx

from gateway.channels.fob_provision import FobError, Provisioned

__all__ = ["FobError", "Gateway"]


class Gateway:
    """The gateway's API as staff use it: sign in, check the customer, register the fob."""

    def __init__(self, url: str, username: str, password: str, *, http: httpx.Client | None = None) -> None:
        self.http = http or httpx.Client(base_url=url, timeout=10)
        r = self.http.post("/api/login", json={"username": username, "password": password})
        if r.status_code != 200:
            raise FobError(f"gateway sign-in failed ({r.status_code}): check the username and password")
        self.http.headers["Authorization"] = f"Bearer {r.json()['token']}"

    def check_customer(self, customer_id: str) -> str:
        """The customer's name, if they may be recognised; FobError before anything is written."""
        r = self.http.get(f"/api/customers/{customer_id}")
        if r.status_code == 404:
            raise FobError(f"no customer {customer_id!r} at the gateway")
        r.raise_for_status()
        record = r.json()
        if not record["consent"].get("recognition"):
            raise FobError(f"{record['name']} has not agreed to be recognised: record that consent first")
        return record["name"]

    def register(self, customer_id: str, fob: Provisioned) -> dict:
        body = {"identity_key": fob.identity_key.hex(), "k": fob.k, "epoch": fob.epoch}
        r = self.http.post(f"/api/customers/{customer_id}/fob", json=body)
        if r.status_code != 201:
            raise FobError(f"the gateway refused the fob ({r.status_code}): {r.text}")
        return r.json()
