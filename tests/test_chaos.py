"""`instore chaos`: the fault plan and the books (pure), and a short run through the real processes."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from instore import chaos
from tests.conftest import ROOT

NODES = ["entrance-1", "floor-west", "fr1"]


def test_the_plan_is_the_seeds_and_keeps_faults_apart_inside_the_run() -> None:
    a = chaos.plan_faults(random.Random(7), 120.0, NODES, 4)
    assert a == chaos.plan_faults(random.Random(7), 120.0, NODES, 4)
    assert a != chaos.plan_faults(random.Random(8), 120.0, NODES, 4)
    starts = [f.at_s for f in a]
    assert starts == sorted(starts) and len(a) == 4
    assert all(b - x >= chaos.FAULT_GAP_S - 1e-9 for x, b in zip(starts, starts[1:], strict=False))
    assert all(0.15 * 120 <= s <= 0.65 * 120 for s in starts)
    for f in a:
        assert f.kind in chaos.FAULT_KINDS
        assert (f.target in NODES) == f.kind.startswith("node_")


def test_every_fault_kind_comes_up_over_many_runs() -> None:
    kinds = {f.kind for s in range(40) for f in chaos.plan_faults(random.Random(s), 120.0, NODES, 3)}
    assert kinds == set(chaos.FAULT_KINDS)


def test_a_short_run_gets_only_the_faults_that_fit() -> None:
    assert len(chaos.plan_faults(random.Random(1), 30.0, NODES, 10)) == 2  # 15 s of fault window, 8 s apart


def test_windows_not_heard_are_lost_and_heard_twice_redelivered() -> None:
    produced = {"n1": {("ble", 0), ("ble", 1), ("ble", 2)}, "n2": {("ble", 5)}}
    heard = {"n1": Counter({("ble", 0): 1, ("ble", 2): 2}), "n2": Counter({("ble", 5): 1})}
    books = chaos.tally(produced, heard, {"n1": {("ble", 2)}}, {}, {})
    assert books["sent"] == 4 and books["delivered"] == 3 and books["lost"] == 1 and books["late"] == 1
    assert books["redelivered"] == 1 and books["lost_by_node"] == {"n1": [("ble", 1)]}


def test_the_last_unwritten_windows_of_a_killed_node_are_counted_apart() -> None:
    produced = {"n1": {("ble", s) for s in range(10)}}
    heard = {"n1": Counter({("ble", s): 1 for s in range(4)})}  # killed while the broker was away
    at_risk = {"n1": {("ble", s) for s in range(10 - chaos.KILL_MAY_LOSE, 10)}}
    books = chaos.tally(produced, heard, {}, at_risk, {})
    assert books["lost_to_sigkill"] == chaos.KILL_MAY_LOSE  # the queue's documented power-cut loss
    assert books["lost"] == 10 - 4 - chaos.KILL_MAY_LOSE  # anything beyond it is lost for real


def test_windows_still_in_a_stopped_nodes_queue_are_not_lost() -> None:
    produced = {"n1": {("ble", s) for s in range(5)}}
    heard = {"n1": Counter({("ble", 0): 1, ("ble", 1): 1})}
    books = chaos.tally(produced, heard, {}, {}, {"n1": {("ble", 3), ("ble", 4)}})
    assert books["undelivered_in_queue"] == 2 and books["lost"] == 1 and books["lost_by_node"] == {"n1": [("ble", 2)]}


def test_an_entry_alert_for_someone_inside_is_a_duplicate() -> None:
    events = [("entered", "a", 1.0), ("entered", "b", 2.0), ("zone_changed", "a", 3.0), ("entered", "a", 4.0),
              ("left", "b", 5.0), ("entered", "b", 6.0), ("entered", None, 7.0)]
    assert chaos.duplicate_alerts(events) == [("a", 4.0)]  # b left and came back: a new visit


def test_the_slice_starts_before_the_most_regulars_walk_in() -> None:
    assert chaos.busiest_start([100.0, 900.0, 910.0, 950.0, 2000.0], 60.0) == 900.0 - chaos.ALERT_LEAD_S
    assert chaos.busiest_start([], 60.0) == 0.0


def test_gateway_counters_are_summed_by_label() -> None:
    text = ('instore_gateway_time_rejects_total{node="n1",reason="ahead"} 3.0\n'
            'instore_gateway_time_rejects_total{node="n2",reason="ahead"} 2.0\n'
            'instore_gateway_time_rejects_created{node="n2",reason="ahead"} 1.7e9\n'
            'instore_gateway_rejects_total{field="seq"} 1.0\n')
    m = chaos.parse_metrics(text, ["instore_gateway_time_rejects", "instore_gateway_rejects"])
    assert chaos._labelled(m, "instore_gateway_time_rejects", "reason") == {"ahead": 5}  # noqa: SLF001
    assert chaos._labelled(m, "instore_gateway_rejects", "field") == {"seq": 1}  # noqa: SLF001


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_one_short_chaos_run_loses_nothing_and_stops_cleanly(tmp_path: Path) -> None:
    """The short form: 40 s of the busy hour, three faults from the seed, through the CLI."""
    report = tmp_path / "chaos.json"
    r = subprocess.run(
        [sys.executable, "-m", "instore.cli", "chaos", "--runs", "1", "--seed", "3", "--duration", "40",
         "--faults", "3", "--out", str(report)],
        capture_output=True, text=True, timeout=170, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    full = json.loads(report.read_text())
    run = full["per_run"][0]
    assert len(run["faults"]) == 3 and run["windows"]["sent"] > 100, run
    assert run["windows"]["lost"] == run["windows"]["undelivered_in_queue"] == 0, run
    assert run["windows"]["lost_to_sigkill"] <= chaos.KILL_MAY_LOSE * sum(run["restarts"].values()), run
    assert run["duplicate_alerts"] == 0, run
    assert run["stuck"] == [] and run["crashes"] == {}, run
    assert run["gateway_sigterm_with_stream"] and run["gateway_sigterm_s"] < chaos.STOP_WITHIN_S, run
    assert r.returncode == 0 and json.loads(r.stdout)["ok"], r.stdout + r.stderr
