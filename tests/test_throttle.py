"""Failed-attempt throttling: the pure counter, and the sign-in and enrolment endpoints over HTTP."""

from __future__ import annotations

import httpx

from firmware_config.store import load_store
from gateway.ingest.core import GatewayCore
from gateway.storage import auth
from gateway.storage.db import open_db
from gateway.web.app import create_app
from gateway.web.throttle import Throttle
from tests.conftest import BOUTIQUE


def test_a_key_is_refused_after_its_limit_until_the_oldest_attempt_leaves_the_window() -> None:
    t = Throttle(limit=3, window_s=60.0)
    for now in (0.0, 10.0, 20.0):
        assert t.retry_after("a", now) is None
        t.hit("a", now)
    assert t.retry_after("a", 30.0) == 30.0  # the attempt at 0 s leaves the window at 60 s
    assert t.retry_after("b", 30.0) is None  # other keys are unaffected
    assert t.retry_after("a", 60.0) is None
    t.clear("a")
    assert t.retry_after("a", 61.0) is None


def test_memory_stays_bounded_whatever_the_number_of_keys() -> None:
    t = Throttle(limit=1, window_s=60.0, max_keys=100)
    for i in range(1000):
        t.hit(f"addr{i}", 0.0)
    assert len(t._hits) == 100 and t.retry_after("addr999", 1.0) is not None


def test_sign_in_is_throttled_after_five_wrong_passwords(serve, tmp_path) -> None:  # noqa: ANN001
    now = [1_700_000_000.0]
    core = GatewayCore(load_store(BOUTIQUE), open_db(tmp_path / "gw.db"), clock=lambda: now[0])
    auth.create_staff(core.db, "ana", "associate-pass", "associate")
    server = serve(create_app(core))
    url = f"{server.url}/api/login"
    for _ in range(5):
        assert httpx.post(url, json={"username": "ana", "password": "guess"}).status_code == 401
    r = httpx.post(url, json={"username": "ana", "password": "associate-pass"})  # even the right one waits
    assert r.status_code == 429 and int(r.headers["Retry-After"]) == 300
    assert httpx.post(url, json={"username": "bob", "password": "guess"}).status_code == 401  # per username
    now[0] += 301
    assert httpx.post(url, json={"username": "ana", "password": "associate-pass"}).status_code == 200


def test_enrolment_is_throttled_per_address(serve, tmp_path) -> None:  # noqa: ANN001
    core = GatewayCore(load_store(BOUTIQUE), open_db(tmp_path / "gw.db"), clock=lambda: 1_700_000_000.0)
    server = serve(create_app(core))
    body = {"name": "Test Customer", "consents": {}}
    codes = [httpx.post(f"{server.url}/api/enrol", json=body).status_code for _ in range(31)]
    assert codes[:30] == [201] * 30 and codes[30] == 429
