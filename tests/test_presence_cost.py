"""The presence step's cheaper paths compute what the plain ones do (docs/presence.md, Cost)."""

from __future__ import annotations

import numpy as np
import pytest

from firmware_config.store import load_store
from gateway.engines.door_fusion import rows_of
from gateway.engines.presence import LearnedPhone, PresenceEngine, PresenceModel, _strongest
from gateway.engines.presence_kernels import scale_and_sum_zones, weigh_and_sum
from tests.conftest import BOUTIQUE


@pytest.fixture(scope="module")
def model() -> PresenceModel:
    return PresenceModel(load_store(BOUTIQUE))


def test_predict_drifts_the_population_and_learned_phones_as_drift_does(model: PresenceModel) -> None:
    rng = np.random.default_rng(3)
    belief = rng.random((6, len(model.owner))).astype(np.float32)
    belief /= belief.sum(axis=1, keepdims=True)
    weights = np.tile(model.offset_prior, (6, 1)).astype(np.float32)
    weights[[1, 4]] = model.offset_weights(LearnedPhone(8.0, 4.0, 3))  # two learned phones among the rest
    for rows in ([0, 2, 3], [1, 4], list(range(6))):  # the population only, learned only, mixed
        expected = belief[rows] @ model.transition
        model.drift(expected, weights[rows])
        np.testing.assert_allclose(model.predict(belief[rows], weights[rows]), expected, rtol=1e-5, atol=1e-9)


def test_predict_of_identity_minor_beliefs_is_the_sparse_products_float_for_float(model: PresenceModel) -> None:
    """The compiled pass (transition and the population's drift at once) gives the very floats of the two
    sparse products it replaced, so no decision depends on which ran; a learned phone drifts as `drift` says."""
    rng = np.random.default_rng(7)
    belief = np.asfortranarray(rng.random((9, len(model.owner)), dtype=np.float32))
    weights = np.tile(model.offset_prior, (9, 1)).astype(np.float32)
    weights[5] = model.offset_weights(LearnedPhone(-6.0, 4.0, 2))
    expected = (belief @ model.transition) @ model._population_drift
    own = belief[[5]] @ model.transition
    model.drift(own, weights[[5]])
    expected[5] = own[0]
    out = np.empty(belief.shape, dtype=np.float32, order="F")
    got = model.predict(belief, weights, out)
    assert got is out
    np.testing.assert_array_equal(got, expected)


def test_weighing_and_renormalising_in_one_pass_give_the_floats_of_the_numpy_passes(model: PresenceModel) -> None:
    """The compiled passes: the posterior weighed with its row sums, then renormalised with its zone sums,
    float for float what `weigh`, `sum`, the scale, the door cells' floor and the membership product give."""
    rng = np.random.default_rng(8)
    post = np.asfortranarray(rng.random((11, len(model.owner)), dtype=np.float32))
    lik = np.asfortranarray(rng.random((11, model.n_places), dtype=np.float32))
    expected = post.copy(order="F")
    model.weigh(lik, expected)
    sums = np.empty(11, dtype=np.float32)
    weigh_and_sum(post.T, lik.T, model.emit, sums)
    np.testing.assert_array_equal(post, expected)
    np.testing.assert_array_equal(sums, expected.sum(axis=1))
    floor = 1e-3
    scale = ((1 - floor) / sums).astype(np.float32)
    expected *= scale[:, None]
    expected[:, model.door_cells] += floor / model.door_cells.sum()  # a float64 scalar: added in double
    zones_t = np.empty((len(model.zone_ids), 11), dtype=np.float32)
    scale_and_sum_zones(post.T, scale, model.door_cells, float(floor / model.door_cells.sum()), model.owner, zones_t)
    np.testing.assert_array_equal(post, expected)
    np.testing.assert_array_equal(zones_t.T, expected @ model.membership)


def test_level_ll_is_the_sum_of_each_readings_student_t(model: PresenceModel) -> None:
    p = model.params
    rng = np.random.default_rng(4)
    rssi = rng.uniform(-100.0, -40.0, (5, len(model.node_ids)))
    heard = rng.random(rssi.shape) < 0.8
    ii, nn = _strongest(rssi, heard, 20)  # more readings a row than one product holds
    u = np.flatnonzero(model.mode == 0)
    places = (np.arange(len(p.device_offsets_db))[:, None] * model.n_cells + u[None, :]).reshape(-1)
    mu, sigma = model.mu_heard[places], model.sigma[places]  # (U, N)
    expected = np.zeros((len(rssi), len(places)))
    for i, n in zip(ii, nn, strict=True):
        z = (rssi[i, n] - mu[:, n]) / sigma[:, n]
        expected[i] += -0.5 * (p.tail_dof + 1) * np.log1p(z * z / p.tail_dof) - np.log(sigma[:, n] / p.sigma_db)
    np.testing.assert_allclose(model.level_ll(rssi, ii, nn), expected, atol=1e-3)


def test_exp_like_keeps_the_values_in_the_beliefs_memory_order(model: PresenceModel) -> None:
    ll = -np.random.default_rng(5).random((7, 300), dtype=np.float32) * 20
    expected = np.exp(ll)
    for order in ("C", "F"):
        post = np.ones((7, len(model.owner)), dtype=np.float32, order=order)
        lik = model.exp_like(ll.copy(), post)
        assert lik.flags.f_contiguous == (order == "F")
        np.testing.assert_array_equal(lik, expected)


def test_rows_of_gives_the_rows_of_either_memory_order() -> None:
    a = np.random.default_rng(6).random((9, 40), dtype=np.float32)
    rows = np.asarray([7, 0, 3, 3])
    for order in ("C", "F"):
        np.testing.assert_array_equal(rows_of(np.asarray(a, order=order), rows), a[rows])


def test_phones_coming_and_going_reuse_the_steps_work_memory_and_an_erasure_clears_it(model: PresenceModel) -> None:
    """The step's large arrays live in buffers kept between steps (a fresh 100 MB array costs more in page
    faults than the pass that fills it); a phone more reuses them. After an erasure only the belief's own is left."""
    eng = PresenceEngine(model)

    def second(t: float, ids: list[str]) -> None:
        for j, node in enumerate(model.node_ids):
            eng.add_window(node, t + j / len(model.node_ids), {i: -70.0 - j for i in ids})

    ids = [f"c{k}" for k in range(16)]
    for t in range(4):
        second(float(t), ids)
    buffers = {name: id(a) for name, a in eng._work.items()}
    assert {"belief0", "belief1", "ll", "wide"} <= set(buffers)
    for t in range(4, 8):  # one more phone
        second(float(t), ids + ["new"])
    assert len(eng.ids) == 17
    assert {name: id(a) for name, a in eng._work.items()} == buffers
    eng.forget("c3")  # the only buffer left holds the belief of the others
    assert eng.zone_of("c3") is None and len(eng.ids) == 16
    assert len(eng._work) == 1 and all(np.shares_memory(a, eng.belief) for a in eng._work.values())


def test_rows_of_writes_into_a_given_array_of_either_memory_order() -> None:
    a = np.random.default_rng(9).random((9, 40), dtype=np.float32)
    rows = np.asarray([7, 0, 3, 3])
    for order in ("C", "F"):
        out = np.empty((len(rows), 40), dtype=np.float32, order="F")
        assert rows_of(np.asarray(a, order=order), rows, out) is out
        np.testing.assert_array_equal(out, a[rows])
