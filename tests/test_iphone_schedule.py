"""Background iPhones: where a slow identity read's time goes (the simulator's breakdown)."""

from __future__ import annotations

import pytest

from sim.iphone_model import ReadParts, breakdown


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
