"""Benchmark `eid-resolve`: Eddystone-EID sightings/s resolved against registered identities.

100,000 identities (5,000 in quick mode) with a mix of rotation exponents; half count from
the Unix epoch (so they all rotate at the same instant: the worst refresh spike), half from
their enrolment time. Reports the table build time and memory, single and batch resolution
rates for a stream of 90 % known EIDs (some one period skewed) and 10 % unknown ones, and
the cost of moving the table on by one 1024 s rotation period, in which nearly every
identity enters a new period. Target: >= 50,000 sightings/s.
"""

from __future__ import annotations

import random
import time

from gateway.engines.eid import STAGGER_PERIODS, EidResolver, compute_eid

NAME = "eid-resolve"
TARGET_SIGHTINGS_PER_S = 50_000.0
_T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
_K_MIX = (10, 10, 10, 8, 12)  # 17 min rotation is the common default


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            import os

            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def run(quick: bool = False) -> dict:
    n_ids = 5_000 if quick else 100_000
    n_sightings = 20_000 if quick else 200_000
    rng = random.Random(11)
    identities = []
    for i in range(n_ids):
        k = _K_MIX[i % len(_K_MIX)]
        epoch = 0 if i % 2 else _T0 - rng.randrange(0, 2 * 365 * 86400)
        identities.append((f"cust-{i:06d}", rng.randbytes(16), k, epoch))

    rss0 = _rss_bytes()
    resolver = EidResolver()
    for ident in identities:
        resolver.add(*ident)
    now = _T0 + 0.5
    t0 = time.perf_counter()
    resolver.refresh(now)
    build_s = time.perf_counter() - t0
    rss1 = _rss_bytes()

    # Sightings: a few thousand distinct beacons seen over and over, as in a shop.
    sample = rng.sample(identities, min(n_ids, 2_000))
    eids = []
    for _, key, k, epoch in sample:
        t = int(now) - epoch + rng.choice((0, 0, 0, 0, -1, 1)) * (1 << k)
        eids.append(compute_eid(key, k, t))
    eids += [rng.randbytes(8) for _ in range(len(eids) // 9)]
    stream = [rng.choice(eids) for _ in range(n_sightings)]

    t0 = time.perf_counter()
    resolved = sum(resolver.resolve(e, now) is not None for e in stream)
    single_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    batch = resolver.resolve_many(stream, now)
    batch_s = time.perf_counter() - t0
    assert resolved == sum(r is not None for r in batch)

    # Advance STAGGER_PERIODS + 1 periods of 1024 s (the staggered refills come round once).
    spikes = []
    for m in range(1, STAGGER_PERIODS + 2):
        boundary = ((_T0 >> 10) + m) << 10
        t0 = time.perf_counter()
        resolver.refresh(boundary + 0.001)
        spikes.append(time.perf_counter() - t0)

    rate = n_sightings / single_s
    mem = None if rss0 is None or rss1 is None else (rss1 - rss0)
    return {
        "identities": n_ids,
        "table_entries": resolver.table_size,
        "build_s": round(build_s, 3),
        "build_us_per_identity": round(1e6 * build_s / n_ids, 2),
        "table_memory_mb": -1.0 if mem is None else round(mem / 2**20, 1),
        "table_memory_bytes_per_identity": -1.0 if mem is None else round(mem / n_ids, 1),
        "sightings": n_sightings,
        "resolved_fraction": round(resolved / n_sightings, 3),
        "sightings_per_s": round(rate, 1),
        "batch_sightings_per_s": round(n_sightings / batch_s, 1),
        "period_refresh_ms_max": round(1e3 * max(spikes), 1),
        "period_refresh_ms_mean": round(1e3 * sum(spikes) / len(spikes), 1),
        "period_refresh_us_per_identity": round(1e6 * sum(spikes) / len(spikes) / n_ids, 2),
        "target": {"sightings_per_s": TARGET_SIGHTINGS_PER_S},
        "target_met": rate >= TARGET_SIGHTINGS_PER_S,
    }


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps({"name": NAME, **run(quick="--quick" in sys.argv)}, indent=2))
