"""The fast mode: deterministic, identical to the per-packet reference path, scored, reported."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from firmware_config.store import load_store
from sim.emitter import Emitter
from sim.report import report_dict
from sim.run import run_fast, run_scenario_cli
from sim.scenario import Population, Scenario, ScenarioInfo
from sim.truth import build_truth
from sim.world import ItemState, build_world
from tests.conftest import BOUTIQUE, ROOT

FLAGSHIP = ROOT / "firmware_config" / "examples" / "flagship.toml"


def _small(seed: int = 5, duration: float = 240.0) -> Scenario:
    return Scenario(
        scenario=ScenarioInfo(
            name="small", store=str(BOUTIQUE), duration_s=duration, seed=seed, arrivals_until_s=60
        ),
        population=Population(
            visitors=14,
            regular_fraction=0.6,
            unconsented_fraction=0.2,
            passers_by=30,
            passer_by_regular_fraction=0.3,
            staff=1,
            browse_dwell_s=(10, 30),
            fitting_dwell_s=(30, 60),
            till_dwell_s=(10, 20),
        ),
    )


@pytest.fixture(scope="module")
def store():  # noqa: ANN201
    return load_store(BOUTIQUE)


@pytest.fixture(scope="module")
def batch_run(store):  # noqa: ANN001, ANN201
    return run_fast(_small(), store, keep_payloads=True)


def test_same_seed_same_truth_and_report(store, batch_run) -> None:  # noqa: ANN001
    again = run_fast(_small(), store, keep_payloads=True)
    assert again.truth == batch_run.truth
    assert again.payloads == batch_run.payloads
    a, b = report_dict(again), report_dict(batch_run)
    for d in (a, b):
        d.pop("wall_s")
        for k in ("sim.wall_s", "sim.speedup"):
            d["metrics"].pop(k)
    assert a == b
    other = run_fast(_small(), store, seed=6)
    assert other.truth != batch_run.truth


def test_the_radio_in_its_own_process_gives_the_same_run(store, batch_run) -> None:  # noqa: ANN001
    """`pipeline` (the default) makes the windows in a forked process: the same windows, events
    and counts as made in line, tick by tick."""
    inline = run_fast(_small(), store, keep_payloads=True, pipeline=False)
    assert inline.payloads == batch_run.payloads and inline.events == batch_run.events
    assert inline.counts == batch_run.counts and inline.counts["ble_packets"] > 0


def test_batch_windows_equal_the_per_packet_reference_through_the_edge_aggregator(store, batch_run) -> None:  # noqa: ANN001
    ref = run_fast(_small(), store, mode="packets", keep_payloads=True)
    assert len(ref.payloads) == len(batch_run.payloads) > 1000
    assert ref.payloads == batch_run.payloads  # byte for byte, BLE and RFID windows
    assert ref.events == batch_run.events


def test_windows_carry_forwarded_ids_anonymous_counts_and_rfid_reads(batch_run) -> None:  # noqa: ANN001
    msgs = [json.loads(p) for p in batch_run.payloads]
    ble = [m for m in msgs if m["type"] == "ble"]
    rfid = [m for m in msgs if m["type"] == "rfid"]
    assert {m["node"] for m in ble} == {"entrance-1", "floor-west", "floor-east", "fr1", "fr2", "fr3"}
    ids = {o["id"].split(":")[0] for m in ble for o in m["observations"]}
    assert ids == {"eid", "ibeacon"}  # regulars' EIDs and the staff badge; nothing else leaves a node
    assert sum(m["anonymous"]["adverts"] for m in ble) > 0
    assert all(m["window"][1] - m["window"][0] == pytest.approx(1.0) for m in ble)
    assert batch_run.counts["rejected_messages"] == 0
    assert sum(len(m["observations"]) for m in rfid) > 0


def test_scores_are_plausible_and_private(batch_run) -> None:  # noqa: ANN001
    m = batch_run.metrics
    assert m["privacy.unconsented_identifications"] == 0
    assert m["entry.true_visits"] > 0
    assert m["entry.recall"] is not None and m["entry.recall"] >= 0.5
    assert m["sim.speedup"] > 1
    # the gateway's fitting-room engine reports, and the scorer scores them
    assert m["fitting_room.item_precision"] is not None and 0.0 <= m["fitting_room.item_precision"] <= 1.0
    assert m["fitting_room.true_stays"] > 0


def test_truth_matches_the_world(batch_run) -> None:  # noqa: ANN001
    t = batch_run.truth
    w = batch_run.world
    for a, at in zip(w.agents, t.agents, strict=True):
        assert at.entered_at == a.entered_at
        for probe in np.linspace(a.t_start, a.t_end - 1e-6, 7):
            assert at.zone_at(float(probe)) == a.zone_at(float(probe))
    for r in t.room_items:
        item = next(i for i in w.items if i.epc == r.epc)
        mid = (r.start + r.end) / 2
        mv = item.at(mid)
        if mv.state == ItemState.CARRIED:
            carrier = next(a for a in w.agents if a.id == mv.where)
            assert carrier.zone_at(mid) == r.room
        else:
            assert mv.state == ItemState.ROOM and mv.where == r.room


def test_items_are_picked_carried_tried_bought_or_put_back(store) -> None:  # noqa: ANN001
    sc = Scenario(
        scenario=ScenarioInfo(name="items", store="x", duration_s=3600, seed=2),
        population=Population(visitors=120, passers_by=0, staff=0, fitting_room_probability=0.8),
    )
    w = build_world(sc, store)
    from gateway.engines.epc import decode_sgtin96

    states = {m.state for i in w.items for m in i.moves}
    assert {ItemState.SHELF, ItemState.CARRIED, ItemState.ROOM, ItemState.GONE} <= states
    for it in w.items:
        sg = decode_sgtin96(it.epc)
        assert sg.gtin14 == it.product.gtin14  # a real SGTIN-96 of the product's GTIN
        assert [m.t for m in it.moves] == sorted(m.t for m in it.moves)
        for a, b in zip(it.moves, it.moves[1:], strict=False):  # a garment is never in two hands at once
            assert not (a.state == ItemState.CARRIED and b.state == ItemState.CARRIED and a.where != b.where)
    per_shopper: dict[str, int] = {}
    for it in w.items:
        for m in it.moves:
            if m.state == ItemState.CARRIED:
                per_shopper[m.where] = per_shopper.get(m.where, 0) + 1
    assert max(per_shopper.values()) <= 4
    assert len({i.epc for i in w.items}) == len(w.items)
    assert build_truth(w).room_items


def test_flagship_world_uses_both_entrances(store) -> None:  # noqa: ANN001
    fl = load_store(FLAGSHIP)
    sc = Scenario(
        scenario=ScenarioInfo(name="f", store="x", duration_s=1800, seed=1),
        population=Population(visitors=60, passers_by=40, staff=2),
    )
    w = build_world(sc, fl)
    firsts = {a.zones[1][1] for a in w.agents if a.entered_at is not None}
    assert firsts == {"entrance-south", "entrance-east"}
    assert len(w.shelves) == 16
    em = Emitter(w, seed=1)
    rec = em.step_arrays(0.0, 60.0)
    assert len(rec) > 0 and np.all(np.diff(rec.t) >= 0)


def _write(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "bad.toml"
    p.write_text(f'[scenario]\nname = "x"\nstore = "{BOUTIQUE}"\n' + body)
    return p


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("duration_s = -5\n", "scenario.duration_s: Input should be greater than 0"),
        (
            "duration_s = 60\n[population]\nvisitorz = 3\n",
            "population.visitorz: unknown key (did you mean 'visitors'?)",
        ),
        (
            "duration_s = 60\n[population]\nbrowse_dwell_s = [50, 10]\n",
            "browse_dwell_s: upper bound 10.0 is below",
        ),
        ("duration_s = 60\n[items]\ncatalogue = 'nope.csv'\n", "items.catalogue: catalogue file"),
        ("duration_s = 60\n[rfid]\nwindow_s = 0\n", "rfid.window_s: Input should be greater than 0"),
        ("duration_s = 60\n[radio]\nanonymous_interval_s = [0, 1]\n", "anonymous_interval_s: the shortest"),
    ],
)
def test_invalid_scenarios_name_file_and_key(tmp_path, body, needle, capsys) -> None:  # noqa: ANN001
    p = _write(tmp_path, body)
    lines: list[str] = []
    assert run_scenario_cli(p, echo=lines.append) == 1
    assert len(lines) == 1 and str(p) in lines[0] and needle in lines[0]
    assert "Traceback" not in capsys.readouterr().err


def test_missing_store_and_bad_toml(tmp_path) -> None:  # noqa: ANN001
    p = tmp_path / "s.toml"
    p.write_text('[scenario]\nname = "x"\nstore = "missing.toml"\nduration_s = 5\n')
    out: list[str] = []
    assert run_scenario_cli(p, echo=out.append) == 1 and "scenario.store: store file" in out[0]
    p.write_text("[scenario\n")
    assert run_scenario_cli(p, echo=out.append) == 1 and str(p) in out[-1]


def test_cli_writes_report_truth_and_plot(tmp_path, capsys) -> None:  # noqa: ANN001
    sc = tmp_path / "short.toml"
    sc.write_text(
        f'[scenario]\nname = "short"\nstore = "{BOUTIQUE}"\nduration_s = 90\narrivals_until_s = 30\n'
        "[population]\nvisitors = 4\npassers_by = 5\n"
    )
    out: list[str] = []
    assert run_scenario_cli(sc, 3, tmp_path / "r.json", tmp_path / "r.png", echo=out.append) == 0
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["seed"] == 3 and "entry.recall" in rep["metrics"] and "notes" in rep
    truth = json.loads((tmp_path / "r.truth.json").read_text())
    assert len(truth["agents"]) == 4 + 5 + 2
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "privacy.unconsented_identifications" in capsys.readouterr().out


def test_library_scenarios_load() -> None:
    from sim.scenario import load_scenario

    for name in ("boutique", "flagship", "high_street", "demo"):
        sc, st = load_scenario(ROOT / "sim" / "scenarios" / f"{name}.toml")
        assert sc.scenario.name == name
    sc, _ = load_scenario(ROOT / "sim" / "scenarios" / "high_street.toml")
    assert sc.population.passers_by == 2000 and sc.population.passer_by_lane_m == 1.0


def test_benchmark_quick_runs_and_reports_figures() -> None:
    from benchmarks import sim as bench

    out = bench.run(quick=True)
    assert bench.NAME == "sim"
    assert out["boutique_speedup_x"] > 0 and out["flagship_wall_s"] > 0 and "target" in out
