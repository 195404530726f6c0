"""24 h window, quiet hours (store time zone, DST), frequency cap, consent, templates; pacing."""

from __future__ import annotations

import random
from datetime import datetime, time
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud_sync import messages as m
from cloud_sync.ratelimit import TokenBucket, backoff_delay
from cloud_sync.rules import (
    Category,
    Decision,
    DecisionKind,
    FrequencyCap,
    Policy,
    Purpose,
    QuietHours,
    Rules,
    Template,
    TemplateRegistry,
    quiet_end,
)

BERLIN = ZoneInfo("Europe/Berlin")
TO = "491701234567"
REG = TemplateRegistry(
    [
        Template("order_ready", "de", Category.UTILITY, 1),
        Template("spring_sale", "de", Category.MARKETING, 2),
        Template("login_code", "de", Category.AUTHENTICATION, 1),
    ]
)
POLICY = Policy(tz=BERLIN, templates=REG, quiet_hours=QuietHours(time(21), time(8)))
ALL = {TO: {Purpose.MARKETING, Purpose.UTILITY, Purpose.AUTHENTICATION, Purpose.SERVICE}}


def at(y, mo, d, h, mi=0) -> float:
    return datetime(y, mo, d, h, mi, tzinfo=BERLIN).timestamp()


NOON = at(2026, 5, 12, 12)
UTILITY = m.template(TO, "order_ready", "de", body_params=["A1"])
SALE = m.template(TO, "spring_sale", "de", body_params=["Anna", "20%"])
TEXT = m.text(TO, "Ihre Frage: ja")


def decide(body, purpose=Purpose.UTILITY, now=NOON, consent=ALL, last_inbound=None, sent=()) -> Decision:
    return Rules(POLICY, consent).decide(
        body=body, purpose=purpose, customer=TO, now=now, last_inbound_at=last_inbound, marketing_sent_at=sent
    )


def test_free_form_inside_window_sends() -> None:
    assert decide(TEXT, Purpose.SERVICE, last_inbound=NOON - 23 * 3600).kind is DecisionKind.SEND_NOW


def test_free_form_outside_window_needs_template() -> None:
    d = decide(TEXT, Purpose.SERVICE, last_inbound=NOON - 24 * 3600)
    assert d.kind is DecisionKind.NEEDS_TEMPLATE and "24 h" in d.reason
    assert decide(TEXT, Purpose.SERVICE, last_inbound=None).kind is DecisionKind.NEEDS_TEMPLATE


def test_service_reply_ignores_quiet_hours_and_needs_no_opt_in() -> None:
    late = at(2026, 5, 12, 23)
    assert (
        decide(TEXT, Purpose.SERVICE, now=late, consent={}, last_inbound=late - 60).kind
        is DecisionKind.SEND_NOW
    )


def test_template_outside_window_sends_with_consent() -> None:
    assert decide(UTILITY).kind is DecisionKind.SEND_NOW


def test_unknown_template_and_param_mismatch_refused() -> None:
    d = decide(m.template(TO, "order_ready", "fr", body_params=["x"]))
    assert d.kind is DecisionKind.REFUSE and "not registered" in d.reason
    d = decide(m.template(TO, "order_ready", "de", body_params=["x", "y"]))
    assert d.kind is DecisionKind.REFUSE and "1 parameters, got 2" in d.reason


def test_marketing_needs_marketing_consent_even_if_called_utility() -> None:
    consent = {TO: {Purpose.UTILITY}}
    d = decide(SALE, Purpose.UTILITY, consent=consent)
    assert d.kind is DecisionKind.REFUSE and d.reason == "no marketing consent"
    assert decide(UTILITY, Purpose.UTILITY, consent=consent).kind is DecisionKind.SEND_NOW


def test_consent_as_callable() -> None:
    asked = []

    def consent(c: str, p: Purpose) -> bool:
        asked.append((c, p))
        return False

    assert decide(UTILITY, consent=consent).kind is DecisionKind.REFUSE
    assert asked == [(TO, Purpose.UTILITY)]


def test_quiet_hours_defer_to_morning_local_time() -> None:
    d = decide(UTILITY, now=at(2026, 5, 12, 22, 30))
    assert d.kind is DecisionKind.DEFER and d.until == at(2026, 5, 13, 8) and d.reason == "quiet hours"
    d = decide(UTILITY, now=at(2026, 5, 13, 6))
    assert d.until == at(2026, 5, 13, 8)
    assert decide(UTILITY, now=at(2026, 5, 13, 8)).kind is DecisionKind.SEND_NOW


def test_authentication_ignores_quiet_hours() -> None:
    otp = m.template(TO, "login_code", "de", body_params=["123456"])
    assert decide(otp, Purpose.AUTHENTICATION, now=at(2026, 5, 12, 23)).kind is DecisionKind.SEND_NOW


def test_quiet_hours_across_dst_spring_forward() -> None:
    # Night of 28->29 March 2026: clocks jump 02:00 -> 03:00; 08:00 local is then UTC+2.
    end = quiet_end(at(2026, 3, 28, 23), BERLIN, POLICY.quiet_hours)
    assert end == at(2026, 3, 29, 8)
    assert datetime.fromtimestamp(end, BERLIN).hour == 8
    assert end - at(2026, 3, 28, 23) == 8 * 3600  # nine wall-clock hours, eight real ones


def test_quiet_hours_same_day_interval_and_disabled() -> None:
    lunch = QuietHours(time(12), time(14))
    assert quiet_end(NOON + 60, BERLIN, lunch) == at(2026, 5, 12, 14)
    assert quiet_end(at(2026, 5, 12, 15), BERLIN, lunch) is None
    assert quiet_end(NOON, BERLIN, None) is None


def test_frequency_cap_defers_until_a_week_after_last_marketing() -> None:
    last = NOON - 2 * 86400
    d = decide(SALE, Purpose.MARKETING, sent=[last])
    assert d.kind is DecisionKind.DEFER and d.until == last + 7 * 86400 and "frequency cap" in d.reason
    assert decide(SALE, Purpose.MARKETING, sent=[NOON - 8 * 86400]).kind is DecisionKind.SEND_NOW


def test_frequency_cap_configurable_and_combined_with_quiet_hours() -> None:
    policy = Policy(
        tz=BERLIN,
        templates=REG,
        quiet_hours=QuietHours(time(21), time(8)),
        marketing_cap=FrequencyCap(max_messages=2, period_s=86400),
    )
    rules = Rules(policy, ALL)
    sent = [at(2026, 5, 11, 23), at(2026, 5, 12, 11)]  # two within the last day
    d = rules.decide(
        body=SALE,
        purpose=Purpose.MARKETING,
        customer=TO,
        now=NOON,
        last_inbound_at=None,
        marketing_sent_at=sent,
    )
    # cap lifts 2026-05-12 23:00 (quiet) -> pushed to 08:00 next morning
    assert d.kind is DecisionKind.DEFER and d.until == at(2026, 5, 13, 8)
    assert d.reason == "marketing frequency cap and quiet hours"


def test_free_form_deferred_past_window_needs_template() -> None:
    late = at(2026, 5, 12, 22)
    d = decide(m.text(TO, "Angebot"), Purpose.UTILITY, now=late, last_inbound=late - 20 * 3600)
    assert d.kind is DecisionKind.NEEDS_TEMPLATE and "quiet hours" in d.reason


def test_duplicate_template_registration_rejected() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        TemplateRegistry([Template("a", "de", Category.UTILITY, 0)] * 2)


def test_token_bucket_paces_and_bursts() -> None:
    b = TokenBucket(20.0, 1.0, now=0.0)
    assert b.take(0.0) == 0.0
    assert b.take(0.0) == pytest.approx(0.05)
    assert b.take(0.05) == 0.0
    burst = TokenBucket(10.0, 5.0, now=0.0)
    assert [burst.take(0.0) for _ in range(6)][:5] == [0.0] * 5
    with pytest.raises(ValueError, match="rate_per_s"):
        TokenBucket(0)


@given(st.floats(min_value=1, max_value=500), st.lists(st.floats(min_value=0, max_value=0.2), max_size=200))
def test_token_bucket_never_exceeds_rate(rate: float, gaps: list[float]) -> None:
    b = TokenBucket(rate, 1.0, now=0.0)
    now, granted = 0.0, 0
    for g in gaps:
        now += g
        granted += b.take(now) == 0.0
    assert granted <= 1 + now * rate + 1e-6


def test_backoff_grows_with_jitter_and_is_seeded() -> None:
    a = [backoff_delay(n, random.Random(7)) for n in range(1, 12)]
    b = [backoff_delay(n, random.Random(7)) for n in range(1, 12)]
    assert a == b
    for n, d in enumerate(a, start=1):
        ceiling = min(600.0, 2 ** (n - 1))
        assert ceiling / 2 <= d <= ceiling
