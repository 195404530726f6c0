"""WhatsApp check-in: a QR code at the door, the till and each fitting room opens WhatsApp with a
prepared text; the signed inbound text recognises a consenting customer and alerts staff.

Pure parts (places from the store file, the prepared text, the click-to-chat link, parsing an
inbound text, the decision) take data; :class:`CheckIns` is the shell: it hears every inbound
WhatsApp message on the staff-event bus and answers through the channel. Why check-in alerts
look like entries, and what is (not) stored: docs/whatsapp.md, "Check-in".
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from cloud_sync.channel import EVENT_KIND
from cloud_sync.service import WhatsAppService
from firmware_config.store import StoreFile, ZoneKind
from gateway import i18n
from gateway.events import StaffEvent
from gateway.ingest.core import GatewayCore
from gateway.storage.customers import customer_card, has_consent

PLACE_KINDS = (ZoneKind.ENTRANCE, ZoneKind.TILL, ZoneKind.FITTING_ROOM)  # where a check-in QR code hangs
WORDS = {"de": re.compile(r"\beinchecken\b", re.I), "en": re.compile(r"\bcheck[- ]?in\b", re.I)}
TAG = re.compile(r"#([a-z0-9][a-z0-9_-]{0,47})\b")  # the place: a zone id of the store file
STALE_S = 600.0  # a check-in redelivered later than this alerts nobody: the customer may be gone
REPEAT_S = 600.0  # the same customer at the same place again within this: a double scan, not news
WHATSAPP_PURPOSES = ("whatsapp_service", "whatsapp_marketing")
ALERT_KIND = "entered"  # the same staff alert as an entry; data.checked_in marks it


@dataclass(frozen=True, slots=True)
class Place:
    zone: str  # the zone id, the tag in the prepared text
    kind: ZoneKind
    n: int  # 1-based among the places of its kind ("fitting room 2")


def places(store: StoreFile) -> list[Place]:
    """Every entrance, till and fitting room of the store, in the store file's order."""
    counts: dict[ZoneKind, int] = {}
    out = []
    for z in store.zones:
        if z.kind in PLACE_KINDS:
            counts[z.kind] = counts.get(z.kind, 0) + 1
            out.append(Place(z.id, z.kind, counts[z.kind]))
    return out


def place_name(lang: str, place: Place | None) -> str:
    if place is None:
        return i18n.t(lang, "checkin.place.store")
    return i18n.t(lang, f"checkin.place.{place.kind.value}", n=place.n)


def prepared_text(lang: str, place: Place) -> str:
    """What the QR code puts in the customer's WhatsApp: readable, with the place's tag."""
    return f"{i18n.t(lang, 'checkin.text', place=place_name(lang, place))} #{place.zone}"


def click_to_chat(number: str, text: str) -> str:
    """WhatsApp's click-to-chat link: wa.me/<E.164 digits>?text=<URL-encoded text>."""
    return f"https://wa.me/{number}?text={quote(text, safe='')}"


def parse(text: str | None, known: list[Place]) -> tuple[str, Place | None] | None:
    """(language of the text, the place or None) if the text is a check-in, else None.

    The check-in word decides; a missing or unknown tag still checks in, without a place.
    """
    if not text:
        return None
    lang = next((lang for lang, word in WORDS.items() if word.search(text)), None)
    if lang is None:
        return None
    tag = TAG.search(text)
    by_zone = {p.zone: p for p in known}
    return lang, by_zone.get(tag.group(1)) if tag else None


class Outcome(enum.Enum):
    WELCOME = "welcome"  # a customer with a WhatsApp consent: alert staff, welcome them
    ENROL = "enrol"  # a number we do not know: the enrolment link, no alert
    DECLINED = "declined"  # known, but no WhatsApp consent (withdrawn): no alert, a polite reply


def decide(customer_id: str | None, consents: dict[str, bool]) -> Outcome:
    if customer_id is None:
        return Outcome.ENROL
    return Outcome.WELCOME if any(consents.get(p) for p in WHATSAPP_PURPOSES) else Outcome.DECLINED


def reply_text(outcome: Outcome, lang: str, *, name: str, place: Place | None, store: str, enrol_url: str) -> str:
    first = name.split()[0] if name.strip() else ""
    return i18n.t(lang, f"checkin.reply.{outcome.value}", name=first, place=place_name(lang, place), store=store,
                  url=enrol_url)


class CheckIns:
    """The shell: reads the customer and consent, publishes the alert, queues the reply."""

    def __init__(self, service: WhatsAppService, core: GatewayCore) -> None:
        assert service.cfg.checkin is not None
        self.service, self.core = service, core
        self.cfg = service.cfg.checkin
        self.places = places(core.store)
        self.counters = {o.value: 0 for o in Outcome} | {"stale": 0, "repeat": 0}
        self.last: dict[tuple[str, str | None], float] = {}  # (customer, place) -> time of the last alert
        self.unsubscribe = core.bus.subscribe(self.on_staff_event)

    def on_staff_event(self, ev: StaffEvent) -> None:
        """Every new inbound WhatsApp text passes here (the channel publishes it on the bus)."""
        d = ev.data
        if ev.kind == EVENT_KIND and d.get("direction") == "in" and d.get("type") == "text":
            self.on_message(str(d["wa_id"]), str(d["message_id"]), d.get("text"), float(d["at"]), ev.customer_id)

    def on_message(self, sender: str, message_id: str, text: str | None, at: float,
                   customer_id: str | None) -> Outcome | None:
        """A new inbound text: if it is a check-in, alert (or not) and reply; else None."""
        found = parse(text, self.places)
        if found is None:
            return None
        text_lang, place = found
        if self.core.clock() - at > STALE_S:
            self.counters["stale"] += 1
            return None
        db, store = self.core.db, self.core.store.store
        with self.core.lock:
            consents = {p: has_consent(db, customer_id, p) for p in WHATSAPP_PURPOSES} if customer_id else {}
            row = db.execute("SELECT name, language FROM customers WHERE id = ?", [customer_id]).fetchone()
            card = customer_card(db, customer_id) if customer_id else None
        outcome = decide(customer_id, consents)
        if outcome is Outcome.WELCOME and customer_id is not None:
            key = (customer_id, place.zone if place else None)
            if at - self.last.get(key, -REPEAT_S) < REPEAT_S:
                self.counters["repeat"] += 1
                return None
            self.last[key] = at
        self.counters[outcome.value] += 1
        if outcome is Outcome.WELCOME:
            data: dict[str, Any] = {
                "zone": place.zone if place else None,
                "from": None,
                "confidence": 1.0,
                "customer": card,
                "checked_in": {"via": "whatsapp", "place": place.zone if place else None},
            }
            self.core.bus.publish(ALERT_KIND, customer_id, data)
        name, lang = (row[0], row[1]) if row else ("", text_lang)
        body = reply_text(outcome, lang, name=name, place=place, store=self.service.cfg.store_name or store.name,
                          enrol_url=self.cfg.enrol_url)
        self.service.answer(sender, body, f"checkin:{message_id}", {"checkin": outcome.value})
        return outcome
