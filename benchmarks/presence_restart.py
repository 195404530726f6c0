"""Benchmark `presence-restart`: 20 gateway restarts during a busy simulated hour.

The boutique's and the high street's hour of the simulator (sim/scenarios/) in fast mode, the
gateway on a database file. Staff claim every customer announced. Every three minutes the gateway is
killed (the core dropped, nothing written on the way down: a SIGKILL, and a SIGTERM writes
nothing more) and a new one starts on the same file after `DOWN_S` of lost windows.
Target: 0 repeated "entered" for anyone announced before a restart, and 0 lost claims (a
customer claimed, still in the store, no longer shown with their claim after the restart).
The same run without restarts gives the engine's own repeated alerts, for comparison.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np

from benchmarks._sim_windows import ble_windows
from gateway.ingest.core import GatewayCore
from gateway.storage import staff
from gateway.storage.auth import create_staff
from gateway.storage.db import open_db
from sim.enrol import enrol_world
from sim.run import EPOCH
from sim.scenario import load_scenario
from sim.world import build_world

NAME = "presence-restart"
SCENARIOS = Path(__file__).resolve().parent.parent / "sim" / "scenarios"
RESTARTS = 20
DOWN_S = 5.0  # a systemd restart: the windows meanwhile are lost (replayed late, they move nobody anyway)


def _hour(name: str, restarts: int, duration_s: float, db_path: Path) -> dict:
    sc, store = load_scenario(SCENARIOS / f"{name}.toml")
    if duration_s < sc.scenario.duration_s:
        sc = sc.model_copy(update={"scenario": sc.scenario.model_copy(
            update={"duration_s": duration_s, "arrivals_until_s": duration_s * 0.7})})
    world = build_world(sc, store)
    db = open_db(db_path)
    enrol_world(db, world, now=EPOCH - 86400.0)
    staff_id = create_staff(db, "ana", "correct horse battery", "associate", now=EPOCH)
    now = [EPOCH]

    def start() -> GatewayCore:
        return GatewayCore(store, open_db(db_path), clock=lambda: now[0])

    core = start()
    inside = {a.customer.id: (a.entered_at, a.left_at) for a in world.agents if a.customer and a.entered_at}
    at = list(np.linspace(duration_s / (restarts + 1), duration_s, restarts, endpoint=False)) if restarts else []
    down_until = -1.0
    seen = 0
    announced: set[str] = set()  # announced and not yet reported left
    entries: dict[str, int] = {}  # "entered" per customer (each comes once in a run)
    reannounced, lost, checked = 0, 0, 0
    restart_s: list[float] = []
    tick_end = 0.0
    for t1, end, topic, data in ble_windows(world, sc.scenario.seed):
        if t1 != tick_end:  # the last tick's windows are all in: staff act, the gateway may be restarted
            for ev in core.events.after(seen, limit=10**6):  # the tablets' view: claim whoever is announced
                seen = ev.id
                if ev.kind == "entered":
                    reannounced += ev.customer_id in announced
                    announced.add(ev.customer_id)
                    entries[ev.customer_id] = entries.get(ev.customer_id, 0) + 1
                    staff.claim(core.db, f"customer:{ev.customer_id}", staff_id, now=now[0])
                elif ev.kind == "left":
                    announced.discard(ev.customer_id)
            if at and tick_end >= at[0]:
                at.pop(0)
                before = dict(core.presence.present())
                del core  # killed
                w0 = time.perf_counter()
                core = start()
                restart_s.append(time.perf_counter() - w0)
                down_until = tick_end + DOWN_S
                shown = {p["customer_id"]: p for p in staff.present_now(core.db, core.presence.present())}
                through = _inside_through(before, inside, tick_end, down_until)
                kept = [shown.get(cid, {}).get("claimed_by") == "ana" for cid in through]
                checked += len(kept)
                lost += kept.count(False)
            tick_end = t1
        if end >= down_until:
            now[0] = end + EPOCH
            core.handle(topic, data)
    return {
        "entered": sum(entries.values()),
        "repeated_entered": sum(entries.values()) - len(entries),  # a customer announced twice in one visit
        "reannounced_while_announced": reannounced,
        "claimed_inside_at_restarts": checked,
        "lost_claims": lost,
        "restart_s_max": round(max(restart_s), 3) if restart_s else None,
    }


def _inside_through(
    before: dict, inside: dict[str, tuple[float, float | None]], tick_end: float, down_until: float
) -> list[str]:
    """Who was present at a restart and truly inside from before it until the gateway was back."""
    out = []
    for cid in before:
        entered, left = inside.get(cid, (None, None))
        if entered is not None and entered <= tick_end and (left is None or left > down_until):
            out.append(cid)
    return out


def _scenario(name: str, quick: bool, tmp: Path) -> dict:
    duration = 600.0 if quick else 3600.0
    restarts = 4 if quick else RESTARTS
    t0 = time.perf_counter()
    with_restarts = _hour(name, restarts, duration, tmp / f"{name}-restarts.db")
    wall = time.perf_counter() - t0
    baseline = _hour(name, 0, duration, tmp / f"{name}-baseline.db")
    return {
        "scenario": name,
        "simulated_s": duration,
        "restarts": restarts,
        "down_s": DOWN_S,
        **with_restarts,
        "repeated_entered_without_restarts": baseline["repeated_entered"],
        "repeated_entered_from_restarts": with_restarts["repeated_entered"] - baseline["repeated_entered"],
        "wall_s": round(wall, 1),
    }


def run(quick: bool = False) -> dict:
    with TemporaryDirectory() as tmp:
        rows = [_scenario(name, quick, Path(tmp)) for name in (("boutique",) if quick else ("boutique", "high_street"))]
    met = all(
        r["repeated_entered_from_restarts"] <= 0 and r["reannounced_while_announced"] == 0 and r["lost_claims"] == 0
        for r in rows
    )
    return {
        "runs": rows,
        "target": {"repeated_entered_from_restarts": 0, "reannounced_while_announced": 0, "lost_claims": 0},
        "target_met": met if not quick else None,
    }


if __name__ == "__main__":
    print(json.dumps(run()))
