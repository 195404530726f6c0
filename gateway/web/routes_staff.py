"""The staff app's API: who is in the store, claims, tasks and follow-ups.

Claims and task changes are appended to the event log and pushed on the live stream, so
every tablet shows "Ana is with Alice" within the same second.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path
from pydantic import BaseModel, ConfigDict, Field

from gateway.storage import staff
from gateway.storage.db import MAX_ROW_ID
from gateway.web.routes_common import StaffDep, Svc, maintenance_lifespan

router = APIRouter(lifespan=maintenance_lifespan)

ClaimKind = Annotated[Literal["customer", "task"], Path()]
ClaimId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]


class NewTask(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    kind: Literal["followup", "task", "pickup"] = "followup"
    title: Annotated[str, Field(min_length=1, max_length=200)]
    customer_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    due_at: Annotated[float, Field(ge=0, le=32503680000)] | None = (
        None  # seconds since the epoch, before 3000
    )
    urgent: bool = False  # rings on every tablet
    assigned_to: Annotated[str, Field(min_length=1, max_length=64)] | None = None  # a username; None: open


@router.get("/api/present", summary="Customers in the store now, where, and who is with them", tags=["staff"])
def present(_: StaffDep, s: Svc) -> list[dict]:
    with s.lock:
        here = s.core.presence.present()
        return staff.present_now(s.db, here)


@router.get("/api/claims", summary="Current claims", tags=["staff"])
def list_claims(_: StaffDep, s: Svc) -> list[dict]:
    with s.lock:
        return staff.claims(s.db)


@router.post(
    "/api/claims/{kind}/{ident}",
    summary="Claim a customer or task (one staff member at a time)",
    tags=["staff"],
)
def claim(kind: ClaimKind, ident: ClaimId, me: StaffDep, s: Svc) -> dict:
    subject = f"{kind}:{ident}"
    with s.lock:
        try:
            out = staff.claim(s.db, subject, me.id, now=s.now())
        except staff.NotFound as err:
            raise HTTPException(404, str(err)) from err
        except staff.ClaimConflict as err:
            raise HTTPException(409, str(err)) from err
        s.publish(
            "claimed",
            out["customer_id"],
            {"subject": subject, "staff": me.username, "answered_event": out["answered_event"]},
        )
    return {**out, "staff": me.username}


@router.delete(
    "/api/claims/{kind}/{ident}", summary="Release a claim (its holder, or a manager)", tags=["staff"]
)
def release(kind: ClaimKind, ident: ClaimId, me: StaffDep, s: Svc) -> dict:
    subject = f"{kind}:{ident}"
    with s.lock:
        try:
            cid = staff.subject_customer(s.db, subject)
            released = staff.release(s.db, subject, me.id, manager=me.is_manager)
        except staff.NotFound as err:
            raise HTTPException(404, str(err)) from err
        except staff.ClaimConflict as err:
            raise HTTPException(409, str(err)) from err
        if released:
            s.publish("released", cid, {"subject": subject, "staff": me.username})
    return {"subject": subject, "released": released}


def _end_of_today(s) -> float:  # noqa: ANN001
    local = datetime.fromtimestamp(s.now(), s.tz)
    return (local.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)).timestamp()


@router.get(
    "/api/tasks", summary="Open tasks; `due=today` for follow-ups due by the end of today", tags=["staff"]
)
def tasks(_: StaffDep, s: Svc, due: Literal["today", "all"] = "all") -> list[dict]:
    with s.lock:
        return staff.open_tasks(s.db, due_before=_end_of_today(s) if due == "today" else None)


@router.post("/api/tasks", status_code=201, summary="Add a task or follow-up", tags=["staff"])
def add_task(body: NewTask, me: StaffDep, s: Svc) -> dict:
    with s.lock:
        try:
            assignee = staff.staff_id(s.db, body.assigned_to) if body.assigned_to else None
            tid = staff.add_task(
                s.db,
                kind=body.kind,
                title=body.title,
                customer_id=body.customer_id,
                due_at=body.due_at,
                created_by=me.id,
                now=s.now(),
                urgent=body.urgent,
                assigned_to=assignee,
            )
        except staff.NotFound as err:
            raise HTTPException(404, str(err)) from err
        s.publish(
            "task",
            body.customer_id,
            {
                "id": tid, "title": body.title, "kind": body.kind, "due_at": body.due_at, "by": me.username,
                "urgent": body.urgent, "assigned_to": body.assigned_to,
            },
        )
    return {"id": tid}


@router.post("/api/tasks/{task_id}/done", summary="Mark a task done", tags=["staff"])
def task_done(task_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)], me: StaffDep, s: Svc) -> dict:
    with s.lock:
        try:
            cid = staff.complete_task(s.db, task_id, me.id, now=s.now())
        except staff.NotFound as err:
            raise HTTPException(404, str(err)) from err
        s.publish("task_done", cid, {"id": task_id, "by": me.username})
    return {"id": task_id, "done": True}
