"""The manager's daily summary on WhatsApp: yesterday's figures and the week's trend, once a day.

A utility template (approved by Meta, listed in `[[templates]]`) with six parameters: the day,
visitors, revenue, conversion, missed conversations, and revenue against the week before. It
goes to the manager's own customer record (`[daily_summary] customer`), through the same rules
as every staff message: the service consent is checked at send time, and the idempotency key
names the day, so a restart or a second gateway never sends a day twice. See docs/kpi.md.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from babel import Locale
from babel.numbers import format_percent

from gateway import i18n

if TYPE_CHECKING:
    from .service import WhatsAppService

log = logging.getLogger("instore.whatsapp")


def due(now: float, at: str, tz: ZoneInfo, last_sent: date | None) -> date | None:
    """The day to summarise (yesterday) once local time has passed `at` and it was not sent yet."""
    local = datetime.fromtimestamp(now, tz)
    if local.strftime("%H:%M") < at:
        return None
    yesterday = local.date() - timedelta(days=1)
    return None if last_sent == yesterday else yesterday


def _pct(share: float | None, lang: str, signed: bool = False) -> str:
    """A share with one decimal in the locale's own pattern ("12.5%", "12,5 %")."""
    if share is None:
        return "–"
    pattern = Locale.parse(lang).percent_formats[None].pattern.replace("#0", "#0.0", 1)
    text = format_percent(share, pattern, locale=lang)
    return ("+" + text) if signed and share > 0 else text


def params(summary: dict, lang: str, currency: str) -> list[str]:
    """The template's six parameters in the manager's language (routes_kpi.summary's figures)."""
    f = summary["figures"]
    return [
        i18n.day(summary["day"], lang),
        i18n.number(f["visitors"], lang),
        i18n.price(f["revenue_cents"], currency, lang),
        _pct(f["conversion"], lang),
        i18n.number(summary["conversations"]["missed"], lang),
        _pct(summary["trend"]["change"]["revenue_cents"], lang, signed=True),
    ]


def tick(service: WhatsAppService, last_sent: date | None) -> date | None:
    """Send the summary if it is due; returns the day now sent (or still the last one)."""
    from gateway import routes_kpi

    from .service import InboxError

    cfg = service.cfg.daily_summary
    clienteling = service.clienteling
    if cfg.customer is None or clienteling is None:
        return last_sent
    day = due(service.clock(), cfg.at, clienteling.tz, last_sent)
    if day is None:
        return last_sent
    number = service.number_of(cfg.customer)
    if number is None:
        log.warning("daily summary: customer %r has no WhatsApp number", cfg.customer)
        return day  # nothing to send to today; tried again tomorrow
    with service.lock:
        row = service.db.execute("SELECT language FROM customers WHERE id = ?", [cfg.customer]).fetchone()
    lang = row[0] if row and row[0] in i18n.LANGUAGES else i18n.FALLBACK
    figures = routes_kpi.summary(clienteling, day + timedelta(days=1))
    values = params(figures, lang, clienteling.core.store.gateway.kpi.currency)
    try:
        service.send_template(number, cfg.template, lang, values, None, client_ref=f"daily-summary-{day.isoformat()}")
    except InboxError as exc:  # no consent, template not approved in that language: said once a day
        log.warning("daily summary for %s not sent: %s", day.isoformat(), exc)
    return day
