"""The `screen` device role: a fitting-room screen bound to one room, signed in until revoked.

A wall screen must not sign in as staff (it could read customers' numbers and send WhatsApp
messages) nor stop after a staff session's 12 h. A manager turns the device into one room's screen
(`POST /api/screens`); it gets its own cookie and reaches only that room's page, state, requests
and stream. Managers list and revoke screens on `/fleet`.
"""

from __future__ import annotations

import secrets
from typing import Annotated

import sqlite_utils
from fastapi import APIRouter, HTTPException, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from gateway.storage import auth
from gateway.storage.db import MAX_ROW_ID, inserted_id
from gateway.web.routes_common import ManagerDep, Svc, current_staff, require_staff

COOKIE = "instore_screen"
COOKIE_MAX_AGE_S = 10 * 365 * 86400  # the browser keeps it; validity is the database row (revocable)


def create_screen(db: sqlite_utils.Database, room: str, staff_id: int, now: float) -> tuple[int, str]:
    token = secrets.token_urlsafe(32)
    cur = db.execute(
        "INSERT INTO screens (token_hash, room, created_at, created_by) VALUES (?, ?, ?, ?)",
        [auth._token_hash(token), room, now, staff_id],
    )
    return inserted_id(cur), token


def screen_room(db: sqlite_utils.Database, token: str | None) -> str | None:
    """The room a (not revoked) screen token is bound to."""
    if not token:
        return None
    row = db.execute(
        "SELECT room FROM screens WHERE token_hash = ? AND revoked_at IS NULL", [auth._token_hash(token)]
    ).fetchone()
    return row[0] if row else None


def list_screens(db: sqlite_utils.Database) -> list[dict]:
    rows = db.execute(
        "SELECT x.id, x.room, x.created_at, s.username FROM screens x LEFT JOIN staff s ON s.id = x.created_by "
        "WHERE x.revoked_at IS NULL ORDER BY x.room, x.id"
    ).fetchall()
    return [{"id": r[0], "room": r[1], "created_at": r[2], "created_by": r[3]} for r in rows]


def revoke_screen(db: sqlite_utils.Database, screen_id: int, now: float) -> bool:
    cur = db.execute("UPDATE screens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", [now, screen_id])
    return cur.rowcount == 1


def require_staff_or_room_screen(request: Request, s: Svc) -> None:
    """Staff, or the screen of the room named in the path; anything else as `require_staff` answers."""
    room = request.path_params.get("room")
    if room is not None and current_staff(request, s) is None:
        with s.lock:
            if screen_room(s.db, request.cookies.get(COOKIE)) == room:
                return
    require_staff(request, s)


class NewScreen(BaseModel):
    model_config = ConfigDict(extra="forbid")
    room: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,47}$")]


router = APIRouter(tags=["screens"])


@router.post("/api/screens", status_code=201, summary="Make this device the screen of a fitting room (managers)")
def add_screen(body: NewScreen, request: Request, response: Response, me: ManagerDep, s: Svc) -> dict:
    if body.room not in s.core.rfid.room_names:
        raise HTTPException(404, f"no fitting room {body.room!r}")
    with s.lock:
        screen_id, token = create_screen(s.db, body.room, me.id, s.now())
        auth.logout(s.db, request.cookies.get(auth.COOKIE) or "")  # the manager's session leaves the device
    secure = request.url.scheme == "https"
    response.set_cookie(COOKIE, token, max_age=COOKIE_MAX_AGE_S, httponly=True, samesite="strict", path="/",
                        secure=secure)
    response.delete_cookie(auth.COOKIE, path="/")
    return {"id": screen_id, "room": body.room, "url": f"/fitting-room/{body.room}"}


@router.get("/api/screens", summary="Fitting-room screens (managers)")
def screens(_: ManagerDep, s: Svc) -> list[dict]:
    with s.lock:
        return list_screens(s.db)


@router.delete("/api/screens/{screen_id}", summary="Revoke a fitting-room screen (managers)")
def revoke(screen_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)], _: ManagerDep, s: Svc) -> dict:
    with s.lock:
        if not revoke_screen(s.db, screen_id, s.now()):
            raise HTTPException(404, f"no active screen {screen_id}")
    return {"revoked": screen_id}
