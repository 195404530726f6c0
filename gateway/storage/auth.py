"""Staff accounts and sessions: per-person logins, scrypt password hashes, expiring tokens.

Shared tablet PINs make it impossible to say who answered an alert or sold what, and a
leaked PIN cannot be revoked for one person; so every staff member has an account. Tokens
are random 256-bit values; the database holds only their SHA-256, so a copied database
file does not contain usable sessions. Pure functions over the database with an injected
`now`; the HTTP side is in `gateway.web.routes_common`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

import sqlite_utils

from gateway.storage.db import inserted_id

ROLES = ("associate", "manager")
SESSION_TTL_S = 12 * 3600.0  # one long shift: staff sign in once a day on a shared tablet
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1  # ~16 MiB, tens of ms: slow for guessing, fine for a login
MIN_PASSWORD = 8  # shorter is guessable offline from a stolen hash in minutes
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,31}$")
COOKIE = "instore_session"


@dataclass(frozen=True, slots=True)
class Staff:
    id: int
    username: str
    name: str
    role: str

    @property
    def is_manager(self) -> bool:
        return self.role == "manager"


def hash_password(password: str, salt: bytes | None = None) -> str:
    """`scrypt$N$r$p$salt$hash` (hex), so parameters can be raised later without breaking old hashes."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(
            password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=len(digest) // 2
        )
    except ValueError:
        return False
    return hmac.compare_digest(got.hex(), digest)


_DUMMY_HASH = hash_password("not a password", b"\0" * 16)  # equal work for unknown users: no username oracle


def create_staff(
    db: sqlite_utils.Database,
    username: str,
    password: str,
    role: str,
    *,
    name: str = "",
    now: float | None = None,
) -> int:
    """Add a staff account (the CLI's `instore staff add` calls this); returns its id.

    Raises ValueError naming the field for a bad username, short password, unknown role or
    a username already taken.
    """
    if not USERNAME.fullmatch(username or ""):
        raise ValueError("username: 2-32 characters, lower-case letters, digits, '.', '_' or '-'")
    if len(password or "") < MIN_PASSWORD:
        raise ValueError(f"password: at least {MIN_PASSWORD} characters")
    if role not in ROLES:
        raise ValueError(f"role: must be one of {', '.join(ROLES)}")
    if db.execute("SELECT 1 FROM staff WHERE username = ?", [username]).fetchone():
        raise ValueError(f"username: {username!r} is already taken")
    cur = db.execute(
        "INSERT INTO staff (username, name, pw_hash, role, active, created_at) VALUES (?, ?, ?, ?, 1, ?)",
        [username, name or username, hash_password(password), role, time.time() if now is None else now],
    )
    return inserted_id(cur)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def login(
    db: sqlite_utils.Database, username: str, password: str, *, now: float, ttl_s: float = SESSION_TTL_S
) -> str | None:
    """A new session token for valid credentials of an active account, else None."""
    row = db.execute("SELECT id, pw_hash, active FROM staff WHERE username = ?", [username]).fetchone()
    if row is None:
        verify_password(password, _DUMMY_HASH)
        return None
    if not verify_password(password, row[1]) or not row[2]:
        return None
    token = secrets.token_urlsafe(32)
    db.execute(
        "INSERT INTO sessions (token_hash, staff_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
        [_token_hash(token), row[0], now, now + ttl_s],
    )
    db.execute("DELETE FROM sessions WHERE expires_at < ?", [now])  # housekeeping on each login
    return token


def session_staff(db: sqlite_utils.Database, token: str | None, *, now: float) -> Staff | None:
    """The staff member owning a token, if the session exists, has not expired and the account is active."""
    if not token or len(token) > 200:
        return None
    row = db.execute(
        "SELECT s.id, s.username, s.name, s.role FROM sessions x JOIN staff s ON s.id = x.staff_id "
        "WHERE x.token_hash = ? AND x.expires_at > ? AND s.active = 1",
        [_token_hash(token), now],
    ).fetchone()
    return Staff(*row) if row else None


def logout(db: sqlite_utils.Database, token: str) -> None:
    db.execute("DELETE FROM sessions WHERE token_hash = ?", [_token_hash(token)])


def list_staff(db: sqlite_utils.Database) -> list[dict]:
    return [
        {"id": r[0], "username": r[1], "name": r[2], "role": r[3], "active": bool(r[4])}
        for r in db.execute("SELECT id, username, name, role, active FROM staff ORDER BY username")
    ]
