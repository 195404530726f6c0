"""HTTP client for the Cloud API ``/messages`` endpoint (production code, sync httpx).

One method per operation, no retries here: retrying is the outbox's job, because only the
outbox knows whether a retry could send a message twice.  Transport failures are therefore
reported with ``ambiguous`` set when the request may have reached the API (a read timeout or
a dropped connection after the body was written) and clear when it certainly did not
(connection refused, connect/pool timeout).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from . import errors, messages
from .errors import CloudApiError

DEFAULT_TIMEOUT_S = 10.0  # Meta answers in well under a second; 10 s rides out a slow spell

# Failures where no byte of the request can have been processed by the server.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


@dataclass(frozen=True, slots=True)
class SendResult:
    message_id: str | None = None
    wa_id: str | None = None
    message_status: str | None = None  # templates may answer "accepted"
    error: CloudApiError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class CloudApiClient:
    """``POST {base_url}/{version}/{phone_number_id}/messages`` with a bearer token."""

    def __init__(
        self,
        base_url: str,
        version: str,
        phone_number_id: str,
        access_token: str,
        http: httpx.Client | None = None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.url = f"{base_url.rstrip('/')}/{version}/{phone_number_id}/messages"
        self._headers = {"Authorization": f"Bearer {access_token}", "Content-Type": "application/json"}
        self._own_http = http is None
        self._http = http if http is not None else httpx.Client(timeout=timeout_s)

    def close(self) -> None:
        if self._own_http:
            self._http.close()

    def __enter__(self) -> CloudApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _post(self, body: Mapping[str, Any]) -> tuple[int, Any] | CloudApiError:
        try:
            resp = self._http.post(self.url, json=dict(body), headers=self._headers)
        except _NOT_SENT as exc:
            return errors.transport_error(f"{type(exc).__name__}: {exc}", ambiguous=False)
        except httpx.HTTPError as exc:
            return errors.transport_error(f"{type(exc).__name__}: {exc}", ambiguous=True)
        try:
            payload = resp.json()
        except ValueError:
            payload = None
        return resp.status_code, payload

    def send(self, body: Mapping[str, Any]) -> SendResult:
        """Send one message body (see :mod:`cloud_sync.messages`); never raises on API errors."""
        got = self._post(body)
        if isinstance(got, CloudApiError):
            return SendResult(error=got)
        status, payload = got
        if status != 200 or not isinstance(payload, Mapping):
            return SendResult(error=errors.from_response(status, payload))
        try:
            msg = payload["messages"][0]
            mid = msg["id"]
        except (KeyError, IndexError, TypeError):
            # 200 without an id: the API took the request; treat like a lost answer.
            err = errors.transport_error("200 response without messages[0].id", ambiguous=True)
            return SendResult(error=err)
        contacts = payload.get("contacts") or [{}]
        return SendResult(
            message_id=str(mid), wa_id=contacts[0].get("wa_id"), message_status=msg.get("message_status")
        )

    def mark_read(self, message_id: str) -> SendResult:
        """Mark an inbound message read; ``message_id`` echoes the inbound id on success."""
        got = self._post(messages.mark_read(message_id))
        if isinstance(got, CloudApiError):
            return SendResult(error=got)
        status, payload = got
        if status == 200 and isinstance(payload, Mapping) and payload.get("success") is True:
            return SendResult(message_id=message_id)
        return SendResult(error=errors.from_response(status, payload))
