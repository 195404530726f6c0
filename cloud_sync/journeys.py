"""Customer journeys as a pure rule engine: a snapshot and a clock in, messages to queue out.

Three journeys (tried but not bought, back in your size, reminders), each switchable per store.
:func:`plan` reads no clock, database or network, and every message's idempotency key is derived
from journey, customer and trigger, so a re-run never queues twice. docs/whatsapp.md, "Journeys".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from . import messages
from .rules import WINDOW_S, Purpose, QuietHours, quiet_end

TRIED = "tried"
BACK = "back"
REMIND = "remind"
WINDOW_MARGIN_S = 600.0  # free-form only if the window stays open this long past due (send lag)


@dataclass(frozen=True, slots=True)
class Customer:
    id: str
    wa_id: str  # E.164 digits without "+"
    name: str = ""
    language: str = "en"
    marketing: bool = False  # whatsapp_marketing consent now
    service: bool = False  # whatsapp_service consent now
    last_inbound_at: float | None = None


@dataclass(frozen=True, slots=True)
class FittingSession:
    id: int
    customer_id: str
    opened_at: float
    closed_at: float
    gtins: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Purchase:
    customer_id: str
    at: float
    gtins: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class WishlistItem:
    customer_id: str
    gtin: str


@dataclass(frozen=True, slots=True)
class StockEvent:
    """Stock of ``gtin`` changed from ``before`` to ``after`` units at ``at``."""

    gtin: str
    at: float
    before: int
    after: int


@dataclass(frozen=True, slots=True)
class Appointment:
    id: int
    customer_id: str
    at: float
    kind: str  # "appointment" | "alteration"
    title: str


@dataclass(frozen=True, slots=True)
class ProductInfo:
    gtin: str
    name: str
    size: str = ""
    colour: str = ""

    @property
    def label(self) -> str:
        extra = ", ".join(x for x in (self.colour, self.size) if x)
        return f"{self.name} ({extra})" if extra else self.name


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the journeys look at; the shell fills it from the gateway database."""

    customers: Mapping[str, Customer]
    sessions: Sequence[FittingSession] = ()
    purchases: Sequence[Purchase] = ()
    wishlist: Sequence[WishlistItem] = ()
    stock_events: Sequence[StockEvent] = ()
    appointments: Sequence[Appointment] = ()
    products: Mapping[str, ProductInfo] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class JourneySpec:
    enabled: bool
    template: str
    language: str | None = None


@dataclass(frozen=True, slots=True)
class JourneySettings:
    """The engine's view of ``[journeys]`` (see :mod:`cloud_sync.config`)."""

    tz: ZoneInfo
    quiet: QuietHours | None
    store_name: str = "our store"
    enabled: bool = True
    tried: JourneySpec = JourneySpec(True, "tried_followup")
    tried_send_at: time = time(11, 0)
    tried_max_items: int = 3
    tried_max_late_s: float = 24 * 3600.0
    back: JourneySpec = JourneySpec(True, "back_in_size")
    back_max_age_s: float = 48 * 3600.0
    remind: JourneySpec = JourneySpec(True, "appointment_reminder")
    remind_before_s: float = 24 * 3600.0
    template_languages: Mapping[str, frozenset[str]] = field(default_factory=dict)  # name -> languages


@dataclass(frozen=True, slots=True)
class Outgoing:
    key: str
    journey: str
    customer_id: str
    wa_id: str
    body: Mapping[str, Any]
    purpose: Purpose
    due_at: float


def _first_name(name: str) -> str:
    return (name or "").split()[0] if (name or "").split() else "there"


def _language(spec: JourneySpec, c: Customer, settings: JourneySettings) -> str | None:
    """Language of the template to use: configured, else the customer's, else English."""
    available = settings.template_languages.get(spec.template, frozenset())
    for lang in (spec.language, c.language, "en", "en_US"):
        if lang and (not available or lang in available):
            return lang
    return next(iter(sorted(available)), None)


def _out_of_quiet(t: float, s: JourneySettings) -> float:
    end = quiet_end(t, s.tz, s.quiet)
    return t if end is None else end


def _body(
    c: Customer, spec: JourneySpec, s: JourneySettings, due: float, text: str, params: Sequence[str]
) -> dict[str, Any] | None:
    window_open = c.last_inbound_at is not None and due + WINDOW_MARGIN_S < c.last_inbound_at + WINDOW_S
    if window_open:
        return messages.text(c.wa_id, text)
    lang = _language(spec, c, s)
    if lang is None:
        return None
    return messages.template(c.wa_id, spec.template, lang, body_params=list(params))


def _tried(snap: Snapshot, now: float, s: JourneySettings) -> list[Outgoing]:
    bought: dict[str, list[Purchase]] = {}
    for p in snap.purchases:
        bought.setdefault(p.customer_id, []).append(p)
    by_day: dict[tuple[str, str], list[FittingSession]] = {}
    for sess in snap.sessions:
        day = datetime.fromtimestamp(sess.closed_at, s.tz).date().isoformat()
        by_day.setdefault((sess.customer_id, day), []).append(sess)
    out = []
    for (cid, day), sessions in sorted(by_day.items()):
        c = snap.customers.get(cid)
        if c is None or not c.marketing or not c.wa_id:
            continue
        first = min(x.opened_at for x in sessions)
        d = datetime.fromisoformat(day).date() + timedelta(days=1)
        due = _out_of_quiet(datetime.combine(d, s.tried_send_at, tzinfo=s.tz).timestamp(), s)
        if now < due or now > due + s.tried_max_late_s:
            continue  # not yet (a purchase may still come) / too late to be welcome
        purchased = {g for p in bought.get(cid, ()) if p.at >= first for g in p.gtins}
        gtins = _tried_not_bought(sessions, purchased)
        if not gtins:
            continue
        labels = [snap.products[g].label if g in snap.products else g for g in gtins[: s.tried_max_items]]
        items = ", ".join(labels)
        text = (
            f"Hello {_first_name(c.name)}, thank you for visiting {s.store_name} yesterday. "
            f"You tried on: {items}. We have put them aside for you until tomorrow; "
            f"just reply here if you would like them."
        )
        body = _body(c, s.tried, s, due, text, [_first_name(c.name), items])
        if body is not None:
            out.append(Outgoing(f"j:{TRIED}:{cid}:{day}", TRIED, cid, c.wa_id, body, Purpose.MARKETING, due))
    return out


def _tried_not_bought(sessions: list[FittingSession], purchased: set[str]) -> list[str]:
    """The GTINs tried on that day and not bought since, once each, in the order tried."""
    gtins: list[str] = []
    for g in (g for sess in sorted(sessions, key=lambda x: x.closed_at) for g in sess.gtins):
        if g and g not in purchased and g not in gtins:
            gtins.append(g)
    return gtins


def _back(snap: Snapshot, now: float, s: JourneySettings) -> list[Outgoing]:
    wishers: dict[str, list[str]] = {}
    for w in snap.wishlist:
        wishers.setdefault(w.gtin, []).append(w.customer_id)
    out = []
    for ev in sorted(snap.stock_events, key=lambda e: (e.at, e.gtin)):
        if not (ev.before <= 0 < ev.after) or ev.at > now or now - ev.at > s.back_max_age_s:
            continue
        for cid in sorted(set(wishers.get(ev.gtin, ()))):
            c = snap.customers.get(cid)
            if c is None or not c.marketing or not c.wa_id:
                continue
            due = _out_of_quiet(ev.at, s)
            p = snap.products.get(ev.gtin)
            label = p.label if p else ev.gtin
            text = (
                f"Hello {_first_name(c.name)}, good news: {label} from your wishlist is back in "
                f"your size at {s.store_name}. Reply here and we will keep one for you."
            )
            body = _body(c, s.back, s, due, text, [_first_name(c.name), label])
            if body is not None:
                key = f"j:{BACK}:{cid}:{ev.gtin}:{int(ev.at)}"
                out.append(Outgoing(key, BACK, cid, c.wa_id, body, Purpose.MARKETING, due))
    return out


def _remind(snap: Snapshot, now: float, s: JourneySettings) -> list[Outgoing]:
    out = []
    for a in sorted(snap.appointments, key=lambda x: (x.at, x.id)):
        c = snap.customers.get(a.customer_id)
        if c is None or not c.service or not c.wa_id:
            continue
        start = a.at - s.remind_before_s
        if not (start <= now < a.at):
            continue
        local = datetime.fromtimestamp(a.at, s.tz)
        when = local.strftime("%d.%m. %H:%M")
        what = "alteration pickup" if a.kind == "alteration" else "appointment"
        text = (
            f"Hello {_first_name(c.name)}, a reminder of your {what} at {s.store_name} "
            f"on {when}: {a.title}. Reply here if you need to change it."
        )
        due = _out_of_quiet(max(start, now), s)
        if due >= a.at:
            due = max(start, now)  # quiet until the appointment itself: remind anyway, it is useful
        body = _body(c, s.remind, s, due, text, [_first_name(c.name), f"{what} {when}"])
        if body is not None:
            key = f"j:{REMIND}:{a.customer_id}:{a.id}:{int(a.at)}"
            out.append(Outgoing(key, REMIND, a.customer_id, c.wa_id, body, Purpose.UTILITY, due))
    return out


def plan(snapshot: Snapshot, now: float, settings: JourneySettings) -> list[Outgoing]:
    """Messages due by the journeys at ``now`` (deterministic; keys make repeats harmless)."""
    if not settings.enabled:
        return []
    out: list[Outgoing] = []
    if settings.tried.enabled:
        out += _tried(snapshot, now, settings)
    if settings.back.enabled:
        out += _back(snapshot, now, settings)
    if settings.remind.enabled:
        out += _remind(snapshot, now, settings)
    return out


def settings_from_config(cfg: Any, tz: ZoneInfo, quiet: QuietHours | None) -> JourneySettings:
    """:class:`JourneySettings` from a :class:`cloud_sync.config.WhatsAppConfig`."""
    from .config import _hhmm

    j = cfg.journeys
    langs: dict[str, set[str]] = {}
    for t in cfg.templates:
        langs.setdefault(t.name, set()).add(t.language)
    return JourneySettings(
        tz=tz,
        quiet=quiet,
        store_name=cfg.store_name,
        enabled=j.enabled,
        tried=JourneySpec(
            j.tried_not_bought.enabled, j.tried_not_bought.template, j.tried_not_bought.language
        ),
        tried_send_at=_hhmm(j.tried_not_bought.send_at),
        tried_max_items=j.tried_not_bought.max_items,
        tried_max_late_s=j.tried_not_bought.max_late_h * 3600.0,
        back=JourneySpec(j.back_in_size.enabled, j.back_in_size.template, j.back_in_size.language),
        back_max_age_s=j.back_in_size.max_age_h * 3600.0,
        remind=JourneySpec(j.reminders.enabled, j.reminders.template, j.reminders.language),
        remind_before_s=j.reminders.hours_before * 3600.0,
        template_languages={k: frozenset(v) for k, v in langs.items()},
    )
