"""Carriers in the simulator: background iPhones read by the nodes within their connection budget
(the same windows in both aggregation modes), and the per-carrier score: share of registered
visitors recognised, entry latency, unconsented identifications."""

from __future__ import annotations

import io

import numpy as np
import pytest

from firmware_config.store import load_store
from sim.report import print_table
from sim.run import run_fast
from sim.scenario import Carriers, IphoneApp, KeyFob, Scenario
from sim.score import ReportedEvent
from sim.score_carriers import score_carriers
from sim.truth import AgentTruth, Truth, ZoneStay
from tests.conftest import BOUTIQUE
from tests.test_sim_run import _small

MIX = Carriers(key_fob=KeyFob(share=0.2), iphone_app=IphoneApp(share=0.5), android_app={"share": 0.3})


def _with_iphones(seed: int = 5) -> Scenario:
    return _small(seed).model_copy(update={"carriers": MIX})


@pytest.fixture(scope="module")
def run():  # noqa: ANN201
    return run_fast(_with_iphones(), load_store(BOUTIQUE), keep_payloads=True)


def test_iphones_are_read_within_the_budget_and_recognised(run) -> None:  # noqa: ANN001
    m = run.metrics
    iphones = [a for a in run.truth.agents if a.carrier == "iphone_app" and a.consent and a.entered_at is not None]
    assert iphones and m["carrier.iphone_app.visits"] == len(iphones)
    assert m["carrier.iphone_app.recognised"] > 0.5  # the nodes read them, so the gateway names them
    assert m["carrier.iphone_app.peak_concurrent_links"] <= 2
    assert m["carrier.iphone_app.connections_per_node_min"] > 0 and m["carrier.iphone_app.read_latency_p95_s"] > 0
    for carrier in ("android_app", "key_fob", "iphone_app"):
        assert m[f"carrier.{carrier}.unconsented_identifications"] == 0
    assert m["privacy.unconsented_identifications"] == 0
    out = io.StringIO()
    print_table(run, file=out)
    table = out.getvalue()
    assert "per carrier" in table and "iphone_app" in table and "key_fob" in table and "background iPhones" in table


def test_iphone_reads_are_the_same_in_both_aggregation_modes(run) -> None:  # noqa: ANN001
    ref = run_fast(_with_iphones(), load_store(BOUTIQUE), mode="packets", keep_payloads=True, pipeline=False)
    assert ref.payloads == run.payloads


def test_without_iphones_nothing_connects() -> None:
    res = run_fast(_small(seed=6, duration=120.0), load_store(BOUTIQUE))
    assert not any(k.startswith("carrier.iphone_app.connections") for k in res.metrics)


def _visit(aid: str, cid: str | None, consent: bool, carrier: str, t_in: float) -> AgentTruth:
    return AgentTruth(aid, "regular", cid, consent, t_in, t_in + 100, (ZoneStay("floor", t_in, t_in + 100),), carrier)


def test_score_per_carrier() -> None:
    truth = Truth(
        1000.0,
        [
            _visit("a1", "c1", True, "android_app", 100),
            _visit("a2", "c2", True, "android_app", 300),
            _visit("f1", "c3", True, "key_fob", 100),
            _visit("i1", "c4", True, "iphone_app", 200),
            _visit("i2", "c5", False, "iphone_app", 400),  # recognition withdrawn
        ],
    )
    events = [
        ReportedEvent("entered", "c1", 104, 105),
        ReportedEvent("entered", "c3", 110, 112),
        ReportedEvent("entered", "c4", 205, 208),
        ReportedEvent("entered", "c5", 401, 402),  # must never happen: counted against the iPhone
    ]
    m = score_carriers(truth, events)
    assert m["carrier.android_app.visits"] == 2 and m["carrier.android_app.recognised"] == 0.5
    assert m["carrier.android_app.latency_p50_s"] == 5.0
    assert m["carrier.key_fob.recognised"] == 1.0 and m["carrier.key_fob.latency_p95_s"] == 12.0
    assert m["carrier.iphone_app.visits"] == 1 and m["carrier.iphone_app.latency_p50_s"] == 8.0
    assert m["carrier.iphone_app.unconsented_identifications"] == 1
    assert m["carrier.android_app.unconsented_identifications"] == 0
    assert np.isclose(sum(m[f"carrier.{c}.visits"] for c in ("android_app", "key_fob", "iphone_app")), 4)
