"""Background iPhones: when a node connects (a missed link retried at once, then backed off; the
attempt timeout against the modelled connection times) and where a slow read's time goes."""

from __future__ import annotations

import pytest

from edge.iphone import ATTEMPT_TIMEOUT_S, BACKOFF_FIRST_S, IphoneTracker
from firmware_config.store import load_store
from sim.emitter import ADDRESS_ROTATION_S, Emitter
from sim.iphone_model import IphoneNodes, ReadParts, breakdown
from sim.scenario import IphoneApp, Population, Scenario, ScenarioInfo
from sim.world import build_world
from tests.conftest import BOUTIQUE


def test_a_read_is_split_into_first_wait_failures_retry_waits_and_the_reading_connection() -> None:
    # heard at 10; the first link free at 11; fails at 13.5; retried at 16, fails at 18.5; read 19-20.2
    parts = ReadParts.of(10.0, [(11.0, 13.5, False), (16.0, 18.5, False), (19.0, 20.2, True)])
    assert parts.first_wait_s == 1.0 and parts.failed_s == 5.0 and parts.failures == 2
    assert parts.retry_wait_s == pytest.approx(3.0) and parts.connect_s == pytest.approx(1.2)
    assert parts.total_s == pytest.approx(20.2 - 10.0)


def test_the_breakdown_describes_the_slowest_reads() -> None:
    quick = [ReadParts.of(0.0, [(0.0, 1.0, True)]) for _ in range(19)]
    slow = ReadParts.of(0.0, [(0.5, 2.5, False), (4.5, 5.5, True)])
    b = breakdown([*quick, slow])
    assert b["carrier.iphone_app.read_tail_retry_wait_s"] == 2.0  # only the slow read is in the tail
    assert b["carrier.iphone_app.read_tail_with_failure_share"] == 1.0
    assert b["carrier.iphone_app.reads_with_failure_share"] == 1 / 20
    assert breakdown([]) == {}


def test_a_first_failure_is_retried_at_once_ahead_of_later_candidates() -> None:
    t = IphoneTracker()
    assert [a for x in "abcd" for a in t.heard(x, 0.0)[1]] == ["a", "b"]  # c, d wait for a link
    assert t.done("a", None, 1.0) == ["a"]  # iOS missed the link: again, before c and d
    assert t.done("a", None, 3.5) == ["c"]  # twice in a row: back off, the next in line goes
    assert t.heard("a", 4.0) == (None, []) and "a" not in t.waiting
    assert t.heard("a", 3.5 + BACKOFF_FIRST_S)[1] == [] and list(t.waiting) == ["d", "a"]  # then queued again
    assert t.done("b", "eid:bb", 6.0) == ["d"]


def test_the_attempt_timeout_covers_the_slowest_modelled_connection_and_little_more() -> None:
    slowest = IphoneApp().connect_s[1]
    assert slowest < ATTEMPT_TIMEOUT_S <= 1.5 * slowest  # never cuts a read short, gives up soon on a missed link


def test_in_the_model_a_missed_link_holds_the_node_until_its_timeout_then_is_retried() -> None:
    nodes = IphoneNodes(1, IphoneApp(share=0.3, failure_probability=1.0), seed=1, eid_of=lambda agent, t: "eid:00")
    for t in (0.0, 1.0, 2.0 * ATTEMPT_TIMEOUT_S + 0.1, 2.0 * ATTEMPT_TIMEOUT_S + 1.0):
        assert nodes.heard(0, 7, "A", t) is None
    timeout = ATTEMPT_TIMEOUT_S
    assert nodes.attempts[(0, "A")] == [(0.0, timeout, False), (timeout, 2 * timeout, False)]
    assert nodes.trackers[0].failures == 2 and nodes.reads == []


def test_phones_rotate_their_addresses_each_on_its_own_clock() -> None:
    """Not all in the same second: that would make every node re-read every iPhone at once."""
    world = build_world(
        Scenario(
            scenario=ScenarioInfo(name="r", store="x", duration_s=600, seed=1),
            population=Population(visitors=30, passers_by=0, staff=0),
        ),
        load_store(BOUTIQUE),
    )
    em = Emitter(world, seed=1)
    changes = [
        next(t for t in range(ADDRESS_ROTATION_S + 1) if em.address(a, float(t)) != em.address(a, 0.0))
        for a in range(len(world.agents))
    ]
    assert len(set(changes)) > len(changes) // 2 and all(0 < c <= ADDRESS_ROTATION_S for c in changes)
