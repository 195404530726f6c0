"""gateway.engines.eid: the published EID test vectors (docs/ble.md); resolution across rotations, skew, removal."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.engines import eid as eid_module
from gateway.engines.eid import STAGGER_PERIODS, EidResolver, compute_eid

IK = bytes.fromhex("0102030405060708090A111213141516")
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
TK_ALIGNED = T0 - T0 % 65536 + 65536  # TK (T' bits 31..16) is the same for the next 65536 s


def _key(i: int) -> bytes:
    return random.Random(i).randbytes(16)


def _beacon_eid(key: bytes, k: int, epoch: int, now: float, skew_periods: int = 0) -> bytes:
    """What a beacon whose clock is off by ``skew_periods`` periods shows at wall time ``now``."""
    return compute_eid(key, k, int(now) - epoch + skew_periods * (1 << k))


# --- compute_eid ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("k", "t", "eid_hex"),
    [(10, 0, "A9B76A71C5F89290"), (10, 2000, "4144413E45FEFA58")],
)
def test_published_vectors(k: int, t: int, eid_hex: str) -> None:
    assert compute_eid(IK, k, t) == bytes.fromhex(eid_hex)


def test_eid_constant_within_a_period_and_changes_at_the_boundary() -> None:
    assert compute_eid(IK, 10, 1023) == compute_eid(IK, 10, 0)
    assert compute_eid(IK, 10, 1024) == compute_eid(IK, 10, 2000)  # the vector's T' is 1024
    assert compute_eid(IK, 10, 1024) != compute_eid(IK, 10, 1023)
    assert compute_eid(IK, 0, 5) != compute_eid(IK, 0, 6)


@pytest.mark.parametrize(
    ("key", "k", "t", "needle"),
    [
        (IK[:15], 10, 0, "identity_key must be 16 bytes"),
        (IK, 16, 0, "k must be an integer in 0..15"),
        (IK, -1, 0, "k must be"),
        (IK, 10, -1, "t must be a 32-bit"),
        (IK, 10, 2**32, "t must be a 32-bit"),
    ],
)
def test_compute_eid_validates(key: bytes, k: int, t: int, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        compute_eid(key, k, t)


def test_key_never_echoed_in_errors() -> None:
    with pytest.raises(ValueError) as info:
        compute_eid(IK + b"x", 10, 0)
    assert IK.hex() not in str(info.value) and repr(IK + b"x") not in str(info.value)


# --- resolver: basics -----------------------------------------------------------------------


def test_resolves_registered_identity_and_not_unknown_eids() -> None:
    r = EidResolver()
    r.add("alice", _key(1), 10, epoch=T0 - 5000)
    r.add("bob", _key(2), 8)
    now = T0 + 123.4
    assert r.resolve(_beacon_eid(_key(1), 10, T0 - 5000, now), now) == "alice"
    assert r.resolve(_beacon_eid(_key(2), 8, 0, now), now) == "bob"
    assert r.resolve(bytes(8), now) is None
    assert r.resolve(_beacon_eid(_key(3), 10, 0, now), now) is None  # never registered
    assert len(r) == 2 and "alice" in r and "carol" not in r


def test_resolve_many_matches_resolve() -> None:
    r = EidResolver()
    for i in range(20):
        r.add(f"c{i}", _key(i), i % 16, epoch=i * 1000)
    now = T0 + 77.0
    eids = [
        _beacon_eid(_key(i), i % 16, i * 1000, now, skew) for i in range(20) for skew in (-2, -1, 0, 1, 2)
    ]
    eids.append(b"\xff" * 8)
    assert r.resolve_many(eids, now) == [r.resolve(e, now) for e in eids]
    assert r.resolve_many(eids, now).count(None) == 2 * 20 + 1


def test_add_validates() -> None:
    r = EidResolver()
    with pytest.raises(ValueError, match="identity_key"):
        r.add("x", b"short", 10)
    with pytest.raises(ValueError, match="k must"):
        r.add("x", IK, 20)
    with pytest.raises(ValueError, match="epoch"):
        r.add("x", IK, 10, epoch=1.5)  # type: ignore[arg-type]
    assert len(r) == 0


# --- rotation boundaries and skew -------------------------------------------------------------


@pytest.mark.parametrize("k", [0, 3, 10, 15])
def test_across_boundaries_with_one_period_of_skew_and_not_beyond(k: int) -> None:
    epoch = T0 - 12_345
    r = EidResolver()
    r.add("alice", IK, k, epoch)
    period = 1 << k
    start = T0 + 3 * period - (T0 - epoch) % period  # a boundary for this identity
    # Probe the first, a middle and the last second of several consecutive periods.
    for m in range(5):
        for offset in (0.0, period / 2, period - 0.001):
            now = start + m * period + offset
            for skew in (-2, -1, 0, 1, 2):
                expected = "alice" if abs(skew) <= 1 else None
                assert r.resolve(_beacon_eid(IK, k, epoch, now, skew), now) == expected, (m, offset, skew)
    assert r.table_size == 4  # old periods leave the table as new ones enter: it does not grow


def test_tk_change_every_65536_seconds_is_handled() -> None:
    """TK depends on T' bits 31..16: crossing 2^16 (and K=15's 2-period TK life) still resolves."""
    for k in (0, 15):
        r = EidResolver()
        r.add("a", IK, k, epoch=0)
        for now in (65536 - 1.5, 65536 + 0.5, 65536 * 2 + 0.5, 65536 * 3 - 0.5):
            for skew in (-1, 0, 1):
                assert r.resolve(_beacon_eid(IK, k, 0, now, skew), now) == "a", (k, now, skew)


def test_sighting_stamped_one_period_late_still_resolves() -> None:
    """Out of order: a later sighting moves the table on; an earlier-stamped one arrives after."""
    r = EidResolver()
    r.add("a", IK, 10, epoch=0)
    boundary = ((T0 >> 10) + 5) << 10
    assert r.resolve(_beacon_eid(IK, 10, 0, boundary + 1), boundary + 1) == "a"
    late = boundary - 0.5
    for skew in (-1, 0, 1):
        assert r.resolve(_beacon_eid(IK, 10, 0, late, skew), late) == "a"
    assert r.resolve(_beacon_eid(IK, 10, 0, late, -2), late) is None


def test_far_stale_sightings_return_none_not_an_error() -> None:
    r = EidResolver()
    r.add("a", IK, 4, epoch=0)
    assert r.resolve(_beacon_eid(IK, 4, 0, T0 + 1000), T0 + 1000) == "a"
    assert r.resolve(_beacon_eid(IK, 4, 0, T0), T0) is None  # 62 periods behind the table


def test_before_epoch_and_counter_limits() -> None:
    r = EidResolver()
    r.add("future", IK, 10, epoch=T0 + 10**6)  # counter not started yet
    r.add("now", _key(5), 10, epoch=T0)
    assert r.resolve(bytes(8), T0 + 0.5) is None
    assert r.resolve(_beacon_eid(_key(5), 10, T0, T0 + 0.5), T0 + 0.5) == "now"
    # The first periods after the epoch: period 0 has no predecessor.
    assert r.resolve(compute_eid(IK, 10, 0), T0 + 10**6 + 0.5) == "future"
    assert r.resolve(compute_eid(IK, 10, 1024), T0 + 10**6 + 0.5) == "future"


@settings(max_examples=60, deadline=None)
@given(
    k=st.integers(0, 15),
    epoch=st.integers(0, T0),
    times=st.lists(st.floats(0, 3 * 86400, allow_nan=False), min_size=1, max_size=6),
    skew=st.integers(-3, 3),
)
def test_property_skew_window(k: int, epoch: int, times: list[float], skew: int) -> None:
    r = EidResolver()
    r.add("x", IK, k, epoch)
    for dt in sorted(times):  # time moves forward
        now = T0 + dt
        t = int(now) - epoch + skew * (1 << k)
        if not 0 <= t < 2**32:
            continue
        assert r.resolve(compute_eid(IK, k, t), now) == ("x" if abs(skew) <= 1 else None)


def _reference_resolve(identities: dict[str, tuple[bytes, int, int]], eid: bytes, now: float) -> str | None:
    """Plain reference: try every identity's EID for the previous, current and next period."""
    for name, (key, k, epoch) in identities.items():
        t = int(now) - epoch
        for skew in (-1, 0, 1):
            tt = t + skew * (1 << k)
            if 0 <= tt < 2**32 and compute_eid(key, k, tt) == eid:
                return name
    return None


def test_matches_reference_on_a_random_stream() -> None:
    rng = random.Random(42)
    identities = {
        f"c{i}": (
            rng.randbytes(16),
            rng.choice([0, 2, 5, 10, 15]),
            rng.choice([0, T0 - rng.randrange(10**7)]),
        )
        for i in range(40)
    }
    r = EidResolver()
    for name, (key, k, epoch) in identities.items():
        r.add(name, key, k, epoch)
    now = float(T0)
    for _ in range(400):
        now += rng.choice([0.1, 3.0, 100.0, 2000.0])
        name = rng.choice(list(identities))
        key, k, epoch = identities[name]
        t = int(now) - epoch + rng.choice([-2, -1, 0, 0, 1, 2]) * (1 << k)
        eid = compute_eid(key, k, t) if rng.random() < 0.9 and 0 <= t < 2**32 else rng.randbytes(8)
        assert r.resolve(eid, now) == _reference_resolve(identities, eid, now)


# --- removal and replacement ------------------------------------------------------------------


def test_remove_takes_effect_at_once() -> None:
    r = EidResolver()
    r.add("alice", IK, 10)
    r.add("bob", _key(2), 10)
    now = T0 + 1.0
    eids = [_beacon_eid(IK, 10, 0, now, s) for s in (-1, 0, 1)]
    assert [r.resolve(e, now) for e in eids] == ["alice"] * 3
    size = r.table_size
    assert r.remove("alice") is True
    assert [r.resolve(e, now) for e in eids] == [None] * 3
    assert r.table_size == size - 4  # its entries are gone from the table, not just hidden
    assert "alice" not in r and len(r) == 1
    assert r.remove("alice") is False
    # ... and stays gone across later boundaries.
    later = now + 5 * 1024
    assert r.resolve(_beacon_eid(IK, 10, 0, later), later) is None
    assert r.resolve(_beacon_eid(_key(2), 10, 0, later), later) == "bob"


def test_remove_before_first_resolve() -> None:
    r = EidResolver()
    r.add("alice", IK, 10)
    r.remove("alice")
    assert r.resolve(_beacon_eid(IK, 10, 0, T0), T0) is None
    assert r.table_size == 0


def test_add_again_replaces_the_key() -> None:
    r = EidResolver()
    r.add("alice", IK, 10)
    now = T0 + 1.0
    old = _beacon_eid(IK, 10, 0, now)
    assert r.resolve(old, now) == "alice"
    r.add("alice", _key(9), 10)
    assert r.resolve(old, now) is None
    assert r.resolve(_beacon_eid(_key(9), 10, 0, now), now) == "alice"
    assert len(r) == 1 and r.table_size == 4


# --- cost: no AES per sighting, only changed identities recomputed, refills staggered ----------


class _CountingAes:
    def __init__(self) -> None:
        self.calls = 0
        self.real = eid_module._aes_ecb

    def __call__(self, key: bytes, blocks: bytes) -> bytes:
        self.calls += 1
        return self.real(key, blocks)


def test_no_aes_per_sighting(monkeypatch: pytest.MonkeyPatch) -> None:
    r = EidResolver()
    for i in range(10):
        r.add(f"c{i}", _key(i), 10)
    now = T0 + 1.0
    eids = [_beacon_eid(_key(i), 10, 0, now) for i in range(10)]
    r.refresh(now)
    counter = _CountingAes()
    monkeypatch.setattr(eid_module, "_aes_ecb", counter)
    for _ in range(100):
        assert r.resolve_many(eids, now + 500) == [f"c{i}" for i in range(10)]
        assert r.resolve(b"\x00" * 8, now + 600) is None
    assert counter.calls == 0


def test_boundary_touches_only_identities_whose_period_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    r = EidResolver()
    r.add("slow", IK, 15, epoch=0)  # next boundary far away
    r.add("fast", _key(1), 4, epoch=0)  # 16-second periods
    r.refresh(TK_ALIGNED + 1.0)
    slow_before = (r._ids["slow"].center, r._ids["slow"].strip)
    times = [TK_ALIGNED + 16 * m + 0.5 for m in range(1, 3 * STAGGER_PERIODS)]
    eids = [_beacon_eid(_key(1), 4, 0, now) for now in times]
    counter = _CountingAes()
    monkeypatch.setattr(eid_module, "_aes_ecb", counter)
    for now, eid in zip(times, eids, strict=True):
        assert r.resolve(eid, now) == "fast"
    assert (r._ids["slow"].center, r._ids["slow"].strip) == slow_before
    # "fast" crossed 3*8-1 boundaries but computed its EIDs ahead: a few AES calls, not 23.
    assert 0 < counter.calls <= 2 * 3


def test_refills_are_staggered_across_identities(monkeypatch: pytest.MonkeyPatch) -> None:
    """Identities sharing boundaries recompute on different boundaries: ~1/8 per boundary."""
    n = 64
    r = EidResolver()
    for i in range(n):
        r.add(f"c{i}", _key(i), 10, epoch=0)
    r.refresh(TK_ALIGNED + 1.0)
    counter = _CountingAes()
    monkeypatch.setattr(eid_module, "_aes_ecb", counter)
    per_boundary = []
    for m in range(1, 2 * STAGGER_PERIODS + 1):
        before = counter.calls
        r.refresh(TK_ALIGNED + 1024 * m + 0.5)
        per_boundary.append(counter.calls - before)
    assert max(per_boundary) <= n // STAGGER_PERIODS
    assert sum(per_boundary[2:10]) == n  # in steady state, each refills once per 8 boundaries
    now = TK_ALIGNED + 1024 * 2 * STAGGER_PERIODS + 0.5
    assert r.resolve_many([_beacon_eid(_key(i), 10, 0, now) for i in range(n)], now) == [
        f"c{i}" for i in range(n)
    ]


def test_large_time_jump_rebuilds_windows() -> None:
    r = EidResolver()
    r.add("a", IK, 10)
    assert r.resolve(_beacon_eid(IK, 10, 0, T0), T0) == "a"
    far = T0 + 10**7 + 0.25
    assert r.resolve(_beacon_eid(IK, 10, 0, far, 1), far) == "a"
    assert r.table_size == 4


def test_benchmark_quick_mode_contract() -> None:
    from benchmarks import eid_resolve

    result = eid_resolve.run(quick=True)
    assert eid_resolve.NAME == "eid-resolve"
    assert result["target"] == {"sightings_per_s": 50_000.0} and isinstance(result["target_met"], bool)
    assert result["table_entries"] == 4 * result["identities"]
    assert result["resolved_fraction"] == pytest.approx(0.9, abs=0.02)  # 10 % of the stream is unknown
    assert result["build_s"] > 0 and result["sightings_per_s"] > 0
