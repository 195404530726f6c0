"""How soon could *any* engine show a garment carried into a fitting room? (an oracle)

Per latency it weighs the reads along the garment's true path against the best explanation
outside the room (and, for wrong rooms, in another one) with the RFID model's own likelihood, so
no engine does better; a carried garment's body spells are filtered per antenna (`_SpellFilter`).
docs/scenarios.md, "How soon could any engine show a garment?".
    python -m sim.room_bound sim/scenarios/boutique.toml [--seeds 1-3] [--duration S]
"""

from __future__ import annotations

import numpy as np

from firmware_config.geometry import point_in_polygon
from firmware_config.store import StoreFile, ZoneKind
from sim.entry_bound import FALSE_ALARMS, bound_cli, summarise
from sim.rfid_model import RfidModel, pair_link_budget
from sim.scenario import Rfid, Scenario
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

    def cases(self, fwd: np.ndarray, one_way: np.ndarray, n: np.ndarray, mean: np.ndarray,
              rounds: int) -> tuple[np.ndarray, np.ndarray]:
        """Elementwise log-likelihoods of (n reads, their mean RSSI): (in the clear, behind the body)."""
        p = self.p
        out = []
        for body in (0.0, p.body_loss_db):
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
            out.append(np.broadcast_to(ll, np.broadcast(fwd, n).shape))
        return out[0], out[1]

    def __call__(self, fwd: np.ndarray, one_way: np.ndarray, n: np.ndarray, mean: np.ndarray,
                 rounds: int, carried: bool) -> np.ndarray:
        """Elementwise log-likelihood of one window on its own (a carried tag blocked with the long-run share)."""
        clear, blocked = self.cases(fwd, one_way, n, mean, rounds)
        if not carried:
            return clear
        b = self.p.body_block_probability
        return np.logaddexp(np.log1p(-b) + clear if b < 1 else -np.inf, np.log(b) + blocked if b > 0 else -np.inf)


class _SpellFilter:
    """Forward filter over the hidden "behind the body" state of one carried garment at each antenna.

    The simulator's `BodyShadow`: a two-state Markov process per (carrier, antenna) with long-run
    blocked share p and mean spell s, and a share of (garment, window) pairs blocked on their own
    with probability p. Antennas are independent given the path, so the log-likelihood of a
    garment's windows is the sum over antennas of each one's filtered predictive log-likelihoods.
    """

    def __init__(self, params: Rfid, window_s: float):
        p, own = params.body_block_probability, params.body_block_own_share
        rate = 1.0 / (params.body_block_spell_s * max(1.0 - p, 1e-9))
        stay = np.exp(-rate * window_s)
        trans = np.asarray([[1 - p * (1 - stay), p * (1 - stay)],  # from clear: (clear, blocked)
                            [(1 - p) * (1 - stay), p + (1 - p) * stay]])
        self.log_trans = np.log(np.clip(trans, 1e-300, None))
        self.log_prior = np.log(np.clip(np.asarray([1 - p, p]), 1e-300, None))
        q = np.asarray([own * p, own * p + (1 - own)])  # P(this garment blocked | shared state)
        self.log_q, self.log_nq = np.log(np.clip(q, 1e-300, None)), np.log(np.clip(1 - q, 1e-300, None))

    def start(self, shape: tuple[int, ...]) -> np.ndarray:
        """The filter's state (log P(state, windows so far)) before any window: the long-run share."""
        return np.broadcast_to(self.log_prior, (*shape, 2)).copy()

    def step(self, alpha: np.ndarray, clear: np.ndarray, blocked: np.ndarray,
             carried: bool) -> tuple[np.ndarray, np.ndarray]:
        """One window: (new state, this window's predictive log-likelihood), elementwise."""
        pred = np.logaddexp(alpha[..., :1] + self.log_trans[0], alpha[..., 1:] + self.log_trans[1])
        if carried:
            emit = np.logaddexp(self.log_nq + clear[..., None], self.log_q + blocked[..., None])
        else:
            emit = np.repeat(np.asarray(clear)[..., None], 2, axis=-1)
        new = pred + emit
        # alpha sums to one (or is impossible), so the new total is this window's predictive likelihood;
        # renormalised, the state stays finite over long runs, and an impossible read stays impossible
        gain = np.logaddexp(new[..., 0], new[..., 1])
        norm = np.where(np.isfinite(gain), gain, 0.0)
        return new - norm[..., None], gain


def _out_of_range(far: np.ndarray, n: np.ndarray, clear: np.ndarray,
                  blocked: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs beyond the model's range are never read: a read there is impossible, silence certain."""
    beyond = np.where(n > 0, -np.inf, 0.0)
    return np.where(far, beyond, clear), np.where(far, beyond, blocked)


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
    spells = _SpellFilter(model.params, w)
    ants = model.ants
    pts, zone = _grid(world.store)
    zone_arr = np.asarray(zone)
    rooms = sorted(world.store.fitting_rooms())
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
        a_true, a_alt = spells.start((len(ants),)), spells.start((len(pts), len(ants)))
        for i, k in enumerate(ks.tolist()):
            idx, xy, carried = model.positions((k + 0.5) * w)
            j = int(np.flatnonzero(idx == item_of[s.epc])[0]) if item_of[s.epc] in idx else -1
            if j >= 0:
                fwd, ow = pair_link_budget(model.params, ants, np.repeat(xy[j : j + 1], len(ants), 0),
                                           np.arange(len(ants)), model.walls, model.wall_db)
                far = np.hypot(*(xy[j] - ants.xy).T) >= model.params.max_range_m
                clear, blocked = _out_of_range(far, n[i], *like.cases(fwd, ow, n[i], mean[i], rounds))
                a_true, ll = spells.step(a_true, clear, blocked, bool(carried[j]))
                true_ll[i] = ll.sum()
            clear, blocked = _out_of_range(g_far, n[i][None, :],
                                           *like.cases(g_fwd, g_ow, n[i][None, :], mean[i][None, :], rounds))
            alt[i, 0] = clear.sum(axis=1)
            a_alt, ll = spells.step(a_alt, clear, blocked, True)
            alt[i, 1] = ll.sum(axis=1)
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
