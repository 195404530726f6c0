"""Scenario files: which store, how many people, how noisy the radio, for how long.

A scenario names a store file (the same file `firmware_config` validates and the gateway
reads) and adds the population and the radio conditions. See docs/scenarios.md.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from firmware_config.store import StoreFile, ZoneKind
from firmware_config.validate import ConfigError, validate_text


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_ranges(model: BaseModel, *names: str) -> None:
    """(low, high) pairs: both non-negative and in order, else an error naming the key."""
    for name in names:
        lo, hi = getattr(model, name)
        if lo < 0:
            raise ValueError(f"{name}: lower bound {lo} is negative")
        if hi < lo:
            raise ValueError(f"{name}: upper bound {hi} is below lower bound {lo}")


class ScenarioInfo(_Strict):
    name: str
    store: str  # path to the store file, relative to the scenario file
    duration_s: Annotated[float, Field(gt=0, le=7 * 24 * 3600)]
    seed: int = 1
    arrivals_until_s: Annotated[float, Field(gt=0)] | None = None  # default: duration minus 20 min


_Weight = Annotated[float, Field(ge=0)]


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
    # Relative weights of parties of 1, 2, 3 and 4 people (`visitors` counts people).
    party_size_weights: tuple[_Weight, _Weight, _Weight, _Weight] = (0.55, 0.3, 0.1, 0.05)
    party_split_probability: Annotated[float, Field(ge=0, le=1)] = 0.2  # a member browses alone for a while
    room_companion_probability: Annotated[float, Field(ge=0, le=1)] = 0.2  # a member goes into the fitting room too

    @model_validator(mode="after")
    def _ranges(self) -> Population:
        _check_ranges(self, "browse_stops", "browse_dwell_s", "fitting_dwell_s", "till_dwell_s")
        if sum(self.party_size_weights) <= 0:
            raise ValueError("party_size_weights: at least one party size needs a weight above 0")
        return self


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

    @model_validator(mode="after")
    def _ranges(self) -> Radio:
        _check_ranges(self, "anonymous_interval_s")
        if self.anonymous_interval_s[0] <= 0:
            raise ValueError("anonymous_interval_s: the shortest advertising interval must be above 0")
        return self


class Items(_Strict):
    """Garments on shelves, picked up, tried on, bought or put back (see docs/scenarios.md)."""

    enabled: bool = True
    catalogue: str | None = None  # CSV relative to the scenario file; default sim/data/catalogue.csv
    company_prefix_digits: Annotated[int, Field(ge=6, le=12)] = 7  # GS1 company prefix length of the GTINs
    shelves_per_floor: Annotated[int, Field(ge=0, le=100)] = 3  # only used when the store has no shelf nodes
    items_per_shelf: Annotated[int, Field(ge=0, le=500)] = 12
    pick: tuple[Annotated[int, Field(ge=0)], Annotated[int, Field(ge=0, le=20)]] = (
        0,
        4,
    )  # garments per shopper
    leave_in_room_probability: Annotated[float, Field(ge=0, le=1)] = 0.3  # per garment, after trying it on
    buy_probability: Annotated[float, Field(ge=0, le=1)] = 0.6  # per garment still carried at the till
    room_clear_s: tuple[Annotated[float, Field(ge=0)], Annotated[float, Field(ge=0)]] = (120.0, 900.0)
    restock_s: tuple[Annotated[float, Field(ge=0)], Annotated[float, Field(ge=0)]] = (300.0, 1800.0)

    @model_validator(mode="after")
    def _ranges(self) -> Items:
        _check_ranges(self, "pick", "room_clear_s", "restock_s")
        return self


class Rfid(_Strict):
    """The UHF read model of every RFID antenna in the store file (sim/rfid_model.py)."""

    enabled: bool = True
    window_s: Annotated[float, Field(gt=0, le=10)] = 1.0  # aggregation window of the readers
    rounds_per_s: Annotated[float, Field(gt=0, le=100)] = 8.0  # Gen2 inventory rounds per antenna per second
    antenna_gain_dbi: Annotated[float, Field(ge=-10, le=15)] = 6.0  # boresight gain of a patch antenna
    pattern_exponent: Annotated[float, Field(ge=0, le=8)] = 2.0  # cardioid sharpness: 0 = omnidirectional
    back_lobe_db: Annotated[float, Field(ge=0, le=60)] = (
        18.0  # the gain floor behind the antenna, below boresight
    )
    path_loss_1m_db: Annotated[float, Field(ge=0, le=60)] = 31.0  # free space at 1 m, 868 MHz
    path_loss_exponent: Annotated[float, Field(ge=1.5, le=5)] = 2.0
    tag_sensitivity_dbm: Annotated[float, Field(ge=-35, le=0)] = -20.0  # a tag wakes above this forward power
    backscatter_loss_db: Annotated[float, Field(ge=0, le=60)] = (
        15.0  # tag modulation and reader losses on the way back
    )
    fading_sigma_db: Annotated[float, Field(ge=0, le=20)] = 3.0  # per read (multipath, frequency hopping)
    read_width_db: Annotated[float, Field(gt=0, le=10)] = 1.5  # how sharply reads fail near tag sensitivity
    body_block_probability: Annotated[float, Field(ge=0, le=1)] = 0.35  # a carried tag is behind the body
    body_loss_db: Annotated[float, Field(ge=0, le=40)] = 12.0
    max_range_m: Annotated[float, Field(gt=0, le=50)] = 8.0  # pairs further apart are never evaluated


class Scenario(_Strict):
    scenario: ScenarioInfo
    population: Population = Population()
    radio: Radio = Radio()
    items: Items = Items()
    rfid: Rfid = Rfid()

    def with_seed(self, seed: int | None) -> Scenario:
        """The same scenario with another seed (None: unchanged)."""
        if seed is None:
            return self
        return self.model_copy(update={"scenario": self.scenario.model_copy(update={"seed": seed})})


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
    if sc.items.catalogue is not None:
        cat = (path.parent / sc.items.catalogue).resolve()
        if not cat.is_file():
            raise ScenarioError(f"{path}: items.catalogue: catalogue file {cat} not found")
        sc = sc.model_copy(update={"items": sc.items.model_copy(update={"catalogue": str(cat)})})
    store_path = (path.parent / sc.scenario.store).resolve()
    try:
        store = validate_text(store_path.read_text(encoding="utf-8"), str(store_path))
    except FileNotFoundError:
        raise ScenarioError(f"{path}: scenario.store: store file {store_path} not found") from None
    except ConfigError as exc:
        raise ScenarioError(f"{path}: scenario.store: invalid store file:\n{exc}") from None
    problem = store_problem(store)
    if problem:
        raise ScenarioError(f"{path}: scenario.store: {store_path.name}: {problem}")
    return sc, store


def store_problem(store: StoreFile) -> str | None:
    """What makes a valid store file unusable for simulation, or None."""
    kinds = {z.id: z.kind for z in store.zones}
    links = {(z.id, c) for z in store.zones for c in z.connects} | {
        (c, z.id) for z in store.zones for c in z.connects
    }
    links |= {(a, b) for d in store.doors for a, b in (d.zones, d.zones[::-1])}  # a declared door joins too
    if not any(k == ZoneKind.OUTSIDE for k in kinds.values()):
        return "no zone of kind 'outside': shoppers need somewhere to come from"
    doors = [
        (a, b) for a, b in links if kinds.get(a) == ZoneKind.OUTSIDE and kinds.get(b) == ZoneKind.ENTRANCE
    ]
    if not doors:
        return "no 'entrance' zone connects to an 'outside' zone: nobody could enter"
    return None
