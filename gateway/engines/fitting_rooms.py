"""Where is each tagged garment? Cross-read arbitration, hold-over and fitting-room sessions.

Input: per-window RFID aggregates from the edge nodes (node, antenna, EPC, reads, RSSI mean,
window end) and the store layout (which antenna watches which fitting room, shelf or till).
Output: :class:`RoomEvent` s - ``item_shown`` / ``item_gone`` for every place (the shelf
tracker turns shelf ones into ``picked_up`` / ``returned``) and ``session_started`` /
``session_ended`` for fitting rooms - each stamped with the observation time.

Why it is not "the antenna that read it": fitting-room partitions are thin, so a garment in
room 1 is also read, more weakly, by room 2's antenna (a cross-read), and a garment on the
sales floor right in front of a curtain is read by every room's antenna. A tag belongs to the
place whose antennas read it strongest (a decaying peak of window RSSI per tag and place,
among places still reading it), it must be strong enough there for a confirmation time before
it is shown (or one window well above its level), and it moves to another place only when
that place beats the current one by a margin for a hysteresis time (rooms against shelves and
tills: on recent reads and the level the room reads it at, as shelves beside the rooms read
the garments inside them). A fitting room's thresholds are relative to what its own antenna
should read of a garment in the far part of the room, computed from the store file (antenna
power, position, facing, room polygon, walls: :func:`room_levels`), because readers and rooms
differ by 10 dB and more between stores. A shown tag stays through missed windows (the garment
is behind a body, or far from the antenna): it is gone after a number of its place's windows
without a keep read that grows the sparser its recent reads have been (``GONE_ODDS``; a few
more while it is still read weakly every window, as behind a body: ``BODY_SPELL_EXTRA``), after a
few without any read a garment still in its room could give if it gave one nearly every window
(``SILENT_BELOW_DB``; a solid read by its room's antenna is one however weak), or after a few
once another place reads it stronger than it ever did while the tag was shown (it is being
carried out: ``DEPART_DB``). Just after leaving a room, a
garment needs more strong windows to be shown in a room again (``HOP_S``), so that carrying it
out past the curtains is not a new try-on. Tags a window reads are decided at once (a garment is
shown on its own reader's window), the rest periodically. A crossing counter across a room's curtain
(:meth:`FittingRoomEngine.curtain`), where there is one, says who went in and out: a waiting
customer's garments are held back, and a silence inside is not taken for leaving unless someone left.

Pure: no clock (observation times come with the windows), no I/O, no logging. Vectorised over
all tags x places with numpy; ``tests/test_rfid_fitting_rooms.py`` checks it against a plain
Python reference of the same rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from scipy.special import betainc

if TYPE_CHECKING:
    from firmware_config.store import Antenna, Node, StoreFile

__all__ = [
    "FittingReport",
    "FittingRoomEngine",
    "Layout",
    "Obs",
    "Place",
    "PlaceParams",
    "RoomEvent",
    "fitting_reports",
]

FITTING_ROOM = "fitting_room"
SHELF = "shelf"
OTHER = "other"


@dataclass(frozen=True, slots=True)
class PlaceParams:
    """Arbitration thresholds of one kind of place; every value has its reason at the definition.

    A tag's *score* at a place is a decaying peak: its strongest recent window RSSI there,
    minus ``decay_db_per_s`` for every second since. A garment read strongly most windows but
    weakly when a body is between it and the antenna keeps a steady score; one that left is
    forgotten at a known rate. Arbitration compares scores; presence itself is kept alive by
    reads of at least ``keep_dbm`` and lost after ``hold_s`` without one.
    """

    enter_dbm: float  # score a tag needs before it can be shown here
    keep_dbm: float  # a window read at least this strong keeps a shown tag here...
    hold_s: float  # ...and it is gone after this long without one whatever the windows say
    confirm_n: int  # windows at or above enter_dbm (gaps <= RUN_GAP_S) before a tag is shown
    decay_db_per_s: float  # how fast the arbitration score forgets a strong read
    miss_min: int = 3  # a shown tag is gone after this many of its place's windows without a keep read...
    miss_max: int = 9  # ...or more, up to this, the sparser its reads have been (see GONE_ODDS)
    #: share of inventory rounds that read a garment just outside the place (room_outside_share);
    #: 1.0: the read count does not tell inside from outside (only SOLID_READ_SHARE applies)
    outside_share: float = 1.0


#: Fitting rooms. Why: unblocked in-room reads sit at -40..-62 dBm, cross-reads through a
#: partition and floor tags in front of the curtain at -66..-80 (simulator, boutique); -63
#: splits them. A read behind the customer's body loses 12-20 dB, and a carried garment is
#: behind the body about one window in three (in spells: BODY_SPELL_EXTRA): 9 missed windows make a false
#: "gone" rare (0.35^9 per window) and still show a garment carried out as gone within ~10 s.
#: For rooms in a store file the enter/keep levels come from room_params instead.
ROOM_PARAMS = PlaceParams(
    enter_dbm=-63.0, keep_dbm=-70.0, hold_s=12.0, confirm_n=2, decay_db_per_s=2.5, miss_min=3, miss_max=9
)
#: Shelves. Why: shelf antennas look along a rail and read their own stock from -45 to -80; a
#: shelf is slow-moving, so a longer hold-over trades latency for fewer spurious picked_up/returned.
SHELF_PARAMS = PlaceParams(
    enter_dbm=-78.0, keep_dbm=-84.0, hold_s=20.0, confirm_n=2, decay_db_per_s=1.0, miss_min=20, miss_max=20
)
#: Tills and other antennas: only there so a garment at the till is not put in a nearby room.
OTHER_PARAMS = PlaceParams(
    enter_dbm=-70.0, keep_dbm=-80.0, hold_s=5.0, confirm_n=1, decay_db_per_s=2.0, miss_min=5, miss_max=5
)
#: A room's enter / keep thresholds sit this far below its reference level (room_levels).
ROOM_ENTER_BELOW_DB = 2.0
ROOM_KEEP_BELOW_DB = 8.0
DEFAULT_PARAMS: Mapping[str, PlaceParams] = {
    FITTING_ROOM: ROOM_PARAMS,
    SHELF: SHELF_PARAMS,
    OTHER: OTHER_PARAMS,
}

#: A run of strong windows is broken by a gap longer than this. Why: two or three body-blocked
#: windows in a row must not reset the confirmation of a garment that is plainly there.
RUN_GAP_S = 3.5
#: Another place must beat the current one by this margin... Why: cross-reads are 10-25 dB
#: weaker than own reads; 6 dB is above the spread of 1-s window means (sigma ~2 dB).
MARGIN_DB = 6.0
#: ...for this long before the tag moves (hysteresis). Why: a garment carried past a room or
#: held up to the curtain must not hop back and forth; a real move lasts far longer.
MOVE_S = 3.0
#: A fitting room takes a garment over from a shelf or till when it reads it this much stronger
#: than that place's recent solid reads (a peak decaying at FAST_DECAY_DB_PER_S), not the slow peak of
#: the garment carried past the shelf. Why: a shelf antenna next to the rooms reads a garment
#: inside a room 5-10 dB weaker than the room's own antenna (flagship simulator), while a
#: garment on a shelf is read by a room antenna, if at all, far weaker.
ROOM_OVER_PLACE_DB = 3.0
FAST_DECAY_DB_PER_S = 2.5
#: Decisions are taken at most this often. Why: readers send their windows a few ms apart;
#: deciding once per half second sees them together and keeps 40 readers cheap.
DECIDE_EVERY_S = 0.5
#: Readers' windows ending this close together report the same moment. Why: a garment read strongly
#: by its room is shown once every other place that read it lately has reported that moment too
#: (one of them might read it stronger), not a whole window later; readers send their windows a
#: few ms apart, a reader running on its own phase is waited for.
SAME_MOMENT_S = 0.25
#: Only a window that read the tag in at least this share of the most reads its place has given
#: one tag in a window counts towards showing it (runs of strong windows, STRONG_DB). Why: a
#: garment on a shelf beside a room is read by the room's antenna once or twice a window, and one
#: faded read can be 8 dB above its mean; a garment inside the room is read in nearly every round.
SOLID_READ_SHARE = 0.5
#: ...and at least this many reads. Why: until a place has read a garment in every round (its most
#: reads learned), one or two reads say nothing about where the garment is.
SOLID_MIN_READS = 3
#: A read at or above a room's enter level counts towards showing a garment anyway (as a solid one)
#: once the reads of its span (reads at that level with gaps <= RUN_GAP_S) are more than a garment
#: just outside the room (room_outside_share) gives in that many rounds but this often. Why: where
#: the room's far part is barely energised its garments are read in one to three of eight rounds,
#: never half of the most, while a garment outside is read in fewer still (docs/fitting-rooms.md).
SOLID_OUTSIDE_ODDS = 0.01
#: A shown tag is gone once the chance that a tag still there would have been missed that many
#: windows in a row, at the rate it has been read so far, falls below this (clipped to the
#: place's miss_min..miss_max windows). Why: a garment read every window (near the antenna,
#: unblocked) is plainly gone after 3 missed windows; one at the far end of the room, read one
#: window in two, needs 9 or so before its absence means anything.
GONE_ODDS = 1e-5
#: For this long after a garment is gone from a fitting room, showing it in a room takes this many
#: more strong windows. Why: carried out past the neighbouring curtains (or back past its own)
#: it is read strongly for a window or two; nobody tries one garment in two rooms in a minute.
HOP_S = 15.0
HOP_EXTRA_N = 1
#: A run whose strongest solid read (SOLID_READ_SHARE) is this far above the room's enter level
#: shows the garment after one window. Why: the enter level already sits below what the room's
#: far part reads, and outside the room solid reads that strong do not occur (simulator library:
#: under 1 in 10^4 of the reads of garments outside); waiting for a second window costs a second.
STRONG_DB = 0.0
#: The read rate that sets the missed windows of GONE_ODDS weighs each window by this per window
#: of age. Why: a garment moved in the room (hung up near the antenna, carried to the far corner)
#: changes its read rate; the last half minute tells, not the whole stay.
RATE_DECAY = 0.97
#: ...from a Beta(RATE_PRIOR, RATE_PRIOR) prior. Why: ten windows of reads say little yet; a garment
#: read in all of them may still be behind its customer for six in a row.
RATE_PRIOR = 2.0
#: Weight of a new keep read in the running mean of a shown tag's level at its place.
LEVEL_WEIGHT = 0.2
#: A shown tag read by another place DEPART_DB stronger than that place read it since it was shown,
#: while its own place still read it (a keep read within RUN_GAP_S), and at least at that place's
#: enter level, after DEPART_AFTER_S shown, is leaving: for
#: DEPART_WITHIN_S it is gone after DEPART_NEED missed windows.
DEPART_DB = 9.0
DEPART_AFTER_S = 20.0
DEPART_WITHIN_S = 10.0
DEPART_NEED = 5
#: A read by a garment's room this far below its level there (LEVEL_WEIGHT) is not that garment in
#: the room behind a body (12-20 dB down); any read above it is. Why: a garment read in every window,
#: strongly or behind the body, that gets no such read for a few windows has left the room.
SILENT_BELOW_DB = 22.0
#: A room's garment that lost its keep reads but is still read in every window (as weakly as a
#: garment behind its customer's body) is gone after this many more missed windows. Why: a body
#: hides a customer's whole bundle for a spell (a second or two, sometimes several), so runs of
#: weak windows are longer than independent misses would make them; a garment carried out
#: through the curtain falls silent within a few windows instead (SILENT_BELOW_DB).
BODY_SPELL_EXTRA = 3
#: A room's garment found gone on another reader's window, before the room's own window of that
#: moment is in, waits for it (once per shown span), at most this long; a solid read by the room in
#: it keeps the garment. Why: a garment behind its customer is read in most rounds of that window,
#: one on a rail outside in one or two; a reader that stopped sending must not hold its garments
#: (a room's window is 1 s). docs/fitting-rooms.md, issue #20.
GONE_WAIT_MAX_S = 2.0
# A crossing counter across a room's curtain (docs/fitting-rooms.md, "Curtain sensors"): while its last
# crossing was inward, someone is in the room, and a garment whose reads there began more than
# QUEUE_AFTER_S after that crossing (and not broken by as long a gap) is a waiting customer's, read
# through the curtain (the garments carried in are read within seconds): held until an inward
# crossing after its reads began, the room freed, or QUEUE_MAX_S of reads (a garment handed in
# without a crossing is not held for ever).
QUEUE_AFTER_S = 20.0
QUEUE_MAX_S = 600.0
# Someone went out through the curtain since a garment was shown (or came in after it: the party
# before left unseen), and the room has not read it at its keep level more than OUT_WITHIN_S after
# that (the curtain passage): it may have gone with them, so fewer missed windows say so (OUT_ODDS
# in place of GONE_ODDS). Nobody crossed since (but its own carrier, who may cross a step after it
# is shown: CURTAIN_SLACK_S), and the room is occupied: the garment is still inside, however long
# its silence behind the body, up to OCCUPIED_HOLD_S without a keep read (the longest silences
# inside a stay are 15 windows, docs/fitting-rooms.md; beyond, a way out the sensor missed).
OUT_ODDS = 1e-2
OUT_WITHIN_S = 3.0
CURTAIN_SLACK_S = 2.0
OCCUPIED_HOLD_S = 16.0
#: A tag not read anywhere for this long and not shown is forgotten (its slot reused).
FORGET_AFTER_S = 600.0


# ------------------------------------------------------------------------------------------
# What a room's own antenna should see of a garment inside the room, from the store file.
#
# Absolute thresholds cannot serve every store: a 20 dBm reader on a 3 m deep room reads its
# far corner at about -62 dBm, a 12 dBm reader on a 4 m deep room at about -72. So each room's
# levels are set relative to the weakest read its antenna should get from inside the room,
# computed with a textbook UHF link budget (the installer's site survey by calculation). Only
# differences between rooms matter much; the constants are generic, not fitted to a store.

LINK_PL_1M_DB = 31.0  # free-space loss at 1 m, 868-915 MHz
LINK_PL_EXPONENT = 2.0  # indoor line of sight
LINK_GAIN_DBI = 6.0  # a typical circular-polarised patch
LINK_PATTERN_EXPONENT = 2.0  # cardioid beam of a patch ((1 + cos) / 2) ** p
LINK_BACK_LOBE_DB = 18.0  # gain floor behind the patch
LINK_BACKSCATTER_DB = 15.0  # tag modulation and reader losses on the way back
LINK_TAG_SENSITIVITY_DBM = -20.0  # common passive tag chip: reads fail below this forward power
#: The room's reference is this quantile of the levels over its floor area: its far part,
#: without letting one corner behind a pillar of the pattern decide.
ROOM_FAR_QUANTILE = 0.1
ROOM_GRID_M = 0.2  # survey grid inside the room polygon (inset by one step)
#: A room whose far part gets less than this forward power above the tag's wake-up level reads a
#: garment there only on upward fades, one window in two or fewer, in runs of misses: a shown
#: tag's missed-window cap there is ROOM_EDGE_MISS_MAX instead of ROOM_PARAMS.miss_max. Why: a cap
#: of 9 for a garment read every other window drops it every few minutes (flagship simulator,
#: 12 dBm readers); where reads are solid a lower cap shows garments carried out sooner.
ROOM_EDGE_MARGIN_DB = 3.0
ROOM_EDGE_MISS_MAX = 15
#: Per-read spread of the forward power (multipath, frequency hopping) and how sharply a tag stops
#: answering near its wake-up level: together they turn a forward margin into a read share per round.
LINK_FADING_DB = 3.0
LINK_READ_WIDTH_DB = 1.5
#: "Just outside a room" is this quantile of the forward power over the floor of every other zone
#: within LINK_REACH_M of the room's antenna: the strongest 1 % of the floor around it.
ROOM_OUTSIDE_QUANTILE = 0.99
LINK_REACH_M = 8.0


def link_rssi(
    power_dbm: float,
    ant_xy: tuple[float, float],
    facing_deg: float,
    pts: np.ndarray,
    walls: np.ndarray,
    forward: bool = False,
) -> np.ndarray:
    """Expected RSSI (dBm) of a read of a tag at each of ``pts`` (N, 2) by one antenna (with
    ``forward``: the tag's forward power instead).

    Two-way link budget: the tag's forward power is ``power + one_way``, its reply loses
    ``one_way`` again plus the backscatter loss. A tag near the edge of its read range answers
    only on upward fades, so the RSSI of the reads it does give sits near ``sensitivity +
    one_way - backscatter``: the level returned is the larger of the two.
    """
    v = pts - np.asarray(ant_xy, dtype=np.float64)[None, :]
    d = np.maximum(np.hypot(v[:, 0], v[:, 1]), 0.1)
    rad = np.radians(facing_deg)
    cos = (v[:, 0] * np.cos(rad) + v[:, 1] * np.sin(rad)) / d
    lin = np.maximum(((1.0 + cos) / 2.0) ** LINK_PATTERN_EXPONENT, 10 ** (-LINK_BACK_LOBE_DB / 10))
    one_way = LINK_GAIN_DBI + 10 * np.log10(lin) - LINK_PL_1M_DB - 10 * LINK_PL_EXPONENT * np.log10(d)
    if len(walls):
        from firmware_config.geometry import crossings

        cross = crossings(pts, np.asarray([ant_xy], dtype=np.float64), walls[:, :4])[:, 0, :]
        one_way = one_way - (cross * walls[None, :, 4]).sum(axis=1)
    if forward:
        return power_dbm + one_way
    nominal = power_dbm + 2 * one_way - LINK_BACKSCATTER_DB
    return np.maximum(nominal, LINK_TAG_SENSITIVITY_DBM + one_way - LINK_BACKSCATTER_DB)


def _room_antennas(store: StoreFile, ants: Mapping[tuple[str, int], str], pid: str) -> list[tuple[Node, Antenna]]:
    out = []
    for n in store.nodes:
        if n.rfid is None:
            continue
        for a in n.rfid.antennas:
            if ants.get((n.id, a.id)) == pid:
                out.append((n, a))
    return out


def _survey_grid(
    poly: list[tuple[float, float]], near: tuple[float, float, float] | None = None
) -> list[tuple[float, float]]:
    """Points ROOM_GRID_M apart inside a polygon (inset by one step); with ``near`` (x, y, r) only
    those within r of (x, y)."""
    from firmware_config.geometry import point_in_polygon

    xs, ys = [p[0] for p in poly], [p[1] for p in poly]
    g = ROOM_GRID_M
    gx = np.arange(min(xs) + g, max(xs) - g / 2, g)
    gy = np.arange(min(ys) + g, max(ys) - g / 2, g)
    cx, cy, r = near if near is not None else (0.0, 0.0, np.inf)
    gx, gy = gx[np.abs(gx - cx) <= r], gy[np.abs(gy - cy) <= r]
    return [
        (float(x), float(y))
        for x in gx
        for y in gy
        if np.hypot(x - cx, y - cy) <= r and point_in_polygon((x, y), poly)
    ]


def _walls(store: StoreFile) -> np.ndarray:
    return np.asarray([[*w.a, *w.b, w.attenuation_db] for w in store.walls], dtype=np.float64).reshape(-1, 5)


def room_levels(store: StoreFile, node: Node, antenna: Antenna, forward: bool = False) -> float:
    """The reference level of a fitting-room antenna: what it reads of a garment in the far part
    of its own room (``ROOM_FAR_QUANTILE`` of a survey grid over the room polygon); with
    ``forward``, the forward power that garment gets (against LINK_TAG_SENSITIVITY_DBM)."""
    zone_id = antenna.zone or node.zone
    if zone_id is None or node.rfid is None:
        raise ValueError(f"node {node.id!r} antenna {antenna.id}: not an RFID antenna in a zone")
    poly = [(float(p[0]), float(p[1])) for p in store.zone(zone_id).polygon]
    pts = np.asarray(_survey_grid(poly), dtype=np.float64).reshape(-1, 2)
    if not len(pts):
        pts = np.asarray([[sum(p[0] for p in poly) / len(poly), sum(p[1] for p in poly) / len(poly)]])
    lv = link_rssi(
        float(node.rfid.power_dbm),
        (antenna.position[0], antenna.position[1]),
        float(antenna.facing_deg),
        pts,
        _walls(store),
        forward,
    )
    return float(np.quantile(lv, ROOM_FAR_QUANTILE))


def read_share(forward_dbm: np.ndarray | float) -> np.ndarray:
    """Expected share of inventory rounds that read a tag getting ``forward_dbm`` on average."""
    z = np.linspace(-4.0, 4.0, 81)
    w = np.exp(-0.5 * z**2)
    f = np.asarray(forward_dbm, dtype=np.float64)[..., None] + LINK_FADING_DB * z
    p = 1.0 / (1.0 + np.exp(-(f - LINK_TAG_SENSITIVITY_DBM) / LINK_READ_WIDTH_DB))
    return np.asarray((p * w).sum(-1) / w.sum())


def room_outside_share(store: StoreFile, node: Node, antenna: Antenna) -> float:
    """Read share per round (read_share) of a garment just outside the antenna's room: the
    ROOM_OUTSIDE_QUANTILE of the forward power over every other zone's floor within LINK_REACH_M."""
    zone_id = antenna.zone or node.zone
    if node.rfid is None:
        raise ValueError(f"node {node.id!r} antenna {antenna.id}: not an RFID antenna")
    ax, ay = float(antenna.position[0]), float(antenna.position[1])
    pts = [
        p
        for z in store.zones
        if z.id != zone_id
        for p in _survey_grid([(float(q[0]), float(q[1])) for q in z.polygon], (ax, ay, LINK_REACH_M))
    ]
    if not pts:
        return 0.0
    fwd = link_rssi(
        float(node.rfid.power_dbm), (ax, ay), float(antenna.facing_deg), np.asarray(pts), _walls(store), True
    )
    return float(read_share(float(np.quantile(fwd, ROOM_OUTSIDE_QUANTILE))))


def room_params(far_dbm: float, far_forward_dbm: float = 0.0, outside_share: float = 1.0) -> PlaceParams:
    """A room's thresholds from its reference level (see ROOM_ENTER_BELOW_DB, ROOM_KEEP_BELOW_DB)
    and, from the forward power its far part gets, its missed-window cap (ROOM_EDGE_MARGIN_DB)."""
    edge = far_forward_dbm - LINK_TAG_SENSITIVITY_DBM < ROOM_EDGE_MARGIN_DB
    return PlaceParams(
        enter_dbm=far_dbm - ROOM_ENTER_BELOW_DB,
        keep_dbm=far_dbm - ROOM_KEEP_BELOW_DB,
        hold_s=ROOM_PARAMS.hold_s,
        confirm_n=ROOM_PARAMS.confirm_n,
        decay_db_per_s=ROOM_PARAMS.decay_db_per_s,
        miss_min=ROOM_PARAMS.miss_min,
        miss_max=ROOM_EDGE_MISS_MAX if edge else ROOM_PARAMS.miss_max,
        outside_share=outside_share,
    )


@dataclass(frozen=True, slots=True)
class Place:
    id: str
    kind: str  # fitting_room | shelf | other
    zone: str | None = None
    name: str = ""


@dataclass(frozen=True, slots=True)
class Obs:
    """One tag at one antenna in one window (as in ``edge.protocol.RfidObservation``)."""

    epc: str
    ant: int
    n: int
    rssi_mean: float
    rssi_max: float | None = None


@dataclass(frozen=True, slots=True)
class RoomEvent:
    """An engine output. ``t`` is the observation time (window end) that decided it."""

    kind: str  # item_shown | item_gone | session_started | session_ended
    t: float
    place: str
    place_kind: str
    epc: str | None = None
    session: int | None = None
    customer_id: str | None = None
    items: tuple[str, ...] = ()  # session_ended: items tried; item events: ()
    left_behind: tuple[str, ...] = ()  # session_ended: items still in the room
    since: float | None = None  # item_gone: when it was shown; session_ended: when it started


@dataclass(frozen=True, slots=True)
class FittingReport:
    """(room, epc, shown_at, gone_at): what the simulator's scorer takes."""

    room: str
    epc: str
    shown_at: float
    gone_at: float | None = None


@dataclass(frozen=True, slots=True)
class Layout:
    """Which place each (node, antenna) watches."""

    places: tuple[Place, ...]
    antennas: Mapping[tuple[str, int], str]  # (node, antenna id) -> place id
    #: Place-specific thresholds (place id -> params) overriding the per-kind defaults; from_store
    #: derives them for fitting rooms from where the antenna is and what it looks at.
    params: Mapping[str, PlaceParams] = field(default_factory=dict)

    @classmethod
    def from_store(cls, store: StoreFile) -> Layout:
        """Fitting-room antennas -> their room; shelf nodes -> the shelf (node id); others -> their zone."""
        kinds = {z.id: str(z.kind) for z in store.zones}
        names = {z.id: z.name for z in store.zones}
        places: dict[str, Place] = {}
        ants: dict[tuple[str, int], str] = {}
        for n in store.nodes:
            if n.rfid is None:
                continue
            for a in n.rfid.antennas:
                zone = a.zone or n.zone
                if zone is not None and kinds.get(zone) == FITTING_ROOM:
                    pid, kind, name = zone, FITTING_ROOM, names.get(zone) or zone
                elif str(n.role) == SHELF:
                    pid, kind, name = n.id, SHELF, n.id
                else:
                    pid, kind, name = zone or n.id, OTHER, names.get(zone or "", "") or n.id
                if pid in places and places[pid].kind != kind:
                    pid = f"{n.id}-{a.id}"
                places.setdefault(pid, Place(pid, kind, zone, name))
                ants[(n.id, a.id)] = pid
        params: dict[str, PlaceParams] = {}
        for pid, p in places.items():
            if p.kind == FITTING_ROOM:
                ra = _room_antennas(store, ants, pid)
                if ra:
                    far = min(room_levels(store, n, a) for n, a in ra)
                    fwd = max(room_levels(store, n, a, forward=True) for n, a in ra)
                    out = max(room_outside_share(store, n, a) for n, a in ra)
                    params[pid] = room_params(far, fwd, out)
        return cls(tuple(places.values()), ants, params)

    def rooms(self) -> list[str]:
        return [p.id for p in self.places if p.kind == FITTING_ROOM]


@dataclass(slots=True)
class _Session:
    id: int
    started: float
    customer_id: str | None
    tried: dict[str, float] = field(default_factory=dict)  # epc -> first shown


@dataclass(slots=True)
class _Room:
    session: _Session | None = None
    customers: dict[str, float] = field(default_factory=dict)  # customer -> entered at
    items: set[str] = field(default_factory=set)
    left: set[str] = field(default_factory=set)  # left behind by an ended session: not "tried" again


@dataclass(frozen=True, slots=True)
class _Scores:
    """One decision's view of tags ``a`` (arrays aligned with ``a``)."""

    best: np.ndarray  # the place that scores best (a room taking a garment over from a shelf)
    best_score: np.ndarray
    cur: np.ndarray  # the place it is shown at, -1 for none
    has: np.ndarray  # shown somewhere
    cur_c: np.ndarray  # cur, 0 where not shown (safe to index with)
    cur_score: np.ndarray  # the current place's score to beat


def _count_hits(hits: np.ndarray, windows: np.ndarray, last: np.ndarray, ti: np.ndarray, win: np.ndarray) -> None:
    """Fold a read of tags ``ti`` in their place's window ``win`` into decayed read counts (RATE_DECAY)."""
    gap = win - last[ti]
    f = RATE_DECAY**gap
    hits[ti] = hits[ti] * f + 1.0
    windows[ti] = windows[ti] * f + (gap if RATE_DECAY >= 1.0 else (1.0 - f) / (1.0 - RATE_DECAY))
    last[ti] = win


class FittingRoomEngine:
    """Tag -> place arbitration for the whole store, plus fitting-room sessions.

    Feed windows with :meth:`add_window` and call :meth:`advance` with the latest observation
    time; both return the events they caused. Presence (optional) comes in through
    :meth:`customer_entered` / :meth:`customer_left`.
    """

    def __init__(
        self,
        layout: Layout,
        params: Mapping[str, PlaceParams] | None = None,
        *,
        margin_db: float = MARGIN_DB,
        move_s: float = MOVE_S,
        decide_every_s: float = DECIDE_EVERY_S,
        capacity: int = 1024,
    ) -> None:
        self.layout = layout
        prm = {**DEFAULT_PARAMS, **(params or {})}
        self.places = list(layout.places)
        self.place_index = {p.id: i for i, p in enumerate(self.places)}
        self.ant_place = {k: self.place_index[v] for k, v in layout.antennas.items()}
        self.node_ants: dict[str, dict[int, int]] = {}
        for (node, ant), pi in self.ant_place.items():
            self.node_ants.setdefault(node, {})[ant] = pi
        self.node_places = {
            n: np.unique(np.asarray(list(a.values()), dtype=np.int64)) for n, a in self.node_ants.items()
        }
        self._init_places([layout.params.get(p.id) or prm[p.kind] for p in self.places])
        self.margin, self.move_s, self.decide_every = margin_db, move_s, decide_every_s
        self._init_tags(max(16, capacity))
        self._last_decision = -np.inf
        self.now = -np.inf
        self.rooms: dict[str, _Room] = {p.id: _Room() for p in self.places if p.kind == FITTING_ROOM}
        self._session_seq = 0
        # the latest inward and outward crossing of each place's curtain sensor (-inf: none heard)
        self.in_t = np.full(self._P, -np.inf)
        self.out_t = np.full(self._P, -np.inf)
        self.unknown_antennas: dict[tuple[str, int], int] = {}

    def _init_places(self, pp: list[PlaceParams]) -> None:
        """Per-place thresholds and window counters, one array entry per place."""
        self.is_room = np.asarray([p.kind == FITTING_ROOM for p in self.places], dtype=bool)
        self.enter = np.asarray([q.enter_dbm for q in pp], dtype=np.float64)
        self.keep = np.asarray([q.keep_dbm for q in pp], dtype=np.float64)
        self.hold = np.asarray([q.hold_s for q in pp], dtype=np.float64)
        self.confirm_n = np.asarray([q.confirm_n for q in pp], dtype=np.int64)
        self.decay = np.asarray([q.decay_db_per_s for q in pp], dtype=np.float64)
        self.miss_min = np.asarray([q.miss_min for q in pp], dtype=np.int64)
        self.miss_max = np.asarray([q.miss_max for q in pp], dtype=np.int64)
        self.wins = np.zeros(len(self.places), dtype=np.int64)  # windows received per place
        self.place_t = np.full(len(self.places), -np.inf)  # end of the latest window per place
        self._pending: set[int] = set()  # strong single reads waiting for the other places' windows
        self._P = len(self.places)
        self.max_n = np.ones(self._P)  # most reads one tag gave one window at each place (SOLID_READ_SHARE)
        self.outside = np.asarray([q.outside_share for q in pp], dtype=np.float64)

    def _init_tags(self, cap: int) -> None:
        """Per-tag state: one row per tag slot (tags x places for the 2-d ones); grown by _grow."""
        P = self._P
        self.epcs: list[str | None] = [None] * cap
        self.index: dict[str, int] = {}
        self._free: list[int] = list(range(cap - 1, -1, -1))
        self.peak = np.full((cap, P), -np.inf)  # decaying peak: value at peak_t
        self.peak_t = np.zeros((cap, P))
        self.fpeak = np.full((cap, P), -np.inf)  # the same at FAST_DECAY_DB_PER_S: recent reads only
        self.fpeak_t = np.zeros((cap, P))
        self.last_q = np.full((cap, P), -np.inf)  # last solid window read >= enter_dbm
        self.last_k = np.full((cap, P), -np.inf)  # last window read >= keep_dbm
        self.last_r = np.full((cap, P), -np.inf)  # last window read at all
        self.since = np.full((cap, P), -np.inf)  # first window of the current span of reads (gaps <= QUEUE_AFTER_S)
        self.run_n = np.zeros((cap, P), dtype=np.int64)  # strong windows in the current run
        self.cur = np.full(cap, -1, dtype=np.int64)
        self.cur_since = np.zeros(cap)
        self.chal = np.full(cap, -1, dtype=np.int64)
        self.chal_since = np.zeros(cap)
        self.seen = np.full(cap, -np.inf)  # last read anywhere
        # at the current place, counted in its windows as of the last keep read: keep reads and
        # windows, each weighted RATE_DECAY ** (windows ago); and that last keep read's window
        self.hs = np.zeros(cap)
        self.ns = np.zeros(cap)
        self.last_hit = np.zeros(cap, dtype=np.int64)
        # the same for any read a garment still in its room could give (SILENT_BELOW_DB)
        self.hw = np.zeros(cap)
        self.nw = np.zeros(cap)
        self.last_w = np.zeros(cap, dtype=np.int64)
        self.lvl = np.zeros(cap)  # running mean RSSI of those keep reads (LEVEL_WEIGHT)
        self.left_t = np.full(cap, -np.inf)  # when it was last gone from a fitting room
        self.omax = np.full((cap, P), -np.inf)  # strongest read at each place since shown
        self.dep_t = np.full(cap, -np.inf)  # last read saying it is leaving its place
        self.qmax = np.full((cap, P), -np.inf)  # strongest read of the current run of strong windows
        self.wait_t = np.full(cap, -np.inf)  # when its gone waited for its room's window; inf: done (GONE_WAIT_MAX_S)
        self.last_s = np.full(cap, -np.inf)  # last solid read by the place it is shown at (SOLID_READ_SHARE)
        # the current span of reads >= enter_dbm at each place (_inside_evidence): reads, rounds,
        # its last read and that read's window of the place
        self.ev_n = np.zeros((cap, P))
        self.ev_r = np.zeros((cap, P))
        self.ev_t = np.full((cap, P), -np.inf)
        self.ev_w = np.zeros((cap, P), dtype=np.int64)

    # ---------------------------------------------------------------------------------- tags

    def _grow(self) -> None:
        old = len(self.epcs)
        new = old * 2
        P = self._P

        def ext(a: np.ndarray, fill: float) -> np.ndarray:
            shape = (new, P) if a.ndim == 2 else (new,)
            b = np.full(shape, fill, dtype=a.dtype)
            b[:old] = a
            return b

        self.peak = ext(self.peak, -np.inf)
        self.peak_t = ext(self.peak_t, 0.0)
        self.fpeak = ext(self.fpeak, -np.inf)
        self.fpeak_t = ext(self.fpeak_t, 0.0)
        self.last_q = ext(self.last_q, -np.inf)
        self.last_k = ext(self.last_k, -np.inf)
        self.last_r = ext(self.last_r, -np.inf)
        self.since = ext(self.since, -np.inf)
        self.run_n = ext(self.run_n, 0)
        self.cur = ext(self.cur, -1)
        self.cur_since = ext(self.cur_since, 0.0)
        self.chal = ext(self.chal, -1)
        self.chal_since = ext(self.chal_since, 0.0)
        self.seen = ext(self.seen, -np.inf)
        self.hs = ext(self.hs, 0.0)
        self.ns = ext(self.ns, 0.0)
        self.last_hit = ext(self.last_hit, 0)
        self.hw = ext(self.hw, 0.0)
        self.nw = ext(self.nw, 0.0)
        self.last_w = ext(self.last_w, 0)
        self.lvl = ext(self.lvl, 0.0)
        self.left_t = ext(self.left_t, -np.inf)
        self.omax = ext(self.omax, -np.inf)
        self.dep_t = ext(self.dep_t, -np.inf)
        self.qmax = ext(self.qmax, -np.inf)
        self.wait_t = ext(self.wait_t, -np.inf)
        self.last_s = ext(self.last_s, -np.inf)
        self.ev_n = ext(self.ev_n, 0.0)
        self.ev_r = ext(self.ev_r, 0.0)
        self.ev_t = ext(self.ev_t, -np.inf)
        self.ev_w = ext(self.ev_w, 0)
        self.epcs.extend([None] * (new - old))
        self._free.extend(range(new - 1, old - 1, -1))

    def _slot(self, epc: str) -> int:
        i = self.index.get(epc)
        if i is None:
            if not self._free:
                self._grow()
            i = self._free.pop()
            self.index[epc] = i
            self.epcs[i] = epc
        return i

    def _forget(self, idx: np.ndarray) -> None:
        for i in idx.tolist():
            epc = self.epcs[i]
            if epc is not None:
                del self.index[epc]
            self.epcs[i] = None
            self._free.append(i)
        self.peak[idx] = -np.inf
        self.peak_t[idx] = 0.0
        self.fpeak[idx] = -np.inf
        self.fpeak_t[idx] = 0.0
        self.last_q[idx] = -np.inf
        self.last_k[idx] = -np.inf
        self.last_r[idx] = -np.inf
        self.since[idx] = -np.inf
        self.run_n[idx] = 0
        self.left_t[idx] = -np.inf
        self.ev_t[idx] = -np.inf
        self.omax[idx] = -np.inf
        self.dep_t[idx] = -np.inf
        self.qmax[idx] = -np.inf
        self.seen[idx] = -np.inf
        self.chal[idx] = -1

    @property
    def tracked(self) -> int:
        return len(self.index)

    # -------------------------------------------------------------------------------- ingest

    def add_window(self, node: str, t: float, observations: Iterable[Obs]) -> list[RoomEvent]:
        """One reader window ending at ``t``; returns the events a due decision produced."""
        ants = self.node_ants.get(node)
        if ants is not None:
            self.wins[self.node_places[node]] += 1
            self.place_t[self.node_places[node]] = np.maximum(self.place_t[self.node_places[node]], t)
        ti: list[int] = []
        pi: list[int] = []
        xs: list[float] = []
        ns: list[int] = []
        if ants is not None:
            slot = self._slot
            for o in observations:
                p = ants.get(o.ant)
                if p is None:
                    key = (node, o.ant)
                    self.unknown_antennas[key] = self.unknown_antennas.get(key, 0) + 1
                    continue
                ti.append(slot(o.epc))
                pi.append(p)
                xs.append(o.rssi_mean)
                ns.append(o.n)
        else:
            for o in observations:
                key = (node, o.ant)
                self.unknown_antennas[key] = self.unknown_antennas.get(key, 0) + 1
        if not ti:
            return self._touched(np.empty(0, dtype=np.int64), t)
        tia = np.asarray(ti, dtype=np.int64)
        self._update(tia, np.asarray(pi, dtype=np.int64), np.asarray(xs, dtype=np.float64), t, np.asarray(ns))
        return self._touched(tia, t)

    def _touched(self, ti: np.ndarray, t: float) -> list[RoomEvent]:
        """Decide now for the tags this window read (a garment is shown as soon as its own
        reader's window confirms it, not at the next periodic decision), and those waiting for
        this moment's windows of other places (SAME_MOMENT_S); everyone else at the periodic
        decision."""
        if t - self._last_decision >= self.decide_every or t < self.now:
            return self.advance(t)
        self.now = max(self.now, t)
        out: list[RoomEvent] = []
        if self._pending:
            ti = np.concatenate([ti, np.fromiter(self._pending, dtype=np.int64)])
        if len(ti):
            self._decide(np.unique(ti), t, out)
        return out

    def add_arrays(
        self, node_of: Sequence[str], t: float, epc: Sequence[str], ant: np.ndarray, rssi: np.ndarray
    ) -> list[RoomEvent]:
        """Bulk form of :meth:`add_window` for many readers' windows ending at ``t`` (benchmarks, sim)."""
        pis = np.asarray(
            [self.node_ants.get(n, {}).get(int(a), -1) for n, a in zip(node_of, ant, strict=True)],
            dtype=np.int64,
        )
        ok = pis >= 0
        for n in set(node_of):
            if n in self.node_places:
                self.wins[self.node_places[n]] += 1
                self.place_t[self.node_places[n]] = np.maximum(self.place_t[self.node_places[n]], t)
        ti = np.asarray([self._slot(e) for e, k in zip(epc, ok.tolist(), strict=True) if k], dtype=np.int64)
        if not len(ti):
            return self.advance(t)
        self._update(ti, pis[ok], np.asarray(rssi, dtype=np.float64)[ok], t)
        return self._touched(ti, t)

    def _update(self, ti: np.ndarray, pi: np.ndarray, x: np.ndarray, t: float, n: np.ndarray | None = None) -> None:
        """Fold one moment's reads (tag, place, window RSSI, read count; no count: solid) into the state."""
        if n is None:
            n = np.full(len(ti), np.inf)
        # Several antennas of one place (a shelf run) in one window: keep the strongest.
        if len(ti) > 1:
            key = ti * max(self._P, 1) + pi
            order = np.lexsort((-x, key))
            key, ti, pi, x, n = key[order], ti[order], pi[order], x[order], n[order]
            first = np.ones(len(key), dtype=bool)
            first[1:] = key[1:] != key[:-1]
            ti, pi, x, n = ti[first], pi[first], x[first], n[first]
        finite = np.isfinite(n)
        np.maximum.at(self.max_n, pi[finite], n[finite])
        solid = n >= np.maximum(SOLID_READ_SHARE * self.max_n[pi], SOLID_MIN_READS)
        held = self.peak[ti, pi] - self.decay[pi] * (t - self.peak_t[ti, pi])
        up = x >= held
        tu, pu = ti[up], pi[up]
        self.peak[tu, pu] = x[up]
        self.peak_t[tu, pu] = t
        # recent reads are solid ones: a shelf reads a garment carried off it into a room the way it
        # reads one beside it, in a round or two a window, however strongly (ROOM_OVER_PLACE_DB)
        up = (x >= self.fpeak[ti, pi] - FAST_DECAY_DB_PER_S * (t - self.fpeak_t[ti, pi])) & solid
        tu, pu = ti[up], pi[up]
        self.fpeak[tu, pu] = x[up]
        self.fpeak_t[tu, pu] = t
        c = self.cur[ti]
        dep = (
            (c >= 0)
            & (c != pi)
            & (x >= np.maximum(self.omax[ti, pi] + DEPART_DB, self.enter[pi]))
            & (t - self.cur_since[ti] >= DEPART_AFTER_S)
        )
        self.dep_t[ti[dep]] = t
        # the baseline is what each place read while the garment's own place still read it: the
        # rising reads of a shelf it is carried towards must not raise it on the way out
        steady = (c >= 0) & (t - self.last_k[ti, np.maximum(c, 0)] <= RUN_GAP_S)
        self.omax[ti[steady], pi[steady]] = np.maximum(self.omax[ti[steady], pi[steady]], x[steady])
        fresh = t - self.last_r[ti, pi] > QUEUE_AFTER_S
        self.since[ti[fresh], pi[fresh]] = t
        self.last_r[ti, pi] = t
        k = x >= self.keep[pi]
        self.last_k[ti[k], pi[k]] = t
        at = self.cur[ti] == pi
        self.last_s[ti[at & solid]] = t
        # A room's own solid read (SOLID_READ_SHARE) of its garment, however weak, is not silence: near
        # the antenna a garment behind the body is still read in most rounds, 20-25 dB down, while
        # outside the curtain a room reads it once or twice a window.
        w = at & self.is_room[pi] & ((x >= np.minimum(self.keep[pi], self.lvl[ti] - SILENT_BELOW_DB)) | solid)
        _count_hits(self.hw, self.nw, self.last_w, ti[w], self.wins[pi[w]])
        h = k & at
        th = ti[h]
        _count_hits(self.hs, self.ns, self.last_hit, th, self.wins[pi[h]])
        self.lvl[th] += LEVEL_WEIGHT * (x[h] - self.lvl[th])
        q = x >= self.enter[pi]
        # only where the read count can tell inside from outside (a place with outside_share < 1)
        e = q & (self.outside[pi] < 1.0)
        q &= solid
        q[e] |= self._inside_evidence(ti[e], pi[e], n[e], t)
        if q.any():
            tq, pq = ti[q], pi[q]
            broken = t - self.last_q[tq, pq] > RUN_GAP_S
            self.run_n[tq, pq] = np.where(broken, 1, self.run_n[tq, pq] + 1)
            self.qmax[tq, pq] = np.where(broken, x[q], np.maximum(self.qmax[tq, pq], x[q]))
            self.last_q[tq, pq] = t
        self.seen[ti] = np.maximum(self.seen[ti], t)

    def _inside_evidence(self, ti: np.ndarray, pi: np.ndarray, n: np.ndarray, t: float) -> np.ndarray:
        """Fold reads at or above the enter level into each (tag, place)'s span of them (broken by a gap
        over RUN_GAP_S; a window of the place without one counts as max_n rounds without a read) and
        say which spans hold more reads than a garment just outside would give (SOLID_OUTSIDE_ODDS)."""
        broken = t - self.ev_t[ti, pi] > RUN_GAP_S
        rounds = self.max_n[pi]
        silent = np.maximum(self.wins[pi] - self.ev_w[ti, pi] - 1, 0) * rounds
        k = np.where(np.isfinite(n), n, rounds)
        self.ev_r[ti, pi] = np.where(broken, 0.0, self.ev_r[ti, pi] + silent) + rounds
        self.ev_n[ti, pi] = np.where(broken, 0.0, self.ev_n[ti, pi]) + k
        self.ev_t[ti, pi] = t
        self.ev_w[ti, pi] = self.wins[pi]
        reads = np.minimum(self.ev_n[ti, pi], self.ev_r[ti, pi])
        tail = betainc(np.maximum(reads, 1.0), self.ev_r[ti, pi] - reads + 1.0, self.outside[pi])
        return np.asarray((reads >= 1) & (tail < SOLID_OUTSIDE_ODDS))

    # ------------------------------------------------------------------------------ decisions

    def advance(self, now: float, force: bool = False) -> list[RoomEvent]:
        """Take the decisions due at observation time ``now`` (at most every ``decide_every_s``)."""
        if now > self.now:
            self.now = now
        if not force and now - self._last_decision < self.decide_every:
            return []
        self._last_decision = now
        if not self.index or not self._P:
            return []
        out: list[RoomEvent] = []
        cur = self.cur
        # unshown tags can only be confirmed with a strong read within RUN_GAP_S
        active = np.nonzero((cur >= 0) | (now - self.seen <= RUN_GAP_S))[0]
        if len(active):
            self._decide(active, now, out)
        old = np.nonzero((cur < 0) & (now - self.seen > FORGET_AFTER_S) & np.isfinite(self.seen))[0]
        if len(old):
            self._forget(old)
        return out

    def _decide(self, a: np.ndarray, now: float, out: list[RoomEvent]) -> None:
        """Decide tags ``a`` at ``now``: gone, moved to another place, or shown."""
        sc = self._scores(a, now)
        cur_fresh = self._fresh(a, now, sc)
        confirmed = self._confirmed(a, now, sc, cur_fresh)
        # 1. shown tags whose place lost them for longer than the hold-over: gone
        gone = sc.has & ~cur_fresh
        gone = self._gone_after_wait(a, sc.cur_c, now, gone)
        # 2. shown tags beaten by another place by the margin: challenge, move after hysteresis
        moving = self._challenge(a, now, sc, cur_fresh, confirmed)
        # 3. unshown tags confirmed somewhere: shown
        show = ~sc.has & confirmed
        for k in np.nonzero(gone | moving)[0].tolist():
            self._emit_gone(int(a[k]), int(sc.cur[k]), now, out)
        for k in np.nonzero(show | moving | (gone & confirmed & (sc.best != sc.cur)))[0].tolist():
            self._emit_shown(int(a[k]), int(sc.best[k]), now, out)

    def _gone_after_wait(self, a: np.ndarray, c: np.ndarray, now: float, gone: np.ndarray) -> np.ndarray:
        """Tags ``a`` gone from rooms ``c`` before the room's own window of this moment is in wait for it
        (pending), once per shown span (GONE_WAIT_MAX_S); then only a solid read by the room in that
        window keeps them. Returns which tags are gone now."""
        w = self.wait_t[a]
        first = gone & (w == -np.inf) & self.is_room[c] & (self.place_t[c] < now - SAME_MOMENT_S)
        waiting = np.isfinite(w)
        behind = waiting & (self.place_t[c] < w - SAME_MOMENT_S) & (now - w <= GONE_WAIT_MAX_S)
        verdict = waiting & ~behind
        self.wait_t[a[first]] = now
        self.wait_t[a[verdict]] = np.inf
        self._pending.update(a[first | behind].tolist())
        unread = self.last_s[a] < w - SAME_MOMENT_S
        return (gone & ~(first | behind | verdict)) | (verdict & (gone | unread))

    def _scores(self, a: np.ndarray, now: float) -> _Scores:
        """The best place of each tag ``a`` and how it scores against the tag's current place."""
        # Only places that still read the tag compete (and the one it is shown at). Why: a garment
        # taken off a shelf where it read at -45 must not wait, behind that decaying peak, to be
        # shown in the room it is in.
        # A shelf or till that stopped reading the garment it shows (taken away) holds it only at
        # its keep level, so the room the garment is now read in takes it over (at once: `_challenge`).
        stale = now - self.last_k[a] > RUN_GAP_S
        here = np.arange(self._P)[None, :] == self.cur[a][:, None]
        score = self.peak[a] - self.decay[None, :] * (now - self.peak_t[a])
        score = np.where(stale & here & ~self.is_room[None, :], np.minimum(score, self.keep[None, :]), score)
        score = np.where(stale & ~here, -np.inf, score)
        best = np.argmax(score, axis=1)
        rows = np.arange(len(a))
        best_score = score[rows, best]
        cur = self.cur[a]
        has = cur >= 0
        cur_c = np.where(has, cur, 0)
        cur_score = np.where(has, score[rows, cur_c], -np.inf)
        # A shelf or till holding a garment that a fitting room now reads competes with the room
        # on its recent reads only (FAST_DECAY_DB_PER_S) and by ROOM_OVER_PLACE_DB, not on the
        # slowly decaying peak of the garment carried past it: shelves next to the rooms keep
        # reading a garment in a room, 5-10 dB weaker than the room does.
        rscore = np.where(self.is_room[None, :], score, -np.inf)
        rbest = np.argmax(rscore, axis=1)
        rbs = rscore[rows, rbest]
        cur_fast = np.minimum(cur_score, self.fpeak[a, cur_c] - FAST_DECAY_DB_PER_S * (now - self.fpeak_t[a, cur_c]))
        steal = has & ~self.is_room[cur_c] & (rbs > cur_fast + ROOM_OVER_PLACE_DB)
        return _Scores(
            best=np.where(steal, rbest, best),
            best_score=np.where(steal, rbs, best_score),
            cur=cur,
            has=has,
            cur_c=cur_c,
            cur_score=np.where(steal, cur_fast + ROOM_OVER_PLACE_DB - self.margin, cur_score),
        )

    def _fresh(self, a: np.ndarray, now: float, sc: _Scores) -> np.ndarray:
        """Which shown tags their place still holds (fewer missed windows than GONE_ODDS allows)."""
        has, cur_c = sc.has, sc.cur_c
        # recent read rate at the current place, and how many missed windows make it gone
        need = self._need(self.hs[a], self.ns[a], cur_c)
        # another place has just read it stronger than ever while it was here: on its way out
        departing = has & (now - self.dep_t[a] <= DEPART_WITHIN_S)
        need = np.where(departing, np.minimum(need, DEPART_NEED), need)
        misses = self.wins[cur_c] - self.last_hit[a]
        # a room's garment that no longer gives even the weak reads it gave behind a body is gone
        # sooner: one read in every window, however weakly, is plainly gone after a few silent ones
        quiet = self.wins[cur_c] - self.last_w[a]
        silent = self.is_room[cur_c] & (quiet >= self._need(self.hw[a], self.nw[a], cur_c))
        need = np.where(self.is_room[cur_c] & (quiet <= 1) & ~departing, need + BODY_SPELL_EXTRA, need)
        need, inside = self._curtain(a, has & ~departing, cur_c, now, need)
        return inside | (has & (misses < need) & ~silent & (now - self.last_k[a, cur_c] <= self.hold[cur_c]))

    def _curtain(
        self, a: np.ndarray, has: np.ndarray, c: np.ndarray, now: float, need: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """What the curtain sensors of rooms ``c`` say of shown tags ``a``: the missed windows that make
        them gone once someone went out (OUT_ODDS), and which are inside whatever their silence."""
        if not np.isfinite(self.in_t).any():  # no curtain sensor heard (or all down): nothing to say
            return need, np.zeros(len(a), dtype=bool)
        watched = has & self.is_room[c] & np.isfinite(self.in_t[c])
        since = self.cur_since[a]
        # someone went out since it was shown, or came in after it (one party a room: the one
        # before left unseen, or someone joined them)
        came_in = np.where(self.in_t[c] > since + CURTAIN_SLACK_S, self.in_t[c], -np.inf)
        crossed = np.maximum(self.out_t[c], came_in)
        went_out = watched & (crossed > since) & (self.last_k[a, c] <= crossed + OUT_WITHIN_S)
        need = np.where(went_out, np.minimum(need, self._need(self.hs[a], self.ns[a], c, OUT_ODDS)), need)
        inside = watched & (crossed <= since) & (self.in_t[c] > self.out_t[c])
        return need, inside & (now - self.last_k[a, c] <= OCCUPIED_HOLD_S)

    def _need(self, hits: np.ndarray, windows: np.ndarray, p: np.ndarray, odds: float = GONE_ODDS) -> np.ndarray:
        """Missed windows after which a tag read ``hits`` of ``windows`` times is gone (GONE_ODDS)."""
        rate = (hits + RATE_PRIOR) / (windows + 2.0 * RATE_PRIOR)
        return np.clip(np.ceil(np.log(odds) / np.log1p(-rate)), self.miss_min[p], self.miss_max[p])

    def _confirmed(self, a: np.ndarray, now: float, sc: _Scores, cur_fresh: np.ndarray) -> np.ndarray:
        """Which tags their best place may show now (a run of strong windows, or one solid strong
        window in a moment every other place has reported); strong ones still waiting go pending."""
        best, cur_c = sc.best, sc.cur_c
        # Just out of a fitting room (or going now), a garment carried past the next curtains (or
        # back past its own) needs HOP_EXTRA_N more strong windows to be shown in a room.
        leaving = sc.has & ~cur_fresh & self.is_room[cur_c]
        recent = self.is_room[best] & ((now - self.left_t[a] < HOP_S) | leaving)
        need_n = self.confirm_n[best] + np.where(recent, HOP_EXTRA_N, 0)
        run = self.run_n[a, best]
        # one read well above a room's enter level shows a garment on its own, once every other
        # place that read it lately has sent its window of that moment, unless it has just left a room
        others = (now - self.last_r[a] <= RUN_GAP_S) & (np.arange(self._P)[None, :] != best[:, None])
        ready = (now > self.last_q[a, best]) | ~(others & (self.place_t[None, :] < now - SAME_MOMENT_S)).any(axis=1)
        strong = self.is_room[best] & ~recent & (run >= 1) & (self.qmax[a, best] >= self.enter[best] + STRONG_DB)
        single = strong & ready
        self._pending.difference_update(a.tolist())
        self._pending.update(a[strong & ~ready & (sc.cur != best)].tolist())
        return (
            (sc.best_score >= self.enter[best])
            & ((run >= need_n) | single)
            & (now - self.last_q[a, best] <= RUN_GAP_S)
            & ~self._queued(a, best, now)
        )

    def _queued(self, a: np.ndarray, p: np.ndarray, now: float) -> np.ndarray:
        """Tags ``a`` read at rooms ``p`` whose curtain sensor says someone went in well before their
        reads there began, and nobody since: a waiting customer's garments (QUEUE_AFTER_S, QUEUE_MAX_S).
        A garment out of a room since that crossing (its own, shown there, lost behind a body) is not held."""
        if not np.isfinite(self.in_t).any():
            return np.zeros(len(a), dtype=bool)
        since, went_in = self.since[a, p], self.in_t[p]
        occupied = went_in > self.out_t[p]
        fresh = self.left_t[a] < went_in
        late = since > went_in + QUEUE_AFTER_S
        return occupied & fresh & late & (now - since < QUEUE_MAX_S)

    def _challenge(
        self, a: np.ndarray, now: float, sc: _Scores, cur_fresh: np.ndarray, confirmed: np.ndarray
    ) -> np.ndarray:
        """Update the challenges of shown tags beaten by another place; returns the tags that move."""
        best, cur, has, cur_c = sc.best, sc.cur, sc.has, sc.cur_c
        # A room holds a garment against a shelf or till at the level it has been reading it at,
        # not at its peak decayed over a gap between sparse reads: shelves next to the rooms read
        # the garments inside them, weaker than the room but more often.
        hold_lvl = has & self.is_room[cur_c] & ~self.is_room[best]
        cur_score = np.where(hold_lvl, np.maximum(sc.cur_score, self.lvl[a]), sc.cur_score)
        lead = has & cur_fresh & (best != cur) & (sc.best_score > cur_score + self.margin)
        beats = lead & confirmed
        chal = self.chal[a]
        new_chal = beats & (chal != best)
        # A shelf or till that no longer reads the garment has no claim to hysteresis: it was
        # taken away, and the room now reading it takes it over at once. Against a fitting room
        # the shelf's reads must be solid: it keeps reading a garment carried near it in a round.
        unread = now - self.last_k[a, cur_c] > RUN_GAP_S
        unsolid = now - self.last_q[a, cur_c] > RUN_GAP_S
        gone_from_cur = ~self.is_room[cur_c] & (unread | (self.is_room[best] & unsolid))
        moving = beats & (((chal == best) & (now - self.chal_since[a] >= self.move_s - 1e-9)) | gone_from_cur)
        ci = a[new_chal]
        self.chal[ci] = best[new_chal]
        self.chal_since[ci] = now
        # a challenger that still leads by the margin keeps its challenge through a dip below
        # its enter level between two of its reads
        self.chal[a[has & ~(beats | (lead & (chal == best)))]] = -1
        return moving

    def _emit_shown(self, i: int, p: int, now: float, out: list[RoomEvent]) -> None:
        self.cur[i] = p
        self.cur_since[i] = now
        self.hs[i] = 1.0  # the read that confirmed it
        self.ns[i] = 1.0
        self.last_hit[i] = self.wins[p]
        self.hw[i] = 1.0
        self.nw[i] = 1.0
        self.last_w[i] = self.wins[p]
        self.lvl[i] = self.peak[i, p]
        self.omax[i] = -np.inf
        self.dep_t[i] = -np.inf
        self.chal[i] = -1
        self.wait_t[i] = -np.inf
        place = self.places[p]
        epc = self.epcs[i]
        assert epc is not None
        room = self.rooms.get(place.id)
        session = None
        if room is not None:
            room.items.add(epc)
            if room.session is None and epc not in room.left:
                self._start_session(place, room, now, out)
            if room.session is not None and epc not in room.left:
                room.session.tried.setdefault(epc, now)
                session = room.session.id
        out.append(
            RoomEvent(
                "item_shown",
                now,
                place.id,
                place.kind,
                epc,
                session,
                room.session.customer_id if room is not None and room.session else None,
            )
        )

    def _emit_gone(self, i: int, p: int, now: float, out: list[RoomEvent]) -> None:
        place = self.places[p]
        epc = self.epcs[i]
        assert epc is not None
        since = float(self.cur_since[i])
        self.cur[i] = -1
        if self.is_room[p]:
            self.left_t[i] = now
            self.run_n[i, self.is_room] = 0
        self.chal[i] = -1
        self.wait_t[i] = -np.inf
        room = self.rooms.get(place.id)
        session = room.session.id if room is not None and room.session is not None else None
        out.append(RoomEvent("item_gone", now, place.id, place.kind, epc, session, since=since))
        if room is not None:
            room.items.discard(epc)
            room.left.discard(epc)
            if room.session is not None and not room.items and not room.customers:
                self._end_session(place, room, now, out)

    # ------------------------------------------------------------------------------- sessions

    def _start_session(self, place: Place, room: _Room, now: float, out: list[RoomEvent]) -> None:
        self._session_seq += 1
        cid = next(iter(room.customers), None)
        room.session = _Session(self._session_seq, now, cid)
        out.append(RoomEvent("session_started", now, place.id, place.kind, None, room.session.id, cid))

    def _end_session(self, place: Place, room: _Room, now: float, out: list[RoomEvent]) -> None:
        s = room.session
        assert s is not None
        left = tuple(sorted(room.items))
        room.left = set(left)
        room.session = None
        out.append(
            RoomEvent(
                "session_ended",
                now,
                place.id,
                place.kind,
                None,
                s.id,
                s.customer_id,
                items=tuple(s.tried),
                left_behind=left,
                since=s.started,
            )
        )

    def customer_entered(self, room_id: str, customer_id: str, t: float) -> list[RoomEvent]:
        """Presence says a (recognised) customer is now in fitting room ``room_id``."""
        room = self.rooms.get(room_id)
        if room is None:
            return []
        out: list[RoomEvent] = []
        room.customers.setdefault(customer_id, t)
        if room.session is None:
            self._start_session(self.places[self.place_index[room_id]], room, t, out)
        elif room.session.customer_id is None:
            room.session.customer_id = customer_id
        return out

    def customer_left(self, room_id: str, customer_id: str, t: float) -> list[RoomEvent]:
        """Presence says the customer left the room; the session ends (items may stay behind)."""
        room = self.rooms.get(room_id)
        if room is None or customer_id not in room.customers:
            return []
        del room.customers[customer_id]
        out: list[RoomEvent] = []
        if room.session is not None and not room.customers:
            self._end_session(self.places[self.place_index[room_id]], room, t, out)
        return out

    def curtain(self, room_id: str, t: float, direction: str) -> list[RoomEvent]:
        """A crossing at ``t`` through the curtain of fitting room ``room_id`` (its crossing counter);
        returns the events of the decision it brings (garments held for it shown). Unknown rooms: none."""
        p = self.place_index.get(room_id)
        if p is None or not self.is_room[p]:
            return []
        times = self.in_t if direction == "in" else self.out_t
        times[p] = max(times[p], t)
        return self.advance(self.now, force=True) if np.isfinite(self.now) else []

    def curtain_down(self, room_id: str) -> None:
        """The curtain sensor of ``room_id`` stopped working: its garments are judged on the reads alone
        until its next crossing."""
        p = self.place_index.get(room_id)
        if p is not None:
            self.in_t[p] = self.out_t[p] = -np.inf

    # -------------------------------------------------------------------------------- queries

    def items_in(self, place_id: str) -> list[str]:
        p = self.place_index.get(place_id)
        if p is None:
            return []
        return sorted(
            e for e in (self.epcs[i] for i in np.nonzero(self.cur == p)[0].tolist()) if e is not None
        )

    def newest_shown(self, place_id: str) -> float | None:
        """When the garment shown most recently at a place was shown; None: nothing shown there."""
        p = self.place_index.get(place_id)
        shown = self.cur_since[self.cur == p] if p is not None else np.empty(0)
        return float(shown.max()) if len(shown) else None

    def where(self, epc: str) -> str | None:
        i = self.index.get(epc)
        if i is None or self.cur[i] < 0:
            return None
        return self.places[int(self.cur[i])].id

    def room_state(self, room_id: str) -> dict:
        room = self.rooms.get(room_id)
        if room is None:
            raise KeyError(room_id)
        s = room.session
        return {
            "room": room_id,
            "items": self.items_in(room_id),
            "customers": sorted(room.customers),
            "session": None
            if s is None
            else {"id": s.id, "started": s.started, "customer_id": s.customer_id, "tried": list(s.tried)},
        }


def fitting_reports(events: Iterable[RoomEvent]) -> list[FittingReport]:
    """Pair item_shown/item_gone of fitting rooms into the scorer's (room, epc, shown_at, gone_at)."""
    open_: dict[tuple[str, str], float] = {}
    out: list[FittingReport] = []
    for ev in events:
        if ev.place_kind != FITTING_ROOM or ev.epc is None:
            continue
        key = (ev.place, ev.epc)
        if ev.kind == "item_shown":
            open_[key] = ev.t
        elif ev.kind == "item_gone" and key in open_:
            out.append(FittingReport(ev.place, ev.epc, open_.pop(key), ev.t))
    out.extend(FittingReport(r, e, t, None) for (r, e), t in open_.items())
    return sorted(out, key=lambda r: (r.shown_at, r.room, r.epc))
