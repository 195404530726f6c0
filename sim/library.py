"""The whole scenario library, several seeds, one table: how targets are measured.

Every target on every scenario in `sim/scenarios/` with seeds 1 to 3, never on the one that looks
best. `run_library` runs each (scenario, seed) in its own process, `table` lays the scores out as
Markdown, `compare` puts two runs side by side; `run_oracles` and `oracle_table` do the same for
the entry and fitting-room oracles.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from edge.protocol import DoorSensorKind

LIBRARY = Path(__file__).resolve().parent / "scenarios"

ORACLE_MAX_DURATION_S = 3600.0  # oracles run on at most an hour: a day is far too long for them
ORACLE_LATENCIES_S = (2.5, 4.0, 10.0)  # the entry latencies the oracle table shows (the issues' targets)
ROOM_LATENCIES_S = (2.0, 3.0)  # the fitting-room latencies it shows

# The metrics the library table shows, in order; others stay in the JSON.
METRICS: tuple[str, ...] = (
    "entry.precision",
    "entry.recall",
    "entry.latency_p50_s",
    "entry.latency_p95_s",
    "entry.window_shoppers_announced_per_h",
    "left.latency_p95_s",
    "left.while_inside",
    "zone.accuracy",
    "zone.wrong_room_changes_per_100_visits",
    "fitting_room.item_precision",
    "fitting_room.item_recall",
    "fitting_room.latency_p95_s",
    "fitting_room.gone_latency_p95_s",
    "fitting_room.split_stays_per_100",
    "privacy.unconsented_identifications",
    "sim.speedup",
)


def scenario_paths(names: Iterable[str] = ()) -> list[Path]:
    """The named scenario files (paths or names in the library), or the whole library."""
    names = list(names)
    if not names:
        return sorted(LIBRARY.glob("*.toml"))
    out = []
    for n in names:
        p = Path(n)
        out.append(p if p.suffix == ".toml" else LIBRARY / f"{n}.toml")
    return out


def parse_seeds(text: str) -> list[int]:
    """'1-3' -> [1, 2, 3]; '1,4' -> [1, 4]; errors say what was wrong."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        lo, sep, hi = part.partition("-")
        try:
            seeds += list(range(int(lo), int(hi) + 1)) if sep else [int(part)]
        except ValueError:
            raise ValueError(f"seeds: {part!r} is not a seed or a range like 1-3") from None
    if not seeds:
        raise ValueError("seeds: no seed given")
    return seeds


def _run_one(path: str, seed: int, curtains: DoorSensorKind | None = None) -> dict:
    """One scored run (`curtains`: a curtain sensor of that kind on every fitting room); `cpu_s` (this
    process's CPU time) judges speed on a busy machine too."""
    import time

    from sim.report import report_dict
    from sim.run import run_fast
    from sim.scenario import load_scenario, with_curtains

    sc, store = load_scenario(path)
    if curtains is not None:
        sc = with_curtains(sc, store, curtains)
    cpu0 = time.process_time()
    rep = report_dict(run_fast(sc, store, seed=seed))
    rep["cpu_s"] = round(time.process_time() - cpu0, 2)
    return rep


def _oracle_one(path: str, seed: int, max_duration_s: float) -> dict:
    """Both oracles on one (scenario, seed), the scenario cut to `max_duration_s` at most."""
    import time

    from sim.entry_bound import entry_bound
    from sim.room_bound import room_bound
    from sim.scenario import load_scenario

    sc, store = load_scenario(path)
    info = sc.scenario
    if info.duration_s > max_duration_s:
        sc = sc.model_copy(update={"scenario": info.model_copy(update={"duration_s": max_duration_s})})
    sc = sc.with_seed(seed)
    cpu0 = time.process_time()
    out = {"scenario": info.name, "seed": seed, "duration_s": sc.scenario.duration_s,
           "entry": entry_bound(sc, store, door=bool(sc.door_sensor.doors)), "room": room_bound(sc, store)}
    out["cpu_s"] = round(time.process_time() - cpu0, 1)
    return out


def run_library(
    paths: list[Path], seeds: list[int], jobs: int = 2, on_done: Callable[[dict], None] | None = None,
    curtains: DoorSensorKind | None = None,
) -> list[dict]:
    """Every (scenario, seed) run and scored, `jobs` processes at a time; reports in library order."""
    runs = [(str(p), s) for p in paths for s in seeds]
    results: dict[tuple[str, int], dict] = {}
    with ProcessPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(_run_one, p, s, curtains): (p, s) for p, s in runs}
        for fut in as_completed(futures):
            rep = fut.result()
            rep["file"] = Path(futures[fut][0]).name
            results[futures[fut]] = rep
            if on_done is not None:
                on_done(rep)
    return [results[r] for r in runs]


def run_oracles(
    paths: list[Path], seeds: list[int], jobs: int = 2, max_duration_s: float = ORACLE_MAX_DURATION_S,
    on_done: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Both oracles on every (scenario, seed), `jobs` processes at a time; results in library order."""
    runs = [(str(p), s) for p in paths for s in seeds]
    results: dict[tuple[str, int], dict] = {}
    with ProcessPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(_oracle_one, p, s, max_duration_s): (p, s) for p, s in runs}
        for fut in as_completed(futures):
            results[futures[fut]] = fut.result()
            if on_done is not None:
                on_done(results[futures[fut]])
    return [results[r] for r in runs]


def _fmt(v: object) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1 else f"{v:.1f}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


def _by_scenario(reports: list[dict]) -> dict[str, dict[int, dict]]:
    out: dict[str, dict[int, dict]] = {}
    for r in reports:
        out.setdefault(r["scenario"], {})[r["seed"]] = r["metrics"]
    return out


def table(reports: list[dict], metrics: Iterable[str] = METRICS, before: list[dict] | None = None) -> str:
    """Markdown: one row per scenario and metric, one column per seed ('before -> after' cells)."""
    now, old = _by_scenario(reports), _by_scenario(before or [])
    seeds = sorted({r["seed"] for r in reports})
    lines = ["| scenario | metric | " + " | ".join(f"seed {s}" for s in seeds) + " |"]
    lines.append("|---|---|" + "---|" * len(seeds))
    for name, by_seed in now.items():
        for m in metrics:
            cells = []
            for s in seeds:
                v = _fmt(by_seed.get(s, {}).get(m))
                if name in old and s in old[name]:
                    v = f"{_fmt(old[name][s].get(m))} → {v}"
                cells.append(v)
            lines.append(f"| {name} | {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def oracle_table(results: list[dict]) -> str:
    """Markdown: one row per (scenario, seed): the entry oracle's share of entrants announced
    within each ORACLE_LATENCIES_S at no false alarm and its p50 / p95 latency, the same p50 / p95
    with the door sensor's reports too (scenarios with one), and the fitting-room oracle's
    figures at ROOM_LATENCIES_S."""

    def share(bound: dict, latency: float) -> object:
        return next((b["share_announced"] for b in bound["bound"]
                     if b["latency_s"] == latency and b["false_alarms"] == 0), None)

    def pct(bound: dict) -> str:
        lat = next(x for x in bound["latency"] if x["false_alarms"] == 0)
        return f"{_fmt(lat['p50_s'])} / {_fmt(lat['p95_s'])}"

    head = ([f"entry ≤ {_fmt(L)} s" for L in ORACLE_LATENCIES_S] + ["entry p50 / p95 s", "with door p50 / p95 s"]
            + [f"room ≤ {_fmt(L)} s" for L in ROOM_LATENCIES_S] + ["room p50 / p95 s"])
    lines = ["| scenario | seed | entrants | stays | " + " | ".join(head) + " |", "|---" * (len(head) + 4) + "|"]
    for r in results:
        e, m = r["entry"], r["room"]
        cells = ([_fmt(share(e, L)) for L in ORACLE_LATENCIES_S] + [pct(e), pct(e["door"]) if "door" in e else "–"]
                 + [_fmt(share(m, L)) for L in ROOM_LATENCIES_S] + [pct(m)])
        lines.append(f"| {r['scenario']} | {r['seed']} | {e['entrants']} | {m['stays']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def load_reports(path: str | Path) -> list[dict]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, list) or not all(isinstance(r, dict) and "metrics" in r for r in data):
        raise ValueError(f"{path}: not a library report (a JSON list of run reports)")
    return data
