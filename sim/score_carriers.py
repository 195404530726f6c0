"""Per identity carrier (the app, a key fob, a background iPhone): the share of registered
visitors recognised, their entry latency, and identifications without consent (must be 0).

A registered visitor is a consenting customer's visit; recognised means the visit produced its
`entered` event (the same matching as `sim.score`). Kept apart from `sim.score` so each carrier's
figures read as one block in the report.
"""

from __future__ import annotations

from sim.score import ReportedEvent, match_entries, percentile
from sim.truth import Truth


def score_carriers(truth: Truth, events: list[ReportedEvent]) -> dict:
    matches, _, _ = match_entries(truth, events)
    latency = {m.agent_id: m.emitted_at - m.entered_at for m in matches}
    carrier_of = {a.customer_id: a.carrier for a in truth.agents if a.customer_id}
    consent = {a.customer_id: a.consent for a in truth.agents if a.customer_id}
    out: dict = {}
    for carrier in sorted(set(carrier_of.values())):
        visits = [
            a for a in truth.agents
            if a.carrier == carrier and a.consent and a.customer_id and a.entered_at is not None
        ]
        lat = [latency[a.id] for a in visits if a.id in latency]
        unconsented = sum(
            1 for e in events
            if e.customer_id is not None and carrier_of.get(e.customer_id) == carrier and not consent[e.customer_id]
        )
        out |= {
            f"carrier.{carrier}.visits": len(visits),
            f"carrier.{carrier}.recognised": len(lat) / len(visits) if visits else None,
            f"carrier.{carrier}.latency_p50_s": percentile(lat, 50),
            f"carrier.{carrier}.latency_p95_s": percentile(lat, 95),
            f"carrier.{carrier}.unconsented_identifications": unconsented,
        }
    return out
