"""Benchmark `sim`: the fast mode's wall time and speedup on the library scenarios.

Boutique hour (sim/scenarios/boutique.toml: 150 visitors, 300 passers-by): target < 30 s
wall and >= 120x real time. Flagship day (sim/scenarios/flagship.toml: 8 h, 3,000 visitors,
40 nodes, RFID on every shelf and fitting room): target < 10 min wall; peak memory (RSS) is
reported. `quick=True` simulates a few minutes of each only (a smoke run, not a measurement).
"""

from __future__ import annotations

import resource
import time
from pathlib import Path

from sim.run import run_fast
from sim.scenario import load_scenario

NAME = "sim"
SCENARIOS = Path(__file__).resolve().parent.parent / "sim" / "scenarios"
TARGET_BOUTIQUE_WALL_S = 30.0
TARGET_BOUTIQUE_SPEEDUP = 120.0
TARGET_FLAGSHIP_WALL_S = 600.0


def _run(name: str, duration_s: float | None) -> tuple[float, float, dict]:
    sc, store = load_scenario(SCENARIOS / f"{name}.toml")
    if duration_s is not None:  # quick: the same population arriving within the short run
        info = sc.scenario.model_copy(update={"duration_s": duration_s, "arrivals_until_s": duration_s / 2})
        f = duration_s / sc.scenario.duration_s
        pop = sc.population.model_copy(
            update={
                "visitors": max(5, int(sc.population.visitors * f)),
                "passers_by": max(5, int(sc.population.passers_by * f)),
            }
        )
        sc = sc.model_copy(update={"scenario": info, "population": pop})
    t0 = time.perf_counter()
    r = run_fast(sc, store)
    wall = time.perf_counter() - t0
    return wall, sc.scenario.duration_s / wall, r.metrics


def run(quick: bool = False) -> dict:
    b_wall, b_speed, b_m = _run("boutique", 180.0 if quick else None)
    rss_boutique = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    f_wall, f_speed, f_m = _run("flagship", 120.0 if quick else None)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    met = (
        b_wall < TARGET_BOUTIQUE_WALL_S
        and b_speed >= TARGET_BOUTIQUE_SPEEDUP
        and f_wall < TARGET_FLAGSHIP_WALL_S
    )
    return {
        "boutique_sim_s": b_m["sim.duration_s"],
        "boutique_wall_s": round(b_wall, 2),
        "boutique_speedup_x": round(b_speed, 1),
        "boutique_peak_rss_mb": round(rss_boutique, 1),
        "boutique_entry_recall": b_m["entry.recall"],
        "boutique_entry_precision": b_m["entry.precision"],
        "flagship_sim_s": f_m["sim.duration_s"],
        "flagship_wall_s": round(f_wall, 2),
        "flagship_speedup_x": round(f_speed, 1),
        "flagship_peak_rss_mb": round(rss, 1),
        "target": {
            "boutique_wall_s": f"< {TARGET_BOUTIQUE_WALL_S}",
            "boutique_speedup_x": f">= {TARGET_BOUTIQUE_SPEEDUP}",
            "flagship_wall_s": f"< {TARGET_FLAGSHIP_WALL_S}",
        },
        "target_met": bool(met) if not quick else False,
    }
