"""How soon could *any* engine say a garment is gone, and can it tell a queue from a room? (oracles)

Two questions `sim.room_bound` leaves open, answered with its likelihood of every read:
- gone: after a garment leaves its room, when do the reads favour its true path over the best
  place in the room by more than any stretch of the same length inside a stay favours the best
  place just outside over the best place in the room (no false alarm)? Both sides are taken the
  way that helps the oracle; its test shows the engine never beats it on busy minutes of
  `mall_unit`, but on `corner` the engine does (docs/fitting-rooms.md, "The honest gone oracle"),
  so it is not yet a bound everywhere. A body
  hides a bundle for spells, so the body state is hidden and each hypothesis is weighed with the
  reads marginalised over it (a forward filter per antenna over the scenario's spell process, one
  pass from inside the stay to after it); ``--body-known`` instead tells it the simulator's ground
  truth of what the body hid (a looser bound: no radio gives that).
- the queue: a garment held outside a room (a customer waiting at a busy room's curtain) is a
  false-alarm candidate for that room; with these candidates, the oracle's precision and recall of
  showing garments within a latency. docs/fitting-rooms.md, "The oracles".
    python -m sim.room_gone_bound sim/scenarios/mall_unit.toml [--seeds 1-3] [--duration S] [--body-known]
                                  [--place-after]
"""

from __future__ import annotations

import numpy as np

from firmware_config.geometry import point_in_polygon, segment_distance
from firmware_config.store import StoreFile, ZoneKind
from sim.entry_bound import _threshold, bound_cli, summarise
from sim.rfid_model import RfidModel, pair_link_budget
from sim.room_bound import EARLY_S, LATENCIES_S, _grid, _ReadLikelihood, _SpellFilter, record_reads, room_margins
from sim.scenario import Scenario
from sim.truth import Truth, build_truth
from sim.world import World, build_world

GONE_LATENCIES_S = (2.0, 4.0, 6.0, 8.0, 10.0)  # the gone target is 8 s
GONE_MAX_S = 20.0  # a garment not separated from its room by then counts as "later than this"
NEAR_ROOM_M = 2.0  # outside grid points (and queued garments) this close to a room: the only rivals
NEAR_ROOM_EARLY_S = 10.0  # the scorer's ROOM_EARLY_S: shown this soon before the stay is no false alarm
QUEUE_LATENCIES_S = (2.0, 3.0, 5.0)  # the oracle's precision / recall are given at these latencies
GONE_FALSE_ALARMS = (0, 2)  # stays the oracle may split (the engine splits 0 to 3 an hour)
IMPOSSIBLE_LL = -1e6  # a window's floor: finite, so a stretch's sum is a difference of running sums


class _Evidence:
    """Per-window log-likelihoods of one garment's reads: along its true path and at grid points."""

    def __init__(self, world: World, model: RfidModel, reads: dict, body_known: bool = False):
        sc = world.scenario
        self.w = sc.rfid.window_s
        self.rounds = max(1, int(round(sc.rfid.rounds_per_s * self.w)))
        self.model, self.reads, self.like = model, reads, _ReadLikelihood(model)
        log = (model.body_log or {}) if body_known else {}
        self.blocked = {int(round(t0 / self.w)): v for t0, v in log.items()}
        self.spells = _SpellFilter(model.params, self.w)  # where the body state is not known
        self.item_of = {e: i for i, e in enumerate(model.epc)}
        ants = model.ants
        self.pts, zone = _grid(world.store)
        self.zone = np.asarray(zone)
        gp = np.repeat(np.arange(len(self.pts)), len(ants))
        ga = np.tile(np.arange(len(ants)), len(self.pts))
        self.g_fwd, self.g_ow = (x.reshape(len(self.pts), len(ants)) for x in
                                 pair_link_budget(model.params, ants, self.pts[gp], ga, model.walls, model.wall_db))
        self.g_far = np.hypot(*(self.pts[:, None, :] - ants.xy[None, :, :]).transpose(2, 0, 1)) \
            >= model.params.max_range_m

    def body(self, k: int, item: int) -> np.ndarray:
        """(A,) what hid the garment at window k, from the simulator's ground truth if the model kept
        it (`RfidModel.body_log`): 1 behind its carrier's body, 0 not, -1 unknown (the honest oracle:
        no log; or not drawn: not carried, out of range)."""
        out = np.full(len(self.model.ants), -1)
        got = self.blocked.get(k)
        if got is not None:
            sel = got[0] == item
            out[got[1][sel]] = got[2][sel]
        return out

    def _ll(self, fwd: np.ndarray, ow: np.ndarray, n: np.ndarray, mean: np.ndarray, body: np.ndarray,
            state: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-antenna log-likelihoods (not carried, carried) and the spell filter's new state. Where
        the body state is known (`body`) it is taken as such; elsewhere the filter weighs the window
        given the ones before."""
        free, hid = self.like.cases(fwd, ow, n, mean, self.rounds)
        state, either = self.spells.step(state, free, hid, True)
        known = np.stack([np.where(body == 1, -np.inf, 0.0), np.where(body == 0, -np.inf, 0.0)], axis=-1)
        state = np.where((body >= 0)[..., None], known, state)
        return free, np.where(body == 1, hid, np.where(body == 0, free, either)), state

    def windows(self, epc: str, ks: np.ndarray, sub: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(true-path ll (K,), grid ll (K, 2 carried?, len(sub)), true positions (K, 2)) over windows ks,
        each window's ll the filter's given the windows before it in ks."""
        A = len(self.model.ants)
        got = self.reads.get(epc, {})
        true_ll, alt = np.zeros(len(ks)), np.zeros((len(ks), 2, len(sub)))
        xy_true = np.full((len(ks), 2), np.nan)
        item = self.item_of[epc]
        state_true, state_alt = self.spells.start((A,)), self.spells.start((len(sub), A))
        for i, k in enumerate(ks.tolist()):
            n, mean = np.zeros(A), np.zeros(A)
            for a, c, m in got.get(k, []):
                n[a], mean[a] = c, m
            body = self.body(k, item)
            idx, xy, carried = self.model.positions((k + 0.5) * self.w)
            hit = np.flatnonzero(idx == item)
            if len(hit):
                j = int(hit[0])
                xy_true[i] = xy[j]
                fwd, ow = pair_link_budget(self.model.params, self.model.ants, np.repeat(xy[j : j + 1], A, 0),
                                           np.arange(A), self.model.walls, self.model.wall_db)
                far = np.hypot(*(xy[j] - self.model.ants.xy).T) >= self.model.params.max_range_m
                free, car, nxt = self._ll(fwd, ow, n, mean, body, state_true)
                ll, state_true = (car, nxt) if carried[j] else (free, self.spells.start((A,)))
                true_ll[i] = np.where(far, np.where(n > 0, -np.inf, 0.0), ll).sum()
            *both, state_alt = self._ll(self.g_fwd[sub], self.g_ow[sub], n[None, :], mean[None, :], body[None, :],
                                        state_alt)
            for b, ll in enumerate(both):
                alt[i, b] = np.where(self.g_far[sub], np.where(n[None, :] > 0, -np.inf, 0.0), ll).sum(axis=1)
        return np.maximum(true_ll, IMPOSSIBLE_LL), np.maximum(alt, IMPOSSIBLE_LL), xy_true


def _near(pts: np.ndarray, poly: list) -> np.ndarray:
    """Which of ``pts`` lie within NEAR_ROOM_M of the polygon's edges."""
    edges = [(np.asarray(poly[i], float), np.asarray(poly[(i + 1) % len(poly)], float)) for i in range(len(poly))]
    return np.asarray([min(segment_distance(p, a, b) for a, b in edges) <= NEAR_ROOM_M for p in pts], bool)


def _best_segment(true_ll: np.ndarray, alt: np.ndarray, lengths: np.ndarray, ok: np.ndarray,
                  rival: np.ndarray | None = None) -> np.ndarray:
    """Per segment length: the most any run of that many windows (all ``ok``) favours a grid point
    (best of carried or not) over the true path (with ``rival`` (K, 2, G'): over the best of those
    points instead)."""
    ct = np.concatenate([[0.0], np.cumsum(true_ll)])
    cr = None if rival is None else np.concatenate([np.zeros((1, *rival.shape[1:])), np.cumsum(rival, axis=0)])
    ca = np.concatenate([np.zeros((1, *alt.shape[1:])), np.cumsum(alt, axis=0)])
    cbad = np.concatenate([[0], np.cumsum(~ok)])
    out = np.full(len(lengths), -np.inf)
    for j, m in enumerate(lengths.tolist()):
        if m < 1 or m > len(true_ll):
            continue
        s = np.arange(len(true_ll) - m + 1)
        good = cbad[s + m] - cbad[s] == 0
        if good.any():
            s = s[good]
            base = ct[s + m] - ct[s] if cr is None else (cr[s + m] - cr[s]).max(axis=(1, 2))
            out[j] = ((ca[s + m] - ca[s]).max(axis=(1, 2)) - base).max()
    return out


def gone_margins(world: World, truth: Truth, ev: _Evidence,
                 place_after: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(margins of the stays' ends (S, L), false-alarm scores inside stays (S, L), latency grid). With
    ``place_after`` the hypothesis after the stay is the best fixed place just outside (the rivals
    inside the stay), not the garment's true path, which no radio gives."""
    w, dur = ev.w, world.scenario.scenario.duration_s
    lat = np.union1d(np.arange(w, GONE_MAX_S + 1e-9, w), GONE_LATENCIES_S)
    lengths = np.round(lat / w).astype(int)
    polys = {z.id: list(z.polygon) for z in world.store.zones}
    margins, scores = [], []
    for s in truth.room_items:
        if s.end + GONE_MAX_S > dur:
            continue  # left in the room until the end, or gone too late to follow
        inside = np.flatnonzero(ev.zone == s.room)
        near_out = np.flatnonzero((ev.zone != s.room) & _near(ev.pts, polys[s.room]))
        k0, ke = int(np.ceil(s.start / w)), int(np.floor(s.end / w + 1e-9))
        kg = np.arange(ke, ke + lengths[-1])
        # one forward pass from inside the stay to GONE_MAX_S after it, so both sides weigh a stretch
        # given the same history (the windows before it in the stay, under the same hypothesis)
        k_in = min(k0 + int(EARLY_S / w), ke)
        t_ll, a_ll, _ = ev.windows(s.epc, np.arange(k_in, kg[-1] + 1), np.concatenate([near_out, inside]))
        # after the stay: the true path against the best place in the room, from the stay's end on
        ct = np.cumsum(t_ll[ke - k_in :])
        if place_after:
            ct = np.cumsum(a_ll[ke - k_in :, :, : len(near_out)], axis=0).max(axis=(1, 2))
        ca = np.cumsum(a_ll[ke - k_in :, :, len(near_out) :], axis=0).max(axis=(1, 2))
        margins.append(ct[lengths - 1] - ca[lengths - 1])
        # inside the stay, away from the curtain passages (EARLY_S): the best place just outside
        # against the best place in the room, over every stretch
        n_in = max(0, ke - int(EARLY_S / w) - k_in)
        scores.append(_best_segment(t_ll[:n_in], a_ll[:n_in, :, : len(near_out)], lengths, np.ones(n_in, bool),
                                    a_ll[:n_in, :, len(near_out) :]))
    return np.asarray(margins).reshape(-1, len(lat)), np.asarray(scores).reshape(-1, len(lat)), lat


def queue_scores(world: World, truth: Truth, ev: _Evidence, lat: np.ndarray) -> np.ndarray:
    """False-alarm scores (C, L) of garments held outside a room, near it: per garment and room,
    the most any stretch of L seconds outside favours a place in the room over the true path."""
    w, dur = ev.w, world.scenario.scenario.duration_s
    lengths = np.maximum(np.round(lat / w).astype(int), 1)
    rooms = {z.id: list(z.polygon) for z in world.store.zones if z.kind == ZoneKind.FITTING_ROOM}
    k_all = np.arange(int(dur / w))
    stays: dict[str, list] = {}
    for s in truth.room_items:
        stays.setdefault(s.epc, []).append(s)
    out = []
    for epc in ev.reads:
        if epc not in ev.item_of:
            continue
        near_k = _near_windows(ev, epc, k_all, rooms)
        for room, ks in near_k.items():
            inside = np.flatnonzero(ev.zone == room)
            t_ll, a_ll, xy = ev.windows(epc, ks, inside)
            t_mid = (ks + 0.5) * w
            ok = ~np.isnan(xy[:, 0]) & ~np.asarray([point_in_polygon(tuple(p), rooms[room]) for p in np.nan_to_num(xy)])
            for s in stays.get(epc, []):
                if s.room == room:  # about to go in (the scorer's tolerance) or just out (hold-over: gone)
                    ok &= ~((t_mid >= s.start - NEAR_ROOM_EARLY_S) & (t_mid < s.end + GONE_MAX_S))
            if ok.any():
                out.append(_best_segment(t_ll, a_ll, lengths, ok))
    return np.asarray(out).reshape(-1, len(lat))


def _near_windows(ev: _Evidence, epc: str, k_all: np.ndarray, rooms: dict) -> dict[str, np.ndarray]:
    """Per room: the windows in which the garment was read and was within NEAR_ROOM_M of the room,
    outside every room (its position every window, from the ground truth)."""
    ks = np.asarray(sorted(ev.reads[epc]), int)
    if not len(ks):
        return {}
    i = ev.item_of[epc]
    spots = []
    for k in ks.tolist():
        idx, xy, _ = ev.model.positions((k + 0.5) * ev.w)
        j = np.flatnonzero(idx == i)
        spots.append(xy[j[0]] if len(j) else (np.nan, np.nan))
    pos = np.asarray(spots, float)
    has = ~np.isnan(pos[:, 0])
    in_room = np.asarray([has[m] and any(point_in_polygon(tuple(pos[m]), p) for p in rooms.values())
                          for m in range(len(ks))], bool)
    out = {}
    for room, poly in rooms.items():
        near = has & ~in_room
        near[near] = _near(pos[near], poly)
        if near.any():
            # the stretch from the first to the last such window, so silent windows count too
            span = np.arange(ks[near][0], ks[near][-1] + 1)
            out[room] = span[np.isin(span, k_all)]
    return out


def oracle_precision_recall(margins: np.ndarray, wrong: np.ndarray, lat_m: np.ndarray,
                            latency: float) -> dict:
    """The best the oracle can do showing garments within ``latency``: the recall with no false
    alarm, and the threshold that maximises precision + recall (F1) with its precision and recall."""
    k = int(np.searchsorted(lat_m, latency - 1e-9))
    m = np.maximum.accumulate(margins, axis=1)[:, k] if len(margins) else np.zeros(0)
    s = np.maximum.accumulate(wrong, axis=1)[:, k] if len(wrong) else np.zeros(0)
    best = (-1.0, 0.0, 0.0)
    for th in np.unique(np.concatenate([m, s, [-np.inf]])):
        tp, fp = int((m > th).sum()), int((s > th).sum())
        if tp == 0:
            continue
        p, r = tp / (tp + fp), tp / len(m)
        f1 = 2 * p * r / (p + r)
        best = max(best, (f1, p, r))
    th0 = _threshold(s[:, None], 0)[0] if len(s) else -np.inf
    return {"latency_s": latency, "recall_no_false_alarm": round(float((m > th0).mean()), 3) if len(m) else None,
            "precision": round(best[1], 3), "recall": round(best[2], 3)}


def room_gone_bound(sc: Scenario, store: StoreFile, body_known: bool = False, place_after: bool = False) -> dict:
    """Both oracles' figures for one scenario (its seed) as a JSON-ready dict (``body_known``: told
    what the body hid, not an honest oracle; ``place_after``: see `gone_margins`)."""
    world = build_world(sc, store)
    truth = build_truth(world)
    model, reads = record_reads(world, sc.scenario.seed, log_body=body_known)
    ev = _Evidence(world, model, reads, body_known)
    gm, gs, glat = gone_margins(world, truth, ev, place_after)
    margins, wrong, lat = room_margins(world, truth, model, reads)
    queue = queue_scores(world, truth, ev, lat)
    both = np.concatenate([wrong, queue]) if len(queue) else wrong
    return {"scenario": sc.scenario.name, "seed": sc.scenario.seed, "body_known": body_known,
            "place_after": place_after,
            "gone": {"stays": len(gm), **summarise(gm, gs, glat, GONE_LATENCIES_S, GONE_FALSE_ALARMS)},
            "queue": {"stays": len(margins), "queued_candidates": len(queue),
                      "show": summarise(margins, both, lat, LATENCIES_S, (0,))["latency"][0],
                      "at": [oracle_precision_recall(margins, both, lat, L) for L in QUEUE_LATENCIES_S]}}


if __name__ == "__main__":
    bound_cli(__doc__, room_gone_bound, {"body_known": "tell the gone oracle what the body hid (the simulator's truth; "
                                         "a looser bound, not an honest one)",
                                         "place_after": "after the stay, weigh the best fixed place just outside the "
                                         "room instead of the garment's true path (which no radio gives)"})
