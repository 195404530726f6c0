"""The score of a run: a table for people (rich) and a JSON document for machines."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from sim.targets import Limit, check

if TYPE_CHECKING:
    from sim.run import RunResult

# (metric, what it means) in the order the table shows them; the targets beside them come from
# a targets file (sim/targets.toml unless `--targets` names another), marked, never enforced.
ROWS: list[tuple[str, str]] = [
    ("entry.precision", "entered events that were a consenting regular walking in"),
    ("entry.recall", "consenting regulars' visits that produced an entered event"),
    ("entry.latency_p50_s", "door crossing -> entered event, median (s)"),
    ("entry.latency_p95_s", "door crossing -> entered event, 95th percentile (s)"),
    ("entry.window_shoppers_announced_per_h", "registered passers-by stopping at the window announced, per hour"),
    ("entry.party.recall", "the same, for members of parties of 2 or more"),
    ("entry.party.latency_p95_s", "door crossing -> entered event, party members, p95 (s)"),
    ("left.latency_p95_s", "door crossing out -> left event, 95th percentile (s)"),
    ("left.while_inside", "registered visitors told `left` while still inside (false lefts)"),
    ("zone.accuracy", "1-s slices of tracked visits with the right zone"),
    ("zone.presence_accuracy", "1-s slices of tracked visits shown as in the store"),
    ("zone.wrong_room_changes_per_100_visits", "changes into a fitting room the customer was not in"),
    ("fitting_room.item_precision", "fitting-room item reports that were true"),
    ("fitting_room.item_recall", "garments in fitting rooms that were reported"),
    ("fitting_room.latency_p95_s", "garment in room -> reported, 95th percentile (s)"),
    ("privacy.unconsented_identifications", "events naming someone without recognition consent"),
    ("sim.speedup", "simulated seconds per wall-clock second"),
]
_MARK = {True: "[green]met[/green]", False: "[red]missed[/red]", None: "n/a"}


CARRIER_COLUMNS = (  # (metric suffix, column) of the per-carrier table
    ("visits", "registered visits"),
    ("recognised", "recognised"),
    ("latency_p50_s", "entry latency p50 (s)"),
    ("latency_p95_s", "entry latency p95 (s)"),
    ("unconsented_identifications", "unconsented identifications"),
)


def carrier_table(m: dict):  # noqa: ANN201  (a rich Table, imported lazily)
    """Per identity carrier (sim.score_carriers): recognised share, entry latency, privacy."""
    from rich.table import Table

    table = Table(title="per carrier")
    table.add_column("carrier")
    for _, column in CARRIER_COLUMNS:
        table.add_column(column, justify="right")
    carriers = sorted({k.split(".")[1] for k in m if k.startswith("carrier.")})
    for c in carriers:
        table.add_row(c, *(_fmt(m.get(f"carrier.{c}.{suffix}")) for suffix, _ in CARRIER_COLUMNS))
    return table


def _fmt(v: object) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


def report_dict(result: RunResult, targets: dict[str, Limit] | None = None) -> dict:
    """The run as JSON; with targets, each targeted metric's limits, value and met (true/false/null)."""
    out = {
        "scenario": result.scenario,
        "seed": result.seed,
        "duration_s": result.truth.duration_s,
        "wall_s": round(result.wall_s, 3),
        "metrics": dict(result.metrics),
        "counts": dict(result.counts),
        "notes": list(result.notes),
    }
    if targets is not None:
        out["targets"] = check(result.metrics, targets)
    return out


def write_report(result: RunResult, path: str | Path, targets: dict[str, Limit] | None = None) -> None:
    text = json.dumps(report_dict(result, targets), indent=2, sort_keys=True)
    Path(path).write_text(text + "\n", encoding="utf-8")


def print_table(result: RunResult, file: TextIO | None = None, targets: dict[str, Limit] | None = None) -> None:
    """The score table; each targeted metric shows its target and whether the run met it."""
    from rich.console import Console
    from rich.table import Table

    m = result.metrics
    table = Table(
        title=f"{result.scenario} (seed {result.seed}): {result.truth.duration_s:,.0f} s simulated "
        f"in {result.wall_s:.1f} s"
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    table.add_column("", justify="left")
    table.add_column("meaning")
    targets = {} if targets is None else targets
    rows = ROWS + [(k, "") for k in targets if k not in dict(ROWS)]
    for key, meaning in rows:
        lim = targets.get(key)
        mark = _MARK[lim.met(m.get(key))] if lim else ""
        table.add_row(key, _fmt(m.get(key)), lim.text() if lim else "", mark, meaning)
    counts = ", ".join(
        f"{k} {v}"
        for k, v in m.items()
        if k.startswith(("entry.true", "entry.events", "events.", "agents.", "fitting_room.true"))
    )
    console = Console(file=file or sys.stdout, width=130)
    console.print(table)
    console.print(carrier_table(m))
    if "carrier.iphone_app.connections_per_node_min" in m:
        console.print(
            f"background iPhones: {_fmt(m['carrier.iphone_app.connections_per_node_min'])} connections per node "
            f"per minute (busiest node), peak {m['carrier.iphone_app.peak_concurrent_links']} links, "
            f"{m['carrier.iphone_app.failed_reads']} failed reads, identity read p95 "
            f"{_fmt(m['carrier.iphone_app.read_latency_p95_s'])} s after the first advertisement"
        )
    if "carrier.iphone_app.read_tail_connect_s" in m:
        tail = "carrier.iphone_app.read_tail_"
        console.print(
            f"  slowest 5 % of reads, mean s: first wait {_fmt(m[tail + 'first_wait_s'])}, failed attempts "
            f"{_fmt(m[tail + 'failed_s'])}, waits to retry {_fmt(m[tail + 'retry_wait_s'])}, reading connection "
            f"{_fmt(m[tail + 'connect_s'])}; store-wide read p95 "
            f"{_fmt(m['carrier.iphone_app.store_read_latency_p95_s'])} s (first heard by any node, read by any)"
        )
    console.print(f"counts: {counts}")
    for k, v in result.counts.items():
        console.print(f"  {k}: {v:,}")
    for note in result.notes:
        console.print(f"note: {note}")
