"""X-Hub-Signature-256 and the GET handshake."""

from __future__ import annotations

import hashlib
import hmac

from hypothesis import given
from hypothesis import strategies as st

from cloud_sync import signature

BODY = b'{"object":"whatsapp_business_account","entry":[]}'
SECRET = "s3cret"


def test_sign_is_hmac_sha256_hex() -> None:
    expected = "sha256=" + hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    assert signature.sign(BODY, SECRET) == expected


def test_verify_valid_invalid_missing() -> None:
    good = signature.sign(BODY, SECRET)
    assert signature.verify(BODY, good, SECRET)
    assert not signature.verify(BODY, signature.sign(BODY, "other"), SECRET)
    assert not signature.verify(BODY, None, SECRET)
    assert not signature.verify(BODY, "", SECRET)
    assert not signature.verify(BODY, good.removeprefix("sha256="), SECRET)
    assert not signature.verify(BODY, "sha256=ü", SECRET)
    assert not signature.verify(BODY, good, "")


@given(st.integers(min_value=0, max_value=len(BODY) - 1), st.integers(min_value=1, max_value=255))
def test_one_changed_byte_fails(pos: int, delta: int) -> None:
    changed = bytearray(BODY)
    changed[pos] = (changed[pos] + delta) % 256
    assert not signature.verify(bytes(changed), signature.sign(BODY, SECRET), SECRET)


def test_handshake() -> None:
    ok = {"hub.mode": "subscribe", "hub.verify_token": "tok", "hub.challenge": "1158201444"}
    assert signature.handshake(ok, "tok") == "1158201444"
    assert signature.handshake({**ok, "hub.verify_token": "nope"}, "tok") is None
    assert signature.handshake({**ok, "hub.mode": "unsubscribe"}, "tok") is None
    assert signature.handshake({"hub.mode": "subscribe", "hub.verify_token": "tok"}, "tok") is None
