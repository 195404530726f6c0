"""Webhook signatures (pure): ``X-Hub-Signature-256`` and the GET verification handshake.

Meta signs the *raw* request body with HMAC-SHA256 keyed by the app secret; the receiver must
check it over the exact bytes received, before parsing, and compare in constant time so an
attacker cannot learn the expected digest byte by byte from response timing.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

PREFIX = "sha256="
HEADER = "X-Hub-Signature-256"


def _key(app_secret: str | bytes) -> bytes:
    return app_secret.encode() if isinstance(app_secret, str) else app_secret


def sign(body: bytes, app_secret: str | bytes) -> str:
    """Header value for ``body``: ``"sha256=<hex HMAC-SHA256>"``."""
    return PREFIX + hmac.new(_key(app_secret), body, hashlib.sha256).hexdigest()


def verify(body: bytes, header: str | None, app_secret: str | bytes) -> bool:
    """True only if ``header`` is the signature of exactly ``body`` under ``app_secret``."""
    if not header or not app_secret:
        return False
    expected = sign(body, app_secret).encode("ascii")
    try:
        given = header.strip().encode("ascii")
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(expected, given)


def handshake(params: Mapping[str, str], verify_token: str) -> str | None:
    """Answer to ``GET ?hub.mode=subscribe&hub.verify_token=..&hub.challenge=..``.

    Returns the challenge to echo (HTTP 200, plain text) or ``None`` (HTTP 403).
    """
    if params.get("hub.mode") != "subscribe":
        return None
    token = params.get("hub.verify_token")
    challenge = params.get("hub.challenge")
    if token is None or challenge is None or not verify_token:
        return None
    if not hmac.compare_digest(token.encode(), verify_token.encode()):
        return None
    return challenge
