"""The manager's daily summary on WhatsApp: due once a day after its time, the day's figures as the
template's parameters, sent once per day and only with the service consent."""

from __future__ import annotations

import json
from datetime import date
from zoneinfo import ZoneInfo

from cloud_sync import daily_summary
from cloud_sync.config import parse_config
from cloud_sync.service import WhatsAppService
from gateway.channels.whatsapp_host import whatsapp_service
from gateway.storage.customers import add_customer
from gateway.web.app import create_app
from gateway.web.routes_whatsapp import mount_whatsapp
from tests.test_wa_inbox import ALICE, ENV, T0, config_text, make_service

BERLIN = ZoneInfo("Europe/Berlin")
SUMMARY = '[[templates]]\nname = "daily_summary"\nlanguage = "en"\ncategory = "UTILITY"\nparams = 6\n'


def test_due_once_a_day_after_its_time() -> None:
    tue_0829, tue_0831 = T0 + 22 * 3600 + 29 * 60, T0 + 22 * 3600 + 31 * 60  # T0: Monday 10:00 in Berlin
    assert daily_summary.due(tue_0829, "08:30", BERLIN, None) is None
    assert daily_summary.due(tue_0831, "08:30", BERLIN, None) == date(2026, 3, 2)
    assert daily_summary.due(tue_0831, "08:30", BERLIN, date(2026, 3, 2)) is None


def _summary_rows(core) -> list[dict]:  # noqa: ANN001
    rows = core.db.execute("SELECT body FROM wa_outbox WHERE idempotency_key LIKE '%daily-summary%'").fetchall()
    return [json.loads(r[0]) for r in rows]


def _service(core, clock, manager: str) -> WhatsAppService:  # noqa: ANN001
    cfg = parse_config(config_text(extra=SUMMARY + f'[daily_summary]\ncustomer = "{manager}"\n'), environ=ENV)
    svc = whatsapp_service(core, cfg, clock=clock)
    mount_whatsapp(create_app(core), svc)  # attaches the service to the dashboard's figures
    return svc


def test_the_summary_goes_to_the_manager_once_with_consent_only(tmp_path) -> None:  # noqa: ANN001
    plain, core, clock = make_service(tmp_path)
    plain.close()
    add_customer(core.db, "carl", "Carl", whatsapp="+491703333333", now=T0)  # no WhatsApp consent
    core.db.execute("INSERT INTO sales (ts, amount_cents, currency, till) VALUES (?, 4990, 'EUR', 't1')", [T0 + 3600])
    svc = _service(core, clock, "alice")
    clock.t = T0 + 22 * 3600 + 31 * 60  # Tuesday 08:31
    sent = daily_summary.tick(svc, None)
    assert sent == date(2026, 3, 2)
    (body,) = _summary_rows(core)
    assert body["to"] == ALICE and body["template"]["name"] == "daily_summary"
    values = [p["text"] for p in body["template"]["components"][0]["parameters"]]
    assert values[0] == "Mar 2, 2026" and values[2] == "€49.90" and len(values) == 6
    assert daily_summary.tick(svc, sent) == sent and len(_summary_rows(core)) == 1  # once a day
    assert daily_summary.tick(svc, None) == sent and len(_summary_rows(core)) == 1  # after a restart: the same key

    svc.close()
    svc = _service(core, clock, "carl")
    clock.t += 86400
    assert daily_summary.tick(svc, sent) == date(2026, 3, 3)
    assert len(_summary_rows(core)) == 1  # carl never agreed to WhatsApp messages: nothing queued
    svc.close()


def test_a_summary_template_must_be_listed() -> None:
    import pytest

    from cloud_sync.config import ConfigError

    with pytest.raises(ConfigError, match="daily_summary.template"):
        parse_config(config_text(extra='[daily_summary]\ncustomer = "alice"\n'), environ=ENV)
