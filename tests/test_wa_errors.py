"""Error code -> action mapping, on every path an error can arrive."""

from __future__ import annotations

import pytest

from cloud_sync import errors
from cloud_sync.errors import Action


@pytest.mark.parametrize(
    ("code", "status", "action"),
    [
        (190, 401, Action.STOP_SENDING_ALERT),
        (100, 400, Action.DO_NOT_RETRY),
        (130429, 400, Action.RETRY),
        (131048, 400, Action.RETRY),
        (131056, 400, Action.RETRY_RECIPIENT_LATER),
        (131047, 400, Action.NEEDS_TEMPLATE),
        (131026, 400, Action.DO_NOT_RETRY),
        (131049, 400, Action.DO_NOT_RETRY),
        (131050, 400, Action.OPT_OUT),
        (132000, 400, Action.DO_NOT_RETRY),
        (132001, 400, Action.DO_NOT_RETRY),
        (131000, 500, Action.RETRY),
        (1, 500, Action.RETRY),
        (2, 503, Action.RETRY),
        (999999, 503, Action.RETRY),  # unknown code: HTTP class decides
        (999999, 400, Action.DO_NOT_RETRY),
        (None, 401, Action.STOP_SENDING_ALERT),
    ],
)
def test_table(code, status, action) -> None:
    assert errors.classify(code, status) is action


def test_spam_limit_backs_off_hard_and_alerts() -> None:
    pol = errors.policy_for(131048)
    assert pol.min_delay_s >= 60 and pol.alert


def test_from_response_reads_code_subcode_details() -> None:
    payload = {
        "error": {
            "message": "(#131056) pair",
            "type": "OAuthException",
            "code": 131056,
            "error_subcode": 2494055,
            "error_data": {"messaging_product": "whatsapp", "details": "too many"},
            "fbtrace_id": "Az",
        }
    }
    e = errors.from_response(400, payload)
    assert (e.code, e.subcode, e.details, e.http_status, e.fbtrace_id) == (
        131056,
        2494055,
        "too many",
        400,
        "Az",
    )
    assert e.action is Action.RETRY_RECIPIENT_LATER and e.min_delay_s >= 6


def test_from_response_tolerates_garbage() -> None:
    e = errors.from_response(502, "<html>bad gateway</html>")
    assert e.code is None and e.action is Action.RETRY


def test_title_is_ignored() -> None:
    # Same code, misleading title: the code decides.
    e = errors.from_webhook({"code": 131050, "title": "Rate limit hit", "error_data": {"details": "d"}})
    assert e.action is Action.OPT_OUT and e.source == "status"


def test_transport_error_ambiguity() -> None:
    assert errors.transport_error("read timeout", ambiguous=True).ambiguous
    assert errors.transport_error("refused", ambiguous=False).action is Action.RETRY
