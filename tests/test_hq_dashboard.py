"""HQ's chain dashboard in headless Chromium: two stores' sales, door counts and recognised visits go
through real NATS into PostgreSQL by the real consumer, and the page shows each store's and the chain's
figures of the chosen day, in German and in English, behind its token, on a phone and a desktop,
without serious accessibility violations (axe-core)."""

from __future__ import annotations

import base64
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest
from axe_playwright_python.sync_playwright import Axe
from typer.testing import CliRunner

from firmware_config.nats import HQ_USER, stream_name
from firmware_config.validate import ConfigError
from gateway.channels.chain_publish import ChainPublisher, Cursor, PublisherThread
from gateway.i18n import number, price
from gateway.ingest.core import GatewayCore
from gateway.storage import door_counts
from gateway.storage.customers import add_customer, record_consent
from gateway.storage.db import open_db
from gateway.storage.kpi import day_bounds
from instore.cli import app
from instore.hq import Hq, HqConfig, load_config
from instore.hq_dashboard import Dashboard, authorised
from instore.hq_metrics import MetricsServer
from tests.chain_env import Chain, running_chain
from tests.shots import save_shot
from tests.test_chain_customers import Loop, _wait_for
from tests.test_chain_sales import _cross, _sale

pytestmark = pytest.mark.slow
STORES = ["a", "b"]
TOKEN = "s3cret-token"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


def test_the_token_as_bearer_or_as_a_basic_password() -> None:
    basic = "Basic " + base64.b64encode(f"anyone:{TOKEN}".encode()).decode()
    assert authorised(f"Bearer {TOKEN}", TOKEN) and authorised(basic, TOKEN)
    assert not authorised("Bearer wrong", TOKEN) and not authorised(None, TOKEN)
    assert not authorised("Basic !!!", TOKEN) and not authorised(TOKEN, TOKEN)


def test_a_bad_day_is_named() -> None:
    board = Dashboard("postgresql://unused", STORES, TOKEN, ZoneInfo("UTC"), time.time)
    code, body, _, _ = board("/dashboard?day=2026-13-01", {"authorization": f"Bearer {TOKEN}"})
    assert code == 400 and b"day: '2026-13-01'" in body
    assert board("/dashboard", {})[0] == 401


def test_hq_toml_names_a_bad_zone_and_a_missing_token_file(tmp_path: Path) -> None:
    (tmp_path / "hq-password").write_text("pw", encoding="utf-8")
    base = 'password_file = "hq-password"\npostgres = "postgresql://x"\nstores = ["a"]\n'
    (tmp_path / "hq.toml").write_text(base + 'timezone = "Europe/Nowhere"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"hq.toml:4: timezone: .*unknown time zone 'Europe/Nowhere'"):
        load_config(tmp_path / "hq.toml")
    (tmp_path / "hq.toml").write_text(base + 'dashboard_token_file = "absent"\n', encoding="utf-8")
    result = CliRunner().invoke(app, ["hq", "--config", str(tmp_path / "hq.toml")])
    assert result.exit_code == 1 and "dashboard_token_file: " in result.output


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    with running_chain(tmp_path_factory.mktemp("chain"), STORES) as c:
        yield c


def _fill(chain: Chain, tmp: Path, day: date) -> dict[str, float]:
    """Both stores' day (and a sale the day before) through the publisher, NATS and `Hq` into PostgreSQL;
    each store's visitors in as HQ sums them."""
    opens = day_bounds(day, ZoneInfo("UTC"))[0] + 10 * 3600
    cores = {s: GatewayCore(chain.stores[s], open_db(tmp / f"{s}.db"), clock=time.time) for s in STORES}
    a, b = cores["a"], cores["b"]
    with a.lock:
        add_customer(a.db, "c-yes", "Anna", now=opens)
        record_consent(a.db, "c-yes", "recognition", True, now=opens, method="enrolment-page")
    for ts, kind in ((opens, "entered"), (opens + 100, "session_started"), (opens + 300, "session_ended"),
                     (opens + 600, "left")):
        a.events.append(ts, kind, "c-yes", {})
    _sale(a, opens + 400, 1999, "c-yes")
    _sale(a, opens + 3700, 1000)
    _sale(a, opens - 86400, 7000)  # the day before: not on this day's page
    _sale(b, opens + 200, 5000)
    _cross(a, opens, ins=5, outs=3)
    _cross(a, opens + 3600, ins=4, outs=4)
    _cross(b, opens, ins=10, outs=9)
    visitors = {s: sum(round(door_counts.visitors(c.db, [h]).visitors_in[0], 2) for h in (opens, opens + 3600))
                for s, c in cores.items()}

    loop = Loop()
    hq = Hq(HqConfig(nats_url=f"nats://127.0.0.1:{chain.hq_port}", password_file="unused", postgres=chain.dsn,
                     stores=STORES), chain.passwords[HQ_USER])
    stop_hq = loop.start(hq.run)
    threads = [PublisherThread(ChainPublisher(s, chain.stores[s].chain, c.events,  # type: ignore[arg-type]  # chain set
                                              Cursor(c.db, c.lock, stream_name(s)))) for s, c in cores.items()]
    for th in threads:
        th.start()
    try:
        def arrived() -> bool:
            with psycopg.connect(chain.dsn) as conn:
                return conn.execute("SELECT (SELECT count(*) FROM chain_sales), (SELECT count(*) FROM chain_footfall),"
                                    " (SELECT count(*) FROM chain_events WHERE kind IN ('entry', 'visit', 'fitting'))"
                                    ).fetchone() == (4, 3, 4)
        _wait_for(arrived)
    finally:
        for th in threads:
            th.stop()
        stop_hq()
        loop.close()
    return visitors


def _cells(page, store: str) -> list[str]:  # noqa: ANN001
    return [c.strip() for c in page.locator(f'tr[data-store="{store}"] td').all_inner_texts()]


def _expected(lang: str, vin: float, entries: int, visits: int, fittings: int, sales: int, cents: int) -> list[str]:
    return [number(vin, lang), str(entries), str(visits), str(fittings), str(sales), price(cents, "EUR", lang),
            number(sales / vin * 100, lang, 1) + " %"]


def test_the_chain_dashboard_in_german_and_english(chain: Chain, tmp_path: Path, browser) -> None:  # noqa: ANN001
    day = datetime.now(UTC).date() - timedelta(days=1)
    visitors = _fill(chain, tmp_path, day)
    board = Dashboard(chain.dsn, STORES, TOKEN, ZoneInfo("UTC"), time.time)
    with MetricsServer("127.0.0.1", 0, dict, lambda: {"ok": True}, dashboard=board) as server:
        url = f"http://127.0.0.1:{server.port}/dashboard?day={day.isoformat()}"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url)  # noqa: S310 (loopback)
        assert refused.value.code == 401
        for viewport in (PHONE, DESKTOP):
            ctx = browser.new_context(viewport=viewport, locale="de-DE",
                                      http_credentials={"username": "hq", "password": TOKEN})
            page = ctx.new_page()
            page.goto(url)
            assert page.inner_text("h1") == "Übersicht der Kette"
            assert _cells(page, "a") == _expected("de", visitors["a"], 1, 1, 1, 2, 2999)
            assert _cells(page, "b") == _expected("de", visitors["b"], 0, 0, 0, 1, 5000)
            chain_row = _cells(page, "")
            assert chain_row[0] == "Kette"
            assert chain_row[1:] == _expected("de", visitors["a"] + visitors["b"], 1, 1, 1, 3, 7999)
            assert page.locator("figure svg").count() == 1
            save_shot(page, f"hq-dashboard-de-{viewport['width']}.png")
            assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
            found = Axe().run(page).response["violations"]
            assert [v["id"] for v in found if v["impact"] in ("serious", "critical")] == []

            page.click("nav a[lang=en]")
            assert page.inner_text("h1") == "Chain dashboard"
            assert _cells(page, "a") == _expected("en", visitors["a"], 1, 1, 1, 2, 2999)
            assert _cells(page, "")[0] == "Chain"
            assert "Figures of" in page.inner_text("h2")
            save_shot(page, f"hq-dashboard-en-{viewport['width']}.png")
            ctx.close()
