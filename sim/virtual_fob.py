"""A virtual Eddystone-EID key fob: the Eddystone Configuration GATT Service as a GATT server.

On the stand-in BlueZ, bleak's real backend provisions it like a real fob (`instore fob
provision`); afterwards `advertisement(t)` is its EID frame, so node and gateway can be shown to
recognise it. `drop_on_write` loses the link mid-provisioning as a fob carried away does.
Layout and sources: docs/carriers.md.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from edge.ble.frames import EDDYSTONE_SERVICE_UUID, EddystoneEID, encode_eddystone
from gateway.channels import eddystone_config as ec
from gateway.engines.eid import compute_eid
from sim.bluez_standin import AttError, LinkLost, Peripheral

FOB_TX_POWERS = (-20, -8, -4, 0, 4)  # dBm the fob's radio supports (a typical nRF52 beacon's steps)
FOB_TX_AT_0M = -20  # the calibrated power in its frames: a fob at 0 m (the EID frame's field)
URL_FRAME = bytes((0x10, 0xEC, 0x03)) + b"example\x07"  # what a fob ships with: URL https://example.com
LOCKED_READABLE = (ec.LOCK_STATE, ec.UNLOCK, ec.REMAIN_CONNECTABLE)  # readable while locked (the spec)


def _decrypt(key: bytes, block: bytes) -> bytes:
    return Cipher(algorithms.AES(key), modes.ECB()).decryptor().update(block)


class VirtualFob:
    def __init__(
        self,
        address: str,
        lock_key: bytes,
        clock: Callable[[], float],
        *,
        boot_at: float,
        seed: int = 0,
        drop_on_write: str | None = None,
    ) -> None:
        self.address, self.lock_key, self.clock, self.boot_at = address, lock_key, clock, boot_at
        self.drop_on_write = drop_on_write
        self._rng = random.Random(seed)
        self._private = X25519PrivateKey.from_private_bytes(self._rng.randbytes(ec.KEY_LEN))
        self.state = ec.LOCKED
        self.challenge = self._rng.randbytes(16)
        self.identity_key: bytes | None = None
        self.k = 0
        self.writes: list[str] = []  # characteristic UUIDs written, in order

    def peripheral(self, rssi: int = -50) -> Peripheral:
        chars = (ec.CAPABILITIES, ec.ACTIVE_SLOT, ec.ADV_INTERVAL, ec.RADIO_TX_POWER, ec.ADV_TX_POWER, ec.LOCK_STATE,
                 ec.UNLOCK, ec.PUBLIC_ECDH_KEY, ec.EID_IDENTITY_KEY, ec.ADV_SLOT_DATA, ec.FACTORY_RESET,
                 ec.REMAIN_CONNECTABLE)
        return Peripheral(self.address, {ec.SERVICE: dict.fromkeys(chars, b"")}, rssi=rssi, gatt=self)

    def beacon_clock(self) -> int:
        return int(self.clock() - self.boot_at)

    def advertisement(self) -> dict[str, bytes]:
        """Service data of what it broadcasts now: its EID once registered, else nothing of ours."""
        if self.identity_key is None:
            return {EDDYSTONE_SERVICE_UUID: URL_FRAME}
        eid = compute_eid(self.identity_key, self.k, self.beacon_clock())
        return {EDDYSTONE_SERVICE_UUID: encode_eddystone(EddystoneEID(FOB_TX_AT_0M, eid))}

    # --- the GATT server ------------------------------------------------------------

    def connected(self) -> None:
        """A new connection: the active slot resets and, unless auto-relock is off, the fob locks."""
        if self.state != ec.UNLOCKED_NO_RELOCK:
            self.state = ec.LOCKED
            self.challenge = self._rng.randbytes(16)

    def read(self, uuid: str) -> bytes:
        if self.state == ec.LOCKED and uuid not in LOCKED_READABLE:
            raise AttError(ec.READ_NOT_PERMITTED)
        readers: dict[str, Callable[[], bytes]] = {
            ec.LOCK_STATE: lambda: bytes((self.state,)),
            ec.UNLOCK: self._read_challenge,
            ec.CAPABILITIES: lambda: ec.encode_capabilities(
                1, 1, 0x0001 | 0x0002 | 0x0004 | ec.CAP_FRAME_EID, FOB_TX_POWERS
            ),
            ec.PUBLIC_ECDH_KEY: lambda: ec.public_bytes(self._private),
            ec.EID_IDENTITY_KEY: self._read_identity_key,
            ec.ADV_SLOT_DATA: self._read_slot,
            ec.ACTIVE_SLOT: lambda: b"\x00",
            ec.REMAIN_CONNECTABLE: lambda: b"\x01",
        }
        return readers.get(uuid, lambda: b"\x00")()

    def _read_challenge(self) -> bytes:
        if self.state != ec.LOCKED:
            raise AttError(ec.READ_NOT_PERMITTED)
        return self.challenge

    def _read_identity_key(self) -> bytes:
        if self.identity_key is None:
            raise AttError(ec.READ_NOT_PERMITTED)
        return ec.aes_block(self.lock_key, self.identity_key)

    def _read_slot(self) -> bytes:
        if self.identity_key is None:
            return URL_FRAME
        eid = compute_eid(self.identity_key, self.k, self.beacon_clock())
        return ec.encode_eid_slot(ec.EidSlot(self.k, self.beacon_clock(), eid))

    def write(self, uuid: str, value: bytes) -> None:
        self._apply(uuid, value)
        self.writes.append(uuid)
        if uuid == self.drop_on_write:
            raise LinkLost

    def _apply(self, uuid: str, value: bytes) -> None:
        if uuid == ec.UNLOCK:
            if self.state != ec.LOCKED:
                raise AttError(ec.WRITE_NOT_PERMITTED)
            if len(value) != 16:
                raise AttError(ec.INVALID_LENGTH)
            ok = value == ec.unlock_token(self.lock_key, self.challenge)
            self.challenge = self._rng.randbytes(16)  # one attempt per challenge
            if not ok:
                raise AttError(ec.WRITE_NOT_PERMITTED)
            self.state = ec.UNLOCKED
            return
        if self.state == ec.LOCKED or uuid in (ec.CAPABILITIES, ec.PUBLIC_ECDH_KEY, ec.EID_IDENTITY_KEY):
            raise AttError(ec.WRITE_NOT_PERMITTED)
        if uuid == ec.LOCK_STATE:
            self._lock(value)
        elif uuid == ec.ACTIVE_SLOT and value != b"\x00":
            raise AttError(ec.INVALID_LENGTH)  # one slot: any other index is refused like a bad length
        elif uuid == ec.ADV_SLOT_DATA:
            self._slot(value)
        elif uuid == ec.FACTORY_RESET and value == b"\x0b":
            self.identity_key = None

    def _lock(self, value: bytes) -> None:
        if value == b"\x02":
            self.state = ec.UNLOCKED_NO_RELOCK
        elif value[:1] == b"\x00" and len(value) in (1, 17):
            if len(value) == 17:  # a new lock key, sent encrypted with the old one
                self.lock_key = _decrypt(self.lock_key, value[1:])
            self.state = ec.LOCKED
        else:
            raise AttError(ec.INVALID_LENGTH)

    def _slot(self, value: bytes) -> None:
        if value in (b"", b"\x00"):
            self.identity_key = None
        elif value[0] == ec.FRAME_EID and len(value) == ec.EID_WRITE_LEN:
            resolver, k = value[1:33], value[33]
            if k > 15:
                raise AttError(ec.INVALID_LENGTH)
            own = ec.public_bytes(self._private)
            self.identity_key, self.k = ec.identity_key(self._private, resolver, resolver, own), k
        elif value[0] == ec.FRAME_EID and len(value) == 18:  # the "less secure" way: IK encrypted with the lock key
            self.identity_key = _decrypt(self.lock_key, value[1:17])
            self.k = value[17]
        elif value[0] == ec.FRAME_EID:
            raise AttError(ec.INVALID_LENGTH)
        else:  # UID, URL, TLM frames: the slot is no longer an EID slot
            self.identity_key = None
