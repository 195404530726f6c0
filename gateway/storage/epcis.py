"""EPCIS 2.0 export of the store's RFID observations (GS1 EPCIS 2.0 JSON-LD).

Brand owners' supply-chain systems speak EPCIS, not our event log. One ``ObjectEvent``
(``OBSERVE``) per decision of the item engine placing garments, grouped by time and place; "gone"
is an inference and not exported. Vocabulary and identifiers: docs/rfid.md, "3. EPCIS export".
Pure: rows in, a JSON-ready dict out.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from urllib.parse import quote
from zoneinfo import ZoneInfo

from gateway.engines.epc import EpcError, Sgtin, Sscc, decode_epc

__all__ = ["CONTEXT", "LogRow", "envelope", "epc_uri", "epcis_document", "epcis_events", "iso_time", "tz_offset"]

CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
SCHEMA_VERSION = "2.0"
_NS = uuid.UUID("6f1c3a52-1d2e-4d6b-9d0a-5f6c2b7e9a10")  # event ids: uuid5 of store + log row id

BIZ = {  # place kind -> (bizStep, disposition)
    "fitting_room": ("sensor_reporting", "sellable_accessible"),
    "shelf": ("stocking", "sellable_accessible"),
    "other": ("sensor_reporting", "sellable_accessible"),
}


@dataclass(frozen=True, slots=True)
class LogRow:
    id: int
    t: float  # UNIX seconds
    kind: str  # item_shown | item_gone | picked_up | returned
    epc: str  # hex
    place: str
    place_kind: str


def epc_uri(epc_hex: str) -> str | None:
    """Pure-identity URI of an EPC, or None when it is invalid or of a scheme we do not name."""
    try:
        e = decode_epc(epc_hex)
    except (EpcError, ValueError):
        return None
    if isinstance(e, Sgtin | Sscc):
        return e.pure_identity_uri
    return None


def tz_offset(t: float, tz: tzinfo) -> str:
    off = datetime.fromtimestamp(t, tz).utcoffset() or timedelta(0)
    minutes = int(off.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(minutes)
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def iso_time(t: float, tz: tzinfo) -> str:
    """RFC 3339 date-time with the store's offset and milliseconds."""
    return datetime.fromtimestamp(t, tz).isoformat(timespec="milliseconds")


def _place_uri(base: str, kind: str, place: str) -> str:
    return f"{base}:{kind}:{quote(place, safe='')}"


def epcis_document(
    rows: Iterable[LogRow],
    *,
    store: str,
    timezone: str = "UTC",
    created: float,
    base: str | None = None,
) -> dict:
    """An ``EPCISDocument`` of the observations in ``rows`` (oldest first).

    ``base``: the identifier prefix of places (default ``urn:instore:<store>``).
    """
    doc, _ = epcis_events(rows, store=store, timezone=timezone, created=created, base=base)
    return doc


def epcis_events(
    rows: Iterable[LogRow],
    *,
    store: str,
    timezone: str = "UTC",
    created: float,
    base: str | None = None,
) -> tuple[dict, int]:
    """Like :func:`epcis_document`, also returning how many EPCs had no pure-identity URI."""
    tz = ZoneInfo(timezone)
    base = base or f"urn:instore:{quote(store, safe='')}"
    groups: dict[tuple[float, str, str], tuple[int, list[str]]] = {}
    skipped = 0
    for r in rows:
        if r.kind not in ("item_shown", "returned"):
            continue
        uri = epc_uri(r.epc)
        if uri is None:
            skipped += 1
            continue
        key = (r.t, r.place, r.place_kind)
        first_id, epcs = groups.setdefault(key, (r.id, []))
        if uri not in epcs:
            epcs.append(uri)
    events = []
    for (t, place, kind), (first_id, epcs) in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[1][0])):
        step, disposition = BIZ.get(kind, BIZ["other"])
        events.append(
            {
                "type": "ObjectEvent",
                "eventID": f"urn:uuid:{uuid.uuid5(_NS, f'{store}/{first_id}')}",
                "eventTime": iso_time(t, tz),
                "eventTimeZoneOffset": tz_offset(t, tz),
                "epcList": epcs,
                "action": "OBSERVE",
                "bizStep": step,
                "disposition": disposition,
                "readPoint": {"id": _place_uri(base, "place", place)},
                "bizLocation": {"id": f"{base}:store"},
            }
        )
    return envelope(events, created, tz), skipped


def envelope(events: list[dict], created: float, tz: tzinfo) -> dict:
    """The ``EPCISDocument`` holding ``events`` (also HQ's answer to a chain query, instore.hq_epcis)."""
    return {
        "@context": [CONTEXT],
        "type": "EPCISDocument",
        "schemaVersion": SCHEMA_VERSION,
        "creationDate": iso_time(created, tz),
        "epcisBody": {"eventList": events},
    }
