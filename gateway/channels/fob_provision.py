"""Provisioning a loyalty key fob over the Eddystone Configuration GATT Service with bleak.

The shell around gateway/channels/eddystone_config.py, for `instore fob provision` and the enrolment
page's staff button. The key goes to the gateway only after the fob's read-back EID matches it,
so no fob is ever half-registered; a failure before that leaves the gateway untouched.
The steps and their sources: docs/carriers.md, "Key fobs".
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from gateway.channels import eddystone_config as ec

CONNECT_TIMEOUT_S = 20.0  # finding and connecting to a fob held next to the reader
READBACK_WAIT_S = 3.0  # Google's Beaconfig waits this long before reading an EID slot back
DEFAULT_K = 10  # rotation exponent: a new EID every 2^10 s (~17 min), the store file's default


class FobError(Exception):
    """A provisioning failure with the message staff see; the gateway was not changed."""


@dataclass(frozen=True, slots=True)
class Provisioned:
    identity_key: bytes
    k: int
    epoch: int  # Unix time at which the fob's counter read 0 (the gateway's resolver needs it)


@dataclass(slots=True)
class _Progress:
    """The step under way, named in the message when the fob fails or the connection drops."""

    step: str = "reading the lock state"


async def provision(
    address: str,
    lock_key: bytes,
    k: int = DEFAULT_K,
    *,
    now: Callable[[], float] = time.time,
    readback_wait_s: float = READBACK_WAIT_S,
    connect_timeout_s: float = CONNECT_TIMEOUT_S,
    client_factory: Callable[..., Any] | None = None,
) -> Provisioned:
    """Unlock, register an EID slot, read it back and check it; FobError with a clear message otherwise."""
    from bleak import BleakClient
    from bleak.exc import BleakError

    client = (client_factory or BleakClient)(address, timeout=connect_timeout_s)
    try:
        await client.connect()
    except (BleakError, TimeoutError, OSError) as exc:  # OSError: no Bluetooth stack on this machine
        raise FobError(
            f"cannot connect to {address}: {exc or 'timed out'}; press the fob's button and hold it close"
        ) from None
    progress = _Progress()
    try:
        return await _register(client, address, lock_key, k, now, readback_wait_s, progress)
    except ec.FrameError as exc:
        raise FobError(f"unexpected answer while {progress.step}: {exc}") from None
    except BleakError as exc:
        if not client.is_connected:
            raise FobError(
                f"the connection dropped while {progress.step}: the fob was not registered; hold it close and run again"
            ) from None
        raise FobError(f"the fob refused while {progress.step}: {exc}") from None
    finally:
        if client.is_connected:
            await client.disconnect()


async def _register(
    client: Any,
    address: str,
    lock_key: bytes,
    k: int,
    now: Callable[[], float],
    readback_wait_s: float,
    progress: _Progress,
) -> Provisioned:
    """The steps on a connected fob, each named in `progress` before it starts."""
    if client.services.get_service(ec.SERVICE) is None:
        raise FobError(f"{address} is not an Eddystone fob: it has no Eddystone configuration service")
    if (await client.read_gatt_char(ec.LOCK_STATE))[:1] == bytes((ec.LOCKED,)):
        progress.step = "unlocking"
        await _unlock(client, lock_key)
    progress.step = "reading its capabilities"
    caps = ec.parse_capabilities(bytes(await client.read_gatt_char(ec.CAPABILITIES)))
    if not caps.eid:
        raise FobError(f"{address} cannot broadcast Eddystone-EID (frame types 0x{caps.frame_types:04x})")
    progress.step = "writing the EID slot"
    resolver = X25519PrivateKey.generate()
    resolver_public = ec.public_bytes(resolver)
    await client.write_gatt_char(ec.ACTIVE_SLOT, b"\x00", response=True)
    await client.write_gatt_char(ec.ADV_SLOT_DATA, ec.eid_slot_write(resolver_public, k), response=True)
    await asyncio.sleep(readback_wait_s)
    progress.step = "reading the EID slot back"
    slot = ec.parse_eid_slot(bytes(await client.read_gatt_char(ec.ADV_SLOT_DATA)))
    read_at = now()
    beacon_public = bytes(await client.read_gatt_char(ec.PUBLIC_ECDH_KEY))
    ik = ec.identity_key(resolver, beacon_public, resolver_public, beacon_public)
    if not ec.readback_matches(ik, slot, k):
        raise FobError("the fob's EID does not match the key we agreed: it did not register it; run again")
    progress.step = "finishing"
    await client.write_gatt_char(ec.REMAIN_CONNECTABLE, b"\x00", response=True)  # back to beacon duty
    return Provisioned(ik, k, round(read_at - slot.clock))


async def _unlock(client: Any, lock_key: bytes) -> None:
    """Answer the fob's challenge with the lock key; FobError when it stays locked."""
    from bleak.exc import BleakError

    challenge = bytes(await client.read_gatt_char(ec.UNLOCK))
    try:
        await client.write_gatt_char(ec.UNLOCK, ec.unlock_token(lock_key, challenge), response=True)
    except BleakError:
        if not client.is_connected:
            raise
    if (await client.read_gatt_char(ec.LOCK_STATE))[:1] == bytes((ec.LOCKED,)):
        raise FobError("wrong lock key: the fob stayed locked (check the key printed on its box)")
