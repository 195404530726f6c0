"""Scenario files: which store, how many people, how noisy the radio, for how long.

A scenario names a store file (the same file `firmware_config` validates and the gateway
reads) and adds the population and the radio conditions. See docs/scenarios.md.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edge.protocol import DoorSensorKind
from firmware_config.store import StoreFile, ZoneKind
from firmware_config.validate import (
    ConfigError,
    Problem,
    key_lines,
    line_of,
    model_problems,
    syntax_problem,
    validate_text,
)


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
    # Window shoppers: passers-by who stop at the shop front, then walk on (sources: docs/scenarios.md).
    window_shopper_fraction: Annotated[float, Field(ge=0, le=1)] = 0.1  # top of street shops' 5-10 % capture rates
    window_dwell_s: tuple[float, float] = (5.0, 60.0)  # past the ~2.5 s glance that decides a stop, up to a minute
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
        _check_ranges(self, "browse_stops", "browse_dwell_s", "fitting_dwell_s", "till_dwell_s", "window_dwell_s")
        if sum(self.party_size_weights) <= 0:
            raise ValueError("party_size_weights: at least one party size needs a weight above 0")
        return self


SHARE_TOLERANCE = 1e-6  # shares written with a few decimals must still add up to exactly 1


def _check_shares(what: str, shares: dict[str, float]) -> None:
    """Shares of one whole must add up to 1; the error lists every key and its value."""
    total = sum(shares.values())
    if abs(total - 1.0) > SHARE_TOLERANCE:
        terms = " + ".join(f"{k} {v:g}" for k, v in shares.items() if v)  # a kind left at 0 says nothing
        raise ValueError(f"{what}: {terms} = {total:g}, the shares must add up to 1")


class Carry(_Strict):
    """Where people carry their phone or fob (sim/radio.py CARRY says what each costs)."""

    hand: Annotated[float, Field(ge=0, le=1)] = 0.3
    front_pocket: Annotated[float, Field(ge=0, le=1)] = 0.3
    back_pocket: Annotated[float, Field(ge=0, le=1)] = 0.15
    bag: Annotated[float, Field(ge=0, le=1)] = 0.25

    @model_validator(mode="after")
    def _sum(self) -> Carry:
        _check_shares("carry", {k: getattr(self, k) for k in type(self).model_fields})
        return self


class Radio(_Strict):
    ref_power_1m: float = -59.0
    path_loss_exponent: Annotated[float, Field(ge=1.5, le=5)] = 2.2
    shadowing_sigma_db: Annotated[float, Field(ge=0, le=20)] = 6.0
    shadowing_tau_s: Annotated[float, Field(ge=0)] = 4.0
    fading_sigma_db: Annotated[float, Field(ge=0, le=20)] = 2.0
    tx_offset_sigma_db: Annotated[float, Field(ge=0, le=20)] = 7.0  # anonymous phones: Android's spread
    sensitivity_dbm: float = -95.0
    anonymous_interval_s: tuple[float, float] = (0.2, 1.0)
    interval_jitter_s: Annotated[float, Field(ge=0, le=1)] = 0.01  # BLE adds 0-10 ms per event
    body_loss_db: Annotated[float, Field(ge=0, le=40)] = 12.0  # the wearer's body fully between phone and node
    packet_loss: Annotated[float, Field(ge=0, lt=1)] = 0.25  # adverts lost to interference, at any RSSI
    carry: Carry = Carry()

    @model_validator(mode="after")
    def _ranges(self) -> Radio:
        _check_ranges(self, "anonymous_interval_s")
        if self.anonymous_interval_s[0] <= 0:
            raise ValueError("anonymous_interval_s: the shortest advertising interval must be above 0")
        return self


Rate = Annotated[float, Field(gt=0, le=50)]


class Carrier(_Strict):
    """One kind of identity carrier: how many registered customers carry it, how it advertises."""

    share: Annotated[float, Field(ge=0, le=1)]  # of registered customers
    rates_hz: tuple[Rate, ...]  # advertising rates it can run at
    rate_weights: tuple[Annotated[float, Field(ge=0)], ...]  # how often each rate is chosen
    tx_offset_db: Annotated[float, Field(ge=-30, le=30)] = 0.0  # mean transmit power against a typical phone
    tx_sigma_db: Annotated[float, Field(ge=0, le=20)]  # spread of transmit power from one unit to the next

    @model_validator(mode="after")
    def _weights(self) -> Carrier:
        if not self.rates_hz:
            raise ValueError("rates_hz: give at least one advertising rate")
        if len(self.rate_weights) != len(self.rates_hz):
            raise ValueError(
                f"rate_weights: {len(self.rate_weights)} weights for {len(self.rates_hz)} rates_hz, need one each"
            )
        if sum(self.rate_weights) <= 0:
            raise ValueError("rate_weights: at least one weight must be above 0")
        return self


class AndroidApp(Carrier):
    """The store app on Android: AdvertiseSettings' low latency / balanced / low power modes."""

    share: Annotated[float, Field(ge=0, le=1)] = 0.8
    rates_hz: tuple[Rate, ...] = (10.0, 4.0, 1.0)  # 100 ms / 250 ms / 1000 ms
    rate_weights: tuple[Annotated[float, Field(ge=0)], ...] = (0.2, 0.4, 0.4)
    tx_sigma_db: Annotated[float, Field(ge=0, le=20)] = 7.0  # Google's calibration table, 551 models


class KeyFob(Carrier):
    """An Eddystone-EID key fob: one slow rate, a fixed power known from its datasheet."""

    share: Annotated[float, Field(ge=0, le=1)] = 0.2
    rates_hz: tuple[Rate, ...] = (1.0,)
    rate_weights: tuple[Annotated[float, Field(ge=0)], ...] = (1.0,)
    tx_sigma_db: Annotated[float, Field(ge=0, le=20)] = 1.0  # one model, units within a dB of each other


class IphoneApp(Carrier):
    """The store app on an iPhone in the background: only Apple's overflow-area bit is on air, and a
    node must connect to read the identity (edge/iphone.py). Figures and sources: docs/carriers.md."""

    share: Annotated[float, Field(ge=0, le=1)] = 0.0  # off unless a scenario gives iPhones a share
    rates_hz: tuple[Rate, ...] = (1.0,)  # background advertising is best effort and slow (Apple)
    rate_weights: tuple[Annotated[float, Field(ge=0)], ...] = (1.0,)
    tx_sigma_db: Annotated[float, Field(ge=0, le=20)] = 3.0  # few iPhone models, close in power
    overflow_bit: Annotated[int, Field(ge=0, le=127)] = 83  # the app's service bit (measured per iOS)
    connect_s: tuple[Annotated[float, Field(gt=0, le=30)], Annotated[float, Field(gt=0, le=30)]] = (0.3, 2.0)
    failure_probability: Annotated[float, Field(ge=0, le=1)] = 0.1  # iOS misses ~10 % of connections (Herald)


class Carriers(_Strict):
    """What registered customers carry, one field per kind."""

    android_app: AndroidApp = AndroidApp()
    key_fob: KeyFob = KeyFob()
    iphone_app: IphoneApp = IphoneApp()

    @model_validator(mode="after")
    def _sum(self) -> Carriers:
        _check_shares("carriers", {f"{k}.share": c.share for k, c in self.kinds()})
        return self

    def kinds(self) -> list[tuple[str, Carrier]]:
        return [(k, getattr(self, k)) for k in type(self).model_fields]


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
    body_block_spell_s: Annotated[float, Field(gt=0, le=60)] = (
        1.5  # mean time a body hides its carrier's bundle from one antenna: a half turn takes 1-2 s
    )
    body_block_own_share: Annotated[float, Field(ge=0, le=1)] = 0.2  # a garment held apart, blocked on its own
    max_range_m: Annotated[float, Field(gt=0, le=50)] = 8.0  # pairs further apart are never evaluated


_Probability = Annotated[float, Field(ge=0, le=1)]


class PairMiss(_Strict):
    """The second of a side-by-side pair is missed, per counter: a beam and a two-zone ToF see
    one body; overhead thermal and stereo counters separate the two."""

    beam: _Probability = 0.5
    tof: _Probability = 0.5
    thermal: _Probability = 0.1
    stereo: _Probability = 0.1


class DoorSensor(_Strict):
    """Door-crossing counters on street doors (sim/door_sensor.py); none by default.

    The defaults are published counter figures, each with its source in docs/scenarios.md.
    """

    doors: dict[str, DoorSensorKind] = {}  # street door id -> the counter on it
    detect_probability: _Probability = 0.95  # a single person is counted
    pair_gap_s: Annotated[float, Field(ge=0, le=5)] = 0.5  # closer behind the one before: side by side
    pair_miss_probability: PairMiss = PairMiss()
    direction_error: _Probability = 0.025  # a counted crossing reported the wrong way
    false_triggers_per_h: Annotated[float, Field(ge=0, le=100)] = 1.0  # door swing, trolley, a step in and out
    report_delay_s: tuple[Annotated[float, Field(ge=0)], Annotated[float, Field(ge=0)]] = (0.3, 0.15)  # mean, sd
    transport_s: tuple[Annotated[float, Field(ge=0)], Annotated[float, Field(ge=0)]] = (0.05, 0.2)  # uniform
    offline_per_h: Annotated[float, Field(ge=0, le=10)] = 0.1  # the sensor drops out now and then ...
    offline_s: tuple[Annotated[float, Field(ge=0)], Annotated[float, Field(ge=0)]] = (60.0, 300.0)  # ... for minutes
    unplugged_s: tuple[Annotated[float, Field(ge=0)], Annotated[float, Field(ge=0)]] | None = None  # (from, to) s

    @model_validator(mode="after")
    def _ranges(self) -> DoorSensor:
        _check_ranges(self, "transport_s", "offline_s", *(["unplugged_s"] if self.unplugged_s else []))
        return self


class CurtainSensor(DoorSensor):
    """Crossing counters across fitting-room curtains (sim/door_sensor.py `CurtainFeed`); none by default.

    `doors` names the fitting rooms (zone ids) whose curtain has one; each is carried by the room's own
    node. The figures are the door counters' (a beam across a curtain makes the same errors)."""


class Scenario(_Strict):
    scenario: ScenarioInfo
    population: Population = Population()
    radio: Radio = Radio()
    carriers: Carriers = Carriers()
    items: Items = Items()
    rfid: Rfid = Rfid()
    door_sensor: DoorSensor = DoorSensor()
    curtain_sensor: CurtainSensor = CurtainSensor()

    def with_seed(self, seed: int | None) -> Scenario:
        """The same scenario with another seed (None: unchanged)."""
        if seed is None:
            return self
        return self.model_copy(update={"scenario": self.scenario.model_copy(update={"seed": seed})})


def with_curtains(sc: Scenario, store: StoreFile, kind: DoorSensorKind) -> Scenario:
    """The same scenario with a curtain sensor of ``kind`` on every fitting room of its store."""
    rooms = dict.fromkeys(store.fitting_rooms(), kind)
    return sc.model_copy(update={"curtain_sensor": sc.curtain_sensor.model_copy(update={"doors": rooms})})


class ScenarioError(ValueError):
    """An invalid scenario; each line names the file, the line, the key and what is wrong."""


# A model validator's error has the model's location; `_check_ranges` names the key first.
_NAMED = re.compile(r"^Value error, (\w+): (.*)$", re.DOTALL)


def _problems(data: dict, filename: str, lines: dict) -> list[Problem]:
    """Structural problems of a scenario document, like a store file's (did-you-mean included)."""
    out = []
    for p in model_problems(data, Scenario, filename, lines):
        named = _NAMED.match(p.message)
        if named:
            key = f"{p.key}.{named.group(1)}"
            loc = tuple(p.key.split(".")) + (named.group(1),)
            p = Problem(p.file, line_of(lines, loc) or p.line, key, named.group(2))
        out.append(p)
    return sorted(out, key=lambda p: (p.line is None, p.line or 0))


def store_path(path: str | Path, sc: Scenario) -> Path:
    """The store file a scenario names (relative to the scenario file)."""
    return (Path(path).parent / sc.scenario.store).resolve()


def load_scenario(path: str | Path) -> tuple[Scenario, StoreFile]:
    """Parse and check a scenario and its store file; ScenarioError lists every problem."""
    path = Path(path)
    text, data = _read_toml(path)
    lines = key_lines(text)
    if "zones" in data and "scenario" not in data:
        raise ScenarioError(
            f"{path}: (document): this is a store file ([[zones]]), not a scenario: check it with "
            f"`instore config validate {path}`; to simulate it, write a scenario whose scenario.store "
            "names it (see sim/scenarios/ and docs/scenarios.md)"
        )
    problems = _problems(data, str(path), lines)
    if problems:
        raise ScenarioError("\n".join(map(str, problems)))
    sc = Scenario.model_validate(data)
    if sc.items.catalogue is not None:
        cat = (path.parent / sc.items.catalogue).resolve()
        if not cat.is_file():
            raise ScenarioError(f"{_where(path, lines, 'items', 'catalogue')}: catalogue file {cat} not found")
        sc = sc.model_copy(update={"items": sc.items.model_copy(update={"catalogue": str(cat)})})
    return sc, _load_store(path, lines, sc)


def _read_toml(path: Path) -> tuple[str, dict]:
    """The file's text and its TOML document; ScenarioError when missing or not TOML."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError(f"{path}: file not found") from None
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(str(syntax_problem(exc, text, str(path)))) from None


def _where(path: Path, lines: dict, *loc: str) -> str:
    """`file:line: key` of a scenario key, for an error message."""
    line = line_of(lines, loc)
    return f"{path}:{line}: {'.'.join(loc)}" if line else f"{path}: {'.'.join(loc)}"


def _load_store(path: Path, lines: dict, sc: Scenario) -> StoreFile:
    """The scenario's store file, valid, simulatable and with the door sensor's doors."""
    where = _where(path, lines, "scenario", "store")
    store_file = store_path(path, sc)
    try:
        store = validate_text(store_file.read_text(encoding="utf-8"), str(store_file))
    except FileNotFoundError:
        raise ScenarioError(f"{where}: store file {store_file} not found") from None
    except ConfigError as exc:
        raise ScenarioError(f"{where}: invalid store file:\n{exc}") from None
    problem = store_problem(store)
    if problem:
        raise ScenarioError(f"{where}: {store_file.name}: {problem}")
    street = {d.id for d in store.street_doors()}
    for door in sc.door_sensor.doors:
        if door not in street:
            known = ", ".join(sorted(street))
            raise ScenarioError(
                f"{_where(path, lines, 'door_sensor', 'doors', door)}: {store_file.name} has no street door "
                f"{door!r} (its street doors: {known})"
            )
    rooms = set(store.fitting_rooms())
    for room in sc.curtain_sensor.doors:
        if room not in rooms:
            raise ScenarioError(
                f"{_where(path, lines, 'curtain_sensor', 'doors', room)}: {store_file.name} has no fitting room "
                f"{room!r} (its fitting rooms: {', '.join(sorted(rooms)) or 'none'})"
            )
    return store


def store_problem(store: StoreFile) -> str | None:
    """What makes a valid store file unusable for simulation, or None."""
    if not any(z.kind == ZoneKind.OUTSIDE for z in store.zones):
        return "no zone of kind 'outside': shoppers need somewhere to come from"
    if not store.street_doors():
        return "no street door ([[doors]] of kind 'street'): nobody could enter"
    return None
