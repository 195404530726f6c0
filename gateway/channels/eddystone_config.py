"""The Eddystone Configuration GATT Service: what a key fob's characteristics hold, the unlock
token, the EID registration by Curve25519 key exchange and the identity key derived from it.

Pure: bytes in, bytes out. Used by the provisioning shell (`instore fob provision`, instore/fob.py)
and by the simulator's virtual fob (sim/virtual_fob.py). The layout and the derivation, with
their sources, are in docs/carriers.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gateway.engines.eid import IDENTITY_KEY_LEN, MAX_K, compute_eid


def _char(n: int) -> str:
    return f"a3c875{n:02x}-8ed3-4bdf-8a39-a01bebede295"


SERVICE = _char(0)
CAPABILITIES, ACTIVE_SLOT, ADV_INTERVAL, RADIO_TX_POWER, ADV_TX_POWER, LOCK_STATE = (_char(n) for n in range(1, 7))
UNLOCK, PUBLIC_ECDH_KEY, EID_IDENTITY_KEY, ADV_SLOT_DATA, FACTORY_RESET, REMAIN_CONNECTABLE = (
    _char(n) for n in range(7, 13)
)

LOCKED, UNLOCKED, UNLOCKED_NO_RELOCK = 0x00, 0x01, 0x02  # Lock State values
FRAME_EID = 0x30  # frame type byte of an EID slot
CAP_FRAME_EID = 0x0008  # the EID bit of the capabilities' frame types
KEY_LEN = 32  # Curve25519 keys, raw (little-endian as on the wire)
LOCK_KEY_LEN = 16
EID_WRITE_LEN = 1 + KEY_LEN + 1  # 0x30 | resolver public key | K
EID_READ_LEN = 14  # 0x30 | K | beacon clock (uint32 BE) | EID (8)
# ATT error codes the service answers with
READ_NOT_PERMITTED, WRITE_NOT_PERMITTED, INVALID_LENGTH = 0x02, 0x03, 0x0D


class FrameError(ValueError):
    """Bytes read from a fob that do not have the service's layout."""


def aes_block(key: bytes, block: bytes) -> bytes:
    """AES-128-ECB of one 16-byte block: the unlock token, and the lock key change."""
    return Cipher(algorithms.AES(key), modes.ECB()).encryptor().update(block)


def unlock_token(lock_key: bytes, challenge: bytes) -> bytes:
    """What to write to Unlock: the challenge encrypted with the lock key (the key never goes on air)."""
    if len(lock_key) != LOCK_KEY_LEN or len(challenge) != LOCK_KEY_LEN:
        raise ValueError(f"lock key and challenge must be {LOCK_KEY_LEN} bytes")
    return aes_block(lock_key, challenge)


@dataclass(frozen=True, slots=True)
class Capabilities:
    version: int
    max_slots: int
    max_eid_slots: int
    frame_types: int

    @property
    def eid(self) -> bool:
        return bool(self.frame_types & CAP_FRAME_EID) and self.max_eid_slots >= 1


def parse_capabilities(data: bytes) -> Capabilities:
    if len(data) < 7:
        raise FrameError(f"capabilities: {len(data)} bytes, expected at least 7")
    return Capabilities(data[0], data[1], data[2], int.from_bytes(data[4:6], "big"))


def encode_capabilities(max_slots: int, max_eid_slots: int, frame_types: int, tx_powers: tuple[int, ...]) -> bytes:
    return bytes((0, max_slots, max_eid_slots, 0)) + frame_types.to_bytes(2, "big") + bytes(
        p & 0xFF for p in tx_powers
    )


def eid_slot_write(resolver_public: bytes, k: int) -> bytes:
    """The 34-byte ADV Slot Data write that registers an EID slot (the beacon derives the key)."""
    if len(resolver_public) != KEY_LEN:
        raise ValueError(f"resolver public key must be {KEY_LEN} bytes")
    if not 0 <= k <= MAX_K:
        raise ValueError(f"k must be in 0..{MAX_K}, got {k}")
    return bytes((FRAME_EID,)) + resolver_public + bytes((k,))


@dataclass(frozen=True, slots=True)
class EidSlot:
    k: int
    clock: int  # the beacon's seconds counter when it answered
    eid: bytes


def encode_eid_slot(slot: EidSlot) -> bytes:
    return bytes((FRAME_EID, slot.k)) + slot.clock.to_bytes(4, "big") + slot.eid


def parse_eid_slot(data: bytes) -> EidSlot:
    """The 14-byte read-back of an EID slot; FrameError for anything else (an empty or URL slot)."""
    if len(data) != EID_READ_LEN or data[0] != FRAME_EID:
        raise FrameError(f"slot data: {data[:1].hex() or 'empty'} frame of {len(data)} bytes, expected an EID slot")
    if data[1] > MAX_K:
        raise FrameError(f"slot data: rotation exponent {data[1]} is out of 0..{MAX_K}")
    return EidSlot(data[1], int.from_bytes(data[2:6], "big"), data[6:14])


def public_bytes(key: X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes_raw()


def identity_key(own: X25519PrivateKey, peer_public: bytes, resolver_public: bytes, beacon_public: bytes) -> bytes:
    """The 16-byte identity key both sides derive: HKDF-SHA256 of the X25519 shared secret, salted
    with the resolver's then the beacon's public key, empty info (eid-computation.md)."""
    shared = own.exchange(X25519PublicKey.from_public_bytes(peer_public))  # refuses an all-zero secret
    salt = resolver_public + beacon_public
    return HKDF(algorithm=hashes.SHA256(), length=IDENTITY_KEY_LEN, salt=salt, info=b"").derive(shared)


def readback_matches(ik: bytes, slot: EidSlot, k: int) -> bool:
    """The fob registered this key: its current EID is the one the key gives at its clock."""
    return slot.k == k and compute_eid(ik, k, slot.clock) == slot.eid
