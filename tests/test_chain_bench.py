"""`instore bench chain --quick`: the benchmark's own scenario on real servers loses nothing over its cut."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from instore.cli import app


@pytest.mark.timeout(300)  # 11 s alone; on a busy machine HQ's catch-up after the cut waits up to DRAIN_TIMEOUT_S
def test_bench_chain_quick_delivers_every_event_through_the_cut_and_reports_its_figures() -> None:
    result = CliRunner().invoke(app, ["bench", "chain", "--quick", "--json", "--param", "stores=3"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["shape"] == ("3 simulated stores x 50 events/s on 2 leaf servers "
                               "(up to 2 stores share a leaf's stream)")
    assert report["published"] > report["live_rate_per_s"] * report["live_s"] / 2  # the stores did publish
    assert report["received_once"] == report["published"]  # every event reached HQ, also those of the cut
    assert report["hq_resumed_after_relink_s"] > 0
    assert {"p50", "p95"} <= set(report["store_to_hq_ms"])
    assert report["hq_peak_rss_mb"] > 0


def test_bench_params_must_be_numbers() -> None:
    result = CliRunner().invoke(app, ["bench", "chain", "--param", "stores=many"])
    assert result.exit_code != 0
    assert "--param 'stores=many': expected NAME=NUMBER" in result.output


def test_bench_chain_with_pg_runs_hqs_own_workers_into_postgresql() -> None:
    result = CliRunner().invoke(app, ["bench", "chain", "--quick", "--json", "--param", "stores=3",
                                      "--param", "pg=1", "--param", "workers=2"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["shape"].endswith("HQ: 2 worker(s) writing PostgreSQL")
    assert report["received_once"] == report["published"] > report["live_rate_per_s"]  # rows in PostgreSQL
    assert report["cores_live"]["hq_workers"] > 0 and report["hq_workers_peak_rss_mb"] > 0
    assert report["hq_and_pg_cores_per_1000_per_s"]["live"] > 0
