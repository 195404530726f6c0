"""EPCIS capture at HQ (docs/chain.md, "EPCIS capture"): where a garment has been seen across the chain.

Each store sends the ObjectEvents of its own EPCIS export (gateway.channels.chain_epcis); `epcis_row`
checks one (pure) and `instore.hq.record_batch` keeps it in `chain_epcis`, keyed by (store, message id).
`EpcisQuery` is the thin shell `instore hq`'s HTTP server calls for `GET /epcis/events`, behind the
dashboard's token: the matching events as an EPCIS 2.0 document, the same shape a store exports.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from gateway.storage.epcis import envelope, epc_uri
from instore.hq_dashboard import TokenRoute
from instore.hq_metrics import Response

if TYPE_CHECKING:
    from instore.hq import Classified

KIND = "epcis"  # the chain kind (gateway.channels.chain_epcis.KIND)
EPC_PREFIX = "urn:epc:id:"  # a pure-identity URI, as the stores' export names garments and cases
MAX_EVENTS = 10_000  # per answer, oldest first; a longer history is read in slices of `from`
INSERT = (
    "INSERT INTO chain_epcis (store, msg_id, event_time, epcs, biz_step, disposition, read_point, biz_location, "
    "event) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
)
SELECT = ("SELECT event FROM chain_epcis WHERE store = ANY(%s) AND event_time >= %s AND event_time < %s "
          "AND (%s::text IS NULL OR epcs @> ARRAY[%s::text]) ORDER BY event_time, store, msg_id LIMIT %s")


def _place(value: object) -> str | None:
    """The id of a readPoint or bizLocation (`{"id": ...}`), or None."""
    ident = value.get("id") if isinstance(value, dict) else None
    return ident if isinstance(ident, str) and ident else None


def _event_time(value: object) -> float | None:
    """An RFC 3339 time with its offset as UNIX seconds, or None."""
    try:
        t = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return None if t is None or t.tzinfo is None else t.timestamp()


def epcis_row(ev: Classified) -> tuple | None:
    """`INSERT`'s values for one store's EPCIS event, or None if it is forged, another kind, or not an
    ObjectEvent with EPC URIs, a bizStep, a readPoint and a time with its offset (malformed)."""
    data = ev.body.get("data")
    if ev.kind != KIND or ev.forged or not isinstance(data, dict) or data.get("type") != "ObjectEvent":
        return None
    epcs, step, t, read = data.get("epcList"), data.get("bizStep"), _event_time(data.get("eventTime")), \
        _place(data.get("readPoint"))
    if not isinstance(epcs, list) or not epcs or not all(isinstance(e, str) and e.startswith(EPC_PREFIX)
                                                         for e in epcs):
        return None
    if not isinstance(step, str) or t is None or read is None:
        return None
    disposition = data.get("disposition")
    return (ev.store, ev.msg_id, t, epcs, step, disposition if isinstance(disposition, str) else None, read,
            _place(data.get("bizLocation")), json.dumps(data))


def malformed(ev: Classified) -> bool:
    """A store's own (not forged) EPCIS event HQ cannot read: recorded as sent, counted, not in `chain_epcis`."""
    return ev.kind == KIND and not ev.forged and epcis_row(ev) is None


def record(conn, evs: list[Classified]) -> None:  # noqa: ANN001 (psycopg.Connection, in the caller's transaction)
    """The well-formed EPCIS events among newly recorded events into `chain_epcis` (a repeat changes nothing)."""
    rows = [row for ev in evs if (row := epcis_row(ev)) is not None]
    if rows:
        with conn.cursor() as cur:
            cur.executemany(INSERT, rows)


def parse_time(value: str, tz: ZoneInfo) -> float:
    """UNIX seconds or ISO 8601 (without an offset: in HQ's `timezone`); ValueError if neither."""
    try:
        return float(value)
    except ValueError:
        pass
    t = datetime.fromisoformat(value)
    return (t if t.tzinfo else t.replace(tzinfo=tz)).timestamp()


def query_epc(value: str | None) -> str | None:
    """The EPC asked for as a pure-identity URI (given as one, or as the tag's hex); ValueError if neither."""
    if value is None or value.startswith(EPC_PREFIX):
        return value
    uri = epc_uri(value)
    if uri is None:
        raise ValueError(f"epc: {value!r} is neither an EPC URI (urn:epc:id:...) nor an SGTIN or SSCC in hex")
    return uri


def _bounds(query: Mapping[str, str], tz: ZoneInfo) -> tuple[float, float]:
    bounds = []
    for key, default in (("from", float("-inf")), ("until", float("inf"))):
        try:
            bounds.append(parse_time(query[key], tz) if key in query else default)
        except ValueError:
            raise ValueError(f"{key}: {query[key]!r} is neither UNIX seconds nor an ISO 8601 date-time") from None
    return bounds[0], bounds[1]


class EpcisQuery(TokenRoute):
    """`GET /epcis/events?epc=...&store=...&from=...&until=...` for `instore hq`'s HTTP server (one
    connection per request): the chain's events of that EPC (any, if not given) in that store (any of
    `stores`), oldest first, at most MAX_EVENTS (then the header `X-Instore-Truncated: true`)."""

    def __call__(self, path: str, headers: Mapping[str, str]) -> Response:
        query = self.admit(path, headers)
        if not isinstance(query, dict):
            return query
        try:
            epc, (t0, t1) = query_epc(query.get("epc")), _bounds(query, self.tz)
            if query.get("store", self.stores[0]) not in self.stores:
                raise ValueError(f"store: {query['store']!r} is not one of hq.toml's stores")
        except ValueError as exc:
            return 400, f"{exc}\n".encode(), "text/plain", {}
        import psycopg

        stores = [query["store"]] if "store" in query else self.stores
        try:
            with psycopg.connect(self.dsn, connect_timeout=5) as conn:
                events = [r[0] for r in conn.execute(SELECT, [stores, t0, t1, epc, epc, MAX_EVENTS + 1])]
        except psycopg.Error as exc:
            return 503, f"the chain CRM is unreachable: {exc}\n".encode(), "text/plain", {}
        extra = {"Cache-Control": "no-store"}  # behind a token: no shared caches
        if len(events) > MAX_EVENTS:
            events, extra["X-Instore-Truncated"] = events[:MAX_EVENTS], "true"
        body = json.dumps(envelope(events, self.clock(), self.tz)).encode()
        return 200, body, "application/ld+json", extra
