"""How soon could *any* engine show a garment carried into a fitting room?

An oracle bound from the simulator's RFID model, not from the gateway's engine: for every
garment stay in a fitting room (ground truth), the end of the first reader window in which the
room's own antenna read the garment at all, at any strength (reads from up to `early_s` before
the stay starts count, as the garment is carried through the curtain). Nothing can show a
garment in a room before its antenna has read it once; if this latency's p95 is above the
target, the target is out of reach with this store's readers, whatever the engine.

    python -m sim.room_bound sim/scenarios/flagship.toml [--seed N]
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from sim.rfid_model import RfidModel
from sim.scenario import ScenarioError, load_scenario
from sim.truth import build_truth
from sim.world import Trajectories, build_world


def room_bound(scenario_path: str, seed: int | None = None, early_s: float = 3.0) -> dict:
    sc, store = load_scenario(scenario_path)
    sc = sc.with_seed(seed)
    world = build_world(sc, store)
    truth = build_truth(world)
    model = RfidModel(world, sc.rfid, np.random.default_rng([sc.scenario.seed, 31]), Trajectories(world.agents))
    zone_of = {(n, int(a)): z for n, a, z in zip(model.ants.node, model.ants.ant, model.ants.zone, strict=True)}
    w = sc.rfid.window_s
    reads: dict[tuple[str, str], list[float]] = {}  # (epc, room) -> ends of windows its antenna read it
    k = 0
    while (k + 1) * w <= sc.scenario.duration_s + 1e-9:
        end = (k + 1) * w
        for r in model.window(k * w, end):
            room = zone_of.get((r.node, r.ant))
            if room is not None:
                reads.setdefault((r.epc, room), []).append(end)
        k += 1
    lat, never = [], 0
    for s in truth.room_items:
        ends = [t for t in reads.get((s.epc, s.room), []) if s.start - early_s < t <= s.end]
        if ends:
            lat.append(max(0.0, min(ends) - s.start))
        else:
            never += 1
    pct = (lambda q: round(float(np.percentile(lat, q)), 2)) if lat else (lambda q: None)
    return {
        "scenario": sc.scenario.name, "seed": sc.scenario.seed, "stays": len(truth.room_items),
        "never_read_by_own_antenna": never, "first_read_latency_p50_s": pct(50),
        "first_read_latency_p95_s": pct(95), "first_read_latency_p98_s": pct(98),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scenario")
    ap.add_argument("--seed", type=int)
    args = ap.parse_args()
    try:
        out = room_bound(args.scenario, seed=args.seed)
    except ScenarioError as exc:
        raise SystemExit(f"error: {exc}") from None
    print(json.dumps(out))


if __name__ == "__main__":
    main()
