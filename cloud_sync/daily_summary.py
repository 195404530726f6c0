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

from .channel import InboxError

if TYPE_CHECKING:
    from .outbound import Outbound

log = logging.getLogger("instore.whatsapp")
FALLBACK_LANGUAGE = "de"  # the stores' first language, for a manager record without one


def due(now: float, at: str, tz: ZoneInfo, last_sent: date | None) -> date | None:
    """The day to summarise (yesterday) once local time has passed `at` and it was not sent yet."""
    local = datetime.fromtimestamp(now, tz)
    if local.strftime("%H:%M") < at:
        return None
    yesterday = local.date() - timedelta(days=1)
    return None if last_sent == yesterday else yesterday


def tick(service: Outbound, last_sent: date | None) -> date | None:
    """Send the summary if it is due; returns the day now sent (or still the last one)."""
    cfg = service.cfg.daily_summary
    if cfg.customer is None:
        return last_sent
    day = due(service.clock(), cfg.at, ZoneInfo(service.gateway.timezone), last_sent)
    if day is None:
        return last_sent
    contact = service.gateway.contact(cfg.customer)
    number = contact.whatsapp.lstrip("+") if contact and contact.whatsapp else None
    if contact is None or number is None:
        log.warning("daily summary: customer %r has no WhatsApp number", cfg.customer)
        return day  # nothing to send to today; tried again tomorrow
    lang = contact.language or FALLBACK_LANGUAGE
    values = service.gateway.daily_summary(day, lang)
    try:
        service.send_template(number, cfg.template, lang, values, None, client_ref=f"daily-summary-{day.isoformat()}")
    except InboxError as exc:  # no consent, template not approved in that language: said once a day
        log.warning("daily summary for %s not sent: %s", day.isoformat(), exc)
    return day
