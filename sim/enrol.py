"""Registering the simulated world's customers in a gateway database, as enrolment would."""

from __future__ import annotations

import sqlite_utils

from gateway.storage.customers import Identity, add_customer, link_identity, record_consent
from sim.world import World

WORDING = "Recognise me in store when I come in, so staff can help me (simulated enrolment)."


def enrol_world(db: sqlite_utils.Database, world: World, now: float) -> int:
    """Write every simulated registered customer with their EID identity key, the kind of carrier
    it is on and that carrier's advertising rate (the app or the fob reports them at enrolment);
    returns the count."""
    k = world.store.store.eid_rotation_exponent
    carried_by = {a.customer.id: a for a in world.agents if a.customer is not None}
    with db.conn:
        for c in world.customers:
            agent = carried_by.get(c.id)
            carrier = agent.carrier if agent else None
            rate = 1.0 / agent.advert_interval_s if agent else None
            add_customer(db, c.id, c.name, sizes=c.sizes, brands=list(c.brands), now=now)
            record_consent(db, c.id, "recognition", True, now=now, method="simulated", wording=WORDING)
            if not c.recognition_consent:
                record_consent(db, c.id, "recognition", False, now=now + 1e-3, method="simulated")
            link_identity(db, Identity(c.id, "eid", c.identity_key.hex(), k, 0, carrier, rate))
    return len(world.customers)
