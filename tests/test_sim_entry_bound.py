"""The oracle bound on entry latency (sim/entry_bound.py): its shares behave like a bound."""

from __future__ import annotations

from pathlib import Path

from sim.entry_bound import entry_bound

HIGH_STREET = Path(__file__).resolve().parent.parent / "sim" / "scenarios" / "high_street.toml"


def test_more_time_or_more_false_alarms_never_catch_fewer_entrants() -> None:
    out = entry_bound(str(HIGH_STREET), latencies=(1.2, 5.0), false_alarms=(0, 5))
    assert out["entrants"] > 20 and out["registered_passers_by"] > 100
    share = {(b["latency_s"], b["false_alarms"]): b["share_detected"] for b in out["bound"]}
    thr = {b["false_alarms"]: b["threshold_dbm"] for b in out["bound"]}
    assert all(0.0 <= s <= 1.0 for s in share.values())
    assert share[(1.2, 0)] <= share[(5.0, 0)] and share[(1.2, 5)] <= share[(5.0, 5)]
    assert share[(1.2, 0)] <= share[(1.2, 5)] and thr[5] <= thr[0]
    assert share[(5.0, 5)] > 0.2  # passing the entrance node is visible (phones differ by 7 dB, bodies block)


def test_bad_input_is_a_one_line_error_not_a_traceback(tmp_path) -> None:  # noqa: ANN001
    import subprocess
    import sys

    for module, args in (
        ("sim.entry_bound", [str(tmp_path / "missing.toml")]),
        ("sim.entry_bound", [str(HIGH_STREET), "--node", "door"]),
        ("sim.room_bound", [str(tmp_path / "missing.toml")]),
    ):
        r = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=60)
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
        assert r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 1
    assert "no BLE node 'door'" in subprocess.run(
        [sys.executable, "-m", "sim.entry_bound", str(HIGH_STREET), "--node", "door"],
        capture_output=True, text=True, timeout=60,
    ).stderr
