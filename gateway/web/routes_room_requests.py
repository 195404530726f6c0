"""HTTP routes of the fitting-room requests (gateway.storage.room_requests): the tablets' list, claim and
done, and the tablet's request cards script."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Response
from sqlite_utils import Database

from gateway.storage import auth
from gateway.storage import room_requests as rr
from gateway.storage.db import MAX_ROW_ID
from gateway.web.routes_common import StaffDep, Svc, page

router = APIRouter(tags=["staff"])
RequestId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]


def _named(s: Svc, r: dict) -> dict:
    return {**r, "room_name": s.core.rfid.room_names.get(r["room"], r["room"])}


@router.get("/requests.js", include_in_schema=False)
def script(_: StaffDep) -> Response:
    """The tablet's request cards (gateway/static/requests.js)."""
    return Response(page("requests.js"), media_type="text/javascript", headers={"Cache-Control": "no-cache"})


@router.get("/api/room-requests", summary="Open fitting-room requests (staff tablets)")
def list_open(_: StaffDep, s: Svc) -> dict:
    with s.lock:
        rows = [_named(s, r) for r in rr.open_requests(s.db)]
    return {"now": s.now(), "escalate_after_s": rr.ESCALATE_AFTER_S, "requests": rows}


@router.post("/api/room-requests/{request_id}/claim", summary="I'm on it: the room's screen says who is coming")
def claim_route(request_id: RequestId, me: StaffDep, s: Svc) -> dict:
    return _move(request_id, me, s, rr.claim, "room_request_claimed")


@router.post("/api/room-requests/{request_id}/done", summary="Request answered: off the tablets and the screen")
def done_route(request_id: RequestId, me: StaffDep, s: Svc) -> dict:
    return _move(request_id, me, s, rr.finish, "room_request_done")


def _move(
    request_id: int, me: auth.Staff, s: Svc, step: Callable[[Database, int, int, float], dict], kind: str
) -> dict:
    """Claim or finish a request (`step`), then tell the tablets and the screen (`kind`)."""
    with s.lock:
        try:
            out = step(s.db, request_id, me.id, s.now())
        except KeyError:
            raise HTTPException(404, f"no open request {request_id}") from None
        except ValueError as e:
            raise HTTPException(409, str(e)) from None
    out = _named(s, out)
    s.publish(kind, None, out)
    return out
