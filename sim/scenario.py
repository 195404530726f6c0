"""Scenario files: which store, how many people, how noisy the radio, for how long.

A scenario names a store file (the same file `firmware_config` validates and the gateway
reads) and adds the population and the radio conditions. See docs/scenarios.md.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from firmware_config.store import StoreFile
from firmware_config.validate import ConfigError, validate_text


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScenarioInfo(_Strict):
    name: str
    store: str  # path to the store file, relative to the scenario file
    duration_s: Annotated[float, Field(gt=0, le=7 * 24 * 3600)]
    seed: int = 1
    arrivals_until_s: Annotated[float, Field(gt=0)] | None = None  # default: duration minus 20 min


class Population(_Strict):
    visitors: Annotated[int, Field(ge=0)] = 100
    regular_fraction: Annotated[float, Field(ge=0, le=1)] = 0.3  # of visitors: opted-in regulars
    unconsented_fraction: Annotated[float, Field(ge=0, le=1)] = 0.05  # registered, recognition withdrawn
    passers_by: Annotated[int, Field(ge=0)] = 200  # walk past on the pavement, never enter
    passer_by_regular_fraction: Annotated[float, Field(ge=0, le=1)] = 0.1
    passer_by_lane_m: Annotated[float, Field(ge=0)] = 2.0  # distance of their lane from the shop front
    staff: Annotated[int, Field(ge=0)] = 2
    fitting_room_probability: Annotated[float, Field(ge=0, le=1)] = 0.5
    purchase_probability: Annotated[float, Field(ge=0, le=1)] = 0.5
    walking_speed_mps: Annotated[float, Field(gt=0, le=3)] = 1.2
    browse_stops: tuple[int, int] = (1, 4)
    browse_dwell_s: tuple[float, float] = (20.0, 120.0)
    fitting_dwell_s: tuple[float, float] = (120.0, 420.0)
    till_dwell_s: tuple[float, float] = (30.0, 90.0)


class Radio(_Strict):
    ref_power_1m: float = -59.0
    path_loss_exponent: Annotated[float, Field(ge=1.5, le=5)] = 2.2
    shadowing_sigma_db: Annotated[float, Field(ge=0, le=20)] = 6.0
    shadowing_tau_s: Annotated[float, Field(ge=0)] = 4.0
    fading_sigma_db: Annotated[float, Field(ge=0, le=20)] = 2.0
    tx_offset_sigma_db: Annotated[float, Field(ge=0, le=20)] = 3.0
    sensitivity_dbm: float = -95.0
    advert_interval_s: Annotated[float, Field(gt=0, le=10)] = 0.5  # opted-in phones: 2 Hz
    anonymous_interval_s: tuple[float, float] = (0.2, 1.0)
    interval_jitter_s: Annotated[float, Field(ge=0, le=1)] = 0.01  # BLE adds 0-10 ms per event


class Scenario(_Strict):
    scenario: ScenarioInfo
    population: Population = Population()
    radio: Radio = Radio()


class ScenarioError(ValueError):
    """An invalid scenario; the message names the file, the key and what is wrong."""


def load_scenario(path: str | Path) -> tuple[Scenario, StoreFile]:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScenarioError(f"{path}: file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: {exc}") from None
    try:
        sc = Scenario.model_validate(data)
    except ValidationError as exc:
        lines = [f"{path}: {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise ScenarioError("\n".join(lines)) from None
    store_path = (path.parent / sc.scenario.store).resolve()
    try:
        store = validate_text(store_path.read_text(encoding="utf-8"), str(store_path))
    except FileNotFoundError:
        raise ScenarioError(f"{path}: scenario.store: store file {store_path} not found") from None
    except ConfigError as exc:
        raise ScenarioError(f"{path}: scenario.store: invalid store file:\n{exc}") from None
    return sc, store
