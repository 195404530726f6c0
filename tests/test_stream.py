"""The live stream's resume contract over real HTTP: replay strictly after Last-Event-ID."""

from __future__ import annotations

import time

import httpx

from firmware_config.store import load_store
from gateway.engines.presence import PresenceEvent
from gateway.ingest.core import GatewayCore
from gateway.storage import auth
from gateway.storage.db import open_db
from gateway.web.app import create_app
from tests.conftest import BOUTIQUE


def _ids(url: str, headers: dict, n: int) -> list[int]:
    got: list[int] = []
    with httpx.stream("GET", url, headers=headers, timeout=10) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("id:"):
                got.append(int(line[3:]))
                if len(got) == n:
                    break
    return got


def test_stream_replays_only_events_after_last_event_id(serve, tmp_path) -> None:  # noqa: ANN001
    core = GatewayCore(load_store(BOUTIQUE), open_db(tmp_path / "gw.db"), clock=time.time)
    auth.create_staff(core.db, "ana", "associate-pass", "associate")
    server = serve(create_app(core))
    login = httpx.post(f"{server.url}/api/login", json={"username": "ana", "password": "associate-pass"})
    bearer = {"Authorization": f"Bearer {login.json()['token']}"}  # the stream needs a staff session
    ids = [core.emit(PresenceEvent("entered", f"c{i}", float(i), "entrance", "pavement", 0.9)).id for i in range(5)]
    url = f"{server.url}/api/stream"
    assert _ids(url, {"Last-Event-ID": str(ids[1]), **bearer}, 3) == ids[2:]
    assert _ids(url + "?after=0", bearer, 5) == ids
    r = httpx.get(f"{server.url}/api/events", params={"after": ids[3]}, headers=bearer)
    assert [e["id"] for e in r.json()] == ids[4:]
    assert httpx.get(f"{server.url}/api/events", params={"after": -1}, headers=bearer).status_code == 422


def test_stream_ends_when_the_session_is_signed_out(serve, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    """A tablet left open must not keep showing customers once its staff member signed out."""
    import gateway.web.sse

    monkeypatch.setattr(gateway.web.sse, "RECHECK_S", 0.2)
    core = GatewayCore(load_store(BOUTIQUE), open_db(tmp_path / "gw.db"), clock=time.time)
    auth.create_staff(core.db, "ana", "associate-pass", "associate")
    server = serve(create_app(core))
    login = httpx.post(f"{server.url}/api/login", json={"username": "ana", "password": "associate-pass"})
    token = login.json()["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    core.emit(PresenceEvent("entered", "c1", 1.0, "entrance", "pavement", 0.9))
    lines: list[str] = []
    started = time.monotonic()
    with httpx.stream("GET", f"{server.url}/api/stream?after=0", headers=bearer, timeout=10) as r:
        for line in r.iter_lines():
            lines.append(line)
            if line.startswith("id:"):  # the replayed alert is in: now sign out from elsewhere
                assert httpx.post(f"{server.url}/api/logout", headers=bearer).status_code == 200
    assert any(line.startswith("id:") for line in lines)
    assert time.monotonic() - started < 5.0  # ended by the server within a re-check or two, not by the timeout
    assert httpx.get(f"{server.url}/api/stream", headers=bearer, timeout=5).status_code == 401
