"""SIGKILL a worker subprocess at random moments: every message delivered, none twice.

10 runs here; ``WA_CRASH_RUNS=100`` raises it, or run ``python -m sim.whatsapp_harness crash --runs 100``.
"""

from __future__ import annotations

import os

import pytest

from sim.whatsapp_harness import crash_runs

RUNS = int(os.environ.get("WA_CRASH_RUNS", "10"))


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sigkill_reconciled_by_recorded_webhooks() -> None:
    result = crash_runs(RUNS, 300, seed=11, lookup="none")
    assert result["missing"] == [] and result["duplicates"] == {}, result
    assert result["delivered_keys"] == 300 and result["final_worker_rc"] == 0
    assert set(result["rows"]) <= {"accepted", "sent", "delivered"}, result["rows"]
    # The kills must actually land inside sends, or this test proves nothing.
    assert result["kills_leaving_sending_rows"] >= RUNS // 3, result


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sigkill_reconciled_by_emulator_lookup() -> None:
    result = crash_runs(max(3, RUNS // 2), 150, seed=12, lookup="emulator", reconcile_after_s=0.5)
    assert result["ok"], result
