"""How soon could *any* engine show a garment carried into a fitting room? (an oracle)

Per latency it weighs the reads along the garment's true path against the best explanation
outside the room (and, for wrong rooms, in another one) with the RFID model's own likelihood, so
no engine does better. docs/scenarios.md, "How soon could any engine show a garment?".
    python -m sim.room_bound sim/scenarios/boutique.toml [--seeds 1-3] [--duration S]
"""

from __future__ import annotations

import numpy as np

from firmware_config.geometry import point_in_polygon
from firmware_config.store import StoreFile, ZoneKind
from sim.entry_bound import FALSE_ALARMS, bound_cli, summarise
from sim.rfid_model import RfidModel, pair_link_budget
from sim.scenario import Scenario
from sim.truth import Truth, build_truth
from sim.world import Trajectories, World, build_world

LATENCIES_S = (1.0, 2.0, 3.0, 5.0)  # the fitting-room targets are stated at 2-3 s
LATENCY_MAX_S = 10.0  # a stay not separated by then counts as "later than this"
EARLY_S = 3.0  # reads from this long before the stay count: the garment comes through the curtain
ROOM_GRID_STEP_M = 0.25  # where an alternative explanation may put a garment
QUADRATURE_POINTS = 24  # Gauss-Hermite points for the expectation over a round's fading
ROUNDING_VAR_DB2 = 1.0 / 12.0  # readers report whole dBm


class _ReadLikelihood:
    """Log-likelihood of one window's aggregate at one antenna, given the tag's forward power."""

    def __init__(self, model: RfidModel):
        p = self.p = model.params
        x, w = np.polynomial.hermite_e.hermegauss(QUADRATURE_POINTS)
        self.fade, self.weight = p.fading_sigma_db * x, w / w.sum()

    def __call__(self, fwd: np.ndarray, one_way: np.ndarray, n: np.ndarray, mean: np.ndarray,
                 rounds: int, carried: bool) -> np.ndarray:
        """Elementwise log-likelihood of (n reads, their mean RSSI) for arrays of pairs."""
        p = self.p
        cases = [(0.0, 1.0)] if not carried else [(0.0, 1 - p.body_block_probability),
                                                  (p.body_loss_db, p.body_block_probability)]
        out = np.full(np.broadcast(fwd, n).shape, -np.inf)
        for body, prob in cases:
            if prob <= 0:
                continue
            f = np.asarray(fwd - body)[..., None] + self.fade
            read = 1.0 / (1.0 + np.exp(-(f - p.tag_sensitivity_dbm) / p.read_width_db))
            pbar = np.clip((read * self.weight).sum(-1), 1e-300, 1 - 1e-15)
            # the reads' RSSI: fading as selected by being read (reads favour strong rounds)
            m_f = (read * self.weight * self.fade).sum(-1) / pbar
            v_f = (read * self.weight * self.fade**2).sum(-1) / pbar - m_f**2 + ROUNDING_VAR_DB2
            level = fwd - body + one_way - body - p.backscatter_loss_db + m_f
            ll = n * np.log(pbar) + (rounds - n) * np.log1p(-pbar)
            nn = np.maximum(n, 1)
            ll = ll + np.where(n > 0, -0.5 * (mean - level) ** 2 * nn / v_f - 0.5 * np.log(2 * np.pi * v_f / nn), 0)
            out = np.logaddexp(out, np.log(prob) + ll)
        return out


def _grid(store: StoreFile) -> tuple[np.ndarray, list[str]]:
    """Points every ROOM_GRID_STEP_M inside the store's zones (not outside), with their zone."""
    pts, zone = [], []
    for z in store.zones:
        if z.kind == ZoneKind.OUTSIDE:
            continue
        poly = list(z.polygon)
        (x0, y0), (x1, y1) = np.min(poly, axis=0), np.max(poly, axis=0)
        for x in np.arange(x0 + ROOM_GRID_STEP_M / 2, x1, ROOM_GRID_STEP_M):
            for y in np.arange(y0 + ROOM_GRID_STEP_M / 2, y1, ROOM_GRID_STEP_M):
                if point_in_polygon((float(x), float(y)), poly):
                    pts.append((x, y))
                    zone.append(z.id)
    return np.asarray(pts, float).reshape(-1, 2), zone


def record_reads(world: World, seed: int, log_body: bool = False) -> tuple[RfidModel, dict[str, dict[int, list]]]:
    """Every window's reads of a run, drawn as `sim.run.run_fast` draws them: epc -> window -> reads
    (``log_body``: the model also keeps which carried garments the body hid, `RfidModel.body_log`)."""
    sc = world.scenario
    model = RfidModel(world, sc.rfid, np.random.default_rng([seed, 31]), Trajectories(world.agents))
    model.body_log = {} if log_body else None
    index = {(n, int(a)): i for i, (n, a) in enumerate(zip(model.ants.node, model.ants.ant, strict=True))}
    reads: dict[str, dict[int, list]] = {}
    w, k = sc.rfid.window_s, 0
    while (k + 1) * w <= sc.scenario.duration_s + 1e-9:
        for r in model.window(k * w, (k + 1) * w):
            reads.setdefault(r.epc, {}).setdefault(k, []).append((index[(r.node, r.ant)], r.n, r.rssi_mean))
        k += 1
    return model, reads


def room_margins(
    world: World, truth: Truth, model: RfidModel, reads: dict
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(margins (S, L), wrong-room scores (S * other rooms, L), latency grid) over the true stays."""
    sc = world.scenario
    w = sc.rfid.window_s
    rounds = max(1, int(round(sc.rfid.rounds_per_s * w)))
    lat = np.union1d(np.arange(0.0, LATENCY_MAX_S + 1e-9, w), LATENCIES_S)
    like = _ReadLikelihood(model)
    ants = model.ants
    pts, zone = _grid(world.store)
    zone_arr = np.asarray(zone)
    rooms = sorted({z.id for z in world.store.zones if z.kind == ZoneKind.FITTING_ROOM})
    gp = np.repeat(np.arange(len(pts)), len(ants))
    ga = np.tile(np.arange(len(ants)), len(pts))
    g_fwd, g_ow = (x.reshape(len(pts), len(ants)) for x in
                   pair_link_budget(model.params, ants, pts[gp], ga, model.walls, model.wall_db))
    g_far = np.hypot(*(pts[:, None, :] - ants.xy[None, :, :]).transpose(2, 0, 1)) >= model.params.max_range_m
    item_of = {e: i for i, e in enumerate(model.epc)}
    margins, wrong = [], []
    for s in truth.room_items:
        k0 = int(np.floor((s.start - EARLY_S) / w + 1e-9))
        ks = np.arange(max(k0, 0), int(np.floor((s.start + lat[-1]) / w + 1e-9)))
        ks = ks[(ks + 1) * w <= sc.scenario.duration_s + 1e-9]
        n = np.zeros((len(ks), len(ants)))
        mean = np.zeros((len(ks), len(ants)))
        got = reads.get(s.epc, {})
        for i, k in enumerate(ks.tolist()):
            for a, c, m in got.get(k, []):
                n[i, a], mean[i, a] = c, m
        true_ll, alt = np.zeros(len(ks)), np.zeros((len(ks), 2, len(pts)))
        for i, k in enumerate(ks.tolist()):
            idx, xy, carried = model.positions((k + 0.5) * w)
            j = int(np.flatnonzero(idx == item_of[s.epc])[0]) if item_of[s.epc] in idx else -1
            if j >= 0:
                fwd, ow = pair_link_budget(model.params, ants, np.repeat(xy[j : j + 1], len(ants), 0),
                                           np.arange(len(ants)), model.walls, model.wall_db)
                far = np.hypot(*(xy[j] - ants.xy).T) >= model.params.max_range_m
                ll = like(fwd, ow, n[i], mean[i], rounds, bool(carried[j]))
                true_ll[i] = np.where(far, np.where(n[i] > 0, -np.inf, 0.0), ll).sum()
            for b, car in enumerate((False, True)):
                ll = like(g_fwd, g_ow, n[i][None, :], mean[i][None, :], rounds, car)
                alt[i, b] = np.where(g_far, np.where(n[i][None, :] > 0, -np.inf, 0.0), ll).sum(axis=1)
        ends = (ks + 1) * w
        upto = np.searchsorted(ends, s.start + lat + 1e-9, side="right")  # windows closed by each horizon
        cum_true = np.concatenate([[0.0], np.cumsum(true_ll)])[upto]
        cum_alt = np.concatenate([np.zeros((1, 2, len(pts))), np.cumsum(alt, axis=0)])[upto].max(axis=1)  # (L, G)
        outside = zone_arr != s.room
        margins.append(cum_true - cum_alt[:, outside].max(axis=1, initial=-np.inf))
        for r in rooms:
            if r != s.room:
                wrong.append(cum_alt[:, zone_arr == r].max(axis=1, initial=-np.inf) - cum_true)
    return np.asarray(margins).reshape(-1, len(lat)), np.asarray(wrong).reshape(-1, len(lat)), lat


def room_bound(sc: Scenario, store: StoreFile) -> dict:
    """The oracle's figures for one scenario (its seed) as a JSON-ready dict."""
    world = build_world(sc, store)
    truth = build_truth(world)
    model, reads = record_reads(world, sc.scenario.seed)
    margins, wrong, lat = room_margins(world, truth, model, reads)
    return {"scenario": sc.scenario.name, "seed": sc.scenario.seed, "stays": len(margins),
            "wrong_room_candidates": len(wrong), **summarise(margins, wrong, lat, LATENCIES_S, FALSE_ALARMS)}


if __name__ == "__main__":
    bound_cli(__doc__, room_bound)
