"""The score of a run: a table for people (rich) and a JSON document for machines."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from sim.run import RunResult

# (metric, what it means, target) in the order the table shows them; the targets are the
# product's (the recognition and RFID issues), shown next to the measurement, never enforced.
ROWS: list[tuple[str, str, str]] = [
    ("entry.precision", "entered events that were a consenting regular walking in", ">= 0.99"),
    ("entry.recall", "consenting regulars' visits that produced an entered event", ">= 0.99"),
    ("entry.latency_p50_s", "door crossing -> entered event, median (s)", "<= 1.2"),
    ("entry.latency_p95_s", "door crossing -> entered event, 95th percentile (s)", "<= 2.5"),
    ("entry.party.recall", "the same, for members of parties of 2 or more", ">= 0.99"),
    ("entry.party.latency_p95_s", "door crossing -> entered event, party members, p95 (s)", "<= 2.5"),
    ("left.latency_p95_s", "door crossing out -> left event, 95th percentile (s)", "<= 10"),
    ("zone.accuracy", "1-s slices of tracked visits with the right zone", ">= 0.95"),
    ("zone.presence_accuracy", "1-s slices of tracked visits shown as in the store", ""),
    ("fitting_room.item_precision", "fitting-room item reports that were true", ">= 0.99"),
    ("fitting_room.item_recall", "garments in fitting rooms that were reported", ">= 0.98"),
    ("fitting_room.latency_p95_s", "garment in room -> reported, 95th percentile (s)", "<= 3"),
    ("privacy.unconsented_identifications", "events naming someone without recognition consent", "= 0"),
    ("sim.speedup", "simulated seconds per wall-clock second", ""),
]


def _fmt(v: object) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


def report_dict(result: RunResult) -> dict:
    return {
        "scenario": result.scenario,
        "seed": result.seed,
        "duration_s": result.truth.duration_s,
        "wall_s": round(result.wall_s, 3),
        "metrics": dict(result.metrics),
        "counts": dict(result.counts),
        "notes": list(result.notes),
    }


def write_report(result: RunResult, path: str | Path) -> None:
    Path(path).write_text(json.dumps(report_dict(result), indent=2, sort_keys=True) + "\n", encoding="utf-8")


def print_table(result: RunResult, file: TextIO | None = None) -> None:
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
    table.add_column("meaning")
    for key, meaning, target in ROWS:
        table.add_row(key, _fmt(m.get(key)), target, meaning)
    counts = ", ".join(
        f"{k} {v}"
        for k, v in m.items()
        if k.startswith(("entry.true", "entry.events", "events.", "agents.", "fitting_room.true"))
    )
    console = Console(file=file or sys.stdout, width=130)
    console.print(table)
    console.print(f"counts: {counts}")
    for k, v in result.counts.items():
        console.print(f"  {k}: {v:,}")
    for note in result.notes:
        console.print(f"note: {note}")
