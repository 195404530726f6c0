"""Data minimisation at the edge: which advertisements may leave the node.

Only the store's own beacons are forwarded: Eddystone-EID frames (opaque rotating ids that
only the gateway can resolve), Eddystone-UID frames in the store's namespace, and iBeacons
with one of the store's proximity UUIDs (staff badges, legacy fobs). Everything else is
reduced to an anonymous count by the caller. Pure: data in, decision out.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.ble.frames import BleFrameError, EddystoneEID, EddystoneUID, IBeacon, parse_advertisement


@dataclass(frozen=True, slots=True)
class ForwardPolicy:
    ibeacon_uuids: frozenset[str]
    eddystone_namespace: str | None
    forward_eid: bool = True


@dataclass(frozen=True, slots=True)
class Sighting:
    ident: str
    tx: int | None


def classify(
    manufacturer_data: dict[int, bytes], service_data: dict[str, bytes], policy: ForwardPolicy
) -> Sighting | None:
    """The forwardable identity in one advertisement, or None (count it anonymously).

    A malformed Apple/Eddystone payload is treated like any foreign device: counted, not forwarded.
    """
    try:
        frames = parse_advertisement(manufacturer_data, service_data)
    except BleFrameError:
        return None
    for f in frames:
        if isinstance(f, EddystoneEID) and policy.forward_eid:
            return Sighting(f"eid:{f.eid.hex()}", f.tx_power)
        if isinstance(f, IBeacon) and f.uuid in policy.ibeacon_uuids:
            return Sighting(f"ibeacon:{f.uuid}:{f.major}:{f.minor}", f.measured_power)
        if isinstance(f, EddystoneUID) and f.namespace == policy.eddystone_namespace:
            return Sighting(f"uid:{f.namespace}{f.instance}", f.tx_power)
    return None
