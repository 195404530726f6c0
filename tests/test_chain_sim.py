"""`instore sim chain`: real gateway publishers and NATS servers through a cut with a store server
killed and a gateway restarted in it; HQ must hold exactly what the stores' event logs say leaves."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from instore.cli import app


def test_sim_chain_hq_holds_exactly_what_every_store_sent_through_cut_kill_and_restart() -> None:
    result = CliRunner().invoke(app, ["sim", "chain", "--stores", "3", "--rate", "10", "--duration", "9", "--cut", "4"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert [step.split(": ")[1] for step in report["timeline"]] == ["cut", "kill", "restart", "relink"]
    assert set(report["per_store"]) == {"s00", "s01", "s02"}
    for store in report["per_store"].values():
        assert store["events"] > 10  # recognised entries did leave every store
        assert (store["lost"], store["unexpected"]) == (0, 0)
    assert report["ok"] is True
