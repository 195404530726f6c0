"""Who was inside when the gateway last stopped: a restart does not announce them a second time.

The presence engine lives in memory, so after a crash or a restart it knows nobody, and the
first windows of a customer still in the store would raise a second "entered" alert for the
same visit (`instore chaos` found this with a gateway SIGKILL under load). The event log knows
better: a customer whose last presence event is not "left", and is recent, was inside when the
previous process stopped. Their next "entered", if it comes soon after the restart, continues
that visit: the engine tracks them again, but the alert is not repeated.
"""

from __future__ import annotations

import sqlite_utils

from gateway.presence import PresenceEvent

#: A visit whose last presence event is older than this is not continued. Why: longer than any
#: shopping visit, shorter than the gap to the next day's.
CARRY_OVER_S = 4 * 3600.0
#: Only an entry this soon after the restart continues a carried-over visit. Why: the presence
#: engine's `forget_after_s`; a customer not heard within it has left meanwhile.
RESUME_WITHIN_S = 120.0


class CarriedOver:
    """Customers inside when the previous process stopped (pure: built from the event rows)."""

    def __init__(self, inside: set[str], started_at: float):
        self.inside, self.started_at = set(inside), started_at

    @classmethod
    def from_db(cls, db: sqlite_utils.Database, now: float) -> CarriedOver:
        rows = db.execute(
            "SELECT customer_id, kind FROM events WHERE id IN (SELECT MAX(id) FROM events WHERE customer_id IS NOT NULL"
            " AND kind IN ('entered', 'zone_changed', 'left') AND ts > ? GROUP BY customer_id)",
            [now - CARRY_OVER_S],
        ).fetchall()
        return cls({r[0] for r in rows if r[1] != "left"}, now)

    def continues(self, ev: PresenceEvent) -> bool:
        """True for the first "entered" of a carried-over customer soon after the restart."""
        if ev.kind != "entered" or ev.identity not in self.inside:
            return False
        self.inside.discard(ev.identity)
        return ev.t - self.started_at <= RESUME_WITHIN_S
