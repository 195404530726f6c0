"""Targets files (sim/targets.py): validated with clear errors, marked met or missed, never fatal."""

from __future__ import annotations

import io
import json

import pytest

from sim.report import print_table, report_dict
from sim.run import RunResult, run_scenario_cli
from sim.targets import LIBRARY_TARGETS, Limit, TargetError, load_targets
from sim.truth import Truth
from tests.conftest import BOUTIQUE


def _result(metrics: dict) -> RunResult:
    return RunResult("t", 1, None, Truth(duration_s=60.0), [], None, {}, 1.0, metrics)  # type: ignore[arg-type]


def test_the_library_targets_are_the_open_issues_targets() -> None:
    t = load_targets(LIBRARY_TARGETS)
    assert t["entry.latency_p50_s"] == Limit(max=4) and t["entry.latency_p95_s"] == Limit(max=10)
    assert t["left.latency_p95_s"] == Limit(max=10) and t["zone.accuracy"] == Limit(min=0.92)
    assert t["zone.wrong_room_changes_per_100_visits"] == Limit(max=1)
    assert t["entry.precision"] == Limit(min=0.99) and t["entry.recall"] == Limit(min=0.98)
    assert t["privacy.unconsented_identifications"] == Limit(min=0, max=0)


def test_limits_are_inclusive_and_unmeasured_metrics_are_neither_met_nor_missed() -> None:
    assert Limit(max=10).met(10.0) is True and Limit(max=10).met(10.5) is False
    assert Limit(min=0.99).met(0.98) is False and Limit(min=0, max=0).met(0) is True
    assert Limit(max=3).met(None) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('"entry.latncy_p50_s" = { max = 4 }\n', ':1: entry.latncy_p50_s: not a metric of the score '
         "(did you mean 'entry.latency_p50_s'?)"),
        ('\n"entry.precision" = { min = 0.99, max = 0.5 }\n', ":2: entry.precision: max 0.5 is below min 0.99"),
        ('"entry.precision" = {}\n', ":1: entry.precision: give min, max or both"),
        ('"entry.precision" = { minimum = 0.9 }\n', ":1: entry.precision.minimum: Extra inputs are not permitted"),
        ('"entry.precision" = 0.99\n', ":1: entry.precision: expected a table like"),
        ('"entry.precision" = { max = "ten" }\n', ":1: entry.precision.max: Input should be a valid number"),
        ("entry.precision = {", "t.toml: "),
    ],
)
def test_a_bad_targets_file_is_named_with_its_line_and_key(tmp_path, text: str, message: str) -> None:  # noqa: ANN001
    p = tmp_path / "t.toml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(TargetError) as exc:
        load_targets(p)
    assert str(exc.value).startswith(str(p)) and message in str(exc.value)


def test_the_table_and_the_report_mark_each_targeted_metric() -> None:
    targets = {"entry.precision": Limit(min=0.99), "entry.latency_p95_s": Limit(max=10),
               "fitting_room.item_recall": Limit(min=0.98), "entry.detected": Limit(min=1)}
    result = _result({"entry.precision": 1.0, "entry.latency_p95_s": 14.2, "fitting_room.item_recall": None,
                      "entry.detected": 3})
    out = io.StringIO()
    print_table(result, file=out, targets=targets)
    rows = {line.split("│")[1].strip(): line for line in out.getvalue().splitlines() if line.count("│") > 3}
    assert "met" in rows["entry.precision"] and "missed" not in rows["entry.precision"]
    assert "missed" in rows["entry.latency_p95_s"] and "<= 10" in rows["entry.latency_p95_s"]
    assert "n/a" in rows["fitting_room.item_recall"] and "met" not in rows["fitting_room.item_recall"]
    assert "met" in rows["entry.detected"]  # a targeted metric the table does not list gets a row
    marks = report_dict(result, targets)["targets"]
    assert marks["entry.precision"]["met"] is True and marks["entry.latency_p95_s"] == {
        "min": None, "max": 10.0, "value": 14.2, "met": False}
    assert marks["fitting_room.item_recall"]["met"] is None


def test_sim_run_with_targets_marks_misses_and_still_exits_0(tmp_path) -> None:  # noqa: ANN001
    sc = tmp_path / "s.toml"
    sc.write_text(f'[scenario]\nname = "s"\nstore = "{BOUTIQUE.as_posix()}"\nduration_s = 120\n'
                  "[population]\nvisitors = 4\npassers_by = 4\n", encoding="utf-8")
    targets = tmp_path / "t.toml"
    targets.write_text('"sim.duration_s" = { max = 60 }\n"privacy.unconsented_identifications" = { max = 0 }\n',
                       encoding="utf-8")
    out: list[str] = []
    assert run_scenario_cli(sc, None, tmp_path / "r.json", echo=out.append, targets_path=targets) == 0
    marks = json.loads((tmp_path / "r.json").read_text())["targets"]
    assert marks["sim.duration_s"]["met"] is False and marks["privacy.unconsented_identifications"]["met"] is True
    targets.write_text('"sim.durations" = { max = 60 }\n', encoding="utf-8")
    assert run_scenario_cli(sc, echo=out.append, targets_path=targets) == 1
    assert out[-1].startswith(f"error: {targets}:1: sim.durations: not a metric")
