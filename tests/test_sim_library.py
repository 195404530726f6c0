"""The library runner: every scenario x seed, one table, before -> after."""

from pathlib import Path

import pytest

from sim.library import LIBRARY, parse_seeds, run_library, scenario_paths, table
from sim.scenario import load_scenario, with_curtains


def test_seeds_are_ranges_or_lists_and_nonsense_is_named():
    assert parse_seeds("1-3") == [1, 2, 3]
    assert parse_seeds("1,4") == [1, 4]
    assert parse_seeds("2-3,7") == [2, 3, 7]
    with pytest.raises(ValueError, match="'x' is not a seed"):
        parse_seeds("1,x")


def test_the_default_is_the_whole_library_and_names_resolve_into_it():
    everything = scenario_paths()
    assert {p.name for p in everything} == {p.name for p in LIBRARY.glob("*.toml")}
    assert scenario_paths(["boutique"]) == [LIBRARY / "boutique.toml"]


def _short(tmp_path: Path) -> Path:
    store = (LIBRARY / "boutique.toml").read_text().split("store = ")[1].split("\n")[0].strip('"')
    path = tmp_path / "short.toml"
    path.write_text(
        f'[scenario]\nname = "short"\nstore = "{(LIBRARY / store).resolve()}"\nduration_s = 120\n'
        "[population]\nvisitors = 4\npassers_by = 4\n"
    )
    return path


def test_every_scenario_and_seed_is_run_and_laid_out_with_before_and_after(tmp_path):
    seen = []
    reports = run_library([_short(tmp_path)], [1, 2], jobs=1, on_done=seen.append)
    assert [(r["scenario"], r["seed"]) for r in reports] == [("short", 1), ("short", 2)]
    assert len(seen) == 2
    md = table(reports, metrics=["entry.recall", "sim.duration_s"])
    assert md.splitlines()[0] == "| scenario | metric | seed 1 | seed 2 |"
    assert "| short | sim.duration_s | 120.0 | 120.0 |" in md
    old = [dict(r, metrics={**r["metrics"], "sim.duration_s": 60.0}) for r in reports]
    assert "| short | sim.duration_s | 60.0 → 120.0 | 60.0 → 120.0 |" in table(reports, ["sim.duration_s"], before=old)


def test_curtains_put_a_sensor_on_every_fitting_room_of_every_scenario(tmp_path):
    (plain,) = run_library([_short(tmp_path)], [1], jobs=1)
    (fitted,) = run_library([_short(tmp_path)], [1], jobs=1, curtains="beam")
    assert "curtain.crossings" not in plain["metrics"]
    assert fitted["metrics"]["curtain.crossings"] >= 0 and "curtain.missed" in fitted["metrics"]
    sc, store = load_scenario(_short(tmp_path))
    assert set(with_curtains(sc, store, "tof").curtain_sensor.doors.items()) == {
        ("fr1", "tof"), ("fr2", "tof"), ("fr3", "tof")
    }
