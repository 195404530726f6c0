"""Scenario files are checked like store files: file:line: key: message, did-you-mean, and the
kind of file named when a scenario and a store file are mixed up."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from firmware_config.validate import validate_cli
from sim.run import run_scenario_cli
from sim.scenario import ScenarioError, load_scenario
from tests.conftest import BOUTIQUE, ROOT

HEAD = f'[scenario]\nname = "x"\nstore = "{BOUTIQUE}"\nduration_s = 60\n'


def errors(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "s.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    return str(info.value).replace(str(path), "s.toml").splitlines()


def test_unknown_keys_with_line_and_did_you_mean(tmp_path: Path) -> None:
    text = HEAD + "\n[population]\nvisitrs = 4\n\n[radoi]\nsensitivity_dbm = -90\n"
    assert errors(tmp_path, text) == [
        "s.toml:7: population.visitrs: unknown key (did you mean 'visitors'?)",
        "s.toml:9: radoi: unknown key (did you mean 'radio'?)",
    ]


def test_types_ranges_and_missing_keys_name_their_line(tmp_path: Path) -> None:
    text = '[scenario]\nname = "x"\nstore = "s.toml"\n\n[population]\nwalking_speed_mps = 9\nstaff = "two"\n'
    assert errors(tmp_path, text) == [
        "s.toml:1: scenario.duration_s: missing required key",
        "s.toml:6: population.walking_speed_mps: Input should be less than or equal to 3 (got 9)",
        "s.toml:7: population.staff: Input should be a valid integer, unable to parse string as an integer "
        "(got 'two')",
    ]


def test_an_inverted_range_names_its_key_and_line(tmp_path: Path) -> None:
    text = HEAD + "\n[population]\nvisitors = 4\nbrowse_stops = [4, 1]\n"
    assert errors(tmp_path, text) == ["s.toml:8: population.browse_stops: upper bound 1 is below lower bound 4"]


def test_syntax_error_and_missing_files_have_their_line(tmp_path: Path) -> None:
    assert errors(tmp_path, HEAD + "[population\n") == [
        "s.toml:5: (syntax): Expected ']' at the end of a table declaration"
    ]
    missing = errors(tmp_path, HEAD.replace(str(BOUTIQUE), "nowhere.toml"))
    assert len(missing) == 1 and missing[0].startswith("s.toml:3: scenario.store: store file ")
    catalogue = errors(tmp_path, HEAD + '[items]\ncatalogue = "none.csv"\n')
    assert len(catalogue) == 1 and catalogue[0].startswith("s.toml:6: items.catalogue: catalogue file ")


def test_a_store_file_given_to_sim_run_says_what_it_is() -> None:
    out: list[str] = []
    assert run_scenario_cli(BOUTIQUE, echo=out.append) == 1
    assert out == [
        f"error: {BOUTIQUE}: (document): this is a store file ([[zones]]), not a scenario: check it with "
        f"`instore config validate {BOUTIQUE}`; to simulate it, write a scenario whose scenario.store names it "
        "(see sim/scenarios/ and docs/scenarios.md)"
    ]


def test_a_scenario_given_to_config_validate_says_what_it_is() -> None:
    scenario = ROOT / "sim" / "scenarios" / "boutique.toml"
    assert validate_cli(scenario) == (
        1,
        f"{scenario}:3: (document): this is a scenario file ([scenario]), not a store file: run it with "
        f"`instore sim run {scenario}`; the store file it simulates is the one its scenario.store names",
    )


def test_sim_run_repeats_the_store_file_warnings_before_the_run(tmp_path: Path) -> None:
    text = BOUTIQUE.read_text()
    side_wall = "[[walls]]\na = [14, 9]\nb = [14, 12]\nattenuation_db = 6\n"
    store = tmp_path / "open.toml"
    store.write_text(text.replace(side_wall, ""))
    scenario = tmp_path / "s.toml"
    scenario.write_text(
        f'[scenario]\nname = "x"\nstore = "{store}"\nduration_s = 20\narrivals_until_s = 10\n'
        "[population]\nvisitors = 1\npassers_by = 1\nstaff = 0\n"
    )
    out: list[str] = []
    assert run_scenario_cli(scenario, echo=out.append) == 0
    line = text.splitlines().index('id = "fr1"')
    assert out[0] == (
        f"warning: {store}:{line}: zones.fr1: open to zone 'floor' along 2.9 m with no wall "
        "(a curtain is at most 2 m): declare the partition in [[walls]]"
    )


def test_every_library_scenario_loads_with_its_store() -> None:
    for path in sorted((ROOT / "sim" / "scenarios").glob("*.toml")):
        sc, store = load_scenario(path)
        assert sc.scenario.name == path.stem and store.street_doors(), path.name


@pytest.mark.parametrize("name", ["corner", "mall_unit", "two_doors", "deep_narrow"])
def test_library_stores_run_to_the_end(tmp_path: Path, name: str) -> None:
    """A short run of each library store: the world, the radio and the engines take its shape."""
    sc, _ = load_scenario(ROOT / "sim" / "scenarios" / f"{name}.toml")
    store = (ROOT / "sim" / "scenarios" / sc.scenario.store).resolve()
    short = tmp_path / "short.toml"
    short.write_text(
        f'[scenario]\nname = "{name}"\nstore = "{store}"\nduration_s = 120\narrivals_until_s = 30\n'
        "[population]\nvisitors = 4\npassers_by = 4\nregular_fraction = 1\nunconsented_fraction = 0\n"
    )
    out: list[str] = []
    assert run_scenario_cli(short, report_path=tmp_path / "r.json", echo=out.append) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["metrics"]["entry.recall"] is not None and report["metrics"]["sim.duration_s"] == 120
