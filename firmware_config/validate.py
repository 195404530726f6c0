"""Validation of store files: every problem at once, each as `file:line: key: message`.

An installer fixes a file in one sitting only if told everything wrong at once, with a line to
jump to; so TOML syntax, structure (the pydantic models) and cross-field checks all report into
one list (docs/store-file.md). `tomllib` on 3.11 gives no key lines, so a light scanner maps
every key path to its line (`key_lines`).
"""

from __future__ import annotations

import difflib
import functools
import re
import tomllib
import zoneinfo
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

import numpy as np
from pydantic import BaseModel, ValidationError

from firmware_config.geometry import (
    door_opening,
    open_runs,
    overlap_area,
    point_in_polygon,
    polygon_area,
    run_length,
    segment_distance,
    shared_boundary,
)
from firmware_config.store import (
    PAGE_LANGUAGES,
    Broker,
    Door,
    DoorKind,
    Gateway,
    Node,
    NodeRole,
    Point,
    RfidRadio,
    StoreFile,
    StoreInfo,
    Wall,
    Zone,
    ZoneKind,
)

M = TypeVar("M", bound=BaseModel)

# --- key lines ----------------------------------------------------------------------------
# A light scanner, not a parser: it runs only on text tomllib has already accepted, and if it
# meets something it does not understand it returns what it has mapped so far.

KeyPath = tuple[str | int, ...]

_BARE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


class _Scanner:
    def __init__(self, text: str):
        self.text = text
        self.pos = 0
        self.line = 1
        self.lines: dict[KeyPath, int] = {}
        self.arrays: dict[KeyPath, int] = {}  # array-of-tables path -> index of its last element

    # --- low-level ---------------------------------------------------------------------
    def _peek(self, k: int = 0) -> str:
        i = self.pos + k
        return self.text[i] if i < len(self.text) else ""

    def _advance(self, k: int = 1) -> None:
        for _ in range(k):
            if self.pos < len(self.text) and self.text[self.pos] == "\n":
                self.line += 1
            self.pos += 1

    def _skip_blank(self, newlines: bool) -> None:
        while self.pos < len(self.text):
            c = self.text[self.pos]
            if c in " \t\r" or (newlines and c == "\n"):
                self._advance()
            elif c == "#":
                while self.pos < len(self.text) and self.text[self.pos] != "\n":
                    self.pos += 1
            else:
                return

    def _string(self) -> str:
        """Consume a string of any of TOML's four kinds; return its raw source text."""
        start = self.pos
        quote = self._peek()
        if self.text.startswith(quote * 3, self.pos):
            self._advance(3)
            while self.pos < len(self.text):
                if quote == '"' and self._peek() == "\\":
                    self._advance(2)
                elif self.text.startswith(quote * 3, self.pos):
                    self._advance(3)
                    while self._peek() == quote:  # up to two quotes may end the content
                        self._advance()
                    break
                else:
                    self._advance()
        else:
            self._advance()
            while self.pos < len(self.text) and self._peek() != quote:
                self._advance(2 if quote == '"' and self._peek() == "\\" else 1)
            self._advance()
        return self.text[start : self.pos]

    def _key(self) -> tuple[str, ...]:
        """A dotted key: bare or quoted parts separated by dots."""
        parts: list[str] = []
        while True:
            self._skip_blank(newlines=False)
            c = self._peek()
            if c in ('"', "'"):
                raw = self._string()
                parts.append(next(iter(tomllib.loads(f"{raw} = 0"))))
            else:
                start = self.pos
                while self._peek() and self._peek() in _BARE:
                    self.pos += 1
                if self.pos == start:
                    raise ValueError(f"expected a key at line {self.line}")
                parts.append(self.text[start : self.pos])
            self._skip_blank(newlines=False)
            if self._peek() != ".":
                return tuple(parts)
            self._advance()

    def _record(self, path: KeyPath) -> None:
        self.lines.setdefault(path, self.line)

    # --- structure -----------------------------------------------------------------------
    def _resolve(self, keys: tuple[str, ...]) -> KeyPath:
        """Concrete path of a header's keys: arrays of tables resolve to their last element."""
        path: KeyPath = ()
        for k in keys:
            path = (*path, k)
            if path in self.arrays:
                path = (*path, self.arrays[path])
        return path

    def _value(self, path: KeyPath) -> None:
        c = self._peek()
        if c == "[":
            self._array(path)
        elif c == "{":
            self._inline_table(path)
        elif c in ('"', "'"):
            self._string()
        else:
            while self._peek() and self._peek() not in ",]}\n#":
                self.pos += 1

    def _array(self, path: KeyPath) -> None:
        self._advance()
        index = 0
        while True:
            self._skip_blank(newlines=True)
            if self._peek() in ("]", ""):
                self._advance()
                return
            start = self.pos
            self._record((*path, index))
            self._value((*path, index))
            self._skip_blank(newlines=True)
            if self._peek() == ",":
                self._advance()
                index += 1
            elif self.pos == start:
                raise ValueError(f"unexpected {self._peek()!r} at line {self.line}")

    def _inline_table(self, path: KeyPath) -> None:
        self._advance()
        while True:
            self._skip_blank(newlines=False)
            if self._peek() in ("}", ""):
                self._advance()
                return
            self._key_value(path)
            self._skip_blank(newlines=False)
            if self._peek() == ",":
                self._advance()
            elif self._peek() != "}":
                raise ValueError(f"unexpected {self._peek()!r} at line {self.line}")

    def _key_value(self, base: KeyPath) -> None:
        """`key = value` here, its key path under `base` (and each dotted prefix) recorded."""
        keys = self._key()
        self._skip_blank(newlines=False)
        self._advance()  # '='
        self._skip_blank(newlines=False)
        for i in range(1, len(keys) + 1):
            self._record((*base, *keys[:i]))
        self._value((*base, *keys))

    def scan(self) -> dict[KeyPath, int]:
        table: KeyPath = ()
        while True:
            self._skip_blank(newlines=True)
            if self.pos >= len(self.text):
                return self.lines
            if self._peek() == "[":
                is_array = self._peek(1) == "["
                self._advance(2 if is_array else 1)
                keys = self._key()
                self._advance(2 if is_array else 1)
                if is_array:
                    array = (*self._resolve(keys[:-1]), keys[-1])
                    self._record(array)
                    self.arrays[array] = self.arrays.get(array, -1) + 1
                    table = (*array, self.arrays[array])
                else:
                    table = self._resolve(keys)
                self._record(table)
            else:
                self._key_value(table)


def key_lines(text: str) -> dict[KeyPath, int]:
    """Map each key path in valid TOML `text` to its 1-based line (best effort, never raises)."""
    scanner = _Scanner(text)
    try:
        return scanner.scan()
    except (ValueError, IndexError, tomllib.TOMLDecodeError):
        return scanner.lines


def line_of(lines: dict[KeyPath, int], loc: KeyPath) -> int | None:
    """Line of the longest prefix of `loc` that appears in the text (a missing key points
    at its table)."""
    for end in range(len(loc), 0, -1):
        line = lines.get(tuple(loc[:end]))
        if line is not None:
            return line
    return None


# --- problems ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key}: {self.message}"


class ConfigError(ValueError):
    """A store file with one or more problems; `problems` lists them all."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def _key(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class _Report:
    """Collects problems with their line; one per (key, message)."""

    def __init__(self, filename: str, lines: dict[KeyPath, int]):
        self.filename = filename
        self.lines = lines
        self.problems: list[Problem] = []

    def add(self, loc: Sequence[str | int], message: str) -> None:
        loc = tuple(loc)
        problem = Problem(self.filename, line_of(self.lines, loc), _key(loc) or "(document)", message)
        if problem not in self.problems:
            self.problems.append(problem)

    def line(self, loc: Sequence[str | int]) -> int | None:
        return line_of(self.lines, tuple(loc))

    def sorted(self) -> list[Problem]:
        # Line order is reading order; problems without a line (none expected) go last.
        return sorted(self.problems, key=lambda p: (p.line is None, p.line or 0))


# --- structural problems (pydantic) -------------------------------------------------------


def _unwrap(tp: Any) -> Any:
    """Strip Annotated[...] and `X | None` to reach the type that carries the fields."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _fields_at(loc: Sequence[str | int], root: type[BaseModel] = StoreFile) -> list[str]:
    """Keys allowed at `loc` in a `root` document (for did-you-mean), [] if unknown."""
    tp: Any = root
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(part, int):
            args = get_args(tp)
            if not args:
                return []
            tp = args[min(part, len(args) - 1)] if get_origin(tp) is tuple else args[0]
        elif isinstance(tp, type) and issubclass(tp, BaseModel) and part in tp.model_fields:
            tp = tp.model_fields[part].annotation
        else:
            return []
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return list(tp.model_fields)
    return []


def _structural_message(err: Any, root: type[BaseModel] = StoreFile) -> str:
    kind, loc = err["type"], err["loc"]
    if kind == "extra_forbidden":
        allowed = _fields_at(loc[:-1], root)
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1, cutoff=0.6)
        if close:
            return f"unknown key (did you mean {close[0]!r}?)"
        return f"unknown key (expected one of: {', '.join(allowed)})" if allowed else "unknown key"
    if kind == "missing":
        return "missing required key"
    message = str(err["msg"])
    value = err.get("input")
    if isinstance(value, str | int | float | bool) and not isinstance(value, type):
        message += f" (got {value!r})"
    return message


def _structural(data: dict, report: _Report, root: type[BaseModel] = StoreFile) -> None:
    try:
        root.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            report.add(err["loc"], _structural_message(err, root))


def model_problems(data: dict, root: type[BaseModel], filename: str, lines: dict[KeyPath, int]) -> list[Problem]:
    """Structural problems of `data` as a `root` document, in line order: unknown keys with a
    did-you-mean, types, ranges. For other TOML documents checked like store files (scenarios)."""
    report = _Report(filename, lines)
    _structural(data, report, root)
    return report.sorted()


def _valid_items(data: dict, section: str, model: type[M]) -> list[tuple[int, M]]:
    """Elements of an array section that validate on their own, with their index.

    The cross-field checks run on these, so a type error in one node does not hide a
    duplicate id or an unknown zone elsewhere: every problem is reported in one pass.
    """
    items = data.get(section)
    if not isinstance(items, list):
        return []
    out: list[tuple[int, M]] = []
    for i, raw in enumerate(items):
        try:
            out.append((i, model.model_validate(raw)))
        except ValidationError:
            continue
    return out


def _valid(data: dict, section: str, model: type[M]) -> M | None:
    try:
        return model.model_validate(data.get(section, {}))
    except ValidationError:
        return None


# --- geometry -----------------------------------------------------------------------------

def _fmt_point(p: Point) -> str:
    return f"({p[0]:g}, {p[1]:g})"


# --- cross-field checks ---------------------------------------------------------------------

SCAN_MODES = ("passive", "active")
# The reader module's region codes (docs/rfid.md, command 0x07): the region sets the legal
# frequency hopping table, so a wrong one is a regulatory problem, not a tuning one.
RFID_REGIONS = ("eu", "usa", "korea", "china800", "china900")


@functools.lru_cache(maxsize=1)
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _did_you_mean(value: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_store(data: dict, report: _Report) -> None:
    info = _valid(data, "store", StoreInfo)
    if info is None:
        return
    zones = _timezones()
    if zones and info.timezone not in zones:
        report.add(
            ("store", "timezone"),
            f"unknown time zone {info.timezone!r}" + _did_you_mean(info.timezone, zones),
        )
    if info.language is not None and info.language not in PAGE_LANGUAGES:
        report.add(
            ("store", "language"),
            f"unknown page language {info.language!r}, expected one of {', '.join(PAGE_LANGUAGES)}"
            + _did_you_mean(info.language, PAGE_LANGUAGES),
        )
    seen: dict[str, int] = {}
    for i, uuid in enumerate(info.ibeacon_uuids):
        if uuid in seen:
            report.add(("store", "ibeacon_uuids", i), f"duplicate UUID {uuid!r} (also at index {seen[uuid]})")
        seen.setdefault(uuid, i)


def _check_duplicate_ids(data: dict, section: str, what: str, report: _Report) -> None:
    """Duplicate ids, checked on the raw items so an invalid duplicate is still caught."""
    items = data.get(section)
    if not isinstance(items, list):
        return
    first: dict[str, int] = {}
    for i, item in enumerate(items):
        ident = item.get("id") if isinstance(item, dict) else None
        if not isinstance(ident, str):
            continue
        if ident in first:
            line = report.line((section, first[ident]))
            report.add((section, i, "id"), f"duplicate {what} id {ident!r} (first defined at line {line})")
        else:
            first[ident] = i


def _raw_ids(data: dict, section: str) -> list[str]:
    items = data.get(section)
    if not isinstance(items, list):
        return []
    return [x["id"] for x in items if isinstance(x, dict) and isinstance(x.get("id"), str)]


def _all_valid(data: dict, section: str, valid: list) -> bool:
    items = data.get(section)
    return isinstance(items, list) and len(items) == len(valid)


def _check_zones(zones: list[tuple[int, Zone]], known: set[str], report: _Report) -> dict[str, set[str]]:
    """Unknown or self connections, degenerate polygons; returns the zone graph.

    Connections are symmetric by definition: `a.connects = ["b"]` also connects b to a, so
    a one-sided declaration is not an error (the installer need only write each door once).
    """
    for i, z in zones:
        if polygon_area(z.polygon) <= 1e-9:  # m²: three points on a line enclose nothing
            report.add(("zones", i, "polygon"), "polygon has zero area")
    graph: dict[str, set[str]] = {z.id: set() for _, z in zones}
    for i, z in zones:
        for j, other in enumerate(z.connects):
            if other == z.id:
                report.add(("zones", i, "connects", j), f"zone {z.id!r} connects to itself")
            elif other not in known:
                report.add(
                    ("zones", i, "connects", j), f"unknown zone {other!r}" + _did_you_mean(other, known)
                )
            elif other in graph:  # a zone with its own structural problem has no edges
                graph[z.id].add(other)
                graph[other].add(z.id)
    return graph


def _check_topology(zones: list[tuple[int, Zone]], graph: dict[str, set[str]], data: dict, report: _Report) -> None:
    """Entrances lead outside through a declared door, the outside leads only to entrances,
    fitting rooms are reachable.

    The presence engine counts a visit from the entrance crossing and never expects a shopper
    to appear in a fitting room it cannot walk to, so these are errors, not style.
    """
    kind = {z.id: z.kind for _, z in zones}
    entrances = [z for z, k in kind.items() if k is ZoneKind.ENTRANCE]
    outside = [z for z, k in kind.items() if k is ZoneKind.OUTSIDE]
    if not zones:
        return
    if not entrances:
        report.add(("zones",), "no zone of kind 'entrance'")
    if not outside:
        report.add(("zones",), "no zone of kind 'outside' (the pavement or mall beyond the door)")
    if entrances and outside and not any(kind[n] is ZoneKind.OUTSIDE for e in entrances for n in graph[e]):
        report.add(("zones",), "no entrance zone connects to an outside zone")
    _check_outside_borders(zones, kind, data, report)
    if entrances:
        _check_rooms_reachable(zones, graph, kind, entrances, report)


def _check_outside_borders(
    zones: list[tuple[int, Zone]], kind: dict[str, ZoneKind], data: dict, report: _Report
) -> None:
    """Only entrances border the outside, and each such border has a declared door."""
    zones_by_id = {z.id: z for _, z in zones}
    walls = [(w.a, w.b) for _, w in _valid_items(data, "walls", Wall)]
    door_pairs = {frozenset(d) for d in _raw_door_zones(data)}
    for i, z in zones:
        for j, other in enumerate(z.connects):
            if other not in kind or other == z.id:
                continue
            pair = {kind[z.id], kind[other]}
            if ZoneKind.OUTSIDE in pair and not pair <= {ZoneKind.OUTSIDE, ZoneKind.ENTRANCE}:
                inner = other if kind[z.id] is ZoneKind.OUTSIDE else z.id
                report.add(
                    ("zones", i, "connects", j),
                    f"zone {inner!r} ({kind[inner].value}) connects to the outside; "
                    "only entrance zones may border an outside zone",
                )
            elif pair == {ZoneKind.OUTSIDE, ZoneKind.ENTRANCE} and frozenset((z.id, other)) not in door_pairs:
                report.add(("zones", i, "connects", j), _no_door_message(z, zones_by_id[other], walls))
                door_pairs.add(frozenset((z.id, other)))  # once per pair, however many sides declare it


def _check_rooms_reachable(
    zones: list[tuple[int, Zone]],
    graph: dict[str, set[str]],
    kind: dict[str, ZoneKind],
    entrances: list[str],
    report: _Report,
) -> None:
    index = {z.id: i for i, z in zones}
    reached = set(entrances)
    todo = list(entrances)
    while todo:
        for n in graph[todo.pop()]:
            if n not in reached:
                reached.add(n)
                todo.append(n)
    for zid, k in kind.items():
        if k is ZoneKind.FITTING_ROOM and zid not in reached:
            report.add(
                ("zones", index[zid]), f"fitting room {zid!r} is not reachable from any entrance zone"
            )


#: A door's `position` may lie this far off its zones' shared boundary: slack for drawing
#: the door from a plan; further off, the installer has most likely named the wrong zones.
DOOR_ON_BOUNDARY_M = 0.3
#: A point of a door's opening this close to a wall is covered by it (as in geometry.open_runs).
WALL_CLEARANCE_M = 0.05


def _raw_door_zones(data: dict) -> list[tuple[str, str]]:
    """The zone pairs doors declare, read raw so a door with another problem still counts."""
    items = data.get("doors")
    if not isinstance(items, list):
        return []
    out = []
    for d in items:
        zones = d.get("zones") if isinstance(d, dict) else None
        if isinstance(zones, list) and len(zones) == 2 and all(isinstance(z, str) for z in zones):
            out.append((zones[0], zones[1]))
    return out


def _no_door_message(a: Zone, b: Zone, walls: list[tuple[Point, Point]]) -> str:
    pair = f"zones = [{a.id!r}, {b.id!r}]".replace("'", '"')
    glazed = shared_boundary(list(a.polygon), list(b.polygon)) and not open_runs(
        list(a.polygon), list(b.polygon), walls
    )
    return (
        "street boundary with no door"
        + (" (walled all along: nobody walks through glass)" if glazed else "")
        + f": declare it in [[doors]] with {pair} and kind = \"street\""
    )


def _covering_wall(jambs: tuple[Point, Point], walls: list[tuple[int, Wall]]) -> int | None:
    """Index of a wall over the opening between the jambs (one ending at a jamb does not count)."""
    a, b = np.asarray(jambs[0], float), np.asarray(jambs[1], float)
    width = float(np.hypot(*(b - a)))
    if width <= 2 * WALL_CLEARANCE_M:
        return None
    inner = np.linspace(WALL_CLEARANCE_M / width + 1e-3, 1 - WALL_CLEARANCE_M / width - 1e-3, 50)
    for k, w in walls:
        wa, wb = np.asarray(w.a, float), np.asarray(w.b, float)
        if any(segment_distance(a + t * (b - a), wa, wb) <= WALL_CLEARANCE_M for t in inner):
            return k
    return None


def _check_doors(
    data: dict, zones: list[tuple[int, Zone]], graph: dict[str, set[str]], report: _Report
) -> None:
    """Each door joins two connected zones of the right kinds, on their shared boundary, and
    its opening is free of walls (a door drawn over the glass is no way in)."""
    by_id = {z.id: z for _, z in zones}
    walls = _valid_items(data, "walls", Wall)
    for i, d in _valid_items(data, "doors", Door):
        unknown = [j for j, zid in enumerate(d.zones) if zid not in by_id]
        for j in unknown:
            report.add(("doors", i, "zones", j), f"unknown zone {d.zones[j]!r}" + _did_you_mean(d.zones[j], by_id))
        if unknown:
            continue
        a, b = by_id[d.zones[0]], by_id[d.zones[1]]
        if a.id == b.id:
            report.add(("doors", i, "zones"), f"a door joins two different zones (got {a.id!r} twice)")
            continue
        _check_door_kind(i, d, a, b, report)
        if b.id not in graph.get(a.id, ()):
            report.add(
                ("doors", i, "zones"),
                f"zones {a.id!r} and {b.id!r} are not connected: add {b.id!r} to zone {a.id!r}'s connects",
            )
        _check_door_place(i, d, a, b, walls, report)


def _check_door_kind(i: int, d: Door, a: Zone, b: Zone, report: _Report) -> None:
    """A street door has the outside on exactly one side; an internal door on neither."""
    outside = [z.id for z in (a, b) if z.kind is ZoneKind.OUTSIDE]
    if d.kind is DoorKind.STREET and len(outside) != 1:
        report.add(
            ("doors", i, "kind"),
            f"a street door joins an outside zone to the store (got {a.id!r} ({a.kind.value}) "
            f"and {b.id!r} ({b.kind.value}))",
        )
    elif d.kind is DoorKind.INTERNAL and outside:
        report.add(
            ("doors", i, "kind"), f"zone {outside[0]!r} is outside: a door to it is kind = \"street\""
        )


def _check_door_place(i: int, d: Door, a: Zone, b: Zone, walls: list[tuple[int, Wall]], report: _Report) -> None:
    """The door sits on the zones' shared boundary, fits on it, and no wall covers its opening."""
    segs = shared_boundary(list(a.polygon), list(b.polygon))
    if not segs:
        report.add(("doors", i, "zones"), f"zones {a.id!r} and {b.id!r} share no boundary")
        return
    p = np.asarray(d.position, float)
    off = min(segment_distance(p, np.asarray(s1, float), np.asarray(s2, float)) for s1, s2 in segs)
    if off > DOOR_ON_BOUNDARY_M:
        report.add(
            ("doors", i, "position"),
            f"{_fmt_point(d.position)} is {off:.1f} m from the boundary of {a.id!r} and {b.id!r} "
            f"(at most {DOOR_ON_BOUNDARY_M:g} m)",
        )
        return
    jambs = door_opening(d.position, d.width_m, list(a.polygon), list(b.polygon))
    if float(np.hypot(jambs[1][0] - jambs[0][0], jambs[1][1] - jambs[0][1])) < d.width_m - 1e-6:
        report.add(
            ("doors", i, "width_m"),
            f"{d.width_m:g} m does not fit on the boundary of {a.id!r} and {b.id!r} around "
            f"{_fmt_point(d.position)} (it ends within {d.width_m / 2:g} m of the position)",
        )
    k = _covering_wall(jambs, walls)
    if k is not None:
        lo, hi = sorted(jambs)
        report.add(
            ("doors", i),
            f"the opening from {_fmt_point(lo)} to {_fmt_point(hi)} is covered by the wall "
            f"at line {report.line(('walls', k))}: remove or split the wall where the door is",
        )


def _check_nodes(
    nodes: list[tuple[int, Node]], zones: list[tuple[int, Zone]], data: dict, report: _Report
) -> None:
    known = set(_raw_ids(data, "zones"))
    # With a structurally broken zone, "outside every zone" could be a consequence, not a cause.
    all_zones_valid = _all_valid(data, "zones", zones)
    polygons = {z.id: z.polygon for _, z in zones}
    devices: dict[str, tuple[int, str]] = {}
    gateway = _valid(data, "gateway", Gateway)
    for i, n in nodes:
        if gateway is not None and n.id == gateway.mqtt_username:
            report.add(
                ("nodes", i, "id"),
                f"node id {n.id!r} is the gateway's MQTT username (gateway.mqtt_username); rename one",
            )
        _check_node_zone(i, n, known, polygons, all_zones_valid, report)
        if n.ble is not None and n.ble.scan_mode not in SCAN_MODES:
            report.add(
                ("nodes", i, "ble", "scan_mode"),
                f"must be one of {', '.join(map(repr, SCAN_MODES))} (got {n.ble.scan_mode!r})",
            )
        if n.rfid is not None:
            _check_node_rfid(i, n.id, n.rfid, known, devices, report)


def _check_node_zone(
    i: int, n: Node, known: set[str], polygons: dict[str, list[Point]], all_zones_valid: bool, report: _Report
) -> None:
    """The node's zone exists and holds its position; without a zone, the position is in one."""
    containing = [zid for zid, poly in polygons.items() if point_in_polygon(n.position, poly)]
    if n.zone is not None and n.zone not in known:
        report.add(("nodes", i, "zone"), f"unknown zone {n.zone!r}" + _did_you_mean(n.zone, known))
    elif n.zone is not None and n.zone in polygons and n.zone not in containing:
        where = (
            f"it is inside {', '.join(map(repr, containing))}"
            if containing
            else "it is outside every zone"
        )
        report.add(
            ("nodes", i, "zone"),
            f"position {_fmt_point(n.position)} is not inside zone {n.zone!r} ({where})",
        )
    elif n.zone is None and all_zones_valid and polygons and not containing:
        report.add(("nodes", i, "position"), f"{_fmt_point(n.position)} is outside every zone")


def _check_node_rfid(
    i: int, node_id: str, rfid: RfidRadio, known: set[str], devices: dict[str, tuple[int, str]], report: _Report
) -> None:
    """A known region, a serial device no other node uses, unique antenna ids in known zones."""
    if rfid.region not in RFID_REGIONS:
        report.add(
            ("nodes", i, "rfid", "region"),
            f"must be one of {', '.join(map(repr, RFID_REGIONS))} (got {rfid.region!r})"
            + _did_you_mean(rfid.region, RFID_REGIONS),
        )
    if rfid.device in devices:
        other, other_id = devices[rfid.device]
        report.add(
            ("nodes", i, "rfid", "device"),
            f"device {rfid.device!r} is already used by node {other_id!r} "
            f"(line {report.line(('nodes', other, 'rfid', 'device'))})",
        )
    else:
        devices[rfid.device] = (i, node_id)
    antenna_ids: set[int] = set()
    for j, ant in enumerate(rfid.antennas):
        if ant.id in antenna_ids:
            report.add(("nodes", i, "rfid", "antennas", j, "id"), f"duplicate antenna id {ant.id}")
        antenna_ids.add(ant.id)
        if ant.zone is not None and ant.zone not in known:
            report.add(
                ("nodes", i, "rfid", "antennas", j, "zone"),
                f"unknown zone {ant.zone!r}" + _did_you_mean(ant.zone, known),
            )


def _check_walls(data: dict, report: _Report) -> None:
    for i, wall in _valid_items(data, "walls", Wall):
        if wall.a == wall.b:
            report.add(("walls", i), f"wall from {_fmt_point(wall.a)} to itself has no length")


def _check_broker(data: dict, report: _Report) -> None:
    broker = _valid(data, "broker", Broker)
    if broker is None:
        return
    if broker.tls_port is not None:
        for name in ("certfile", "keyfile"):
            if getattr(broker, name) is None:
                report.add(("broker", "tls_port"), f"a TLS listener needs broker.{name}")
        if broker.tls_port == broker.port:
            report.add(("broker", "tls_port"), f"same port as broker.port ({broker.port})")
    else:
        for name in ("cafile", "certfile", "keyfile"):
            if getattr(broker, name) is not None:
                report.add(("broker", name), "set without broker.tls_port (no TLS listener would use it)")


def _check_gateway_broker(data: dict, report: _Report) -> None:
    """The gateway's TLS connection needs a port with a TLS listener behind it."""
    gateway, broker = _valid(data, "gateway", Gateway), _valid(data, "broker", Broker)
    if gateway is None or broker is None or gateway.mqtt_cafile is None:
        return
    if gateway.mqtt_port is None and broker.tls_port is None:
        report.add(("gateway", "mqtt_cafile"), "TLS to the broker needs gateway.mqtt_port or broker.tls_port")
    elif gateway.mqtt_port == broker.port:
        report.add(("gateway", "mqtt_port"), f"broker.port ({broker.port}) is the plain listener, not TLS")


def _cross_field(data: dict, report: _Report) -> None:
    _check_store(data, report)
    _check_duplicate_ids(data, "zones", "zone", report)
    _check_duplicate_ids(data, "nodes", "node", report)
    _check_duplicate_ids(data, "doors", "door", report)
    zones = _valid_items(data, "zones", Zone)
    known = set(_raw_ids(data, "zones"))
    graph = _check_zones(zones, known, report)
    if _all_valid(data, "zones", zones):
        # Topology over a partial zone list would report the missing zone's consequences.
        _check_topology(zones, graph, data, report)
        _check_doors(data, zones, graph, report)
    _check_nodes(_valid_items(data, "nodes", Node), zones, data, report)
    _check_walls(data, report)
    _check_broker(data, report)
    _check_gateway_broker(data, report)


# --- public surface -------------------------------------------------------------------------

_TOML_AT = re.compile(r"\s*\(at line (\d+), column (\d+)\)$|\s*\(at end of document\)$")


def syntax_problem(exc: tomllib.TOMLDecodeError, text: str, filename: str) -> Problem:
    """A TOML syntax error as a Problem with its line."""
    message = str(exc)
    match = _TOML_AT.search(message)
    if match is None:
        line = None
    elif match.group(1):
        line = int(match.group(1))
    else:  # "at end of document"
        line = text.count("\n") + 1
    return Problem(filename, line, "(syntax)", _TOML_AT.sub("", message))


def validate_text(text: str, filename: str = "<store>") -> StoreFile:
    """Parse and check a store file; raise ConfigError listing every problem, in line order.

    TOML syntax errors stop at the first one (tomllib cannot recover), everything after
    that is reported together: unknown keys, types and ranges, and the cross-field checks.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([syntax_problem(exc, text, filename)]) from None
    lines = key_lines(text)
    if "scenario" in data and "zones" not in data:
        raise ConfigError(
            [
                Problem(
                    filename,
                    line_of(lines, ("scenario",)),
                    "(document)",
                    f"this is a scenario file ([scenario]), not a store file: run it with `instore sim run "
                    f"{filename}`; the store file it simulates is the one its scenario.store names",
                )
            ]
        )
    report = _Report(filename, lines)
    _structural(data, report)
    _cross_field(data, report)
    if report.problems:
        raise ConfigError(report.sorted())
    return StoreFile.model_validate(data)


def validate_file(path: str | Path) -> StoreFile:
    """`validate_text` on a file; an unreadable file is a ConfigError too."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem(str(path), None, "(file)", f"cannot read: {exc}")]) from None
    return validate_text(text, str(path))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def summary(store: StoreFile) -> str:
    """One line for the installer: what the file describes."""
    roles = [n.role for n in store.nodes]
    readers = sum(1 for n in store.nodes if n.rfid is not None)
    return (
        f"{store.store.id}: {_plural(len(store.zones), 'zone')}, {_plural(len(store.nodes), 'node')} "
        f"({_plural(roles.count(NodeRole.ENTRANCE), 'entrance')}, "
        f"{_plural(roles.count(NodeRole.FITTING_ROOM), 'fitting room')}), "
        f"{_plural(readers, 'RFID reader')}: OK"
    )


#: A fitting room's opening wider than this is more than a curtain: garments and phones just
#: outside it read as strongly as inside, in the room's RFID antenna and its BLE node alike.
MAX_ROOM_OPENING_M = 2.0
#: Zones overlapping by less than this are rounding in the coordinates, not a drawing mistake.
MIN_OVERLAP_M2 = 0.01
#: A shop front may be open this much beyond its doors (slack where glass meets a door frame).
MAX_FRONT_GAP_M = 0.5


def advice(store: StoreFile, filename: str = "", lines: dict[KeyPath, int] | None = None) -> list[str]:
    """Valid but likely wrong: fitting rooms open to a neighbouring zone along more than a
    curtain, zones whose areas overlap, and a shop front open beyond its doors. With
    `filename` (and the file's `key_lines`) each warning says where, like the errors.

    Found through the simulator: a room whose side has no wall is read from the floor beside
    it, and both the presence engine and the garment tracker put people and items in it. A
    place inside two zones is claimed by both: the presence grid has cells for it in each,
    and which zone someone standing there is "in" depends on who asks.
    """
    walls = [(w.a, w.b) for w in store.walls]

    def warn(i: int, zone: Zone, message: str) -> str:
        line = line_of(lines or {}, ("zones", i))
        where = f"{filename}:{line}: " if filename and line else f"{filename}: " if filename else ""
        return f"warning: {where}zones.{zone.id}: {message}"

    found = [*_open_rooms(store, walls), *_open_fronts(store, walls), *_overlapping_zones(store)]
    return [warn(i, zone, message) for i, zone, message in found]


def _open_rooms(store: StoreFile, walls: list[tuple[Point, Point]]) -> Iterator[tuple[int, Zone, str]]:
    """Fitting rooms open to another zone along more than a curtain: (index, room, message)."""
    for i, room in enumerate(store.zones):
        if room.kind != ZoneKind.FITTING_ROOM:
            continue
        for other in store.zones:
            if other.id == room.id:
                continue
            opening = sum(run_length(r) for r in open_runs(list(room.polygon), list(other.polygon), walls))
            if opening > MAX_ROOM_OPENING_M:
                yield (
                    i,
                    room,
                    f"open to zone {other.id!r} along {opening:.1f} m with no wall "
                    f"(a curtain is at most {MAX_ROOM_OPENING_M:.0f} m): declare the partition in [[walls]]",
                )


def _open_fronts(store: StoreFile, walls: list[tuple[Point, Point]]) -> Iterator[tuple[int, Zone, str]]:
    """Outside zones open to the store beyond its doors: (index, outside zone, message)."""
    for i, street in enumerate(store.zones):
        if street.kind != ZoneKind.OUTSIDE:
            continue
        for inner in store.zones:
            gap = _open_beyond_doors(store, street, inner, walls) if inner.kind != ZoneKind.OUTSIDE else 0.0
            if gap > MAX_FRONT_GAP_M:
                yield (
                    i,
                    street,
                    f"open to zone {inner.id!r} along {gap:.1f} m beyond its doors with no wall: draw the "
                    "shop front (glass, wall) in [[walls]], or the radio sees through it",
                )


def _overlapping_zones(store: StoreFile) -> Iterator[tuple[int, Zone, str]]:
    """Pairs of zones whose areas overlap: (index of the first, the first, message)."""
    for i, a in enumerate(store.zones):
        for b in store.zones[i + 1 :]:
            area = overlap_area(list(a.polygon), list(b.polygon))
            if area >= MIN_OVERLAP_M2:
                yield (
                    i,
                    a,
                    f"overlaps zone {b.id!r} by {area:.2f} m² (zones meet at their edges; "
                    "a place inside both has no one zone)",
                )


def _open_beyond_doors(store: StoreFile, a: Zone, b: Zone, walls: list[tuple[Point, Point]]) -> float:
    """Metres of the two zones' shared boundary with neither a wall nor a declared door."""
    pa, pb = list(a.polygon), list(b.polygon)
    openings = [
        [np.asarray(j, float) for j in door_opening(d.position, d.width_m, pa, pb)]
        for d in store.doors_between(a.id, b.id)
    ]
    step = 0.1  # open_runs samples the boundary every 0.1 m
    return step * sum(
        1
        for run in open_runs(pa, pb, walls)
        for p in run
        if all(segment_distance(p, j1, j2) > WALL_CLEARANCE_M for j1, j2 in openings)
    )


def file_advice(store: StoreFile, path: str | Path) -> list[str]:
    """`advice` for a store file read from `path`, each warning with its file and line."""
    try:
        lines = key_lines(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        lines = {}
    return advice(store, str(path), lines)


def validate_cli(path: str | Path) -> tuple[int, str]:
    """For `instore config validate`: (0, summary line and any advice) or (1, one line per problem)."""
    try:
        store = validate_file(path)
    except ConfigError as exc:
        return 1, "\n".join(str(p) for p in exc.problems)
    return 0, "\n".join([summary(store), *file_advice(store, path)])
