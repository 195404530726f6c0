"""The whole scenario library, several seeds, one table: how targets are measured.

Every target is measured on every scenario in `sim/scenarios/` with seeds 1 to 3, never on
the scenario that looks best. `run_library` runs each (scenario, seed) in its own process
(`jobs` at a time), `table` lays the scores out as Markdown (one row per scenario and
metric, one column per seed) and `compare` puts two such runs side by side (before -> after).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

LIBRARY = Path(__file__).resolve().parent / "scenarios"

# The metrics the library table shows, in order; others stay in the JSON.
METRICS: tuple[str, ...] = (
    "entry.precision",
    "entry.recall",
    "entry.latency_p50_s",
    "entry.latency_p95_s",
    "left.latency_p95_s",
    "zone.accuracy",
    "zone.wrong_room_changes_per_100_visits",
    "fitting_room.item_precision",
    "fitting_room.item_recall",
    "fitting_room.latency_p95_s",
    "fitting_room.gone_latency_p95_s",
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


def _run_one(path: str, seed: int) -> dict:
    """One scored run; `cpu_s` (this process's CPU time) judges speed on a busy machine too."""
    import time

    from sim.report import report_dict
    from sim.run import run_fast
    from sim.scenario import load_scenario

    sc, store = load_scenario(path)
    cpu0 = time.process_time()
    rep = report_dict(run_fast(sc, store, seed=seed))
    rep["cpu_s"] = round(time.process_time() - cpu0, 2)
    return rep


def run_library(
    paths: list[Path], seeds: list[int], jobs: int = 2, on_done: Callable[[dict], None] | None = None
) -> list[dict]:
    """Every (scenario, seed) run and scored, `jobs` processes at a time; reports in library order."""
    runs = [(str(p), s) for p in paths for s in seeds]
    results: dict[tuple[str, int], dict] = {}
    with ProcessPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(_run_one, p, s): (p, s) for p, s in runs}
        for fut in as_completed(futures):
            rep = fut.result()
            rep["file"] = Path(futures[fut][0]).name
            results[futures[fut]] = rep
            if on_done is not None:
                on_done(rep)
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


def load_reports(path: str | Path) -> list[dict]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, list) or not all(isinstance(r, dict) and "metrics" in r for r in data):
        raise ValueError(f"{path}: not a library report (a JSON list of run reports)")
    return data
