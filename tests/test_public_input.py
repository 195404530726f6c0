"""Public input never answers 500: NaN in JSON, ids beyond 64 bits, the last day of the calendar;
bodies over a route's limit get 413; cross-site state changes 403; no redirect off-site."""

from __future__ import annotations

import pytest

from gateway.web.guards import BODY_LIMITS, DEFAULT_BODY_LIMIT, body_limit
from tests.test_clienteling_api import gw  # noqa: F401  (the fixture)


def test_nan_in_an_enrolment_is_a_422_naming_the_field(gw) -> None:  # noqa: ANN001, F811
    clients, _, _ = gw
    r = clients["public"].post("/api/enrol", content=b'{"name": NaN}', headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    assert [d["loc"] for d in r.json()["detail"]] == [["body", "name"]]
    assert "input" not in r.json()["detail"][0]  # never echoed: it may be a password


@pytest.mark.parametrize("path", ["/api/events?after=18446744073709551616", "/api/tasks/99999999999999999999/done"])
def test_ids_beyond_64_bits_are_422(gw, path: str) -> None:  # noqa: ANN001, F811
    clients, _, _ = gw
    r = clients["mia"].post(path) if path.endswith("/done") else clients["mia"].get(path)
    assert r.status_code == 422


def test_a_stream_resumed_from_a_huge_last_event_id_starts_now(gw) -> None:  # noqa: ANN001, F811
    from gateway.web.sse import resume_point

    _, core, _ = gw
    assert resume_point(core.events, str(2**64), None) == core.events.last_id()


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01"])
def test_kpi_on_the_edges_of_the_calendar_is_not_a_500(gw, day: str) -> None:  # noqa: ANN001, F811
    clients, _, _ = gw
    assert clients["mia"].get("/api/kpi", params={"day": day}).status_code in (200, 422)
    assert clients["mia"].get("/dashboard", params={"day": day}).status_code in (200, 422)


def test_body_limits_per_route(gw) -> None:  # noqa: ANN001, F811
    clients, _, _ = gw
    assert body_limit("/api/login") < DEFAULT_BODY_LIMIT < body_limit("/api/products/import")
    assert dict(BODY_LIMITS)["/whatsapp/webhook"] > DEFAULT_BODY_LIMIT
    big = b'{"username": "mia", "password": "' + b"x" * 20_000_000 + b'"}'
    r = clients["public"].post("/api/login", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413

    def chunks():  # no Content-Length: counted as it streams in
        yield b'{"name": "'
        for _ in range(200):
            yield b"y" * 1024
        yield b'"}'

    r = clients["public"].post("/api/enrol", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    ok = clients["mia"].post("/api/login", json={"username": "mia", "password": "manager-pass"})
    assert ok.status_code == 200  # within the limit


def test_cross_site_state_changes_are_refused(gw) -> None:  # noqa: ANN001, F811
    clients, _, _ = gw
    mia = clients["mia"]
    body = {"title": "call back"}
    evil = mia.post("/api/tasks", json=body, headers={"Origin": "https://evil.example"})
    assert evil.status_code == 403
    assert mia.post("/api/tasks", json=body).status_code == 201  # the till and tools send no Origin
    fetch_site = mia.post("/api/logout", headers={"Sec-Fetch-Site": "cross-site"})
    assert fetch_site.status_code == 403
    assert mia.get("/api/me").status_code == 200  # still signed in
    same = mia.post("/api/logout", headers={"Origin": str(mia.base_url).rstrip("/")})
    assert same.status_code == 200


@pytest.mark.slow
def test_sign_in_never_redirects_off_site(serve, browser, gw) -> None:  # noqa: ANN001, F811
    clients, _, _ = gw
    url = str(clients["public"].base_url).rstrip("/")
    ctx = browser.new_context(service_workers="block")
    page = ctx.new_page()
    for evil in ("/%5Cevil.example/x", "//evil.example/x", "https://evil.example/", "/%5C%5Cevil.example"):
        page.goto(f"{url}/login?next={evil}")
        page.fill("#u", "ana")
        page.fill("#p", "associate-pass")
        page.click("#go")
        page.wait_for_url(lambda u: "/login" not in u)  # wherever sign-in sends the browser
        assert page.url.startswith(url + "/"), (evil, page.url)
    page.goto(f"{url}/login?next=/fleet%3Fx%3D1")
    page.fill("#u", "ana")
    page.fill("#p", "associate-pass")
    page.click("#go")
    page.wait_for_url(f"{url}/fleet?x=1")
    ctx.close()


def test_api_docs_need_sign_in_and_no_cdn(gw) -> None:  # noqa: ANN001, F811
    clients, _, _ = gw
    public = clients["public"]
    for path in ("/docs", "/openapi.json", "/docs/assets/swagger-ui-bundle.js"):
        assert public.get(path).status_code in (303, 401), path
    page = clients["ana"].get("/docs")
    assert page.status_code == 200 and "/docs/assets/swagger-ui-bundle.js" in page.text
    assert "cdn" not in page.text.lower()
    js = clients["ana"].get("/docs/assets/swagger-ui-bundle.js")
    assert js.status_code == 200 and "SwaggerUIBundle" in js.text
    assert clients["ana"].get("/openapi.json").json()["info"]["title"] == "instore gateway"
