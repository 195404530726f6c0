"""Identity carriers end to end: enrolment records each carrier's advertising rate and the
presence engine judges "not heard" by that rate, not by one rate for every identity."""

from __future__ import annotations

import numpy as np
import pytest

from firmware_config.store import load_store
from gateway.engines.presence import PresenceEngine, PresenceModel
from gateway.ingest.core import GatewayCore
from gateway.storage.customers import Identity, add_customer, link_identity, recognisable_identities, record_consent
from gateway.storage.db import open_db
from sim.enrol import enrol_world
from sim.scenario import load_scenario
from sim.world import build_world
from tests.conftest import BOUTIQUE
from tests.test_presence import p_detect_reference


@pytest.fixture(scope="module")
def model() -> PresenceModel:
    return PresenceModel(load_store(BOUTIQUE))


def test_enrolment_records_each_customers_carrier_and_rate() -> None:
    sc, store = load_scenario("sim/scenarios/boutique.toml")
    world = build_world(sc, store)
    db = open_db(":memory:")
    enrol_world(db, world, now=0.0)
    rows = {r[0]: r[1:] for r in db.execute("SELECT customer_id, carrier, adverts_per_s FROM identities")}
    carriers = {a.customer.id: a for a in world.agents if a.customer is not None}
    assert len(rows) == len(world.customers) > 20
    assert {c for c, _ in rows.values()} == {"android_app", "key_fob"}
    for cid, (carrier, rate) in rows.items():
        assert carrier == carriers[cid].carrier
        assert rate == pytest.approx(1 / carriers[cid].advert_interval_s)
    consenting = recognisable_identities(db)
    assert consenting and all(i.adverts_per_s == rows[i.customer_id][1] for i in consenting)


def test_the_gateway_gives_the_presence_engine_each_identitys_rate() -> None:
    db = open_db(":memory:")
    for cid, ident in (("fob", Identity("fob", "eid", "11" * 16, 10, 0, "key_fob", 1.0)),
                       ("old", Identity("old", "eid", "22" * 16, 10, 0))):  # enrolled before rates were recorded
        add_customer(db, cid, cid, now=0.0)
        record_consent(db, cid, "recognition", True, now=0.0, method="test", wording="test")
        link_identity(db, ident)
    core = GatewayCore(load_store(BOUTIQUE), db, clock=lambda: 0.0)
    assert core.presence.rates == {"fob": 1.0}
    eng = core.presence
    eng.add_window(eng.model.node_ids[0], 1.0, {"fob": -70.0, "old": -70.0})
    eng.step(1.0)
    assert eng.rate[eng.index["fob"]] == 1.0
    assert eng.rate[eng.index["old"]] == eng.model.params.adverts_per_s  # the default


def test_detection_likelihood_uses_each_identitys_rate(model: PresenceModel) -> None:
    p = model.params
    rng = np.random.default_rng(6)
    n = len(model.node_ids)
    rates = np.asarray([1.0, 4.0, 10.0, p.adverts_per_s])
    reported = rng.random(n) < 0.8
    heard = (rng.random((len(rates), n)) < 0.5) & reported
    ll = model.detection_ll(heard, reported, rates)[:, model.emit]
    for i, rate in enumerate(rates):
        p_det = p_detect_reference(model, rate)
        ref = np.where(heard[i], np.log(p_det), np.log1p(-p_det))[:, reported].sum(axis=1)
        assert np.allclose(ll[i], ref, atol=1e-3)
    default = model.detection_ll(heard, reported)[:, model.emit]
    assert np.allclose(ll[3], default[3])  # no rate: the engine's default, as before


def test_a_slow_fob_missed_by_a_node_is_not_judged_as_a_fast_phone(model: PresenceModel) -> None:
    """At every place, the nodes that would hear a 1 Hz fob there in most windows hear it. Where a
    10 Hz phone would also be heard by further nodes, judging the fob at 10 Hz takes those misses
    as evidence that it is elsewhere; at its own rate its true place stays about the likeliest."""
    _, hit_1 = model.detection_tables(1.0)
    _, hit_10 = model.detection_tables(10.0)
    heard = (hit_1 > 0).T  # (places, nodes)
    differ = ((hit_1 > 0) != (hit_10 > 0)).any(axis=0)
    assert differ.sum() > 50
    reported = np.ones(len(model.node_ids), dtype=bool)
    here = np.arange(len(heard))

    def shortfall(rate: float) -> np.ndarray:  # how far the true place falls below the likeliest one
        ll = model.detection_ll(heard, reported, np.full(len(heard), rate))
        return (ll.max(axis=1) - ll[here, here])[differ]

    own, fast = shortfall(1.0), shortfall(10.0)
    assert own.mean() < 1.0 < 2.0 < fast.mean()
    assert (own <= fast).mean() > 0.9


def test_set_rate_keeps_the_slower_carrier_and_forget_drops_it() -> None:
    eng = PresenceEngine(PresenceModel(load_store(BOUTIQUE)))
    eng.set_rate("c", 10.0)
    eng.set_rate("c", 1.0)  # a second identity of the same customer: a fob
    eng.set_rate("c", None)  # one with no recorded rate changes nothing
    assert eng.rates == {"c": 1.0}
    eng.forget("c")
    assert eng.rates == {}
