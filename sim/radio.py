"""BLE radio model, vectorised over every transmitter x receiver pair.

RSSI = P_1m + tx_offset - 10 n log10(d) - walls crossed + shadowing + fast fading, then a
reception probability that falls off near the receiver's sensitivity. Shadowing is slow
(it follows a person around a room, correlated in time); fast fading is per packet.
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


def mean_rssi(
    tx_xy: np.ndarray, rx_xy: np.ndarray, tx_offset_db: np.ndarray, walls: np.ndarray, wall_db: np.ndarray,
    params: RadioParams, rx_ref_offset_db: np.ndarray | None = None,
) -> np.ndarray:
    """Deterministic part of the RSSI, shape (T, R): path loss and walls, no noise."""
    d = np.hypot(tx_xy[:, None, 0] - rx_xy[None, :, 0], tx_xy[:, None, 1] - rx_xy[None, :, 1])
    d = np.maximum(d, params.min_distance_m)
    rssi = params.ref_power_1m + tx_offset_db[:, None] - 10.0 * params.path_loss_exponent * np.log10(d)
    if rx_ref_offset_db is not None:
        rssi = rssi + rx_ref_offset_db[None, :]
    if len(walls):
        rssi = rssi - (crossings(tx_xy, rx_xy, walls) * wall_db[None, None, :]).sum(axis=2)
    return rssi


def reception_probability(rssi: np.ndarray, params: RadioParams) -> np.ndarray:
    """Logistic fall-off around the sensitivity (half the packets lost at sensitivity + 0)."""
    return 1.0 / (1.0 + np.exp(-(rssi - params.sensitivity_dbm) / params.loss_width_db))


def sample_packets(
    mean: np.ndarray, shadow: np.ndarray, params: RadioParams, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One packet per pair: (received mask, integer RSSI) with fading and loss applied."""
    rssi = mean + shadow + rng.normal(0.0, params.fading_sigma_db, size=mean.shape)
    got = rng.random(mean.shape) < reception_probability(rssi, params)
    return got, np.clip(np.rint(rssi), -127, 20).astype(np.int16)  # what a radio can report
