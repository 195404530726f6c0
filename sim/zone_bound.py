"""How well could *any* engine place a customer? (an oracle)

Per consenting visit it smooths every advertisement the nodes heard, and every one they missed,
forward and backward over a grid of places (the store's zones and the pavement, moves only where
people can pass), with the simulator's own radio model at the person's true transmit offset,
carry position, heading and advertising rate. Each scored slice's zone is the one with the largest
smoothed probability; room changes come from that sequence under the engine's own rule for
fitting rooms. Both are scored by `sim.score`. docs/scenarios.md, "How well could any engine place a customer?".
    python -m sim.zone_bound sim/scenarios/boutique.toml [--seeds 1-3] [--duration S] [--json]
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse
from scipy.spatial import cKDTree
from scipy.special import expit

from firmware_config.geometry import point_in_polygon, polygon_area, segments_cross
from firmware_config.store import StoreFile, ZoneKind
from gateway.engines.presence import PresenceParams
from sim.emitter import Emitter
from sim.entry_bound import PROBIT_SCALE, ROUNDING_VAR_DB2, Recording, bound_cli, record_radio
from sim.paths import find_gates
from sim.radio import body_loss, mean_rssi
from sim.run import MAX_TICK_S
from sim.scenario import Scenario
from sim.score import ZONE_SLICE_S, ReportedEvent, wrong_room_changes
from sim.truth import AgentTruth, Truth, build_truth
from sim.world import World, build_world

CELL_M = 0.5  # grid of places: finer than a fitting room, coarse enough for a 1-h run in minutes
STEP_S = 0.5  # smoothing step: a 2 Hz phone sends about one advert per step
REACH_M = 1.0  # farthest move in one step (2 m/s): above every walking speed the simulator draws
MOVE_SIGMA_M = 0.6  # spread of one step's move: a walker at 1.2 m/s covers 0.6 m
#: Chance of staying on the same place for a step: the simulator's people mostly stand (browsing,
#: queueing, trying on). Measured with EVIDENCE_SCALE's runs: 0.8 beats 0, 0.5 and 0.95 (docs/scenarios.md).
STAY_PROBABILITY = 0.8
GATE_SLACK_M = 0.4  # a move between zones must pass this close to an opening between them
VISIT_MARGIN_S = 60.0  # adverts this long before the entry and after the exit are weighed too
CHUNK_ADVERTS = 64  # adverts weighed at once (memory, not results)
#: Consecutive adverts share a link's slow shadowing, so they are not independent evidence; an advert
#: counts as EVIDENCE_SCALE x the independent samples an AR(1) sequence of a standing phone is worth
#: (`_Radio.weight`). Walking moves the levels faster than the shadowing decorrelates, so the
#: standing value is too cautious: measured on 20 min of boutique and mall_unit (seed 9, not a
#: library seed), 3 and 4 within 0.002 of each other, 2 lower by 0.007 to 0.017 (docs/scenarios.md).
EVIDENCE_SCALE = 3.0


@dataclass(frozen=True, slots=True)
class Places:
    """The grid: each place's position and zone index, the zones, and the sparse motion prior."""

    xy: np.ndarray  # (C, 2)
    zone: np.ndarray  # (C,) index into `zones`
    zones: list[str]
    inside: np.ndarray  # (Z,) bool: a zone of the store (not the pavement)
    room: np.ndarray  # (Z,) bool: a fitting room
    area: np.ndarray  # (Z,) m², from the store file: the engine's small-zone bar reads it
    move: sparse.csr_matrix  # (C, C) row-stochastic, one STEP_S
    member: np.ndarray  # (C, Z) one-hot: each place's zone


def _lattice(poly: list, step: float) -> np.ndarray:
    """Points of a global `step` lattice inside the polygon (a zone smaller than a cell: its vertices' mean)."""
    a = np.asarray(poly, float)
    lo, hi = np.floor(a.min(axis=0) / step) * step + step / 2, a.max(axis=0)
    gx, gy = np.meshgrid(np.arange(lo[0], hi[0], step), np.arange(lo[1], hi[1], step), indexing="ij")
    pts = np.stack([gx.reshape(-1), gy.reshape(-1)], axis=1)
    keep = [point_in_polygon((float(x), float(y)), poly) for x, y in pts]
    return pts[np.asarray(keep, bool)] if any(keep) else a.mean(axis=0, keepdims=True)


def _seg_point_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance from points p (n, 2) to the segment a-b."""
    ab = b - a
    den = float(ab @ ab)
    t = np.clip(((p - a) @ ab) / den, 0.0, 1.0) if den > 0 else np.zeros(len(p))
    return np.hypot(*(a + t[:, None] * ab - p).T)


def build_places(store: StoreFile) -> Places:
    """Places every CELL_M over every zone; a step may go REACH_M, through no wall within a zone
    and between zones only across one of their openings (`sim.paths.find_gates`, as people walk)."""
    zones = [z.id for z in store.zones]
    parts = [_lattice(list(z.polygon), CELL_M) for z in store.zones]
    xy = np.concatenate(parts)
    zone = np.repeat(np.arange(len(zones)), [len(p) for p in parts])
    i, j = (x.astype(np.int64) for x in cKDTree(xy).query_pairs(REACH_M, output_type="ndarray").T)
    walls = np.asarray([[*w.a, *w.b] for w in store.walls], float).reshape(-1, 4)
    same = zone[i] == zone[j]
    ok = np.zeros(len(i), bool)
    if len(walls):
        ok[same] = ~segments_cross(xy[i[same]], xy[j[same]], walls).any(axis=-1)
    else:
        ok[same] = True
    mid = (xy[i] + xy[j]) / 2
    index = {z: k for k, z in enumerate(zones)}
    for g in find_gates(store):
        pair = {index[g.a], index[g.b]}
        sel = ~same & np.isin(zone[i], list(pair)) & np.isin(zone[j], list(pair))
        near = _seg_point_distance(mid[sel], np.asarray(g.p1, float), np.asarray(g.p2, float)) <= GATE_SLACK_M
        ok[np.flatnonzero(sel)[near]] = True
    i, j = i[ok], j[ok]
    d = np.hypot(*(xy[i] - xy[j]).T)
    n = len(xy)
    w = np.exp(-0.5 * (d / MOVE_SIGMA_M) ** 2)
    m = sparse.coo_matrix((np.concatenate([w, w]), (np.concatenate([i, j]), np.concatenate([j, i]))), shape=(n, n))
    out = np.asarray(m.sum(axis=1)).reshape(-1)
    stay = np.where(out > 0, STAY_PROBABILITY, 1.0)  # a place nobody can leave in a step keeps its people
    m = sparse.diags((1 - stay) / np.where(out > 0, out, 1.0)) @ m.tocsr() + sparse.diags(stay)
    inside = np.asarray([z.kind != ZoneKind.OUTSIDE for z in store.zones])
    room = np.asarray([z.kind == ZoneKind.FITTING_ROOM for z in store.zones])
    area = np.asarray([polygon_area(list(z.polygon)) for z in store.zones])
    return Places(xy, zone, zones, inside, room, area, m.tocsr(), np.eye(len(zones))[zone])


class _Radio:
    """The emitter's radio model on the places: per advert, each place's log-likelihood of what
    every node heard (its RSSI) or missed, at the person's true offset, carry and heading."""

    def __init__(self, em: Emitter, places: Places):
        p = self.p = em.params
        self.em = em
        self.xy = xy = places.xy
        self.base = mean_rssi(xy, em.node_xy, np.zeros(len(xy)), em.walls, em.wall_db, p, em.node_offset)  # (C, N)
        # a heard advert's RSSI is its level plus shadowing, fading and rounding (the chance of
        # hearing it depends on that RSSI alone, not on the place); a miss is weighed with the
        # reception edge widened by the shadowing and fading it may have had (probit match)
        self.var = p.shadowing_sigma_db**2 + p.fading_sigma_db**2 + ROUNDING_VAR_DB2
        self.miss_sd = np.sqrt(p.loss_width_db**2 + PROBIT_SCALE * (p.shadowing_sigma_db**2 + p.fading_sigma_db**2))

    def weight(self, agent: int) -> float:
        """What one advert counts for: EVIDENCE_SCALE x (1 - r) / (1 + r), the independent samples
        one reading of an AR(1) sequence is worth, r the lag-one correlation of the agent's readings."""
        p = self.p
        if p.shadowing_tau_s <= 0:
            return 1.0
        r = np.exp(-self.em.interval[agent] / p.shadowing_tau_s) * p.shadowing_sigma_db**2 / self.var
        return float(min(1.0, EVIDENCE_SCALE * (1 - r) / (1 + r)))

    def level(self, agent: int, t: np.ndarray) -> np.ndarray:
        """(A, C, N): the mean RSSI at every place and node of the agent's adverts sent at `t`,
        as the emitter computes it (`sim.radio.body_loss` with the agent's true heading and carry)."""
        em, c, n = self.em, len(self.xy), len(self.em.node_xy)
        heading = np.repeat(em.headings(np.full(len(t), agent), t), c)
        body = body_loss(np.tile(self.xy, (len(t), 1)), heading, np.full(len(heading), em.carry[agent]), em.node_xy,
                         self.p.body_loss_db)
        return self.base[None] + em.tx_offset[agent] - body.reshape(len(t), c, n)

    def loglik(self, agent: int, t: np.ndarray, rssi: np.ndarray) -> np.ndarray:
        """(A, C): log-likelihood per advert sent at `t` (A,) of its readings `rssi` (A, N; nan: missed)."""
        p = self.p
        level = self.level(agent, t)
        heard = ~np.isnan(rssi)[:, None, :]
        hit = -0.5 * (np.nan_to_num(rssi)[:, None, :] - level) ** 2 / self.var
        miss = np.log1p(-(1 - p.packet_loss) * expit((level - p.sensitivity_dbm) / self.miss_sd))
        return self.weight(agent) * np.where(heard, hit, miss).sum(axis=2)


def _readings(rec: Recording, agent: int, lo: float, hi: float, n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Every advert the agent sent in [lo, hi) and what each node read of it (nan: missed)."""
    sent = rec.sent_t[(rec.sent_agent == agent) & (rec.sent_t >= lo) & (rec.sent_t < hi)]
    sent = np.unique(sent)
    rssi = np.full((len(sent), n_nodes), np.nan)
    sel = (rec.agent == agent) & (rec.t >= lo) & (rec.t < hi)
    rssi[np.searchsorted(sent, rec.t[sel]), rec.node[sel]] = rec.rssi[sel]
    return sent, rssi


def step_loglik(radio: _Radio, agent: int, sent: np.ndarray, rssi: np.ndarray, t0: float, steps: int) -> np.ndarray:
    """(steps, C): the summed log-likelihood of the adverts in each STEP_S from t0."""
    out = np.zeros((steps, len(radio.base)))
    k = np.minimum(((sent - t0) / STEP_S).astype(np.int64), steps - 1)
    for a in range(0, len(sent), CHUNK_ADVERTS):
        sl = slice(a, a + CHUNK_ADVERTS)
        np.add.at(out, k[sl], radio.loglik(agent, sent[sl], rssi[sl]))
    return out


def smooth(move: sparse.csr_matrix, ll: np.ndarray) -> np.ndarray:
    """(steps, C) posterior of the place at each step given every step's evidence (forward-backward),
    from a uniform start."""
    steps, n = ll.shape
    like = np.exp(ll - ll.max(axis=1, keepdims=True))
    alpha = np.empty_like(like)
    a = np.full(n, 1.0 / n)
    back = move.T.tocsr()
    for k in range(steps):
        a = (back @ a if k else a) * like[k]
        a /= a.sum()
        alpha[k] = a
    b = np.ones(n)
    for k in range(steps - 1, -1, -1):
        alpha[k] *= b
        alpha[k] /= alpha[k].sum()
        b = move @ (b * like[k])
        b /= b.sum()
    return alpha


def engine_rule_zones(zone_p: np.ndarray, room: np.ndarray, area: np.ndarray, params: PresenceParams) -> np.ndarray:
    """(steps,) zone indexes: the smoothed zone probabilities (steps, Z) read with the engine's rule
    for zone changes (`PresenceParams`): the new zone needs `switch_probability` (`small_zone_probability`
    into a zone at most `small_zone_share` of the current one's area), or into or out of a fitting
    room `room_switch_probability` held `room_hold_s`. Offline the hold looks ahead, so a move is
    dated from when its belief began, not `room_hold_s` later."""
    best, conf = np.argmax(zone_p, axis=1), zone_p.max(axis=1)
    hold = int(np.ceil(params.room_hold_s / STEP_S))
    out = np.empty(len(best), np.int64)
    cur = int(best[0])
    for k, b in enumerate(best.tolist()):
        if b != cur:
            roomy = bool(room[b] or room[cur])
            small = area[b] <= params.small_zone_share * area[cur]
            bar = params.small_zone_probability if small else params.switch_probability
            bar = params.room_switch_probability if roomy else bar
            ahead = slice(k, k + hold if roomy else k + 1)
            if bool(np.all(best[ahead] == b) and np.all(conf[ahead] >= bar)):
                cur = b
        out[k] = cur
    return out


def _path_events(customer: str, times: np.ndarray, zones: list[str | None]) -> list[ReportedEvent]:
    """The events an engine following this zone sequence would have sent (None: not in the store)."""
    out, last = [], None
    for t, z in zip(times.tolist(), zones, strict=True):
        if z == last:
            continue
        kind = "left" if z is None else "entered" if last is None else "zone_changed"
        out.append(ReportedEvent(kind, customer, t, t, z))
        last = z
    return out


@dataclass(slots=True)
class ZoneOracle:
    """Over the scored visits: slices, right guesses (per slice; and of the sequence under the engine's rule), the
    confusion (true zone, guess) -> slices, and the events those sequences would have sent."""

    slices: int = 0
    right: int = 0
    rule_right: int = 0
    confusion: Counter = field(default_factory=Counter)
    events: list[ReportedEvent] = field(default_factory=list)


def place_visit(places: Places, radio: _Radio, rec: Recording, agent: int, a: AgentTruth, end: float,
                out: ZoneOracle) -> None:
    """Smooth one visit and add its slices, guesses and path events to `out`."""
    assert a.entered_at is not None and a.customer_id is not None  # only scored visits come here
    t0 = np.floor(max(0.0, a.entered_at - VISIT_MARGIN_S) / STEP_S) * STEP_S
    t1 = end + VISIT_MARGIN_S
    steps = max(1, int(np.ceil((t1 - t0) / STEP_S)))
    sent, rssi = _readings(rec, agent, t0, t1, len(radio.em.nodes))
    ll = step_loglik(radio, agent, sent, rssi, t0, steps)
    zone_p = smooth(places.move, ll) @ places.member  # (steps, Z)
    names: list[str | None] = [z if places.inside[k] else None for k, z in enumerate(places.zones)]
    best = [names[z] for z in np.argmax(zone_p, axis=1).tolist()]
    ruled = [names[z] for z in engine_rule_zones(zone_p, places.room, places.area, PresenceParams()).tolist()]
    times = t0 + (np.arange(steps) + 0.5) * STEP_S
    out.events += _path_events(a.customer_id, times, ruled)
    for t in np.arange(a.entered_at + ZONE_SLICE_S / 2, end, ZONE_SLICE_S).tolist():
        k = min(steps - 1, int((t - t0) / STEP_S))
        guess, actual = best[k], a.zone_at(t)
        out.slices += 1
        out.right += guess == actual
        out.rule_right += ruled[k] == actual
        if guess != actual:
            out.confusion[(actual, guess)] += 1


def radio_tick(world: World) -> float:
    """The emitter step `sim.run.run_fast` takes by default (its draws, hence the receptions, depend on it)."""
    sc, store = world.scenario, world.store
    wins = [n.ble.window_s for n in store.nodes if n.ble is not None] + (
        [sc.rfid.window_s] if sc.rfid.enabled and world.items else [])
    return min(wins + [MAX_TICK_S])


def zone_oracle(world: World, truth: Truth, em: Emitter, rec: Recording,
                progress: Callable[[int, int], None] | None = None) -> ZoneOracle:
    """The oracle over every visit `sim.score.score_zones` scores; `progress(done, total)` after each."""
    places = build_places(world.store)
    radio = _Radio(em, places)
    out = ZoneOracle()
    index = {ag.id: i for i, ag in enumerate(world.agents)}
    visits = [a for a in truth.agents if a.consent and a.customer_id and a.entered_at is not None]
    for done, a in enumerate(visits, 1):
        assert a.entered_at is not None  # as selected
        end = a.left_at if a.left_at is not None else truth.duration_s
        if end > a.entered_at + ZONE_SLICE_S / 2:
            place_visit(places, radio, rec, index[a.id], a, end, out)
        if progress is not None:
            progress(done, len(visits))
    return out


@contextmanager
def _progress_bar(label: str) -> Iterator[Callable[[int, int], None]]:
    """Visits smoothed so far, on stderr (gone when done)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=Console(file=sys.stderr), transient=True) as prog:
        task = prog.add_task(label, total=None)
        yield lambda done, total: prog.update(task, completed=done, total=total)


def zone_bound(sc: Scenario, store: StoreFile, progress: bool | None = None) -> dict:
    """The oracle's figures for one scenario (its seed) as a JSON-ready dict; `progress`: a bar on
    stderr (default: when stderr is a terminal)."""
    world = build_world(sc, store)
    truth = build_truth(world)
    em, rec = record_radio(world, sc.scenario.seed, radio_tick(world))
    with _progress_bar(f"{sc.scenario.name} seed {sc.scenario.seed}: visits") if (
            sys.stderr.isatty() if progress is None else progress) else nullcontext() as bar:
        orc = zone_oracle(world, truth, em, rec, bar)
    wrong, visits = wrong_room_changes(truth, orc.events)
    return {
        "scenario": sc.scenario.name, "seed": sc.scenario.seed, "duration_s": sc.scenario.duration_s,
        "visits": visits, "zone.slices": orc.slices,
        "zone.accuracy": orc.right / orc.slices if orc.slices else None,
        "zone.rule_accuracy": orc.rule_right / orc.slices if orc.slices else None,
        "zone.wrong_room_changes": wrong,
        "zone.wrong_room_changes_per_100_visits": 100.0 * wrong / visits if visits else None,
        "confusion": [{"zone": z, "oracle": g, "slices": n} for (z, g), n in orc.confusion.most_common(8)],
    }


def _text(out: dict) -> str:
    """One seed's figures for a reader."""
    def fig(v: float | None, digits: int) -> str:
        return "-" if v is None else f"{v:.{digits}f}"

    mixed = ", ".join(f"{c['zone']}->{c['oracle'] or 'away'} {c['slices']}" for c in out["confusion"][:4])
    return (f"{out['scenario']} seed {out['seed']}: {out['visits']} visits, zone accuracy "
            f"{fig(out['zone.accuracy'], 3)} (engine's rule {fig(out['zone.rule_accuracy'], 3)}), wrong room "
            f"changes per 100 visits {fig(out['zone.wrong_room_changes_per_100_visits'], 1)}; "
            f"mixed up (slices): {mixed or 'nothing'}")


if __name__ == "__main__":
    bound_cli(__doc__, zone_bound, text=_text)
