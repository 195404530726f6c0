"""Sign-in, sign-out, staff accounts, and the public PWA assets (manifest, service worker, icon)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field

from gateway.i18n import web as i18n_web
from gateway.storage import auth
from gateway.web.routes_common import ManagerDep, StaffDep, Svc, client_address, page, throttled

router = APIRouter()


class Credentials(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: Annotated[str, Field(min_length=1, max_length=64)]
    password: Annotated[str, Field(min_length=1, max_length=256)]


class NewStaff(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: Annotated[str, Field(pattern=auth.USERNAME.pattern)]
    password: Annotated[str, Field(min_length=auth.MIN_PASSWORD, max_length=256)]
    role: Literal["associate", "manager"]
    name: Annotated[str, Field(max_length=80)] = ""


@router.get("/login", response_class=HTMLResponse, summary="Staff sign-in page", tags=["auth"])
def login_page(request: Request, s: Svc) -> HTMLResponse:
    return HTMLResponse(i18n_web.page(request, "login.html", s.core.store.store.language))


@router.post("/api/login", summary="Sign in: sets the session cookie and returns the token", tags=["auth"])
def login(body: Credentials, request: Request, response: Response, s: Svc) -> dict:
    now = s.now()
    addr = client_address(request)
    key = f"{addr}|{body.username.lower()}"
    with s.lock:
        throttled(s.address_throttle.retry_after(addr, now) or s.login_throttle.retry_after(key, now))
        token = auth.login(s.db, body.username, body.password, now=now, ttl_s=s.session_ttl_s)
        staff = auth.session_staff(s.db, token, now=now) if token else None
        if token is None or staff is None:
            s.login_throttle.hit(key, now)
            s.address_throttle.hit(addr, now)
            raise HTTPException(401, "wrong username or password")
        s.login_throttle.clear(key)
    response.set_cookie(
        auth.COOKIE, token, max_age=int(s.session_ttl_s), httponly=True, samesite="strict", path="/",
        secure=request.url.scheme == "https",  # over HTTPS the browser never sends it in clear
    )
    return {
        "token": token,
        "username": staff.username,
        "name": staff.name,
        "role": staff.role,
        "expires_at": now + s.session_ttl_s,
    }


@router.post("/api/logout", summary="Sign out (ends this session)", tags=["auth"])
def logout(request: Request, response: Response, staff: StaffDep, s: Svc) -> dict:
    token = request.cookies.get(auth.COOKIE) or request.headers.get("authorization", "")[7:].strip()
    with s.lock:
        auth.logout(s.db, token)
    response.delete_cookie(auth.COOKIE, path="/")
    return {"status": "signed out", "username": staff.username}


@router.get("/api/me", summary="The signed-in staff member", tags=["auth"])
def me(staff: StaffDep) -> dict:
    return {"id": staff.id, "username": staff.username, "name": staff.name, "role": staff.role}


@router.get("/api/staff", summary="Staff accounts (managers)", tags=["auth"])
def staff_list(_: ManagerDep, s: Svc) -> list[dict]:
    with s.lock:
        return auth.list_staff(s.db)


@router.post("/api/staff", status_code=201, summary="Add a staff account (managers)", tags=["auth"])
def staff_add(body: NewStaff, _: ManagerDep, s: Svc) -> dict:
    with s.lock:
        try:
            sid = auth.create_staff(
                s.db, body.username, body.password, body.role, name=body.name, now=s.now()
            )
        except ValueError as err:
            raise HTTPException(409 if "taken" in str(err) else 422, str(err)) from err
    return {"id": sid, "username": body.username, "role": body.role}


@router.get("/manifest.webmanifest", include_in_schema=False)
def manifest() -> Response:
    return Response(page("manifest.webmanifest"), media_type="application/manifest+json")


@router.get("/sw.js", include_in_schema=False)
def service_worker() -> Response:
    return Response(page("sw.js"), media_type="text/javascript", headers={"Cache-Control": "no-cache"})


@router.get("/icon.svg", include_in_schema=False)
def icon() -> Response:
    return Response(page("icon.svg"), media_type="image/svg+xml")
