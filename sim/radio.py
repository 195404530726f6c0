"""BLE radio model, vectorised over every transmitter x receiver pair.

RSSI = P_1m + tx_offset - 10 n log10(d) - walls crossed - body + shadowing + fast fading,
then a reception probability that falls off near the receiver's sensitivity, times the share
of advertisements that survive interference. The body term depends on where the phone is
carried and which way its wearer faces (`body_loss`); shadowing is slow (it follows a person
around a room, correlated in time); fast fading is per packet. Sources in docs/scenarios.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from firmware_config.geometry import crossings


@dataclass(frozen=True, slots=True)
class RadioParams:
    ref_power_1m: float = -59.0  # dBm at 1 m for a 0 dB-offset transmitter (typical phone)
    path_loss_exponent: float = 2.2  # retail floor: open space with shelving and bodies
    shadowing_sigma_db: float = 6.0  # slow log-normal shadowing (body, orientation, pocket)
    shadowing_tau_s: float = 4.0  # correlation time of the shadowing (people move slowly)
    fading_sigma_db: float = 2.0  # per-packet fast fading
    sensitivity_dbm: float = -95.0  # below this nothing is received
    loss_width_db: float = 3.0  # how sharply reception falls off near sensitivity
    min_distance_m: float = 0.3  # the near field: never closer than this
    body_loss_db: float = 12.0  # the wearer's torso fully between phone and node (5-15 dB measured)
    packet_loss: float = 0.25  # adverts lost to interference (Wi-Fi, other phones) whatever the RSSI


# where a phone or fob is carried: (which side of the body it is on, degrees from the walking
# direction; what the carrying itself costs, dB). A hand holds it in front, in view; pockets and
# bags add fabric and contents; a staff badge hangs on the chest
CARRY: dict[str, tuple[float, float]] = {
    "hand": (0.0, 0.0),
    "front_pocket": (0.0, 2.0),
    "back_pocket": (180.0, 2.0),
    "bag": (90.0, 4.0),  # a shoulder bag at the hip, on one side
    "chest": (0.0, 0.0),
}
CARRY_POSITIONS = tuple(CARRY)  # index order of the integer carry codes the vectorised code takes
BODY_SHADOW_POWER = 2.0  # the torso shadows a cone behind it; to the side the signal bends round
STILL_M = 1e-6  # a waypoint step shorter than this is standing still: the heading is kept


def wall_loss(tx_xy: np.ndarray, rx_xy: np.ndarray, walls: np.ndarray, wall_db: np.ndarray) -> np.ndarray:
    """dB lost to the walls each straight line tx -> rx crosses, shape (T, R)."""
    return (crossings(tx_xy, rx_xy, walls) * wall_db[None, None, :]).sum(axis=2)


def mean_rssi(
    tx_xy: np.ndarray, rx_xy: np.ndarray, tx_offset_db: np.ndarray, walls: np.ndarray, wall_db: np.ndarray,
    params: RadioParams, rx_ref_offset_db: np.ndarray | None = None, walls_db: np.ndarray | None = None,
) -> np.ndarray:
    """Deterministic part of the RSSI, shape (T, R): path loss and walls, no noise.

    `walls_db`: the `wall_loss` of these pairs when the caller already has it (a cache)."""
    d = np.hypot(tx_xy[:, None, 0] - rx_xy[None, :, 0], tx_xy[:, None, 1] - rx_xy[None, :, 1])
    d = np.maximum(d, params.min_distance_m)
    rssi = params.ref_power_1m + tx_offset_db[:, None] - 10.0 * params.path_loss_exponent * np.log10(d)
    if rx_ref_offset_db is not None:
        rssi = rssi + rx_ref_offset_db[None, :]
    if walls_db is not None:
        rssi = rssi - walls_db
    elif len(walls):
        rssi = rssi - wall_loss(tx_xy, rx_xy, walls, wall_db)
    return rssi


def walk_headings(x: np.ndarray, y: np.ndarray, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """Heading (radians) from each waypoint to the next, over flat waypoint arrays holding many
    people (person k's waypoints are start[k]:stop[k]). Standing still keeps the last walking
    heading; before the first step a person faces the way they will first walk."""
    n = len(x)
    owner = np.repeat(np.arange(len(start)), stop - start)
    i = np.arange(n)
    dx, dy = np.diff(x, append=0.0), np.diff(y, append=0.0)
    moved = (np.hypot(dx, dy) > STILL_M) & (i + 1 < stop[owner])  # a person's last waypoint starts nothing
    h = np.arctan2(dy, dx)
    last = np.maximum.accumulate(np.where(moved, i, -1))
    following = np.minimum.accumulate(np.where(moved, i, n)[::-1])[::-1]
    before = np.where(following < stop[owner], h[np.minimum(following, n - 1)], 0.0)
    return np.where(last >= start[owner], h[np.maximum(last, 0)], before)


def body_loss(
    tx_xy: np.ndarray, heading: np.ndarray, carry: np.ndarray, rx_xy: np.ndarray, body_db: float
) -> np.ndarray:
    """dB lost to the wearer's body, shape (T, R): the carrying's own cost, plus `body_db` scaled
    by how far the node lies behind the side of the body the phone is on.

    tx_xy (T, 2), heading (T,) radians, carry (T,) indices into CARRY_POSITIONS, rx_xy (R, 2).
    A node straight ahead of the phone's side costs nothing more, one straight behind `body_db`.
    """
    side = np.radians(np.asarray([CARRY[c][0] for c in CARRY_POSITIONS]))[carry] + heading
    own = np.asarray([CARRY[c][1] for c in CARRY_POSITIONS])[carry]
    dx = rx_xy[None, :, 0] - tx_xy[:, None, 0]
    dy = rx_xy[None, :, 1] - tx_xy[:, None, 1]
    d = np.hypot(dx, dy)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where(d > 0, (dx * np.cos(side)[:, None] + dy * np.sin(side)[:, None]) / d, 1.0)
    return own[:, None] + body_db * ((1.0 - cos) / 2.0) ** BODY_SHADOW_POWER


def reception_probability(rssi: np.ndarray, params: RadioParams) -> np.ndarray:
    """Logistic fall-off around the sensitivity (half the packets lost at sensitivity + 0)."""
    return 1.0 / (1.0 + np.exp(-(rssi - params.sensitivity_dbm) / params.loss_width_db))


def sample_packets(
    mean: np.ndarray, shadow: np.ndarray, params: RadioParams, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One packet per pair: (received mask, integer RSSI) with fading, the sensitivity edge and
    interference loss applied (a receiver's collisions are its own: independent per pair)."""
    rssi = mean + shadow + rng.normal(0.0, params.fading_sigma_db, size=mean.shape)
    got = rng.random(mean.shape) < reception_probability(rssi, params) * (1.0 - params.packet_loss)
    return got, np.clip(np.rint(rssi), -127, 20).astype(np.int16)  # what a radio can report
