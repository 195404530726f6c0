"""The presence engine: where each tracked customer is, as a filter over the store's floor plan.

A hidden Markov model per identity, vectorised over all identities with numpy/scipy:

- the hidden state is a *cell* of a grid laid over the store's zones (plus `away`, out of
  radio range). People walk from a cell to its neighbours; between zones only where the
  zone graph connects them and only where they can pass: anywhere along an open boundary
  (the entrance strip and the sales floor), at a declared street door (`[[doors]]`), else at
  the portal (a fitting room's curtain). So nobody gets from the pavement to the floor except
  through the door, and nobody jumps from the entrance into fitting room 7;
- on the pavement a cell is also "walking one way" or "walking the other": passers-by walk
  past at about 1.2 m/s and rarely stop, so a phone that stays put, or whose readings do not
  fade the way a walker's would, is soon told apart from the people going by. One who turns
  in at the door is "walking in": on into the store at walking speed, straight away from the
  door across the strip and the floor until they stop to browse, never straight back out, so
  a customer heading for the back of the shop, whose readings at the door fade just like a
  walker's, is not taken for a passer-by who stepped out again;
- the emission model predicts, for every cell, the RSSI each node should see (log-distance
  path loss from the layout, the node's calibrated reference power, wall attenuation, the
  wearer's body on average) and how likely the node is to hear the phone at all, so *not*
  being heard is evidence too, if weak: adverts are lost to interference, and a window's
  packets share their link's shadowing (docs/presence.md);
- a link's slow shadowing (body, pocket) lasts seconds, so consecutive windows are not
  independent evidence. Phones not yet inside whose belief is undecided (at the door) have
  the links heard in both of the last two windows judged as *changes* along each possible
  move (`predict_pairs`): the shadowing carried over cancels, a customer's walk in counts in
  full, and a passer-by's one link reading strong for five seconds counts once, not five
  times. Everyone else's windows count half each;
- every step folds in all node windows received since the last step, for all identities
  at once: a few matrix products, not a loop per device per node.

Room-presence trackers pick the nearest scanner with smoothing and a timeout; they flap
between neighbouring rooms and take long to notice an exit. Here a change of zone must be
both possible on the floor plan and supported by the evidence of every node.

Pure: windows and their timestamps in, events out; no clock, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy import sparse
from scipy.special import ndtr as _ndtr

from firmware_config.geometry import (
    crossings,
    door_opening,
    passage_points,
    point_in_polygon,
    polygon_area,
    polygon_centroid,
    segment_distance,
    segments_cross,
    shared_boundary,
)
from firmware_config.store import StoreFile, ZoneKind
from gateway.engines.door_fusion import DoorFusion, Share, door_states, explained_away, made_crossing, rows_of
from gateway.engines.presence_kernels import level_products, predict_blocks, scale_and_sum_zones, weigh_and_sum

AWAY = "away"
NEGLIGIBLE = 1e-6  # belief below this in a state: moves out of it are not worth weighing
WALK_LANE_SIGMA_M = 0.5  # walkers keep to their lane on the pavement
WALK_IN = 2  # the mode of a "walking in" copy of a cell near a street door
WALK_IN_KINDS = (ZoneKind.ENTRANCE, ZoneKind.FLOOR, ZoneKind.TILL)  # where customers walk on from the door
EXP_BLOCK_COLUMNS = 64  # places per block of `exp_like`: the block's transposition stays in the CPU cache
LEVEL_LOG_TERMS = 8  # a row's readings multiplied before one log: factors below ~100, products fit float32
# "the readings fell" (`_fallen`): the strongest links' mean over the last RECENT steps against that of the
# steps 8 to 14 ago (a walk of 10 to 17 m, twice the slow shadowing's 4 s and more before the recent steps)
LEVEL_RECENT_STEPS, LEVEL_EARLIER_STEPS = 3, (8, 15)
LEVEL_TOP_LINKS = 3  # the level of a step: its strongest links' mean (the weak ones come and go)


@dataclass(frozen=True, slots=True)
class PresenceParams:
    path_loss_exponent: float = 2.2  # retail floor; installers may calibrate it per store
    sigma_db: float = 7.0  # a window's error on one link: shadowing (~6 dB) and fading
    body_loss_db: float = 12.0  # the wearer's torso between phone and node: 5-15 dB measured, by which way they face
    carry_loss_db: float = 2.0  # pocket or bag fabric: 0-4 dB, about 2 on average
    # transmit power, inferred with the place: 5 dB steps err by 1.4 dB SD, little against the ~8 dB of a link
    device_offsets_db: tuple[float, ...] = (-15.0, -10.0, -5.0, 0.0, 5.0, 10.0, 15.0)
    device_offset_sigma_db: float = 7.0  # Android models' spread (SD of 551 models; 5-95 % range 28 dB)
    # the wearer turns: the torso then shades every link at once (up to 12 dB), which looks like a
    # change of transmit power, not a move; per second, the chance the effective offset steps up or down
    offset_step_per_s: float = 0.02
    evidence_weight: float = 0.5  # shadowing lasts seconds: consecutive windows count as half each
    shadow_tau_s: float = 4.0  # how long a link's slow shadowing lasts (body, pocket, orientation)
    change_sigma_db: float = 4.5  # a link's reading from one window to the next, beyond what the move explains
    pair_from_probability: float = 0.01  # undecided: P(in) this far from 0 and 1; its readings judged as changes
    pair_max: int = 128  # undecided phones judged so per step, likeliest inside first (a restart hears 3,000 at once)
    floor_mass: float = 1e-3  # never be certain: a sliver of belief inside the doors lets the filter recover
    rssi_nodes: int = 6  # per identity and step, the strongest readings whose RSSI value is used
    tail_dof: float = 4.0  # Student t readings: one link 20 dB off for seconds (a reflection) moves little
    sensitivity_dbm: float = -95.0  # scanners hear nothing below this
    detect_width_db: float = 2.0  # softness of one packet's hear/not-hear edge: fast fading (the slow part is a link's)
    detect_quadrature: int = 41  # points of the average over a link's slow spread (+/-5 SD): log P right to 1e-4
    adverts_per_s: float = 2.0  # for identities whose record gives no rate (each carrier's own rate otherwise)
    window_s: float = 1.0  # node window length (packets a node can hear = rate x window)
    p_detect_max: float = 0.97  # even next to a node a phone in a pocket is sometimes missed
    packet_loss: float = 0.35  # adverts lost to interference at any RSSI: 15-40 % measured; high: misses weigh little
    p_detect_min: float = 0.01  # reflections: a far node occasionally hears a phone
    cell_m: float = 1.5  # grid spacing: about one walking step per second
    entrance_cell_m: float = 1.0  # finer just inside the door, where "in or still outside?" is decided
    portal_reach_m: float = 1.6  # cells this close to a portal connect across it
    step_s: float = 1.0  # one filter step per this much time (all windows received meanwhile)
    move_per_s: float = 0.35  # chance a person moves to a neighbouring cell within a second
    stay_kinds: tuple[tuple[str, float], ...] = (  # slower movement where people browse or try on
        ("fitting_room", 0.05),
        ("till", 0.2),
        ("floor", 0.3),
        ("entrance", 0.6),
        ("outside", 0.7),
    )
    away_rate_per_s: float = 0.05  # pavement edge cells <-> out of range
    walk_speed_mps: float = 1.2  # people on the pavement walk past at about this speed
    walk_step_sigma_m: float = 0.6  # spread of one step (speeds differ, 0.9-1.6 m/s)
    walk_stop_per_s: float = 0.02  # a walker stops (window shopping)
    walk_start_per_s: float = 0.1  # someone standing on the pavement walks on
    turn_in_per_s: float = 0.15  # a walker at the door turns in
    walk_in_stop_per_s: float = 0.1  # someone walking in stops to browse (or at a wall): about 10 s, 12 m, in
    walk_in_reach_m: float = 12.0  # walking in is modelled this far from a street door
    prior_in_store: float = 1e-3  # a phone first heard inside (switched on, gateway restarted)
    enter_probability: float = 0.9  # P(in store) to report an entry: only a door lets belief in, so it says "crossed"
    exit_probability: float = 0.15  # P(in store) below which the customer has left
    # ... and, while still heard, once its strongest readings fell this much, or it stayed below that long
    left_fall_db: float = 5.0  # (docs/presence.md "Walking to the glass")
    left_heard_hold_s: float = 10.0
    switch_probability: float = 0.5  # zone posterior needed to report a zone change (into a small zone: below)
    room_switch_probability: float = 0.95  # into/out of a fitting room: a wrong room is worse than a late one
    room_hold_s: float = 8.0  # ... and held this long: a passing belief in the next room is no move (docs/presence.md)
    room_leave_probability: float = 0.05  # out of a room once its own posterior stays below this ...
    room_leave_hold_s: float = 3.0  # ... this long: a belief falling from 0.95 that low is no passing dip
    # into a small zone that is no room: the till or the strip beside the floor, whose belief flickers over
    # the plain bar while the customer browses next to it (docs/presence.md "Holding the floor")
    small_zone_probability: float = 0.75
    small_zone_share: float = 0.5  # "small": at most this share of the reported zone's area (two floors of a size: not)
    forget_after_s: float = 120.0  # stop tracking an identity not heard for this long
    learned_offset_min_sd_db: float = 3.0  # a learned phone's prior is never narrower: pocket or hand, 5 dB grid
    restore_doubt: float = 0.05  # belief a customer restored after a restart left while the gateway was down
    # door sensors (gateway/engines/door_fusion.py, docs/door.md): a crossing weighs on the phones that fit it
    door_detect_probability: float = 0.95  # a counter counts one person (published counter figures)
    door_match_s: float = 1.5  # a move through the door matches a crossing within one step and the report delay
    door_prior_rate_per_h: float = 60.0  # crossings per door and way before any is seen (a quiet shop)
    door_rate_tau_s: float = 3600.0  # the learned crossing rate follows the day's footfall over about an hour
    door_max_age_s: float = 10.0  # older crossings are a replayed backlog: no news about anyone now
    door_near_m: float = 3.0  # "at the door" for a crossing: BLE places a phone to within a few metres
    door_out_below: float = 0.5  # an outward crossing weighs only on phones inside that BLE already doubts
    door_max_ratio: float = 30.0  # one crossing never counts for more, however quiet the door
    door_confirm_probability: float = 0.95  # P(made the crossing | readings since) to announce a phone it moved in
    # below this the crossing was someone else's: BLE decides alone (and a crossing giving less is not weighed)
    door_release_below: float = 0.01
    door_watch_s: float = 75.0  # a counter silent this long may be off (as /fleet judges it): its silence says nothing
    door_offered_s: float = 60.0  # a phone a crossing weighed on this recently may have made it: its entry is as before
    # a fitting room's RFID (gateway/engines/fitting_rooms.py): garments on its screen weigh on who is in it
    room_rfid_max_age_s: float = 5.0  # readers report every second: a room's state older than this says nothing
    room_fill_s: float = 30.0  # a garment shown this recently came in with someone: shown 2-6 s after they step
    # in, and Bluetooth puts them in the room within this (the 8-s hold included); older ones were there before


@dataclass(frozen=True, slots=True)
class LearnedPhone:
    """A registered identity's transmit offset learned over its visits (docs/presence.md)."""

    offset_db: float  # mean of the visits' posteriors
    var_db2: float  # variance of their equal mixture: each visit's own doubt plus how visits differ
    visits: int

    def after(self, mean_db: float, var_db2: float) -> LearnedPhone:
        """Fold in one more visit's posterior mean and variance (exact moments of the mixture)."""
        n = self.visits + 1
        mean = self.offset_db + (mean_db - self.offset_db) / n
        second = self.var_db2 + self.offset_db**2
        second += (var_db2 + mean_db**2 - second) / n
        return LearnedPhone(mean, max(0.0, second - mean**2), n)


@dataclass(frozen=True, slots=True)
class PresenceEvent:
    kind: str  # "entered" | "zone_changed" | "left"
    identity: str
    t: float  # end of the window whose evidence triggered the event
    zone: str
    previous: str
    confidence: float
    dwell_s: float | None = None  # `left`: the visit's length; `zone_changed`: time in the previous zone


class PresenceModel:
    door_cells: np.ndarray  # states inside a street door (set with the transition model)
    """Everything precomputed from the store layout: cells, expected RSSI, transitions."""

    def __init__(self, store: StoreFile, params: PresenceParams = PresenceParams()):
        self.params = p = params
        zones = list(store.zones)
        node_xy, ref = self._zones_and_nodes(store)
        owner = self._cells(store, zones)
        walls = np.asarray([[*w.a, *w.b] for w in store.walls], dtype=float).reshape(-1, 4)
        wall_db = np.asarray([w.attenuation_db for w in store.walls], dtype=float)
        mu, spread = _cell_rssi(self.cell_xy, self.cell_size, owner, zones, node_xy, ref, walls, wall_db, p)
        # the wearer's body: which way they face is unknown, so each link loses its average over
        # headings and varies by its spread (the slow shadowing comes on top)
        body_db, body_sd = _body_loss(p.body_loss_db)
        mu -= body_db + p.carry_loss_db
        # `away`: one virtual cell, out of range (heard by a node only through a rare reflection)
        base_mu = np.vstack([mu, np.full((1, len(node_xy)), p.sensitivity_dbm - 3.0)])  # (cells + away, N)
        base_spread = np.vstack([np.sqrt(spread**2 + body_sd**2), np.zeros((1, len(node_xy)))])
        base_owner = np.append(owner, len(zones))
        n_base = len(base_owner)
        self.n_cells = n_base  # states are (phone offset, cell): index = offset_index * n_cells + cell
        self.away_cell = n_base - 1
        base_in = self.zone_in_store[base_owner]
        base_transition = self._transition(store, base_owner)  # sets self.door_cells (base)
        self.door_states = door_states(
            store, self.cell_xy, base_in[:-1], self.mode[:-1], WALK_IN, len(p.device_offsets_db), p.door_near_m,
            p.portal_reach_m,
        )
        self._offset_states(base_mu, base_spread, base_owner, base_in, base_transition)
        self._place_tables()
        self._pair_tables(base_transition)

    def _zones_and_nodes(self, store: StoreFile) -> tuple[np.ndarray, np.ndarray]:
        """The zones' and BLE nodes' indexes; returns the nodes' positions (N, 2) and 1 m power (N,)."""
        zones = list(store.zones)
        self.zone_ids = [z.id for z in zones] + [AWAY]
        self.kinds = [str(z.kind) for z in zones] + [AWAY]
        self.z_index = {z: i for i, z in enumerate(self.zone_ids)}
        self.zone_in_store = np.asarray([k not in (ZoneKind.OUTSIDE, AWAY) for k in self.kinds])
        self.zone_is_room = np.asarray([k == ZoneKind.FITTING_ROOM for k in self.kinds])
        self.zone_area = np.asarray([polygon_area(list(z.polygon)) for z in zones] + [0.0])  # `away`: none
        self.room_garment_share = store.store.room_garment_share  # visits whose room shows garments
        nodes = [n for n in store.nodes if n.ble is not None]
        self.node_ids = [n.id for n in nodes]
        self.n_index = {n: i for i, n in enumerate(self.node_ids)}
        node_xy = np.asarray([n.position for n in nodes], dtype=float).reshape(-1, 2)
        ref = np.asarray([n.ble.ref_rssi_1m for n in nodes if n.ble is not None], dtype=np.float64)
        return node_xy, ref

    def _cells(self, store: StoreFile, zones: list) -> np.ndarray:
        """The cells of every zone, with their moving copies; sets the cells' mode, standing twin,
        size and position, and returns each cell's zone index."""
        p = self.params
        cells, owner = [], []
        for zi, z in enumerate(zones):
            zc = _grid(list(z.polygon), self.spacing(str(z.kind)))
            cells += zc
            owner += [zi] * len(zc)
        # people on the pavement walk past: each pavement cell also exists as "walking one way"
        # and "walking the other way" (mode +1/-1); mode 0 is standing or wandering. Someone who
        # has just come in walks on in: each cell near a street door where customers walk (the
        # strip, the floor, the till) also exists as "walking in" (WALK_IN)
        street = [i for i, o in enumerate(owner) if self.kinds[o] == ZoneKind.OUTSIDE]
        self._doors = _street_doors(store)
        at = np.asarray([d[0] for d in self._doors]).reshape(-1, 2)
        pts = np.asarray(cells)
        near_door = np.hypot(pts[:, None, 0] - at[None, :, 0], pts[:, None, 1] - at[None, :, 1]).min(
            axis=1, initial=np.inf
        ) <= p.walk_in_reach_m
        walkable = [i for i, o in enumerate(owner) if self.kinds[o] in WALK_IN_KINDS and near_door[i]]
        mode = [0] * len(cells)
        twin = list(range(len(cells)))  # a moving cell's standing twin: the same place, the same radio
        for kind, copies in ((1, street), (-1, street), (WALK_IN, walkable)):
            cells += [cells[i] for i in copies]
            owner += [owner[i] for i in copies]
            mode += [kind] * len(copies)
            twin += copies
        self.mode = np.asarray(mode + [0])
        self._twin = np.asarray(twin + [len(twin)])
        self.cell_size = np.asarray([self.spacing(self.kinds[o]) for o in owner])
        self.cell_xy = np.asarray(cells, dtype=float)
        return np.asarray(owner)

    def _offset_states(
        self, base_mu: np.ndarray, base_spread: np.ndarray, base_owner: np.ndarray, base_in: np.ndarray,
        base_transition: sparse.csr_matrix,
    ) -> None:
        """The states (phone offset, cell): their predicted readings, zones and transition."""
        p, n_base = self.params, self.n_cells
        offsets = np.asarray(p.device_offsets_db, dtype=float)
        reps = len(offsets)
        self.offset_prior = np.exp(-0.5 * (offsets / p.device_offset_sigma_db) ** 2)
        self.offset_prior /= self.offset_prior.sum()
        self._population_w = self.offset_prior.astype(np.float32)
        # `drift` with the population's prior as a matrix: each offset block mixed with its neighbours
        up, down = (x[0] for x in self._offset_steps(self._population_w[None, :]))
        mix = np.diag(up, 1) + np.diag(down, -1)
        mix += np.diag(1 - mix.sum(axis=1))
        self._population_drift = sparse.kron(mix, sparse.identity(n_base), format="csr").astype(np.float32)
        self._population_mix = mix.astype(np.float32)  # the same, for `predict_blocks`
        self.mu = (offsets[:, None, None] + base_mu[None]).reshape(reps * n_base, -1)  # (K states, N nodes)
        # a cell is an area, not a point: next to a node the RSSI varies by many dB within it
        self.sigma = np.tile(np.sqrt(p.sigma_db**2 + base_spread**2), (reps, 1))  # (K, N)
        self.owner = np.tile(base_owner, reps)
        self.cell_in_store = np.tile(base_in, reps)
        away = base_owner == len(self.zone_ids) - 1
        self.standing_outside = np.tile(~base_in & ~away & (self.mode == 0), reps)  # `_not_out_yet`
        self.door_cells = np.tile(self.door_cells, reps)
        # a phone keeps its power: one block per offset; float32 halves the memory traffic of every step
        self.transition = sparse.block_diag([base_transition] * reps, format="csr", dtype=np.float32)
        self._cell_transition = base_transition.astype(np.float32).tocsc()  # one block, by destination
        self._cell_transition.sort_indices()  # sources ascending: summed as the sparse product sums them
        n_k = len(self.owner)
        # sparse: the beliefs come out of the transition's product identity-minor (Fortran order), and
        # summed state by state a sparse product is several times faster than BLAS on them (Cost)
        self.membership = sparse.csr_matrix(  # each state's zone (+ away)
            (np.ones(n_k, dtype=np.float32), (np.arange(n_k), self.owner)), shape=(n_k, len(self.zone_ids))
        )
        # what a node reports is the mean of the packets it *heard*: near the sensitivity only the
        # lucky (strong) packets get through, so expect the truncated mean, not the path-loss mean
        alpha = (p.sensitivity_dbm - self.mu) / self.sigma
        self.mu_heard = self.mu + self.sigma * _mills(alpha)

    def _place_tables(self) -> None:
        """Per place (a cell's standing copy, per offset): what the likelihood needs, node-major."""
        p, n_base, reps = self.params, self.n_cells, len(self.params.device_offsets_db)
        # the likelihood is computed once per place (walking and standing there look alike to the
        # radio) and spread to the states by `emit`: (K,) -> column of the (I, U) likelihood
        places = np.flatnonzero(self.mode == 0)
        column = np.full(n_base, -1)
        column[places] = np.arange(len(places))
        self.emit = (np.arange(reps)[:, None] * len(places) + column[self._twin][None, :]).reshape(-1)
        self._emit_runs = _runs(self.emit)
        u = (np.arange(reps)[:, None] * n_base + places[None, :]).reshape(-1)
        self._mu_u, self._sigma_u = self.mu[u], self.sigma[u]  # (U, N): what a window's packets share
        self._away_u = self.owner[u] == len(self.zone_ids) - 1
        self._detection: dict[float, tuple[np.ndarray, np.ndarray]] = {}  # per advertising rate
        self._miss, self._hit_t = self.detection_tables(p.adverts_per_s)
        self._mu_heard_t = np.ascontiguousarray(self.mu_heard[u].T, dtype=np.float32)  # (N, U)
        # a reading's Student t log-density, -(dof + 1) / 2 x log(1 + d^2 / (dof sigma^2)) - log(sigma / sigma_db)
        # with d = reading - mu_heard, is -(dof + 1) / 2 x log(s + c d^2): `level_ll` multiplies a row's
        # factors s + c d^2 and takes one log for them all (the log is the costly part)
        sigma_t = self.sigma[u].T
        s = (sigma_t / p.sigma_db) ** (2 / (p.tail_dof + 1))
        self._level_s_t = np.ascontiguousarray(s, dtype=np.float32)  # (N, U)
        self._level_c_t = np.ascontiguousarray(s / (p.tail_dof * sigma_t**2), dtype=np.float32)  # (N, U)

    def _pair_tables(self, base_transition: sparse.csr_matrix) -> None:
        """Consecutive windows of one link, for phones at the door (see `predict_pairs`): the
        edges of one offset block's transition and, per node and offset, what each edge
        predicts the change of the reading to be."""
        p, n_base, reps = self.params, self.n_cells, len(self.params.device_offsets_db)
        self.shadow_rho = rho = float(np.exp(-p.step_s / p.shadow_tau_s))
        # what is news in a repeated window's level when shadowing is AR(1): (1 - rho) / (1 + rho).
        # Without it a phone whose links hold steady (one facing away all along) is judged on its
        # changes alone, and a customer standing just inside could stay "undecided" for a minute
        self.paired_level_weight = (1 - rho) / (1 + rho)
        edges = base_transition.tocoo()
        self._pair_src, self._pair_dst = edges.row.astype(np.int64), edges.col.astype(np.int64)
        self._pair_w = edges.data.astype(np.float32)
        mu_b = self.mu_heard.reshape(reps, n_base, -1).transpose(2, 0, 1)  # (N, offsets, base cells)
        self._pair_change = np.ascontiguousarray(
            mu_b[:, :, self._pair_dst] - rho * mu_b[:, :, self._pair_src], dtype=np.float32
        )  # (N, offsets, edges)

    def exp_like(self, ll: np.ndarray, post: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """exp(ll), laid out in memory as `post`, the beliefs it weighs: out of the transition's product
        they are identity-minor (Fortran order), and `weigh` across orders is several times slower.
        Written into `out` when given (of `ll`'s shape, Fortran order)."""
        if post.flags.c_contiguous:
            return np.exp(ll, out=ll)
        if out is None:
            out = np.empty(ll.shape, dtype=ll.dtype, order="F")
        for a in range(0, ll.shape[1], EXP_BLOCK_COLUMNS):
            np.exp(ll[:, a : a + EXP_BLOCK_COLUMNS], out=out[:, a : a + EXP_BLOCK_COLUMNS])
        return out

    def weigh(self, lik: np.ndarray, post: np.ndarray) -> None:
        """post *= lik[:, emit], in place, by contiguous runs (a column gather is slow)."""
        for s0, s1, u0 in self._emit_runs:
            post[:, s0:s1] *= lik[:, u0 : u0 + s1 - s0]

    def drift(self, post: np.ndarray, weights: np.ndarray) -> None:
        """In place: each phone's effective offset (power plus the wearer's body) steps to a
        neighbouring offset, at most `offset_step_per_s` per step, as a Metropolis walk whose
        stationary distribution is the row's offset prior `weights` (n, offsets): the drift
        lets a turn shade every link, and never by itself pulls a phone away from its prior
        (the population's, or its own learned one)."""
        if self.params.offset_step_per_s <= 0 or len(post) == 0:
            return
        up, down = (x[:, :, None] for x in self._offset_steps(weights))
        b = post.reshape(len(post), -1, self.n_cells)
        rise, fall = up * b[:, :-1], down * b[:, 1:]
        b[:, :-1] += fall - rise
        b[:, 1:] += rise - fall

    def _offset_steps(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`drift`'s chances (n, offsets - 1) of stepping o -> o+1 and o+1 -> o, for offset priors `weights`."""
        q = np.float32(self.params.offset_step_per_s * self.params.step_s)
        w = np.maximum(weights, np.float32(1e-30))
        ratio = w[:, 1:] / w[:, :-1]
        return q * np.minimum(1, ratio), q * np.minimum(1, 1 / ratio)

    def predict(self, belief: np.ndarray, weights: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """One step's prediction: `belief @ transition`, then the offset `drift`. The rows with the
        population's offset prior (all but learned phones) drift by the population's matrix, in the
        same pass as the transition for a Fortran-order belief (`predict_blocks`, into `out` when given,
        of its shape and order), else as a second sparse product; several times cheaper than `drift`'s
        strided updates (docs/presence.md, Cost)."""
        drifts = self.params.offset_step_per_s > 0 and len(belief) > 0
        population = (weights == self._population_w).all(axis=1) if drifts else np.zeros(len(belief), dtype=bool)
        if belief.flags.f_contiguous and belief.dtype == np.float32 and len(belief):
            post = np.empty(belief.shape[::-1], dtype=np.float32).T if out is None else out  # identity-minor
            t = self._cell_transition
            unmixed = np.flatnonzero(~population)
            predict_blocks(belief.T, t.indptr, t.indices, t.data, self._population_mix, unmixed, post.T)
        else:
            post = belief @ self.transition
            if population.all():
                return post @ self._population_drift
            if population.any():
                post[population] = post[population] @ self._population_drift
        if drifts and not population.all():
            own = post[~population]
            self.drift(own, weights[~population])
            post[~population] = own
        return post

    def predict_pairs(self, belief: np.ndarray, change: np.ndarray, both: np.ndarray) -> np.ndarray:
        """The prediction `belief @ transition` (J, K), each move weighted by how well it explains
        the change of every link heard in both of the last two windows.

        A link's slow shadowing (6 dB, lasting seconds) is shared by consecutive windows, so
        judged one window at a time a passer-by's link that reads 10 dB strong for five seconds
        counts five times, and a customer walking in, whose readings change as the path-loss
        model says, is believed no sooner than one standing still. Judged in pairs, what counts
        is r_t - rho r_(t-1) around mu(to) - rho mu(from): the part of the shadowing carried
        over from the last window cancels. change: (J, N), r_t - rho r_(t-1); both: (J, N) mask.
        """
        p, n_base = self.params, self.n_cells
        k_states = belief.shape[1]
        out = np.empty_like(belief)
        inv = np.float32(-0.5 / p.change_sigma_db**2)
        change = change.astype(np.float32)
        for a in range(0, len(belief), 16):  # (16 x edges) blocks stay small
            rows = slice(a, min(a + 16, len(belief)))
            c, b, prior = change[rows], both[rows], belief[rows]
            # only moves out of states the phones may be in: a belief is a few hundred states wide
            live = (prior > NEGLIGIBLE).any(axis=0).reshape(-1, n_base)[:, self._pair_src].reshape(-1)
            edge = np.flatnonzero(live)  # (offset, edge) pairs, flattened
            block, e = np.divmod(edge, len(self._pair_w))
            src = block * n_base + self._pair_src[e]
            dst = block * n_base + self._pair_dst[e]
            ll = np.zeros((len(c), len(edge)), dtype=np.float32)
            for n in np.flatnonzero(b.any(axis=0)):
                k = np.flatnonzero(b[:, n])
                z = c[k, n][:, None] - self._pair_change[n].reshape(-1)[edge][None, :]
                ll[k] += z * z
            ll *= inv
            ll -= ll.max(axis=1, keepdims=True)
            np.exp(ll, out=ll)
            ll *= self._pair_w[e]
            ll *= prior[:, src]
            for j in range(len(c)):
                out[a + j] = np.bincount(dst, weights=ll[j], minlength=k_states)
        return out

    def spacing(self, kind: str) -> float:
        return self.params.entrance_cell_m if kind == ZoneKind.ENTRANCE else self.params.cell_m

    def state_at(self, x: float, y: float, offset_db: float = 0.0) -> int:
        """The state of a phone with this transmit offset in the cell nearest (x, y)."""
        cell = int(np.argmin(np.hypot(self.cell_xy[:, 0] - x, self.cell_xy[:, 1] - y)))
        return int(np.argmin(np.abs(np.asarray(self.params.device_offsets_db) - offset_db))) * self.n_cells + cell

    def base_prior(self, offset_weights: np.ndarray | None = None) -> np.ndarray:
        """Where a newly heard phone is: out of range or on the street, rarely already inside;
        its transmit offset from `offset_weights` (default: the population's prior)."""
        n = self.n_cells
        base_in = self.cell_in_store[:n]
        outside = ~base_in
        outside[self.away_cell] = False
        prior = np.zeros(n)
        prior[self.away_cell] = 0.5
        prior[outside] = (0.5 - self.params.prior_in_store) / max(1, outside.sum())
        prior[base_in] = self.params.prior_in_store / max(1, base_in.sum())
        prior /= prior.sum()
        weights = self.offset_prior if offset_weights is None else offset_weights
        return (weights[:, None] * prior[None, :]).reshape(-1).astype(np.float32)

    def offset_weights(self, phone: LearnedPhone) -> np.ndarray:
        """A prior over the offset grid centred on a learned phone, instead of the population's."""
        offsets = np.asarray(self.params.device_offsets_db)
        sd = max(float(np.sqrt(phone.var_db2)), self.params.learned_offset_min_sd_db)
        w = np.exp(-0.5 * ((offsets - phone.offset_db) / sd) ** 2)
        return w / w.sum()

    def offset_posterior(self, belief: np.ndarray) -> tuple[float, float]:
        """Mean and variance (dB) of the transmit offset under one identity's belief (K,)."""
        offsets = np.asarray(self.params.device_offsets_db)
        w = belief.reshape(len(offsets), self.n_cells).sum(axis=1, dtype=float)
        w /= w.sum()
        mean = float(w @ offsets)
        return mean, float(w @ (offsets - mean) ** 2)

    def zone_belief(self, zone: str, offset_weights: np.ndarray | None = None) -> np.ndarray | None:
        """A belief spread evenly over where one stands in `zone` (None if the store has no such zone)."""
        z = self.z_index.get(zone)
        if z is None or not self.zone_in_store[z]:
            return None
        place = ((self.owner[: self.n_cells] == z) & (self.mode == 0)).astype(float)
        weights = self.offset_prior if offset_weights is None else offset_weights
        return (weights[:, None] * (place / place.sum())[None, :]).reshape(-1).astype(np.float32)

    def _transition(self, store: StoreFile, base_owner: np.ndarray) -> sparse.csr_matrix:
        """One step of `step_s` between the cells (+ away) of one phone."""
        p = self.params
        xy, owner, mode = self.cell_xy, base_owner[:-1], self.mode[:-1]
        n = len(owner)
        outside = np.asarray([self.kinds[o] == ZoneKind.OUTSIDE for o in owner])
        adj, door, turn, leave = self._adjacency(store, owner)
        # a leaver steps out and stands, or walks off one way or the other: a third each
        weight = adj.astype(float)
        weight[np.ix_(~outside, outside)] /= 3.0
        weight[leave] = 1.0 / 3.0
        move = dict(p.stay_kinds)
        rate = np.asarray([move.get(self.kinds[o], p.move_per_s) for o in owner]) * p.step_s
        deg = weight.sum(axis=1)
        t = np.zeros((n + 1, n + 1))
        t[:n, :n] = weight * (rate / np.maximum(deg, 1e-9))[:, None]
        # pavement cells at the far ends of the pavement lead out of range (and back)
        free = mode == 0
        edge = outside & free & _at_extent(xy, outside & free, p.cell_m)
        t[np.flatnonzero(edge), n] = p.away_rate_per_s * p.step_s
        self._walk(t, owner, turn)
        self._walk_in(t, store)
        t[np.arange(n + 1), np.arange(n + 1)] = 0.0
        t[np.arange(n + 1), np.arange(n + 1)] = 1.0 - t.sum(axis=1)
        # inside the doors to the street: where a belief stuck outside may restart. Only inside:
        # a customer in the store never "teleports" out, they must be seen walking out
        self.door_cells = door & self.zone_in_store[np.append(owner, len(self.zone_ids) - 1)]
        return sparse.csr_matrix(t)

    def _adjacency(self, store: StoreFile, owner: np.ndarray) -> tuple[np.ndarray, ...]:
        """Which cells a person can step between (n, n), which cells are at a street door (n + 1,),
        where walkers passing a door turn in (n, n) and where leavers walk off along the street (n, n)."""
        p = self.params
        zones = {z.id: z for z in store.zones}
        walls = [(w.a, w.b) for w in store.walls]
        xy, mode = self.cell_xy, self.mode[:-1]
        n = len(owner)
        free = mode == 0
        d = np.hypot(xy[:, None, 0] - xy[None, :, 0], xy[:, None, 1] - xy[None, :, 1])
        size = self.cell_size
        near = (d > 0) & (d <= np.maximum(size[:, None], size[None, :]) * 1.5)
        same = owner[:, None] == owner[None, :]
        adj = near & same & free[:, None] & free[None, :]
        door = np.zeros(n + 1, dtype=bool)
        outside = np.asarray([self.kinds[o] == ZoneKind.OUTSIDE for o in owner])
        turn = np.zeros((n, n), dtype=bool)  # walkers passing a door who turn in
        leave = np.zeros((n, n), dtype=bool)
        walk_in_of = np.full(n, -1)  # a cell's walking-in copy, where it has one
        copies = np.flatnonzero(mode == WALK_IN)
        walk_in_of[self._twin[copies]] = copies
        for z in store.zones:  # across zones only where people can pass between connected zones
            for other in (o for o in z.connects if o in zones):
                # from the street only through the middle of the door: a passer-by brushing its
                # edge is not half let in
                street = ZoneKind.OUTSIDE in (self.kinds[self.z_index[z.id]], self.kinds[self.z_index[other]])
                pa, pb = list(z.polygon), list(zones[other].polygon)
                for px, py in _door_middles(store, z.id, other) if street else passage_points(pa, pb, walls):
                    close = np.hypot(xy[:, 0] - px, xy[:, 1] - py) <= p.portal_reach_m
                    a = np.flatnonzero((owner == self.z_index[z.id]) & close & free)
                    b = np.flatnonzero((owner == self.z_index[other]) & close & free)
                    if not (len(a) and len(b)):
                        continue
                    adj[np.ix_(a, b)] = True
                    adj[np.ix_(b, a)] = True
                    if street:
                        door[a] = door[b] = True
                        out_side, in_side = (a, b) if outside[a[0]] else (b, a)
                        walkers = np.flatnonzero((owner == owner[out_side[0]]) & np.isin(mode, (1, -1)) & close)
                        into = walk_in_of[in_side]
                        turn[np.ix_(walkers, np.where(into >= 0, into, in_side))] = True  # and walk on in
                        leave[np.ix_(in_side, walkers)] = True  # leavers walk away along the street
        return adj, door, turn, leave

    def _walk(self, t: np.ndarray, owner: np.ndarray, turn: np.ndarray) -> None:
        """Walkers' rows of the transition `t` (filled in place; the diagonal is set later).

        A walker moves `walk_speed_mps` along the street's long axis (a Gaussian step), may
        stop (mode 0 of the same cell), turn in at a door, or walk out of range at the far end.
        Out of range, phones come back walking in from either end.
        """
        p = self.params
        n, xy, mode = len(owner), self.cell_xy, self.mode[:-1]
        v = p.walk_speed_mps * p.step_s
        entering = []
        for zi in np.unique(owner[np.isin(mode, (1, -1))]):
            pts = xy[(owner == zi) & (mode == 0)]
            c = pts - pts.mean(axis=0)
            u = np.linalg.eigh(c.T @ c)[1][:, -1]  # the street's long axis
            along, across = xy @ u, xy @ np.asarray([-u[1], u[0]])
            for direction in (1, -1):
                w = np.flatnonzero((owner == zi) & (mode == direction))
                s, lat = along[w] * direction, across[w]
                ds = s[None, :] - s[:, None] - v
                lane = (lat[None, :] - lat[:, None]) / WALK_LANE_SIGMA_M
                k = np.exp(-0.5 * (ds / p.walk_step_sigma_m) ** 2 - 0.5 * lane**2)
                k[k < 0.05] = 0.0  # a few cells ahead, not the whole street: keeps the matrix sparse
                end = s.max() + self.cell_size[w].max() / 2
                gone = 1.0 - _ndtr((end - s - v) / p.walk_step_sigma_m)  # walked past the street's end
                k *= ((1.0 - gone) / k.sum(axis=1))[:, None]
                p_turn = np.where(turn[w].any(axis=1), p.turn_in_per_s * p.step_s, 0.0)
                p_stop = p.walk_stop_per_s * p.step_s
                t[np.ix_(w, w)] = k * (1.0 - p_stop - p_turn)[:, None]
                t[w, n] = gone * (1.0 - p_stop - p_turn)
                for j, i in enumerate(w):
                    here = self._twin[i]
                    t[i, here] = p_stop
                    t[here, i] = p.walk_start_per_s * p.step_s / 2
                    if p_turn[j]:
                        into = np.flatnonzero(turn[i])
                        t[i, into] = p_turn[j] / len(into)
                entering += list(w[s <= s.min() + self.cell_size[w].max() / 2])
        still_edge = np.flatnonzero((t[:n, n] > 0) & (mode == 0))
        targets = np.concatenate([still_edge, np.asarray(entering, dtype=int)])
        t[n, targets] = p.away_rate_per_s * p.step_s / max(1, len(targets))

    def _walk_in(self, t: np.ndarray, store: StoreFile) -> None:
        """Walking-in rows of the transition `t`: on into the store at `walk_speed_mps` (a
        Gaussian step), straight away from the street door they came in by, or slowing to browse
        (the standing copy); at a wall, or as far from the door as walking in is modelled, they stop.
        Nobody walking in steps back out, or through a wall.

        People head from the door for where they want to be, in a roughly straight line: a
        customer walking to the back of the shop is a few metres further in every second. A
        belief that only diffused across the floor would lag behind them, and a walker on the
        pavement beyond the shop front, where no glass dims the signal, would fit their
        readings better."""
        p = self.params
        xy, mode = self.cell_xy, self.mode[:-1]
        w = np.flatnonzero(mode == WALK_IN)
        if not len(w):
            return
        at = np.asarray([d[0] for d in self._doors])
        inward = np.asarray([d[1] for d in self._doors])
        nearest = np.argmin(np.hypot(xy[w, None, 0] - at[None, :, 0], xy[w, None, 1] - at[None, :, 1]), axis=1)
        heading = xy[w] - (at[nearest] - inward[nearest])  # away from a point a metre outside the door
        heading /= np.hypot(heading[:, 0], heading[:, 1])[:, None]
        ahead = xy[w] + p.walk_speed_mps * p.step_s * heading
        d2 = (xy[None, w, 0] - ahead[:, None, 0]) ** 2 + (xy[None, w, 1] - ahead[:, None, 1]) ** 2
        k = np.exp(-0.5 * d2 / p.walk_step_sigma_m**2)
        k[k < 0.05] = 0.0
        rows, cols = np.nonzero(k)
        walls = np.asarray([[*x.a, *x.b] for x in store.walls], dtype=float).reshape(-1, 4)
        if len(walls):
            k[rows, cols] *= ~segments_cross(xy[w[rows]], xy[w[cols]], walls).any(axis=-1)
        room = [list(z.polygon) for z in store.zones if z.kind in WALK_IN_KINDS]
        open_ahead = np.asarray([any(point_in_polygon((float(a), float(b)), r) for r in room) for a, b in ahead])
        open_ahead &= np.sqrt(d2.min(axis=1)) <= 0.75 * self.cell_size[w]  # still where walking in is modelled
        total = k.sum(axis=1)
        stop = np.where(open_ahead & (total > 0), p.walk_in_stop_per_s * p.step_s, 1.0)
        t[np.ix_(w, w)] = k * ((1.0 - stop) / np.maximum(total, 1e-12))[:, None]
        t[w, self._twin[w]] = stop

    def log_likelihood(self, rssi: np.ndarray, heard: np.ndarray, reported: np.ndarray) -> np.ndarray:
        """Place log-likelihoods (I, U) of one step's windows, up to a constant per identity
        (`ll[:, emit]` gives the states').

        rssi, heard: (I, N), the mean RSSI where node n heard identity i; reported: (N,), which
        nodes sent a window in this step. Every reporting node contributes log P(miss), every
        heard pair swaps that for log P(hit) (two matrix products for all identities), and
        each identity's `rssi_nodes` strongest readings add a Student t log-density of the RSSI
        around each state's prediction (the far, weak readings say little beyond "heard").
        """
        ii, nn = _strongest(rssi, heard, self.params.rssi_nodes)
        return self.detection_ll(heard, reported) + self.level_ll(rssi, ii, nn)

    @property
    def n_places(self) -> int:
        """Places with a distinct prediction (U): the likelihoods' width, mapped to states by `emit`."""
        return int(self._miss.shape[1])

    def detection_tables(self, adverts_per_s: float) -> tuple[np.ndarray, np.ndarray]:
        """(log P(miss), log P(hit) - log P(miss)), each (N, U), for a carrier advertising at this
        rate: a node's window hears it if any of its rate x window packets gets through."""
        tables = self._detection.get(adverts_per_s)
        if tables is None:
            p = self.params
            p_det = np.clip(self.p_detect(adverts_per_s), p.p_detect_min, p.p_detect_max)
            # `away` is out of range: a phone several nodes hear every second is not there, however
            # weak it reads (a weak phone behind a body at the till is still in the store)
            p_det[self._away_u] = p.p_detect_min
            miss = np.log1p(-p_det)
            tables = self._detection[adverts_per_s] = (
                miss.T.astype(np.float32),
                (np.log(p_det) - miss).T.astype(np.float32),
            )
        return tables

    def p_detect(self, adverts_per_s: float) -> np.ndarray:
        """(U, N): the chance a node's window hears at least one of the rate x window packets.

        The packets of one window share the link's slow part (shadowing, the body, where in the
        cell the phone is): a link 10 dB down loses all ten packets of a 10 Hz phone, not one
        in ten. So average over that slow spread, and only the fast fading and
        the interference loss are independent from packet to packet."""
        p = self.params
        z = np.linspace(-5.0, 5.0, p.detect_quadrature)  # the packets' edge is sharp: even steps beat Gauss-Hermite
        w = np.exp(-0.5 * z**2)
        w /= w.sum()
        n = adverts_per_s * p.window_s
        out = np.zeros_like(self._mu_u)
        for zq, wq in zip(z, w, strict=True):
            level = self._mu_u + zq * self._sigma_u
            p_packet = (1.0 - p.packet_loss) / (1.0 + np.exp(-(level - p.sensitivity_dbm) / p.detect_width_db))
            out += wq * (1.0 - (1.0 - p_packet) ** n)
        return out

    def detection_ll(
        self, heard: np.ndarray, reported: np.ndarray, rates: np.ndarray | None = None, out: np.ndarray | None = None
    ) -> np.ndarray:
        """(I, U): every reporting node's log P(miss), swapped for log P(hit) where it heard;
        `rates` (I,): each identity's advertising rate (default: `adverts_per_s` for all); written
        into `out` when given (C order)."""
        distinct = np.unique(rates) if rates is not None else [self.params.adverts_per_s]
        missed = reported.astype(np.float32)
        if out is None:
            out = np.empty((len(heard), self.n_places), dtype=np.float32)
        if len(distinct) == 1:  # everyone alike: no row selection, one product written in place
            miss, hit = self.detection_tables(float(distinct[0]))
            np.matmul(heard.astype(np.float32), hit, out=out)
            out += missed @ miss
            return out
        for rate in distinct:
            rows = rates == rate
            miss, hit = self.detection_tables(float(rate))
            part = heard[rows].astype(np.float32) @ hit
            part += missed @ miss
            out[rows] = part
        return out

    def level_ll(
        self, rssi: np.ndarray, ii: np.ndarray, nn: np.ndarray, out: np.ndarray | None = None,
        work: np.ndarray | None = None,
    ) -> np.ndarray:
        """(I, U): Student t log-densities of the readings rssi[ii, nn] around each place's
        prediction, added to `out` when given; `work`, an array of its shape to compute in."""
        ll = np.zeros((len(rssi), self.n_places), dtype=np.float32) if out is None else out
        # a row's readings multiplied (compiled: one pass over each row) and logged together, LEVEL_LOG_TERMS
        # at a time (`rank`: a reading's place among its row's), each product in node order
        order = np.argsort(ii, kind="stable")
        ii, nn = ii[order], nn[order]
        rank = np.arange(len(ii)) - np.searchsorted(ii, ii)
        prod = np.empty_like(ll) if work is None else work
        for k in range(0, int(rank.max(initial=-1)) + 1, LEVEL_LOG_TERMS):
            at = np.flatnonzero((rank >= k) & (rank < k + LEVEL_LOG_TERMS))
            at = at[np.lexsort((nn[at], ii[at]))]
            starts = np.searchsorted(ii[at], np.arange(len(ll) + 1))
            values = rssi[ii[at], nn[at]].astype(np.float32)
            level_products(prod, starts, nn[at], values, self._mu_heard_t, self._level_c_t, self._level_s_t)
            np.log(prod, out=prod)
            prod *= np.float32(-0.5 * (self.params.tail_dof + 1))
            ll += prod
        return ll


@dataclass
class PresenceEngine:
    """Tracks identities through the store; `add_window` per node window, `step` to decide.

    `rates`: each identity's advertising rate from its record (`set_rate`); others get the default.
    `phones`: each registered identity's transmit offset, learned at every "left" (`_learn`): a
    returning customer's belief starts from their own phone, not the population's spread.
    """

    model: PresenceModel
    ids: list[str] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)
    rates: dict[str, float] = field(default_factory=dict)
    phones: dict[str, LearnedPhone] = field(default_factory=dict)

    def __post_init__(self) -> None:
        m = self.model
        k, nn = len(m.owner), len(m.node_ids)
        self.belief = np.zeros((0, k), dtype=np.float32)
        self.offset_w = np.zeros((0, len(m.offset_prior)), dtype=np.float32)  # each row's offset prior (drift)
        self.inside = np.zeros(0, dtype=bool)
        self.p_in = np.zeros(0, dtype=np.float32)  # P(in store) after the last step
        self.zone = np.zeros(0, dtype=int)
        self.zone_since = np.zeros(0)
        self.entered_at = np.zeros(0)
        self.last_heard = np.zeros(0)
        self.rate = np.zeros(0)  # adverts per second of each tracked identity
        self._rssi = np.zeros((0, nn))
        self._heard = np.zeros((0, nn), dtype=bool)
        self._last = np.zeros((0, nn))  # the readings used in the last step, for `predict_pairs`
        self._last_used = np.zeros((0, nn), dtype=bool)
        self._levels = np.zeros((0, LEVEL_EARLIER_STEPS[1]), dtype=np.float32)  # each step's `_level`, a ring
        self._steps = 0  # steps taken: the next one's slot in `_levels`
        self._reported = np.zeros(nn, dtype=bool)
        self._due: float | None = None  # end of the step period being collected
        self._expected = np.zeros(nn, dtype=bool)  # nodes that reported in the last step
        self._pending: dict[str, tuple[float, dict[int, float]]] = {}  # first heard since the last step
        self.prior = m.base_prior()
        self.held: dict[str, np.ndarray] = {}  # phones a crossing moved in: the part of the belief that did not cross
        self.offered: dict[str, float] = {}  # when a crossing last weighed on each phone (`_unconfirmed`)
        self.shares: dict[str, Share] = {}  # what each phone got of the last crossing that moved it (`_unconfirmed`)
        self.room_leads: dict[str, tuple[int, float]] = {}  # a room change waiting out `room_hold_s`: zone, since
        self.room_falls: dict[str, float] = {}  # since when the reported room's own posterior is below its leave bar
        self.below_exit: dict[str, float] = {}  # since when a customer inside, heard, is below the exit bar
        self.rooms_shown: dict[int, tuple[float | None, float]] = {}  # room zone -> newest garment shown at, heard at
        self.alone_leads: dict[str, tuple[int, float, float | None]] = {}  # Bluetooth's likeliest room: since, at bar
        p = m.params
        self.doors = DoorFusion(
            m.door_states, p.door_detect_probability, p.door_match_s, p.turn_in_per_s * p.door_match_s,
            p.door_prior_rate_per_h, p.door_rate_tau_s, p.door_max_age_s, p.door_max_ratio, p.door_out_below,
            p.door_release_below,
        )
        self._prior_in = float((self.prior @ m.membership)[m.zone_in_store].sum())  # a newcomer's P(in store)
        self._work: dict[str, np.ndarray] = {}  # each step's large arrays, kept for the next (`_kept`)
        self._spare = 0  # which of the two kept beliefs the next prediction writes (the other is `belief`)

    def _admit(self) -> None:
        """Start tracking the identities first heard since the last step, all at once (one copy
        of the belief matrix per step, not one per newcomer)."""
        if not self._pending:
            return
        n, nn = len(self._pending), len(self.model.node_ids)
        times = np.asarray([t for t, _ in self._pending.values()])
        belief = np.tile(self.prior, (n, 1))
        weights = np.tile(self.model.offset_prior, (n, 1))
        for k, identity in enumerate(self._pending):  # a regular's own phone, where learned
            phone = self.phones.get(identity)
            if phone is not None:
                weights[k] = self.model.offset_weights(phone)
                belief[k] = self.model.base_prior(weights[k])
        rssi, heard = np.zeros((n, nn)), np.zeros((n, nn), dtype=bool)
        for k, (_, seen) in enumerate(self._pending.values()):
            for node, value in seen.items():
                rssi[k, node], heard[k, node] = value, True
        self._append(list(self._pending), belief, weights, times, rssi, heard)
        self._pending = {}

    def _append(
        self,
        ids: list[str],
        belief: np.ndarray,
        weights: np.ndarray,
        times: np.ndarray,
        rssi: np.ndarray,
        heard: np.ndarray,
    ) -> None:
        """New rows, not yet announced, placed at the next step; `weights` their offset priors,
        their windows so far in `rssi`/`heard`."""
        n, nn = len(ids), len(self.model.node_ids)
        first = len(self.ids)
        for k, identity in enumerate(ids):
            self.index[identity] = first + k
            self.ids.append(identity)
        self.belief = self._into_spare(np.arange(len(self.belief)), belief)
        self.offset_w = np.vstack([self.offset_w, weights.astype(np.float32)])
        self.inside = np.append(self.inside, np.zeros(n, dtype=bool))
        self.p_in = np.append(self.p_in, np.full(n, self._prior_in, dtype=np.float32))
        self.zone = np.append(self.zone, np.full(n, self.model.z_index[AWAY]))
        self.zone_since = np.append(self.zone_since, times)
        self.entered_at = np.append(self.entered_at, np.full(n, np.nan))
        self.last_heard = np.append(self.last_heard, times)
        default = self.model.params.adverts_per_s
        self.rate = np.append(self.rate, [self.rates.get(i, default) for i in ids])
        self._rssi = np.vstack([self._rssi, rssi])
        self._heard = np.vstack([self._heard, heard])
        self._last = np.vstack([self._last, np.zeros((n, nn))])
        self._last_used = np.vstack([self._last_used, np.zeros((n, nn), dtype=bool)])
        self._levels = np.vstack([self._levels, np.full((n, self._levels.shape[1]), np.nan, dtype=np.float32)])

    def restore(self, identity: str, zone: str, entered_at: float, zone_since: float, t: float) -> bool:
        """Resume an identity announced before a gateway restart as inside `zone`, without a new
        "entered": its belief is concentrated in that zone (its own phone's offsets, where learned),
        with `restore_doubt` of the newcomer's prior in case they left while the gateway was down;
        silent for `forget_after_s` from `t`, or heard leaving, they get their "left".
        False (nothing restored) if the store has no such zone any more or the identity is tracked."""
        m, p = self.model, self.model.params
        phone = self.phones.get(identity)
        weights = m.offset_weights(phone) if phone is not None else None
        here = m.zone_belief(zone, weights)
        if here is None or identity in self.index or identity in self._pending:
            return False
        belief = (1 - p.restore_doubt) * here + p.restore_doubt * m.base_prior(weights)
        nn = len(m.node_ids)
        w = m.offset_prior if weights is None else weights
        self._append(
            [identity], belief[None, :], w[None, :], np.asarray([t]), np.zeros((1, nn)), np.zeros((1, nn), dtype=bool)
        )
        i = len(self.ids) - 1
        self.inside[i], self.zone[i] = True, m.z_index[zone]
        self.zone_since[i], self.entered_at[i] = zone_since, entered_at
        self.p_in[i] = float((belief @ m.membership)[m.zone_in_store].sum())
        return True

    def _learn(self, i: int) -> None:
        """A visit ends: fold its posterior over the phone's transmit offset into the learned phone."""
        mean, var = self.model.offset_posterior(self.belief[i])
        identity = self.ids[i]
        self.phones[identity] = self.phones.get(identity, LearnedPhone(0.0, 0.0, 0)).after(mean, var)

    def add_window(self, node_id: str, t: float, heard: dict[str, float]) -> list[PresenceEvent]:
        """A node's window ending at `t` (identity -> mean RSSI). Steps the filter when a step is due.

        A step folds in the windows ending in (due - step_s, due]. It runs as soon as every node
        that reported in the previous step has reported in this one (in a store all nodes'
        windows arrive within milliseconds), or, when a node has gone quiet, on the first window
        of the next period: the evidence is never held back a whole window for nothing.
        """
        node = self.model.n_index.get(node_id)
        if node is None:
            return []
        events: list[PresenceEvent] = []
        eps = 1e-6
        if self._due is None:
            self._due = t
        elif t > self._due + eps:
            if self._reported.any():
                events = self._step_due()
            while self._due < t - eps:
                self._due += self.model.params.step_s
        if heard:
            get = self.index.get
            idx = np.fromiter((get(k, -1) for k in heard), dtype=np.int64, count=len(heard))
            vals = np.fromiter(heard.values(), dtype=float, count=len(heard))
            known = idx >= 0
            rows, v = idx[known], vals[known]
            col = self._rssi[rows, node]
            self._rssi[rows, node] = np.where(self._heard[rows, node], np.maximum(col, v), v)
            self._heard[rows, node] = True
            self.last_heard[rows] = np.maximum(self.last_heard[rows], t)
            if not known.all():
                keys = list(heard)
                for k in np.flatnonzero(~known):  # first heard: tracked from the next step
                    _, seen = self._pending.setdefault(keys[k], (t, {}))
                    seen[node] = max(float(vals[k]), seen.get(node, float(vals[k])))
        self._reported[node] = True
        if self._expected.any() and not (self._expected & ~self._reported).any():
            events += self._step_due()
            self._due += self.model.params.step_s
        return events

    def add_crossing(self, door: str, t: float, direction: str) -> bool:
        """A door sensor's crossing at `t`: weighed at the next step (False: not a street door here)."""
        return self.doors.add(door, t, direction)

    def add_door_status(self, door: str, t: float, ok: bool) -> bool:
        """A door sensor's health from its node's status at `t`: a working sensor watches the door even
        while nobody crosses (False: not a street door here)."""
        return self.doors.status(door, t, ok)

    def add_room_screen(self, room: str, t: float, newest: float | None) -> bool:
        """A fitting room's screen at `t` (its RFID reader's window): when the newest garment on it was
        shown, None if it shows none; weighed at the next decisions (`_room_evidence`). False: not a
        fitting room here."""
        z = self.model.z_index.get(room)
        if z is None or not self.model.zone_is_room[z]:
            return False
        self.rooms_shown[z] = (newest, t)
        return True

    def _step_due(self) -> list[PresenceEvent]:
        self._expected = self._reported.copy()
        if self._due is None:  # nothing collected yet
            return []
        return self.step(self._due)

    def step(self, t: float) -> list[PresenceEvent]:
        """Fold in the windows received since the last step (time `t`) and report changes."""
        self._admit()
        if not self.ids:
            self._reported[:] = False
            return []
        m = self.model
        post = m.predict(self.belief, self.offset_w, self._kept(f"belief{self._spare}", self.belief.shape, "F"))
        held = np.asarray([self.index[i] for i in self.held], dtype=int)
        stay = np.zeros((0, post.shape[1]))
        if len(held):
            stay = m.predict(np.stack(list(self.held.values())), self.offset_w[held])
        used = np.zeros_like(self._heard)
        sums = None
        if self._reported.any():
            stay, sums = self._weigh(t, post, held, stay, used)
        else:
            stay = self._cross(held, stay, post, t)
        zone_post = self._renormalise(post, stay, sums)
        self.belief, self._spare = post, 1 - self._spare  # the last belief's array: the next prediction's
        self._last = np.where(used, self._rssi, 0.0)
        self._last_used = used
        self._levels[:, self._steps % self._levels.shape[1]] = _level(self._rssi, used)
        self._steps += 1
        self._heard[:] = False
        self._reported[:] = False
        return self._decide(t, zone_post) + self._expire(t)

    def _predict_held_pairs(
        self, held: np.ndarray, stay: np.ndarray, post: np.ndarray, pairs: np.ndarray, change: np.ndarray,
        paired: np.ndarray,
    ) -> None:
        """A held phone judged in pairs: its did-not-cross part predicted with the same readings, in
        one call with its whole belief, so both come out on the same scale as `post`."""
        m = self.model
        at = {int(i): j for j, i in enumerate(pairs)}
        for k, i in enumerate(held):
            j = at.get(int(i))
            if j is None:
                continue
            both = m.predict_pairs(np.stack([self.belief[i], self.held[self.ids[i]]]), change[[j, j]], paired[[j, j]])
            stay[k] = both[1] * (post[i].sum() / max(float(both[0].sum()), 1e-30))

    def _cross(self, held: np.ndarray, stay: np.ndarray, post: np.ndarray, t: float) -> np.ndarray:
        """Fold in the queued crossings; a phone one moved in is held with its part that made none
        of them (a phone already held keeps its doubt: the next crossing takes its share of it).
        Returns the held parts in `self.held` order."""
        parts, p = dict(zip(self.held, stay, strict=True)), self.model.params
        for i, (share, part, got) in self.doors.apply(post, self.inside, self.p_in, t).items():
            identity = self.ids[i]
            if share < 1.0 - p.door_release_below:  # the crossing may well be theirs
                self.offered[identity] = t
            self.shares[identity] = got
            parts[identity] = parts[identity] * np.float32(share) if identity in parts else part
        self.held = parts
        return np.stack(list(parts.values())) if parts else np.zeros((0, post.shape[1]), dtype=np.float32)

    def _weigh(
        self, t: float, post: np.ndarray, held: np.ndarray, stay: np.ndarray, used: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Weigh the predictions by this step's windows (marking the links `used`); the held parts too.
        Returns the held parts and each identity's total after weighing."""
        m, p = self.model, self.model.params
        ii, nn = _strongest(self._rssi, self._heard, p.rssi_nodes)
        used[ii, nn] = True
        # phones at the door, not yet inside: links read in both windows are judged as changes
        paired = used & self._last_used
        undecided = (self.p_in >= p.pair_from_probability) & (self.p_in <= 1 - p.pair_from_probability)
        pairs = np.flatnonzero(~self.inside & undecided & paired.any(axis=1))
        pairs = pairs[np.argsort(-self.p_in[pairs], kind="stable")[: p.pair_max]]
        chosen = np.zeros(len(self.ids), dtype=bool)
        chosen[pairs] = True
        paired &= chosen[:, None]
        level = ~paired[ii, nn]  # every other reading by its level, as before
        shape = (len(self.ids), m.n_places)
        ll = m.detection_ll(self._heard, self._reported, self.rate, self._kept("ll", shape))
        wide = self._kept("wide", (shape[0] * shape[1],))  # the level products, then exp(ll): one at a time
        ll[pairs] *= np.float32(p.evidence_weight)
        m.level_ll(self._rssi, ii[level], nn[level], out=ll, work=wide.reshape(shape))
        if len(pairs):
            row = np.full(len(self.ids), -1)
            row[pairs] = np.arange(len(pairs))
            again = m.level_ll(self._rssi[pairs], row[ii[~level]], nn[~level])  # the paired links' levels
            ll[pairs] += np.float32(m.paired_level_weight) * again
            # a gather or scatter of rows of the (Fortran-order) belief reads all of it: one of each
            prior = self.belief[pairs]
            order = np.argsort(prior.argmax(axis=1))  # alike beliefs together
            pairs, prior = pairs[order], prior[order]
            change = self._rssi[pairs] - m.shadow_rho * self._last[pairs]
            predicted = m.predict_pairs(prior, change, paired[pairs])
            if self.doors.pending:  # crossings weigh on predictions summing to 1, as everyone else's
                predicted /= predicted.sum(axis=1, keepdims=True)
            post[pairs] = predicted
            self._predict_held_pairs(held, stay, post, pairs, change, paired[pairs])
        stay = self._cross(held, stay, post, t)  # a door sensor's crossings
        ll -= ll.max(axis=1, keepdims=True)
        ll *= np.float32(p.evidence_weight)
        # a paired phone's detections count half, as everyone's; its new links are its
        # first look at them, and count in full
        ll[pairs] *= np.float32(1 / p.evidence_weight)
        held = np.asarray([self.index[i] for i in self.held], dtype=int)
        held_lik = np.exp(ll[held])  # from `ll`'s rows, contiguous (`exp_like`'s are strided)
        sums = np.empty(len(post), dtype=np.float32)
        weigh_and_sum(post.T, m.exp_like(ll, post, wide.reshape(shape, order="F")).T, m.emit, sums)
        m.weigh(held_lik, stay)
        return stay, sums

    def _kept(self, name: str, shape: tuple[int, ...], order: Literal["C", "F"] = "C") -> np.ndarray:
        """A float32 work array of this shape, in memory kept from step to step: a fresh one of 50-100 MB
        costs more in page faults than the pass that fills it (docs/presence.md, Cost). Each name keeps
        one flat buffer, with room for an eighth more rows, so that phones coming and going reuse it."""
        size = int(np.prod(shape))
        flat = self._work.get(name)
        if flat is None or len(flat) < size:
            flat = self._work[name] = np.empty(size + size // 8, dtype=np.float32)
        return flat[:size].reshape(shape, order=order)

    def _into_spare(self, rows: np.ndarray, new: np.ndarray) -> np.ndarray:
        """The belief's rows `rows`, then the rows `new`, written identity-minor into the kept belief buffer
        the belief is not in (the next prediction then writes the other): phones coming and going leave the
        belief where the compiled prediction takes it, in memory already mapped (`_kept`)."""
        out = self._kept(f"belief{self._spare}", (len(rows) + len(new), self.belief.shape[1]), "F")
        rows_of(self.belief, rows, out[: len(rows)])
        out[len(rows) :] = new
        self._spare = 1 - self._spare
        return out

    def _renormalise(self, post: np.ndarray, stay: np.ndarray, sums: np.ndarray | None) -> np.ndarray:
        """Each phone's belief back to 1 less the floor mass spread over the door cells; the held parts alike.
        `sums`: each row's total, if known. Returns the zone posteriors (I, Z), summed in the same pass."""
        m, p = self.model, self.model.params
        scale = ((1 - p.floor_mass) / (post.sum(axis=1) if sums is None else sums)).astype(np.float32)
        if self.held:  # the same scale: the share of each part is the evidence
            stay *= scale[[self.index[identity] for identity in self.held], None]
            self.held = dict(zip(self.held, stay, strict=True))
        zones_t = np.empty((len(m.zone_ids), len(post)), dtype=np.float32)
        door_add = float(p.floor_mass / m.door_cells.sum())
        scale_and_sum_zones(post.T, scale, m.door_cells, door_add, m.owner, zones_t)
        return zones_t.T

    def _decide(self, t: float, zone_post: np.ndarray) -> list[PresenceEvent]:
        """Entries, `left`s and moves from this step's zone posteriors (I, Z)."""
        m, p = self.model, self.model.params
        self.p_in = p_in = zone_post[:, m.zone_in_store].sum(axis=1)
        zone_post = self._room_evidence(zone_post, t)
        events = []
        unconfirmed = self._unconfirmed(t)
        for i in map(int, np.flatnonzero(~self.inside & (p_in >= p.enter_probability) & ~unconfirmed)):
            z = int(np.argmax(np.where(m.zone_in_store, zone_post[i], -1)))
            events.append(
                PresenceEvent(
                    "entered", self.ids[i], t, m.zone_ids[z], m.zone_ids[self.zone[i]], round(float(p_in[i]), 3)
                )
            )
            self.inside[i], self.entered_at[i], self.zone[i], self.zone_since[i] = True, t, z, t
        leaving = self.inside & (p_in <= p.exit_probability)
        for i in map(int, np.flatnonzero(leaving & ~self._not_out_yet(leaving, t))):
            z = int(np.argmax(np.where(m.zone_in_store, -1, zone_post[i])))
            events.append(
                PresenceEvent(
                    "left",
                    self.ids[i],
                    t,
                    m.zone_ids[z],
                    m.zone_ids[self.zone[i]],
                    round(float(1 - p_in[i]), 3),
                    round(t - float(self.entered_at[i]), 1),
                )
            )
            self.inside[i], self.zone[i], self.zone_since[i] = False, z, t
            self._learn(int(i))
        return events + self._moves(t, zone_post)

    def _not_out_yet(self, leaving: np.ndarray, t: float) -> np.ndarray:
        """Of those `leaving`, the ones heard this step not to be told `left` yet. Those whose belief outside
        mostly stands still: a phone standing just inside the glass reads as one standing just outside it
        (the radio twin, docs/presence.md "Standing inside the glass"), so standing out there is no evidence
        of having walked out. And those below the exit bar for less than `left_heard_hold_s`: a customer
        walking inside towards the glass reads as one walking out of the door and along the pavement, and
        stands at the window soon after (docs/presence.md "Walking to the glass")."""
        m, p = self.model, self.model.params
        held = np.zeros(len(self.ids), dtype=bool)
        below, self.below_exit = self.below_exit, {}
        for i in np.flatnonzero(leaving & self._last_used.any(axis=1)).tolist():
            b, since = self.belief[i], below.get(self.ids[i], t)
            self.below_exit[self.ids[i]] = since
            waits = t - since < p.left_heard_hold_s and not self._fallen(i)
            held[i] = waits or b[m.standing_outside].sum() > b[~m.cell_in_store].sum() / 2
        return held

    def _fallen(self, i: int) -> bool:
        """Have identity `i`'s strongest readings fallen by `left_fall_db` from 8-14 steps ago to the last 3?"""
        ring, n = self._levels[i], self._levels.shape[1]
        recent = ring[[(self._steps - 1 - k) % n for k in range(LEVEL_RECENT_STEPS)]]
        earlier = ring[[(self._steps - 1 - k) % n for k in range(*LEVEL_EARLIER_STEPS)]]
        recent, earlier = recent[np.isfinite(recent)], earlier[np.isfinite(earlier)]
        return bool(len(recent) and len(earlier) and earlier.mean() - recent.mean() >= self.model.params.left_fall_db)

    def _room_evidence(self, zone_post: np.ndarray, t: float) -> np.ndarray:
        """The zone posteriors (I, Z) weighed by what the fitting rooms' screens show now, for the zone
        decisions only: the belief is untouched (a screen's state lasts, it is not news every step).

        A customer walks into a room with garments in a share q of visits (`room_garment_share`), and
        they are on its screen seconds later. So a screen that showed no garment from `room_fill_s`
        before Bluetooth alone made the room a customer's likeliest zone (or before now, if it has not)
        makes "in this room" 1 - q as likely for them: it is empty, or shows what someone left behind.
        Not for a customer reported in the room, unless the screen is empty (their garments were shown
        long ago), nor for one Bluetooth alone has kept at the room bar for `room_hold_s` / (1 - q)
        (untagged garments). A garment just shown weighs for nobody: whoever brought it in is as often
        an anonymous shopper or a companion as the likeliest tracked customer (docs/presence.md)."""
        m, p = self.model, self.model.params
        q = m.room_garment_share
        live = [(z, newest) for z, (newest, at) in self.rooms_shown.items() if t - at <= p.room_rfid_max_age_s]
        if not live or q <= 0 or not len(zone_post):
            return zone_post
        lead, came, sure = self._alone_leads(zone_post, t, p.room_hold_s / (1 - q))
        ratio = np.ones_like(zone_post)
        for z, newest in live:
            here = lead == z
            doubted = ~(here & sure)
            if newest is not None:
                doubted &= (newest < np.where(here, came, t) - p.room_fill_s) & ~(self.inside & (self.zone == z))
            ratio[doubted, z] = 1 - q
        weighed = zone_post * ratio
        return weighed * (zone_post.sum(axis=1, keepdims=True) / weighed.sum(axis=1, keepdims=True))

    def _alone_leads(self, zone_post: np.ndarray, t: float, sure_s: float) -> tuple[np.ndarray, ...]:
        """Per identity, the room (zone index, else -1) that Bluetooth alone makes its likeliest zone,
        since when it has (consecutive steps), and whether it has also held the room bar for `sure_s`."""
        p = self.model.params
        best = zone_post.argmax(axis=1)
        conf = zone_post[np.arange(len(best)), best]
        leads, self.alone_leads = self.alone_leads, {}
        lead, came, sure = np.full(len(best), -1), np.full(len(best), t), np.zeros(len(best), dtype=bool)
        for i in map(int, np.flatnonzero(self.model.zone_is_room[best])):
            zone, start, held = leads.get(self.ids[i], (int(best[i]), t, None))
            start, held = (start, held) if zone == best[i] else (t, None)
            held = (t if held is None else held) if conf[i] >= p.room_switch_probability else None
            lead[i], came[i], sure[i] = best[i], start, held is not None and t - held >= sure_s
            self.alone_leads[self.ids[i]] = (int(best[i]), start, held)
        return lead, came, sure

    def _moves(self, t: float, zone_post: np.ndarray) -> list[PresenceEvent]:
        """Zone changes of the customers inside. Into a small zone that is no room the new zone needs
        `small_zone_probability`: the floor held against the till and the strip (docs/presence.md). Into
        or out of a fitting room the new zone must hold the bar for `room_hold_s` of consecutive steps:
        rooms are small and side by side, and a
        moment's belief in the next room sends staff to the wrong curtain (docs/presence.md). Out of
        a room also once the room's own posterior has stayed below its leave bar as long (`_out_of_rooms`)."""
        m, p = self.model, self.model.params
        best = zone_post.argmax(axis=1)
        conf = zone_post[np.arange(len(best)), best]
        into_or_out_of_room = m.zone_is_room[best] | m.zone_is_room[self.zone]
        small = m.zone_area[best] <= p.small_zone_share * m.zone_area[self.zone]
        bar = np.where(small, p.small_zone_probability, p.switch_probability)
        bar = np.where(into_or_out_of_room, p.room_switch_probability, bar)
        moved = self.inside & m.zone_in_store[best] & (best != self.zone) & (conf >= bar)
        out = self._out_of_rooms(t, zone_post)
        leads, self.room_leads = self.room_leads, {}
        events = []
        for i in map(int, np.flatnonzero(moved | (out >= 0))):
            old, new = int(self.zone[i]), int(best[i])
            if not moved[i] or (into_or_out_of_room[i] and not self._held(i, new, t, leads)):
                if out[i] < 0:
                    continue
                new = int(out[i])
            events.append(
                PresenceEvent(
                    "zone_changed",
                    self.ids[i],
                    t,
                    m.zone_ids[new],
                    m.zone_ids[old],
                    round(float(zone_post[i, new]), 3),
                    round(t - float(self.zone_since[i]), 1),
                )
            )
            self.zone[i], self.zone_since[i] = new, t
        return events

    def _held(self, i: int, new: int, t: float, leads: dict[str, tuple[int, float]]) -> bool:
        """Whether identity `i`'s room change to `new` has held the room bar for `room_hold_s`; if not, it waits."""
        zone, since = leads.get(self.ids[i], (new, t))
        since = since if zone == new else t
        if t - since < self.model.params.room_hold_s:
            self.room_leads[self.ids[i]] = (new, since)
            return False
        return True

    def _out_of_rooms(self, t: float, zone_post: np.ndarray) -> np.ndarray:
        """Per identity, the likeliest zone outside every room for a customer reported in a room whose
        own posterior has stayed below `room_leave_probability` for `room_leave_hold_s` of consecutive steps,
        else -1. No other zone need reach the room bar: near the rooms the floor's belief is shared
        with the entrance, the till and the other rooms. Not into another room: that keeps the entry
        rule (docs/presence.md "Out of a room when the room itself falls")."""
        m, p = self.model, self.model.params
        out = np.full(len(self.ids), -1)
        falls, self.room_falls = self.room_falls, {}
        own = zone_post[np.arange(len(self.ids)), self.zone]
        elsewhere = m.zone_in_store & ~m.zone_is_room
        for i in map(int, np.flatnonzero(self.inside & m.zone_is_room[self.zone] & (own < p.room_leave_probability))):
            since = falls.get(self.ids[i], t)
            if t - since < p.room_leave_hold_s:
                self.room_falls[self.ids[i]] = since
            else:
                out[i] = int(np.argmax(np.where(elsewhere, zone_post[i], -1)))
        return out

    def _unconfirmed(self, t: float) -> np.ndarray:
        """Who a crossing moved in but is not announced yet: a phone is announced once its own readings
        since say it made that crossing (a passer-by at the door while someone else went in does not
        walk in), or once they put it inside without it, as Bluetooth alone would; once they say it
        did not make it, Bluetooth decides alone again. And who Bluetooth alone puts inside though
        counters watch every street door and no crossing could be theirs (`_unseen`)."""
        m, p = self.model, self.model.params
        unconfirmed = self._unseen(t)
        if not self.held:
            return unconfirmed
        # the sums for all held phones at once: a row of the (Fortran-order) belief is slow to sum alone
        rows = np.asarray([self.index[identity] for identity in self.held])
        parts, beliefs = np.stack(list(self.held.values())), rows_of(self.belief, rows)
        totals, stayed_all = beliefs.sum(axis=1).tolist(), parts.sum(axis=1).tolist()
        stayed_in = (parts @ m.membership)[:, m.zone_in_store].sum(axis=1).tolist()
        totals_in = (beliefs @ m.membership)[:, m.zone_in_store].sum(axis=1).tolist()
        made: dict[str, float] = {}
        alone: dict[str, float] = {}
        bar = p.enter_probability
        sums = zip(list(self.held), rows, totals, totals_in, stayed_all, stayed_in, strict=True)
        for identity, i, total, total_in, stayed, here in sums:
            if self.inside[i] or 1.0 - stayed / total < p.door_release_below:
                del self.held[identity]
            else:
                alone[identity] = here / max(stayed, 1e-30)
                made[identity] = made_crossing(total, total_in, stayed, here, p.door_detect_probability)
        self.shares = {k: s for k, s in self.shares.items() if t - s.group[2] <= p.door_offered_s}
        announced = {k for k in self.shares if k in self.index and self.inside[self.index[k]]}
        for identity, share in explained_away(made, self.shares, announced).items():
            unconfirmed[self.index[identity]] = share < p.door_confirm_probability and alone[identity] < bar
        return unconfirmed

    def _unseen(self, t: float) -> np.ndarray:
        """Phones not inside that counters watching every street door did not see come in (no crossing
        weighed on them for `door_offered_s`): coming in unseen takes a miss, (1 - detect) as likely,
        so their odds of being inside must pass the entry bar at that discount. A window shopper at
        the glass, whose standing twin just inside fits the readings as well, stays outside."""
        p = self.model.params
        unseen = np.zeros(len(self.ids), dtype=bool)
        if not self.doors.watching(t, p.door_watch_s):
            return unseen
        unseen[:] = ~self.inside
        for identity, at in list(self.offered.items()):
            if t - at > p.door_offered_s:
                del self.offered[identity]
            else:
                unseen[self.index[identity]] = False
        odds = self.p_in / np.maximum(1.0 - self.p_in, 1e-9) * (1.0 - p.door_detect_probability)
        return unseen & (odds < p.enter_probability / (1.0 - p.enter_probability))

    def _expire(self, t: float) -> list[PresenceEvent]:
        """Stop tracking identities not heard for `forget_after_s`; anyone still inside has left."""
        m = self.model
        stale = np.flatnonzero(t - self.last_heard > m.params.forget_after_s)
        if not len(stale):
            return []
        events = [
            PresenceEvent(
                "left",
                self.ids[i],
                float(self.last_heard[i]),
                AWAY,
                m.zone_ids[self.zone[i]],
                1.0,
                round(float(self.last_heard[i] - self.entered_at[i]), 1),
            )
            for i in stale
            if self.inside[i]
        ]
        for i in stale[self.inside[stale]]:
            self._learn(int(i))
        self._drop(set(int(i) for i in stale))
        return events

    def set_rate(self, identity: str, adverts_per_s: float | None) -> None:
        """Record how often an identity advertises; with two carriers the slower one, so that
        "not heard" never counts for more than the customer's slowest carrier warrants."""
        if adverts_per_s:
            rate = min(adverts_per_s, self.rates.get(identity, adverts_per_s))
            self.rates[identity] = rate
            i = self.index.get(identity)
            if i is not None:
                self.rate[i] = rate

    def forget(self, identity: str) -> None:
        """Consent withdrawn or erased: drop every trace of the identity now (the work arrays too, which
        may hold its last rows)."""
        self._work.clear()
        self._pending.pop(identity, None)
        self.held.pop(identity, None)
        self.offered.pop(identity, None)
        self.shares.pop(identity, None)
        self.rates.pop(identity, None)
        self.phones.pop(identity, None)
        self.alone_leads.pop(identity, None)
        self.room_falls.pop(identity, None)
        self.below_exit.pop(identity, None)
        i = self.index.get(identity)
        if i is not None:
            self._drop({i})

    def _drop(self, rows: set[int]) -> None:
        keep = np.asarray([i for i in range(len(self.ids)) if i not in rows], dtype=int)
        for i in rows:
            self.held.pop(self.ids[i], None)
            self.offered.pop(self.ids[i], None)
            self.shares.pop(self.ids[i], None)
        self.ids = [self.ids[i] for i in keep]
        self.index = {ident: i for i, ident in enumerate(self.ids)}
        self.belief = self._into_spare(keep, np.zeros((0, self.belief.shape[1]), dtype=np.float32))
        per_identity = (
            "offset_w", "inside", "p_in", "zone", "zone_since", "entered_at", "last_heard", "rate"
        )
        for name in per_identity + ("_rssi", "_heard", "_last", "_last_used", "_levels"):
            setattr(self, name, getattr(self, name)[keep])

    def zone_of(self, identity: str) -> tuple[str, bool] | None:
        """The reported zone and whether the identity is inside the store."""
        i = self.index.get(identity)
        if i is None:
            return (AWAY, False) if identity in self._pending else None  # heard, placed at the next step
        return self.model.zone_ids[int(self.zone[i])], bool(self.inside[i])

    def present(self) -> dict[str, str]:
        """Identities reported inside the store, with their zone."""
        return {self.ids[i]: self.model.zone_ids[int(self.zone[i])] for i in np.flatnonzero(self.inside)}


def _street_doors(store: StoreFile) -> list[tuple[tuple[float, float], np.ndarray]]:
    """Every declared street door: the middle of its opening, and the unit vector into the store."""
    zones = {z.id: z for z in store.zones}
    doors = []
    for d in store.street_doors():
        a, b = sorted(d.zones, key=lambda zid: zones[zid].kind != ZoneKind.OUTSIDE)  # outside first
        pa, pb = list(zones[a].polygon), list(zones[b].polygon)
        at = _door_middle(d.position, d.width_m, pa, pb)
        doors.append((at, _inward(at, pa, pb)))
    return doors


def _door_middles(store: StoreFile, a: str, b: str) -> list[tuple[float, float]]:
    """The middle of each declared door between zones `a` and `b`."""
    pa, pb = list(store.zone(a).polygon), list(store.zone(b).polygon)
    return [_door_middle(d.position, d.width_m, pa, pb) for d in store.doors_between(a, b)]


def _door_middle(position: tuple[float, float], width_m: float, pa: list, pb: list) -> tuple[float, float]:
    (x1, y1), (x2, y2) = door_opening(position, width_m, pa, pb)
    return (x1 + x2) / 2, (y1 + y2) / 2


def _inward(at: tuple[float, float], pa: list, pb: list) -> np.ndarray:
    """Unit vector across the shared boundary of `pa` and `pb` at `at`, pointing into `pb`."""
    segs = shared_boundary(pa, pb)
    a, b = min(segs, key=lambda s: segment_distance(np.asarray(at), np.asarray(s[0]), np.asarray(s[1])))
    u = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    normal = np.asarray([-u[1], u[0]]) / np.hypot(*u)
    probe = (at[0] + 0.3 * normal[0], at[1] + 0.3 * normal[1])
    return normal if point_in_polygon(probe, pb) else -normal


def _strongest(rssi: np.ndarray, heard: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """(identity, node) index pairs of each identity's `m` strongest heard readings."""
    if heard.shape[1] <= m:
        ii, nn = np.nonzero(heard)
        return ii, nn
    masked = np.where(heard, rssi, -np.inf)
    top = np.argpartition(-masked, m - 1, axis=1)[:, :m]  # (I, m)
    rows = np.repeat(np.arange(len(rssi)), m)
    cols = top.reshape(-1)
    keep = heard[rows, cols]
    return rows[keep], cols[keep]


def _cell_rssi(
    xy: np.ndarray, size: np.ndarray, owner: np.ndarray, zones: list, node_xy: np.ndarray, ref: np.ndarray,
    walls: np.ndarray, wall_db: np.ndarray, p: PresenceParams,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and spread (C, N) of the path-loss RSSI over each cell's area.

    Evaluated on a 4 x 4 sub-grid of the cell (points outside its zone dropped): next to a
    node the RSSI within one cell spans 10 dB or more, and a model that only knew the centre
    would call a phone held right at the node an outlier of every cell.
    """
    sub = (np.arange(4) - 1.5) / 4
    off = np.stack(np.meshgrid(sub, sub), axis=-1).reshape(-1, 2)  # (S, 2), in cells
    mu = np.zeros((len(xy), len(node_xy)))
    spread = np.zeros_like(mu)
    for zi, z in enumerate(zones):
        cells = np.flatnonzero(owner == zi)
        if not len(cells):
            continue
        pts = xy[cells, None, :] + off[None] * size[cells, None, None]  # (c, S, 2)
        inside = np.asarray([[point_in_polygon((float(a), float(b)), list(z.polygon)) for a, b in c] for c in pts])
        inside[:, 0] |= ~inside.any(axis=1)  # keep at least one point per cell
        flat = pts.reshape(-1, 2)
        d = np.maximum(np.hypot(flat[:, None, 0] - node_xy[None, :, 0], flat[:, None, 1] - node_xy[None, :, 1]), 0.3)
        r = ref[None, :] - 10 * p.path_loss_exponent * np.log10(d)
        if len(walls):
            r = r - (crossings(flat, node_xy, walls) * wall_db[None, None, :]).sum(axis=2)
        r = r.reshape(len(cells), len(off), -1)
        w = inside[:, :, None] / inside.sum(axis=1)[:, None, None]
        m = (r * w).sum(axis=1)
        mu[cells] = m
        spread[cells] = np.sqrt((((r - m[:, None, :]) ** 2) * w).sum(axis=1))
    return mu, spread


def _body_loss(body_db: float) -> tuple[float, float]:
    """Mean and SD (dB) of the body term body_db x ((1 - cos a) / 2)^2 over a uniform heading a:
    (1 - cos a) / 2 = sin^2(a / 2), whose 2nd and 4th powers average 3/8 and 35/128."""
    return body_db * 3 / 8, body_db * float(np.sqrt(35 / 128 - (3 / 8) ** 2))


def _level(rssi: np.ndarray, used: np.ndarray) -> np.ndarray:
    """Per identity, the mean of its LEVEL_TOP_LINKS strongest readings used this step (NaN: none)."""
    k = min(LEVEL_TOP_LINKS, rssi.shape[1])
    top = -np.partition(-np.where(used, rssi, -np.inf), k - 1, axis=1)[:, :k]
    heard = np.isfinite(top)
    n = heard.sum(axis=1)
    return np.where(n > 0, np.where(heard, top, 0.0).sum(axis=1) / np.maximum(n, 1), np.nan)


def _runs(index: np.ndarray) -> list[tuple[int, int, int]]:
    """(start, stop, index[start]) of the runs where `index` goes up by one at a time."""
    breaks = np.flatnonzero(np.diff(index) != 1) + 1
    starts = np.concatenate([[0], breaks])
    stops = np.concatenate([breaks, [len(index)]])
    return [(int(a), int(b), int(index[a])) for a, b in zip(starts, stops, strict=True)]


def _mills(alpha: np.ndarray) -> np.ndarray:
    """E[Z | Z > alpha] for a standard normal Z: the upward bias of a truncated mean."""
    from scipy.special import log_ndtr

    return np.exp(-0.5 * alpha**2 - 0.5 * np.log(2 * np.pi) - log_ndtr(-alpha))


def _grid(poly: list[tuple[float, float]], spacing: float) -> list[tuple[float, float]]:
    """Cell centres on a regular grid inside the polygon (at least its centroid)."""
    a = np.asarray(poly, dtype=float)
    (x0, y0), (x1, y1) = a.min(axis=0), a.max(axis=0)
    nx, ny = max(1, int(round((x1 - x0) / spacing))), max(1, int(round((y1 - y0) / spacing)))
    xs = x0 + (np.arange(nx) + 0.5) * (x1 - x0) / nx
    ys = y0 + (np.arange(ny) + 0.5) * (y1 - y0) / ny
    pts = [(float(x), float(y)) for x in xs for y in ys if point_in_polygon((float(x), float(y)), poly)]
    return pts or [polygon_centroid(poly)]


def _at_extent(xy: np.ndarray, mask: np.ndarray, spacing: float) -> np.ndarray:
    """Cells of `mask` on the outer edge of the masked region's bounding box."""
    pts = xy[mask]
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    return (xy[:, 0] <= lo[0] + spacing / 2) | (xy[:, 0] >= hi[0] - spacing / 2)
