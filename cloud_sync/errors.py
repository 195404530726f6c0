"""Cloud API error codes -> what the outbox does about them (pure).

Decisions are taken on the numeric ``code`` (and the HTTP status for unknown codes), never on
the human-readable title or message, which Meta rewords.  The same mapping serves errors
returned synchronously by ``POST /messages`` and errors that arrive later in webhooks
(``statuses[].errors``, ``value.errors``, ``value.messages[].errors``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class Action(enum.Enum):
    RETRY = "retry"  # transient: exponential backoff with jitter
    RETRY_RECIPIENT_LATER = "retry_recipient_later"  # pair rate: only this recipient waits
    DO_NOT_RETRY = "do_not_retry"  # bug, config or undeliverable: give up on this message
    NEEDS_TEMPLATE = "needs_template"  # outside the 24 h window: free-form refused
    OPT_OUT = "opt_out"  # customer stopped marketing: withdraw consent
    STOP_SENDING_ALERT = "stop_sending_alert"  # credentials: stop everything, tell a human


@dataclass(frozen=True, slots=True)
class ErrorPolicy:
    action: Action
    min_delay_s: float = 0.0  # lower bound for the retry delay (why: the limit's time scale)
    alert: bool = False  # a human should hear about it


# Pair rate is ~1 message / 6 s per recipient (spec "Four limits"): wait at least that long.
PAIR_RATE_INTERVAL_S = 6.0
# Spam rate limit: Meta asks to slow down considerably; a minute keeps us out of the hole.
SPAM_BACKOFF_S = 60.0

POLICIES: Mapping[int, ErrorPolicy] = {
    190: ErrorPolicy(Action.STOP_SENDING_ALERT, alert=True),
    100: ErrorPolicy(Action.DO_NOT_RETRY, alert=True),  # our bug: someone should look
    130429: ErrorPolicy(Action.RETRY),
    131048: ErrorPolicy(Action.RETRY, min_delay_s=SPAM_BACKOFF_S, alert=True),
    131056: ErrorPolicy(Action.RETRY_RECIPIENT_LATER, min_delay_s=PAIR_RATE_INTERVAL_S),
    131047: ErrorPolicy(Action.NEEDS_TEMPLATE),
    131026: ErrorPolicy(Action.DO_NOT_RETRY),
    # "do not retry soon": a marketing message is stale by the time the adaptive per-user
    # limit lifts, so the outbox gives up and leaves re-targeting to the campaign.
    131049: ErrorPolicy(Action.DO_NOT_RETRY),
    131050: ErrorPolicy(Action.OPT_OUT),
    132000: ErrorPolicy(Action.DO_NOT_RETRY, alert=True),  # bug: parameter count
    132001: ErrorPolicy(Action.DO_NOT_RETRY, alert=True),  # config: template/language missing
    131000: ErrorPolicy(Action.RETRY),
    1: ErrorPolicy(Action.RETRY),
    2: ErrorPolicy(Action.RETRY),
}


def policy_for(code: int | None, http_status: int | None = None) -> ErrorPolicy:
    """Policy for a code; unknown codes fall back on the HTTP status class (5xx/429 retry)."""
    if code is not None and code in POLICIES:
        return POLICIES[code]
    if http_status == 401:
        return POLICIES[190]
    if http_status is None or http_status >= 500 or http_status == 429:
        return ErrorPolicy(Action.RETRY)
    return ErrorPolicy(Action.DO_NOT_RETRY)


def classify(code: int | None, http_status: int | None = None) -> Action:
    return policy_for(code, http_status).action


@dataclass(frozen=True, slots=True)
class CloudApiError:
    """One error, whichever path it came by.  ``code`` is ``None`` for transport failures."""

    code: int | None
    subcode: int | None
    message: str
    details: str | None
    http_status: int | None
    action: Action
    alert: bool = False
    min_delay_s: float = 0.0
    fbtrace_id: str | None = None
    # True when the request may have reached the API although no answer came back (read
    # timeout, connection dropped mid-response): resending could duplicate the message.
    ambiguous: bool = False
    source: str = "sync"  # "sync" | "status" | "value" | "message" | "transport"


def _make(
    code: Any,
    subcode: Any,
    message: Any,
    details: Any,
    http_status: int | None,
    source: str,
    fbtrace_id: Any = None,
) -> CloudApiError:
    icode = int(code) if isinstance(code, int | str) and str(code).lstrip("-").isdigit() else None
    isub = int(subcode) if isinstance(subcode, int | str) and str(subcode).isdigit() else None
    pol = policy_for(icode, http_status)
    return CloudApiError(
        code=icode,
        subcode=isub,
        message=str(message or ""),
        details=str(details) if details is not None else None,
        http_status=http_status,
        action=pol.action,
        alert=pol.alert,
        min_delay_s=pol.min_delay_s,
        fbtrace_id=str(fbtrace_id) if fbtrace_id is not None else None,
        source=source,
    )


def from_response(http_status: int, payload: Any) -> CloudApiError:
    """Error of a synchronous ``{"error": {...}}`` answer (any payload shape is tolerated)."""
    err = payload.get("error") if isinstance(payload, Mapping) else None
    if not isinstance(err, Mapping):
        return _make(None, None, f"HTTP {http_status} without an error object", None, http_status, "sync")
    data = err.get("error_data")
    details = data.get("details") if isinstance(data, Mapping) else None
    return _make(
        err.get("code"),
        err.get("error_subcode"),
        err.get("message"),
        details,
        http_status,
        "sync",
        err.get("fbtrace_id"),
    )


def from_webhook(err: Mapping[str, Any], source: str = "status") -> CloudApiError:
    """Error object of a webhook (``{"code", "title", "message", "error_data": {"details"}}``)."""
    data = err.get("error_data")
    details = data.get("details") if isinstance(data, Mapping) else None
    return _make(
        err.get("code"),
        err.get("error_subcode"),
        err.get("message") or err.get("title"),
        details,
        None,
        source,
    )


def transport_error(message: str, *, ambiguous: bool) -> CloudApiError:
    """No HTTP answer.  ``ambiguous`` says whether the request may have been processed."""
    return CloudApiError(
        code=None,
        subcode=None,
        message=message,
        details=None,
        http_status=None,
        action=Action.RETRY,
        ambiguous=ambiguous,
        source="transport",
    )
