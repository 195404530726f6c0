"""Last-touch attribution on hand-built histories, replies to messages, and conversation KPIs."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

import pytest

from cloud_sync import migrations
from firmware_config.store import OpeningHours
from gateway.engines.attribution import (
    IN_VISIT_S,
    Credit,
    Message,
    Outcome,
    add_online_orders,
    attribute,
    in_visits,
    replies,
)
from gateway.engines.conversations import InboxRow, conversations, per_staff, percentile, summary
from gateway.engines.opening_hours import open_hour_starts, open_seconds
from gateway.storage.db import open_db
from gateway.storage.kpi_whatsapp import figures
from tests.conftest import BOUTIQUE

DAY = 86400.0
WEEK = 7 * DAY
BERLIN = ZoneInfo("Europe/Berlin")


def msg(mid: int, at: float, cid: str | None = "alice", channel: str = "journey", name: str = "tried") -> Message:
    return Message(mid, cid, at, channel, name)


def test_the_window_is_inclusive_at_its_end_and_excludes_outcomes_before_the_message() -> None:
    credits = attribute(
        [msg(1, 0.0), msg(2, 0.0, "bob")],
        [Outcome("alice", WEEK, "visit"), Outcome("bob", WEEK + 1, "visit"), Outcome("bob", 0.0, "sale", 900)],
        WEEK,
    )
    assert credits[1].visit_at == WEEK  # exactly at the window's end: still credited
    assert credits[2].visit_at is None  # a second later: not
    assert credits[2].sale_at is None  # at the same moment as the message: it cannot have caused it


def test_last_touch_credits_the_latest_message_before_each_outcome() -> None:
    credits = attribute(
        [msg(1, 0.0), msg(2, 2 * DAY, channel="campaign", name="spring")],
        [
            Outcome("alice", 1 * DAY, "visit"),  # after message 1 only
            Outcome("alice", 3 * DAY, "visit"),  # after both: the later one wins
            Outcome("alice", 3 * DAY + 600, "fitting"),
            Outcome("alice", 3 * DAY + 1800, "sale", 12_900),
        ],
        WEEK,
    )
    assert (credits[1].visit_at, credits[1].fitting_at, credits[1].sale_cents) == (1 * DAY, None, 0)
    assert (credits[2].visit_at, credits[2].fitting_at) == (3 * DAY, 3 * DAY + 600)
    assert (credits[2].sale_at, credits[2].sale_cents) == (3 * DAY + 1800, 12_900)


def test_a_message_gets_only_its_customers_next_visit_and_sale() -> None:
    credits = attribute(
        [msg(1, 0.0)],
        [Outcome("alice", 2 * DAY, "sale", 5000), Outcome("alice", 1 * DAY, "sale", 3000),
         Outcome("alice", 1 * DAY, "visit"), Outcome("alice", 2 * DAY, "visit"), Outcome("carl", 1 * DAY, "visit")],
        WEEK,
    )
    assert (credits[1].visit_at, credits[1].sale_at, credits[1].sale_cents) == (1 * DAY, 1 * DAY, 3000)


def test_unknown_numbers_and_erased_customers_are_never_credited() -> None:
    # an erased customer's messages and visits are deleted; what remains (anonymised sales) has no customer
    credits = attribute([msg(1, 0.0, cid=None)], [Outcome("alice", DAY, "visit")], WEEK)
    assert credits == {}


def test_online_orders_go_to_the_message_whose_link_was_used() -> None:
    credits = attribute([msg(1, 0.0, channel="checkout"), msg(2, DAY)], [], WEEK)
    add_online_orders(credits, [(1, 4990), (1, 1000), (99, 500)])
    assert (credits[1].online_orders, credits[1].online_cents) == (2, 5990)
    assert credits[2].online_orders == 0


def test_a_reply_answers_the_last_outbound_message_within_the_window() -> None:
    rows = [
        (1, "alice", 0.0, "out"), (2, "alice", 100.0, "out"), (3, "alice", 200.0, "in"),  # answers 2, not 1
        (4, "bob", 0.0, "out"), (5, "bob", WEEK + 1, "in"),  # too late
        (6, "carl", 50.0, "in"),  # nothing to answer
    ]
    assert replies(rows, WEEK) == {2}


def open_10_to_18() -> OpeningHours:
    return OpeningHours(mon="10:00-18:00", tue="10:00-18:00")


def test_open_seconds_and_hours_follow_the_opening_hours() -> None:
    hours = open_10_to_18()
    monday = date(2026, 3, 2)
    starts = open_hour_starts(monday, hours, BERLIN)
    assert len(starts) == 8 and starts[0] == 1_772_442_000.0  # 10:00 Berlin
    assert open_hour_starts(date(2026, 3, 1), hours, BERLIN) == []  # sunday: closed
    assert len(open_hour_starts(monday, None, BERLIN)) == 24
    mon_17 = 1_772_442_000.0 + 7 * 3600
    tue_11 = mon_17 + 18 * 3600
    assert open_seconds(mon_17, tue_11, hours, BERLIN) == 2 * 3600  # 17-18 on monday, 10-11 on tuesday


def test_conversations_first_response_in_opening_time_and_missed_per_staff() -> None:
    hours = open_10_to_18()
    mon_10 = 1_772_442_000.0

    def wait(a: float, b: float) -> float:
        return open_seconds(a, b, hours, BERLIN)

    rows = [
        InboxRow("alice", mon_10 + 60, "in", None),
        InboxRow("alice", mon_10 + 120, "in", None),  # the same conversation
        InboxRow("alice", mon_10 + 360, "out", 7),  # ana answers after 5 min
        InboxRow("bob", mon_10 + 7 * 3600 + 1800, "in", None),  # 17:30
        InboxRow("bob", mon_10 + 7 * 3600 + 1800 + 60, "out", None),  # a journey message is no answer
        InboxRow("bob", mon_10 + 24 * 3600 + 900, "out", 8),  # ben, tuesday 10:15: 45 open minutes
        InboxRow("carl", mon_10 + 3000, "out", None),  # a journey message ...
        InboxRow("carl", mon_10 + 3600, "in", None),  # ... carl replies to it, and is never answered
        InboxRow("alice", mon_10 + 3 * DAY, "in", None),  # after a silent day: a new conversation
    ]
    convs = conversations(rows, now=mon_10 + 3 * DAY + 600, missed_after_s=1800, open_seconds=wait)
    assert [(c.thread, c.responder, c.response_s, c.missed) for c in convs] == [
        ("alice", 7, 300.0, False),
        ("carl", None, None, True),
        ("bob", 8, 2700.0, True),
        ("alice", None, None, False),  # thursday: closed, so not yet missed
    ]
    s = summary(convs)
    assert (s["conversations"], s["answered"], s["missed"]) == (4, 2, 2)
    assert s["first_response_median_s"] == 1500.0 and s["first_response_p90_s"] == 2460.0
    assert per_staff(convs) == {7: summary(convs[:1]), 8: summary(convs[2:3])}


def test_percentile_of_few_values() -> None:
    assert percentile([], 0.9) is None and percentile([42.0], 0.9) == 42.0
    assert percentile([float(v) for v in range(1, 11)], 0.9) == 9.1


def test_opening_hours_errors_name_file_line_and_key() -> None:
    from firmware_config.validate import ConfigError, validate_text

    text = (BOUTIQUE.read_text().replace(
        'eid_rotation_exponent = 10', 'eid_rotation_exponent = 10\n[store.opening_hours]\nmon = "18:00-10:00"\n'
        'tue = "9-18"\nsat = "10:00-24:00"\n', 1))
    with pytest.raises(ConfigError) as err:
        validate_text(text, "shop.toml")
    lines = str(err.value).splitlines()
    assert any(line.startswith("shop.toml:13: store.opening_hours.mon:") and "closes at or before it opens" in line
               for line in lines), lines
    assert any(line.startswith("shop.toml:14: store.opening_hours.tue:") for line in lines), lines
    assert not any("opening_hours.sat" in line for line in lines)  # "24:00" closes at midnight


def test_svg_bars_scale_to_whole_number_ticks_and_escape_labels() -> None:
    import re

    from gateway.engines.svg_chart import bar_chart

    svg = bar_chart("Visits <today>", ["10", "11", "a&b"], {"in": [0, 5, 10], "out": [1, 2, 3]}, ["#000", "#111"])
    heights = [float(h) for h in re.findall(r'height="([\d.]+)" fill="#\d+"><title>', svg)]
    assert len(heights) == 6 and heights[0] == 0 and abs(heights[4] - 2 * heights[2]) < 0.2  # 10 twice as tall as 5
    ticks = [int(v) for v in re.findall(r'text-anchor="end">(\d+)<', svg)]
    assert ticks == sorted(ticks) and ticks[0] == 0 and ticks[-1] >= 10 and len(set(ticks)) == len(ticks)
    assert "Visits &lt;today&gt;" in svg and "a&amp;b" in svg and "<today>" not in svg


def test_a_sale_in_a_visit_goes_to_the_message_that_brought_the_customer_in() -> None:
    visit = 2 * DAY
    credits = attribute(
        [msg(1, 0.0), msg(2, visit + 600, channel="staff", name="reply")],  # a reply while she is in the shop
        [Outcome("alice", visit, "visit"), Outcome("alice", visit + 1200, "fitting"),
         Outcome("alice", visit + IN_VISIT_S, "sale", 8000)],  # at the till as late as a visit goes
        WEEK,
    )
    assert (credits[1].visit_at, credits[1].fitting_at, credits[1].sale_cents) == (visit, visit + 1200, 8000)
    assert credits[2] == Credit()


def test_a_sale_the_till_knows_without_a_recognised_visit_is_a_visit() -> None:
    outcomes = [Outcome("alice", DAY, "sale", 3000), Outcome("bob", DAY, "visit"),
                Outcome("bob", DAY + IN_VISIT_S + 1, "sale", 2000)]  # long after bob's visit: a second one
    touches = in_visits(outcomes)
    assert sorted((o.customer_id, o.kind, o.at) for _, o in touches if o.kind == "visit") == [
        ("alice", "visit", DAY), ("bob", "visit", DAY), ("bob", "visit", DAY + IN_VISIT_S + 1)]
    credits = attribute([msg(1, 0.0), msg(2, 0.0, "bob")], outcomes, WEEK)
    assert (credits[1].visit_at, credits[1].sale_cents) == (DAY, 3000)
    assert (credits[2].visit_at, credits[2].sale_cents) == (DAY, 2000)


def test_the_period_credits_no_outcome_that_a_later_message_took_over() -> None:
    db = open_db(":memory:")
    migrations.migrate(db.conn)
    db.execute("INSERT INTO customers (id, name, whatsapp, language, sizes, brands, notes, created_at) "
               "VALUES ('alice', 'Alice', '+491701', 'de', '{}', '[]', '', 0)")
    for mid, at in ((1, 3 * DAY), (2, 8 * DAY)):  # the second after the period asked for
        db.execute("INSERT INTO wa_inbox (id, wa_id, customer_id, direction, kind, text, at) "
                   "VALUES (?, '491701', 'alice', 'out', 'journey:tried', '', ?)", [mid, at])
    db.execute("INSERT INTO visits (customer_id, entered_at) VALUES ('alice', ?)", [9 * DAY])
    week = figures(db, 0.0, WEEK, 20 * DAY, WEEK, 1800.0, lambda a, b: b - a)["messages"]
    assert [(r["messages"], r["visits"]) for r in week] == [(1, 0)]
    later = figures(db, WEEK, 2 * WEEK, 20 * DAY, WEEK, 1800.0, lambda a, b: b - a)["messages"]
    assert [(r["messages"], r["visits"]) for r in later] == [(1, 1)]
