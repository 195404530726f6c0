"""`instore`: one command for every process and tool of the connected store.

    instore demo                    the whole simulated store on this machine
    instore edge --config NODE      an edge node (Raspberry Pi)
    instore gateway --config STORE  the store gateway
    instore sim run SCENARIO        a fast simulated run, scored against ground truth
    instore bench [NAME...]         benchmarks, as JSON
    instore decode ble|epc HEX      decode a captured advertisement or tag
    instore config validate STORE   check a store file
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="Connected-store edge system: edge nodes, gateway, simulator and tools.",
    no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
)
sim_app = typer.Typer(help="The store simulator: run scenarios fast and score them.", no_args_is_help=True)
decode_app = typer.Typer(help="Decode captured radio data for installers (JSON out, exit 1 on bad input).",
                         no_args_is_help=True)
config_app = typer.Typer(help="Store files: validate them, generate broker and node configuration.",
                         no_args_is_help=True)
app.add_typer(sim_app, name="sim")
app.add_typer(decode_app, name="decode")
app.add_typer(config_app, name="config")


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": round(record.created, 3), "level": record.levelname.lower(), "logger": record.name,
               "msg": record.getMessage()}
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out)


def _logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_JsonFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)


def _fail(message: str) -> None:
    typer.echo(message, err=True)
    raise typer.Exit(1)


@app.command()
def edge(config: Annotated[Path, typer.Option(help="The node's TOML file (see docs/deploy.md).")]) -> None:
    """Run an edge node: scan BLE, aggregate windows, publish to the store's broker."""
    from edge.config import NodeConfigError, load_node_config
    from edge.node import run_node

    _logging()
    try:
        cfg = load_node_config(config)
    except (NodeConfigError, FileNotFoundError) as exc:
        _fail(str(exc))
    run_node(cfg)


@app.command()
def gateway(
    config: Annotated[Path, typer.Option(help="The store file (TOML).")],
    db: Annotated[Path | None, typer.Option(help="Database file (default: [gateway] database).")] = None,
    broker_host: Annotated[str | None, typer.Option(help="Override [broker] host.")] = None,
    broker_port: Annotated[int | None, typer.Option(help="Override [broker] port.")] = None,
    host: Annotated[str | None, typer.Option(help="HTTP listen address (default: [gateway] http_host).")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port (default: [gateway] http_port).")] = None,
) -> None:
    """Run the store gateway: ingest from MQTT, serve the staff tablet and the API."""
    from firmware_config.store import load_store
    from firmware_config.validate import ConfigError
    from gateway.service import run_gateway

    _logging()
    try:
        store = load_store(config)
    except (ConfigError, FileNotFoundError) as exc:
        _fail(str(exc))
    run_gateway(store, host=host, port=port, db_path=db, broker_host=broker_host, broker_port=broker_port)


@app.command()
def demo(
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds (default: until Ctrl-C).")] = None,
    scenario: Annotated[Path | None, typer.Option(help="Scenario file (default: sim/scenarios/demo.toml).")] = None,
    broker: Annotated[str, typer.Option(help="auto (Mosquitto if installed), mosquitto or amqtt.")] = "auto",
    port: Annotated[int, typer.Option(help="HTTP port of the gateway (the tablet page).")] = 8000,
    workdir: Annotated[Path | None, typer.Option(help="Where logs and the database go (default: a temp dir).")] = None,
) -> None:
    """Run the whole simulated store: broker, edge nodes, gateway, simulated shoppers."""
    from instore.demo import DEFAULT_SCENARIO, run_demo

    logging.basicConfig(level="WARNING")
    summary = run_demo(scenario or DEFAULT_SCENARIO, duration, broker, port, workdir, echo=typer.echo)
    for line in summary.lines():
        typer.echo(line)


@sim_app.command("run")
def sim_run(
    scenario: Annotated[Path, typer.Argument(help="Scenario file (TOML), e.g. sim/scenarios/boutique.toml.")],
    seed: Annotated[int | None, typer.Option(help="Random seed (default: the scenario's).")] = None,
    report: Annotated[Path | None, typer.Option(help="Write the scores and ground-truth summary as JSON here.")] = None,
    plot: Annotated[Path | None, typer.Option(help="Draw the store and the run into this PNG.")] = None,
) -> None:
    """Run a scenario fast on the simulator's clock and score the system against ground truth."""
    from sim.run import run_scenario_cli

    raise typer.Exit(run_scenario_cli(scenario, seed, report, plot, typer.echo))


@decode_app.command("ble")
def decode_ble(hexdata: Annotated[str, typer.Argument(metavar="HEX", help="Raw advertising data (AD structures).")]) -> None:
    """Decode raw advertising data: iBeacon and Eddystone frames as JSON."""
    from edge.ble.frames import BleFrameError, describe_hex

    try:
        frames = describe_hex(hexdata)
    except BleFrameError as exc:
        _fail(f"error: {exc}")
    typer.echo(json.dumps(frames, indent=2))


@decode_app.command("epc")
def decode_epc(hexdata: Annotated[str, typer.Argument(metavar="HEX", help="The tag's EPC in hex.")]) -> None:
    """Decode an EPC (SGTIN-96/198; other schemes reported by name with their raw hex)."""
    from gateway.epc import EpcError, describe_epc

    try:
        out = describe_epc(hexdata)
    except EpcError as exc:
        _fail(f"error: {exc}")
    typer.echo(json.dumps(out, indent=2))


@config_app.command("validate")
def config_validate(store: Annotated[Path, typer.Argument(help="The store file (TOML).")]) -> None:
    """Check a store file: every problem at once as file:line: key: message (exit 1), or a summary."""
    from firmware_config.validate import validate_cli

    code, text = validate_cli(store)
    typer.echo(text, err=code != 0)
    raise typer.Exit(code)


@config_app.command("mosquitto")
def config_mosquitto(
    store: Annotated[Path, typer.Argument(help="The store file (TOML).")],
    out: Annotated[Path, typer.Option(help="Directory for mosquitto.conf, passwd, acl and credentials.toml.")],
    persistence_dir: Annotated[str, typer.Option(help="Mosquitto's persistence location.")] = "/var/lib/mosquitto/",
    bridge_password_file: Annotated[Path | None, typer.Option(help="File holding the central broker's password.")] = None,
) -> None:
    """Generate the store broker's config: no anonymous access, per-node passwords and ACLs."""
    from firmware_config.mosquitto import generate
    from firmware_config.validate import ConfigError, validate_file

    try:
        parsed = validate_file(store)
    except (ConfigError, OSError) as exc:
        _fail(str(exc))
    bridge_pw = bridge_password_file.read_text(encoding="utf-8").strip() if bridge_password_file else None
    files = generate(parsed, out, persistence_dir=persistence_dir, bridge_password=bridge_pw)
    for f in (files.conf, files.passwd, files.acl, files.credentials):
        typer.echo(f"wrote {f}")


@app.command()
def bench(
    names: Annotated[list[str] | None, typer.Argument(metavar="[NAME]...", help="Benchmarks to run (default: all).")] = None,
    quick: Annotated[bool, typer.Option(help="Small sizes: a smoke run, not a measurement.")] = False,
    list_: Annotated[bool, typer.Option("--list", help="List the benchmarks and exit.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Only JSON lines on stdout (no progress).")] = False,
) -> None:
    """Run benchmarks from benchmarks/, printing one JSON object per benchmark."""
    from benchmarks import discover, run_one

    found = discover()
    if list_:
        for name, mod in sorted(found.items()):
            typer.echo(f"{name}\t{(mod.__doc__ or '').strip().splitlines()[0] if mod.__doc__ else ''}")
        return
    selected = names or sorted(found)
    unknown = [n for n in selected if n not in found]
    if unknown:
        _fail(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(sorted(found))}")
    for name in selected:
        if not json_out:
            typer.echo(f"running {name}...", err=True)
        typer.echo(json.dumps(run_one(found[name], quick=quick)))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
