"""HQ's chain dashboard: one day's figures per store and for the chain (docs/chain.md, "Chain dashboard").

Footfall in (the stores' door counters, anonymous), recognised entries, visits and fitting sessions
(of customers who opted in), sales and their amount, and conversion (sales per visitor), as a table
and a bar chart, in German or English. `day_figures` reads PostgreSQL, `render` is pure, and
`Dashboard` is the thin shell `instore hq`'s HTTP server calls, behind the token from hq.toml.
"""

from __future__ import annotations

import base64
import hmac
import html
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from urllib.parse import parse_qs, urlencode, urlsplit
from zoneinfo import ZoneInfo

from gateway.engines.svg_chart import bar_chart
from gateway.i18n import LANGUAGES, choose, number, price, t
from gateway.i18n import day as day_text
from gateway.storage.kpi import day_bounds
from instore.hq_metrics import Response

COLOURS = ["#9bb7ad", "#0a7d5a"]  # the store dashboard's: visitors light, sales dark
REALM = 'Basic realm="instore hq", charset="UTF-8"'

FOOTFALL_SQL = ("SELECT store, sum(visitors_in) FROM chain_footfall WHERE hour >= %s AND hour < %s "
                "AND store = ANY(%s) GROUP BY store")
# Fitting sessions by their start (a session's end travels as the same chain kind); forged events left out.
EVENTS_SQL = ("SELECT store, CASE WHEN kind = 'fitting' THEN 'fittings' WHEN kind = 'entry' THEN 'entries' "
              "ELSE 'visits' END, count(*) FROM chain_events WHERE ts >= %s AND ts < %s AND store = ANY(%s) "
              "AND forged IS NULL AND (kind IN ('entry', 'visit') OR (kind = 'fitting' "
              "AND body->>'source_kind' = 'session_started')) GROUP BY 1, 2")
SALES_SQL = ("SELECT store, currency, count(*), sum(amount_cents) FROM chain_sales WHERE ts >= %s AND ts < %s "
             "AND store = ANY(%s) GROUP BY store, currency")


@dataclass
class StoreDay:
    """One store's (or the chain's) figures of a day."""

    footfall_in: float = 0.0
    entries: int = 0
    visits: int = 0
    fittings: int = 0
    sales: int = 0
    amounts: dict[str, int] = field(default_factory=dict)  # currency -> cents

    @property
    def conversion(self) -> float | None:
        """Sales per visitor; None without footfall (a store without a door counter)."""
        return self.sales / self.footfall_in if self.footfall_in > 0 else None

    def add(self, other: StoreDay) -> None:
        self.footfall_in += other.footfall_in
        self.entries, self.visits = self.entries + other.entries, self.visits + other.visits
        self.fittings, self.sales = self.fittings + other.fittings, self.sales + other.sales
        for currency, cents in other.amounts.items():
            self.amounts[currency] = self.amounts.get(currency, 0) + cents


def day_figures(conn, stores: list[str], t0: float, t1: float) -> dict[str, StoreDay]:  # noqa: ANN001 (psycopg)
    """Every configured store's figures between `t0` and `t1` (a store without data: zeros)."""
    out = {s: StoreDay() for s in stores}
    for store, vin in conn.execute(FOOTFALL_SQL, [t0, t1, stores]):
        out[store].footfall_in = float(vin)
    for store, name, n in conn.execute(EVENTS_SQL, [t0, t1, stores]):
        setattr(out[store], name, int(n))
    for store, currency, n, cents in conn.execute(SALES_SQL, [t0, t1, stores]):
        out[store].sales += int(n)
        out[store].amounts[currency] = int(cents)
    return out


def chain_total(figures: Mapping[str, StoreDay]) -> StoreDay:
    total = StoreDay()
    for fig in figures.values():
        total.add(fig)
    return total


def _amount(fig: StoreDay, lang: str) -> str:
    return " + ".join(price(c, cur, lang) for cur, c in sorted(fig.amounts.items())) or price(0, "EUR", lang)


def _cells(fig: StoreDay, lang: str) -> list[str]:
    conv = fig.conversion
    return [number(fig.footfall_in, lang), number(fig.entries, lang), number(fig.visits, lang),
            number(fig.fittings, lang), number(fig.sales, lang), _amount(fig, lang),
            "–" if conv is None else number(conv * 100, lang, 1) + " %"]


COLUMNS = ["hq.footfall_in", "hq.entries", "hq.visits", "hq.fittings", "hq.sales", "hq.amount", "hq.conversion"]
STYLE = (
    "body{font-family:system-ui,sans-serif;margin:0;padding:12px;color:#1c2b27;background:#f6f8f7}"
    "header{display:flex;flex-wrap:wrap;gap:8px 16px;align-items:center;justify-content:space-between}"
    "h1{font-size:1.4rem;margin:0}form{display:flex;gap:8px;align-items:center;flex-wrap:wrap}"
    "input,button{font:inherit;min-height:44px;padding:4px 10px}"
    "nav a{display:inline-block;min-width:44px;min-height:44px;line-height:44px;text-align:center;color:#0a5c43}"
    "nav a[aria-current=true]{font-weight:700}"
    ".scroll{overflow-x:auto;margin:16px 0;background:#fff}"
    "table{border-collapse:collapse;width:100%;font-size:.95rem}"
    "th,td{padding:6px 8px;border-bottom:1px solid #d5dedb;text-align:right;white-space:nowrap}"
    "th:first-child,td:first-child{text-align:left}tfoot td{font-weight:700}"
    "figure{margin:0;max-width:760px}svg{width:100%;height:auto}p.note{font-size:.85rem;color:#3d4f4a}"
)


def render(figures: Mapping[str, StoreDay], day: date, lang: str) -> str:
    """The page of one day, in `lang`."""
    e = html.escape
    head = "".join(f'<th scope="col">{e(t(lang, k))}</th>' for k in COLUMNS)
    rows = "".join(f'<tr data-store="{e(s)}"><th scope="row">{e(s)}</th>'
                   + "".join(f"<td>{e(c)}</td>" for c in _cells(fig, lang)) + "</tr>"
                   for s, fig in figures.items())
    total = chain_total(figures)
    foot = (f'<tr data-store=""><td>{e(t(lang, "hq.chain"))}</td>'
            + "".join(f"<td>{e(c)}</td>" for c in _cells(total, lang)) + "</tr>")
    chart = bar_chart(t(lang, "hq.chart"), list(figures) or ["-"],
                      {t(lang, "hq.footfall_in"): [f.footfall_in for f in figures.values()] or [0],
                       t(lang, "hq.sales"): [float(f.sales) for f in figures.values()] or [0]}, COLOURS)
    switch = "".join(f'<a href="?{urlencode({"day": day.isoformat(), "lang": code})}" lang="{code}" '
                     f'hreflang="{code}" aria-current="{str(code == lang).lower()}">{code.upper()}</a>'
                     for code in LANGUAGES)
    return (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(t(lang, 'hq.title'))}</title><style>{STYLE}</style></head><body><header>"
        f"<h1>{e(t(lang, 'hq.title'))}</h1>"
        f'<nav aria-label="{e(t(lang, "common.language"))}">{switch}</nav></header><main>'
        f'<form method="get"><label for="day">{e(t(lang, "dash.day"))}</label>'
        f'<input type="date" id="day" name="day" value="{day.isoformat()}">'
        f'<input type="hidden" name="lang" value="{lang}"><button type="submit">{e(t(lang, "dash.show"))}</button>'
        f"</form><h2>{e(t(lang, 'hq.day_of', day=day_text(day.isoformat(), lang)))}</h2>"
        f'<div class="scroll" tabindex="0" role="region" aria-label="{e(t(lang, "hq.title"))}">'
        f'<table><thead><tr><th scope="col">{e(t(lang, "hq.store"))}</th>{head}</tr></thead>'
        f"<tbody>{rows}</tbody><tfoot>{foot}</tfoot></table></div>"
        f"<figure>{chart}</figure><p class=\"note\">{e(t(lang, 'hq.note'))}</p></main></body></html>"
    )


def authorised(header: str | None, token: str) -> bool:
    """`Bearer <token>`, or Basic with the token as the password (any user name: a browser's prompt)."""
    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() == "basic":
        try:
            value = base64.b64decode(value, validate=True).decode().partition(":")[2]
        except ValueError:
            return False
    elif scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(value.encode(), token.encode())


class TokenRoute:
    """A GET route of `instore hq`'s HTTP server behind the dashboard token, reading PostgreSQL on a
    connection of its own per request."""

    def __init__(self, dsn: str, stores: list[str], token: str, tz: ZoneInfo, clock: Callable[[], float]):
        self.dsn, self.stores, self.token, self.tz, self.clock = dsn, stores, token, tz, clock

    def admit(self, path: str, headers: Mapping[str, str]) -> dict[str, str] | Response:
        """The request's query (last value of each name), or the 401 for a request without the token."""
        if not authorised(headers.get("authorization"), self.token):
            return 401, b"authorisation required\n", "text/plain", {"WWW-Authenticate": REALM}
        return {k: v[-1] for k, v in parse_qs(urlsplit(path).query).items()}


class Dashboard(TokenRoute):
    """`GET /dashboard?day=YYYY-MM-DD&lang=de|en`."""

    def __call__(self, path: str, headers: Mapping[str, str]) -> Response:
        """The page for a request (`headers` with lower-case names)."""
        query = self.admit(path, headers)
        if not isinstance(query, dict):
            return query
        lang = choose(query.get("lang"), None, headers.get("accept-language"))
        try:
            day = date.fromisoformat(query["day"]) if "day" in query else datetime.fromtimestamp(
                self.clock(), self.tz).date()
        except ValueError:
            return 400, f"day: {query['day']!r} is not a date (YYYY-MM-DD)\n".encode(), "text/plain", {}
        import psycopg

        t0, t1 = day_bounds(day, self.tz)
        try:
            with psycopg.connect(self.dsn, connect_timeout=5) as conn:
                figures = day_figures(conn, self.stores, t0, t1)
        except psycopg.Error as exc:
            return 503, f"the chain CRM is unreachable: {exc}\n".encode(), "text/plain", {}
        return 200, render(figures, day, lang).encode(), "text/html; charset=utf-8", {
            "Content-Language": lang, "Cache-Control": "no-store"}  # figures behind a token: no shared caches
