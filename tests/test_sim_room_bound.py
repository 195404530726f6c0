"""The oracle bound on fitting-room show latency (sim/room_bound.py) behaves like a bound."""

from __future__ import annotations

from pathlib import Path

from sim.room_bound import room_bound

BOUTIQUE = Path(__file__).resolve().parent.parent / "sim" / "scenarios" / "boutique.toml"


def test_first_reads_by_a_room_s_own_antenna_bound_the_show_latency() -> None:
    out = room_bound(str(BOUTIQUE))
    strict = room_bound(str(BOUTIQUE), early_s=0.0)  # reads while carried through the curtain not counted
    assert out["stays"] > 50 and out["never_read_by_own_antenna"] == 0
    assert 0.0 <= out["first_read_latency_p50_s"] <= out["first_read_latency_p95_s"] <= out["first_read_latency_p98_s"]
    assert strict["first_read_latency_p95_s"] >= out["first_read_latency_p95_s"]
    assert out["first_read_latency_p95_s"] < 3.0  # an antenna inside a small room reads a garment at once
