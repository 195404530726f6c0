"""The manager's daily summary in words: the WhatsApp template's six parameters in the manager's
language, formatted by locale (Babel). The channel (cloud_sync.daily_summary) decides when to send
and asks for these through its port; the figures are the dashboard's (gateway.web.routes_kpi.summary).
"""

from __future__ import annotations

from babel import Locale
from babel.numbers import format_percent

from gateway import i18n


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
