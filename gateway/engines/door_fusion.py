"""Door-sensor fusion for the presence engine: a crossing at t says someone went through that door then.

A counter at a street door is anonymous, and most people it counts carry no registered phone,
so a crossing is not an entry by itself. It is evidence, weighed per tracked phone. Each phone
not yet announced either made the crossing (H1) or not (H0):

    P(H1) before the crossing is known = kappa x m: m its belief near the door, outside,
        kappa the chance that someone at the door goes through it within the match window: the
        engine's own turn-in rate (its transition model) times that window;
    P(crossing | H1) = the counter's detection probability pd,
    P(crossing | H0) = someone else's crossing in the window: the door's learned rate x window.

One crossing is one person, and the phones that fit it share it out with the anonymous crosser
(far likelier on a street). Under H1 the phone is just inside, walking in; under H0 its belief
is as it was. The new belief is the mixture of the two by their posterior weights; the engine
keeps each moved phone's H0 part and announces it only once the phone's own readings since
favour H1 (a passer-by at the door while someone else goes in does not walk in), and a crossing
the counter missed leaves BLE to decide alone. Outward crossings do the same for phones inside
that BLE already doubts (docs/door.md).

Pure: crossings in with their own timestamps; the crossing rate of each door and direction is
learned from the crossings themselves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from firmware_config.geometry import door_opening, segment_distance
from firmware_config.store import StoreFile

Direction = str  # "in" | "out"


def rows_of(a: np.ndarray, rows: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """a[rows], the same floats; written into `out` when given (the presence engine's kept arrays). A belief
    out of the transition's product is Fortran order: taken as columns of its transpose, the rows come in
    one sequential pass (several times faster than one strided row at a time)."""
    fortran = a.flags.f_contiguous and not a.flags.c_contiguous
    if out is None:
        return np.take(a.T, rows, axis=1).T if fortran else a[rows]
    # filled in place (numpy buffers an `out` when it may raise; the rows are the caller's own)
    np.take(a.T if fortran else a, rows, axis=1 if fortran else 0, out=out.T if fortran else out, mode="clip")
    return out


def made_crossing(
    total: float, total_inside: float, stayed: float, stayed_inside: float, detect_probability: float
) -> float:
    """P(a held phone made its crossing | readings since), from its whole belief (`total`, of which
    `total_inside` is in the store) and the part that did not make it (`stayed`, of which `stayed_inside`
    is in the store). That part can be in the store only by a crossing the counter, watching the door,
    did not report: it counts (1 - detect) as much there (a customer walking in after the door would
    otherwise leave "came in unseen just after" as likely as "made the reported crossing", and wait for
    Bluetooth alone). Likewise the part that made it can be outside again only by an outward crossing
    not reported for it: a passer-by walking on keeps no share of someone else's crossing."""
    moved_out = max(0.0, (total - total_inside) - (stayed - stayed_inside))
    moved = total - stayed - detect_probability * moved_out
    return moved / max(moved + stayed - detect_probability * stayed_inside, 1e-30)


@dataclass(frozen=True, slots=True)
class Share:
    """What one phone got of a step's crossings of one door and way (`group`): its weight `w`, its
    odds before the crossings were shared out, and `n`, the number of crossings shared."""

    group: tuple[str, str, float]
    w: float
    odds: float
    n: int


def explained_away(made: dict[str, float], shares: dict[str, Share], announced: set[str]) -> dict[str, float]:
    """P(made its crossing | readings since) of each held phone, judged with the other phones that shared
    the crossing (one crossing is one person): a phone whose readings since say it did not make it (a
    passer-by walking on) leaves its share to the others. Each phone's readings scale its odds by the
    likelihood ratio they gave it alone; the shares are then shared out again as at the crossing. Never
    below `made` (a companion confirmed takes nothing back: it may have had its own, uncounted crossing);
    a group one of whose phones was announced on it keeps `made`."""
    groups: dict[tuple[str, str, float], list[str]] = {}
    for identity, sh in shares.items():
        groups.setdefault(sh.group, []).append(identity)
    out = dict(made)
    for members in groups.values():
        if len(members) < 2 or any(i in announced for i in members):
            continue
        scaled = {}
        for i in members:  # odds x the readings' likelihood ratio; a released phone (not held) made none
            sh, p = shares[i], min(max(made.get(i, 0.0), 1e-9), 1 - 1e-9)
            scaled[i] = sh.odds * (p / (1 - p)) / (sh.w / max(1 - sh.w, 1e-9)) if i in made else 0.0
        total, n = sum(scaled.values()), shares[members[0]].n
        for i in members:
            if i in made:
                joint = min(scaled[i] / (1 + scaled[i]), n * scaled[i] / (n + total))
                out[i] = max(made[i], joint)
    return out


@dataclass(frozen=True, slots=True)
class Crossing:
    door: str
    t: float
    direction: Direction


@dataclass(frozen=True, slots=True)
class DoorStates:
    """One street door's states (index arrays, one row per transmit offset): `near_in` and
    `near_out` within reach of the opening inside and outside the store (a crosser was there
    just before); `into` the first states inside (walking in), `onto` the first outside, where
    a crossing puts its crosser."""

    near_in: np.ndarray
    near_out: np.ndarray
    into: np.ndarray
    onto: np.ndarray


def door_states(
    store: StoreFile, cell_xy: np.ndarray, in_store: np.ndarray, mode: np.ndarray, walk_in: int,
    n_offsets: int, near_m: float, first_m: float,
) -> dict[str, DoorStates]:
    """Per street door, its states (see `DoorStates`). cell_xy: (C, 2) the base cells without
    `away`; in_store, mode: (C,) each cell's side of the door and its mode (`walk_in` for
    walking in, 0 for standing). States are offset-major: offset * (C + 1) + cell."""
    zones = {z.id: z for z in store.zones}
    blocks = np.arange(n_offsets)[:, None] * (len(cell_xy) + 1)
    out: dict[str, DoorStates] = {}
    for d in store.street_doors():
        pa, pb = list(zones[d.zones[0]].polygon), list(zones[d.zones[1]].polygon)
        j1, j2 = (np.asarray(j, dtype=float) for j in door_opening(d.position, d.width_m, pa, pb))
        dist = np.asarray([segment_distance(p, j1, j2) for p in cell_xy])
        first = dist <= first_m
        into = first & in_store & (mode == walk_in)
        if not into.any():  # no walking-in copies here: the standing cells just inside
            into = first & in_store
        onto = first & ~in_store & (mode == 0)

        def states(mask: np.ndarray) -> np.ndarray:
            return blocks + np.flatnonzero(mask)[None, :]

        near = dist <= near_m
        out[d.id] = DoorStates(states(near & in_store), states(near & ~in_store), states(into), states(onto))
    return out


@dataclass
class DoorFusion:
    """Queued crossings and each door's learned crossing rate; `apply` folds them into a step.

    detect_probability: a counter's chance to count one person (docs/door.md);
    match_s: the window in which a phone's crossing matches a reported one (a step and the report's
    delay); kappa: P(a phone at the door goes through within match_s);
    prior_rate_per_h, rate_tau_s: a door's crossing rate before any is seen, and how fast it forgets;
    max_age_s: crossings older than this at the step are stale (a backlog replayed after an outage);
    max_ratio: the most one step's crossings of a door may count; out_below: an outward crossing weighs on
    phones inside whose P(in store) BLE already puts below this (a customer browsing by the door
    is not sent out by every leaver who passes them); weigh_above: a crossing weighs on a phone only if
    it gives it more than this (the engine's release share: a phone given less would be released at
    its first decision, and holding it costs a pass over its row; docs/door.md, Cost)."""

    states: dict[str, DoorStates]
    detect_probability: float
    match_s: float
    kappa: float
    prior_rate_per_h: float
    rate_tau_s: float
    max_age_s: float
    max_ratio: float
    out_below: float
    weigh_above: float
    pending: list[Crossing] = field(default_factory=list)
    seen: dict[str, float] = field(default_factory=dict)  # per door, the latest crossing or working heartbeat
    faulty: set[str] = field(default_factory=set)  # doors whose node's last status said the sensor is not working
    _rate: dict[tuple[str, Direction], tuple[float, float]] = field(default_factory=dict)  # (rate /s, at t)

    def add(self, door: str, t: float, direction: Direction) -> bool:
        """Queue a crossing for the next step (False: not a street door of this store)."""
        if door not in self.states or direction not in ("in", "out"):
            return False
        self.pending.append(Crossing(door, t, direction))
        self._heard(door, t)
        return True

    def status(self, door: str, t: float, ok: bool) -> bool:
        """The sensor's health in its node's status at `t` (the heartbeat, docs/door.md): working or not
        (False: not a street door of this store)."""
        if door not in self.states:
            return False
        if ok:
            self._heard(door, t)
        else:
            self.faulty.add(door)
        return True

    def _heard(self, door: str, t: float) -> None:
        self.seen[door] = max(t, self.seen.get(door, t))
        self.faulty.discard(door)

    def watching(self, t: float, watch_s: float) -> bool:
        """Does a counter watch every street door (each reported a crossing or a working heartbeat within
        `watch_s`, and no fault since)? Then nobody comes in unseen, bar the counter's misses."""
        return all(d not in self.faulty and t - self.seen.get(d, -math.inf) <= watch_s for d in self.states)

    def ratio(self, c: Crossing) -> float:
        """Likelihood ratio of the crossing for a phone that made it against one that did not:
        P(counted) / P(someone else's crossing within `match_s`), from the learned rate."""
        rate, at = self._rate.get((c.door, c.direction), (self.prior_rate_per_h / 3600.0, c.t))
        rate *= math.exp(-max(0.0, c.t - at) / self.rate_tau_s)
        self._rate[(c.door, c.direction)] = (rate + 1.0 / self.rate_tau_s, max(c.t, at))
        return max(1.0, self.detect_probability / (rate * self.match_s))

    def apply(
        self, post: np.ndarray, inside: np.ndarray, p_in: np.ndarray, t: float
    ) -> dict[int, tuple[float, np.ndarray, Share]]:
        """Fold the queued crossings into the predicted beliefs `post` (I, K, rows summing to 1) of a
        step at `t`, in place. Returns the rows a crossing moved, each with P(H0) and its part that
        did not cross (on the scale of `post`): the engine announces them only once their own
        readings since favour the crossed part (a passer-by at the door while someone else goes
        in does not walk in, and the next windows say so), and what each got of the crossings (`Share`)."""
        moved: dict[int, tuple[float, np.ndarray, Share]] = {}
        ratios: dict[tuple[str, Direction], list[float]] = {}
        for c in sorted(self.pending, key=lambda c: c.t):
            if t - c.t <= self.max_age_s:
                ratios.setdefault((c.door, c.direction), []).append(self.ratio(c))
        self.pending = []
        for (door, direction), each in ratios.items():
            s = self.states[door]
            going_in = direction == "in"
            rows = np.flatnonzero(~inside if going_in else inside & (p_in < self.out_below))
            cross, dest = (s.near_out, s.into) if going_in else (s.near_in, s.onto)
            if not len(rows) or dest.shape[1] == 0:
                continue
            # belief on this side of the door, near it, per offset (r, offsets): of these rows alone
            crossing = post[np.ix_(rows, cross.reshape(-1))].reshape(len(rows), *cross.shape).sum(axis=2)
            m = crossing.sum(axis=1)
            prior = np.clip(self.kappa * m, 0.0, 1.0)
            odds = prior * min(self.max_ratio, float(np.mean(each))) / np.maximum(1.0 - prior, 1e-9)
            # P(H1 | crossings), per row: each crossing is one person's, a phone's or (likelier) someone
            # else's, so n crossings share out n people among the phones that fit them and the anonymous;
            # never more than the phone alone at the door would get (a couple: two crossings, two phones)
            n = len(each)
            w = np.minimum(odds / (1.0 + odds), n * odds / (n + odds.sum()))
            keep = w > self.weigh_above
            rows, w, crossing, m, odds = rows[keep], w[keep], crossing[keep], m[keep], odds[keep]
            # (1 - w) x the belief + w x the belief under H1: just through the door, the phone's offsets kept
            scale = np.ones(len(post), dtype=np.float32)  # all rows in one pass: a row of `post` is strided
            scale[rows] = 1.0 - w
            post *= scale[:, None]
            group = (door, direction, t)
            parts = rows_of(post, rows)  # copies, in one pass
            moved |= {int(i): (1.0 - float(wi), parts[k], Share(group, float(wi), float(oi), n))
                      for k, (i, wi, oi) in enumerate(zip(rows, w, odds, strict=True))}
            into = (w / m)[:, None] * crossing / dest.shape[1]  # (r, offsets)
            post[np.ix_(rows, dest.reshape(-1))] += np.repeat(into, dest.shape[1], axis=1).astype(np.float32)
        return moved
