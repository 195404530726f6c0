"""`instore`: one command for every process and tool of the connected store.

`instore demo` (the simulated store), `edge`, `gateway`, `hq` (docs/chain.md), `sim run`,
`bench`, `decode ble|epc HEX`, `config validate`, `fob provision` and more: `instore --help`.
"""

from __future__ import annotations

import json
import logging
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer

if TYPE_CHECKING:
    from edge.protocol import DoorSensorKind
    from instore.hq import HqConfig
    from instore.hq_metrics import Page

app = typer.Typer(
    help="Connected-store edge system: edge nodes, gateway, simulator and tools.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
sim_app = typer.Typer(help="The store simulator: run scenarios fast and score them.", no_args_is_help=True)
decode_app = typer.Typer(
    help="Decode captured radio data for installers (JSON out, exit 1 on bad input).", no_args_is_help=True
)
staff_app = typer.Typer(help="Staff accounts for the tablets and the manager dashboard.", no_args_is_help=True)
config_app = typer.Typer(
    help="Store files: validate them, generate broker and node configuration.", no_args_is_help=True
)
app.add_typer(sim_app, name="sim")
app.add_typer(decode_app, name="decode")
app.add_typer(config_app, name="config")
app.add_typer(staff_app, name="staff")
fob_app = typer.Typer(
    help="Loyalty key fobs (Eddystone-EID beacons) for regulars without the app.", no_args_is_help=True
)
app.add_typer(fob_app, name="fob")


class CurtainKind(StrEnum):
    """The crossing counters the simulator models (docs/scenarios.md, door sensor)."""

    beam = "beam"
    tof = "tof"
    thermal = "thermal"
    stereo = "stereo"


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
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


def _store_or_fail(path: Path):  # noqa: ANN202 (StoreFile, imported lazily like every command's imports)
    """The validated store file, or every problem on stderr and exit 1."""
    from firmware_config.validate import ConfigError, validate_file

    try:
        return validate_file(path)
    except (ConfigError, OSError) as exc:
        _fail(str(exc))


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
    db: Annotated[Path | None, typer.Option(help="Database file (default: the store file's gateway.database).")] = None,
    broker_host: Annotated[str | None, typer.Option(help="Override the store file's broker host.")] = None,
    broker_port: Annotated[
        int | None, typer.Option(help="Override the broker port (default: gateway.mqtt_port, see docs/deploy.md).")
    ] = None,
    broker_cafile: Annotated[
        Path | None, typer.Option(help="Speak TLS to the broker trusting this CA (default: gateway.mqtt_cafile).")
    ] = None,
    host: Annotated[
        str | None, typer.Option(help="HTTP listen address (default: the store file's gateway.http_host).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port (default: the store file's gateway.http_port).")] = None,
    whatsapp: Annotated[Path | None, typer.Option(help="WhatsApp channel config (TOML, see docs/whatsapp.md).")] = None,
    mqtt_password_file: Annotated[
        Path | None,
        typer.Option(
            help="File holding the gateway's MQTT password (its line in credentials.toml; default: "
            "gateway.mqtt_password_file); the username is the store file's gateway.mqtt_username.",
            envvar="INSTORE_MQTT_PASSWORD_FILE",
        ),
    ] = None,
    tls_cert: Annotated[
        Path | None, typer.Option(help="Serve HTTPS with this certificate (PEM; see `instore config tls`).")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option(help="The certificate's private key (PEM).")] = None,
) -> None:
    """Run the store gateway: ingest from MQTT, serve the staff tablet and the API.

    Paths in the store file (the database) are relative to the store file."""
    from firmware_config.paths import store_relative
    from firmware_config.validate import ConfigError
    from gateway.ingest.broker_login import broker_login
    from gateway.service import run_gateway

    _logging()
    store = _store_or_fail(config)
    login = broker_login(store, config, host=broker_host, port=broker_port, cafile=broker_cafile,
                         password_file=mqtt_password_file)
    password = None
    if login.password_file is not None:
        try:
            password = login.password_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            _fail(f"{login.password_file}: {exc.strerror}")
    if login.cafile is not None and not login.cafile.is_file():
        _fail(f"{login.cafile}: no such file (the broker's CA certificate, gateway.mqtt_cafile)")
    if (tls_cert is None) != (tls_key is None):
        _fail("--tls-cert and --tls-key go together")
    if whatsapp is not None:
        from cloud_sync.config import load_config

        try:
            wa = load_config(whatsapp)
        except (ConfigError, FileNotFoundError) as exc:
            _fail(str(exc))
        if wa.outbox.at_hq and store.chain is None:  # nothing would ever send its messages
            _fail(f"{whatsapp}: outbox.at_hq: HQ's outbox needs the store file's [chain] section (docs/chain.md)")
    run_gateway(
        store, host=host, port=port, db_path=db or store_relative(config, store.gateway.database),
        broker_host=login.host, broker_port=login.port, broker_cafile=login.cafile, whatsapp=whatsapp,
        username=login.username, password=password, tls_cert=tls_cert, tls_key=tls_key,
    )


@app.command()
def hq(
    config: Annotated[Path, typer.Option(help="HQ's TOML file (docs/chain.md).")],
    withdraw: Annotated[str | None, typer.Option(help="Instead: withdraw CUSTOMER's --purpose consent in every store.")]
    = None,
    purpose: Annotated[str, typer.Option(help="The consent purpose --withdraw withdraws.")] = "recognition",
    erase: Annotated[str | None, typer.Option(help="Instead: erase CUSTOMER at HQ and in every store.")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Processes sharing the stores (each store pulled by one).")] = 1,
) -> None:
    """The chain HQ: pull every store's events across its leaf link into the chain CRM (PostgreSQL);
    /metrics and /healthz on the config's metrics port, and with a dashboard token /dashboard and /epcis/events."""
    import asyncio
    import signal
    import time

    from firmware_config.paths import store_relative
    from firmware_config.validate import ConfigError
    from gateway.storage.db import PURPOSES
    from instore.hq import Hq, load_config

    _logging()
    try:
        cfg = load_config(config)
        password = store_relative(config, cfg.password_file).read_text(encoding="utf-8").strip()
    except (ConfigError, OSError) as exc:
        _fail(str(exc))

    if withdraw or erase:
        if purpose not in PURPOSES:
            _fail(f"--purpose: unknown purpose {purpose!r}, expected one of {', '.join(PURPOSES)}")
        customer = erase or withdraw or ""
        done = asyncio.run(Hq(cfg, password).command(customer, erase=bool(erase), purpose=purpose, now=time.time()))
        if not done:
            _fail(f"customer {customer!r} not found at HQ")
        typer.echo(f"{'erased' if erase else 'withdrew ' + purpose + ' of'} {customer}: every store follows")
        return

    async def serve() -> None:
        from instore.hq_workers import serve as serve_hq

        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await serve_hq(cfg, password, workers, stop, *_hq_pages(config, cfg))

    asyncio.run(serve())


def _hq_pages(path: Path, cfg: HqConfig) -> tuple[Page | None, Page | None]:
    """HQ's /dashboard and /epcis/events when hq.toml names its token file (docs/chain.md, "Chain dashboard",
    "EPCIS capture")."""
    import time
    from zoneinfo import ZoneInfo

    from firmware_config.paths import store_relative
    from instore.hq_dashboard import Dashboard
    from instore.hq_epcis import EpcisQuery

    if cfg.dashboard_token_file is None:
        return None, None
    try:
        token = store_relative(path, cfg.dashboard_token_file).read_text(encoding="utf-8").strip()
    except OSError as exc:
        _fail(f"{path}: dashboard_token_file: {exc}")
    if not token:
        _fail(f"{path}: dashboard_token_file: {cfg.dashboard_token_file} is empty")
    page = (cfg.postgres, list(cfg.stores), token, ZoneInfo(cfg.timezone), time.time)
    return Dashboard(*page), EpcisQuery(*page)


@app.command()
def demo(
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: until Ctrl-C).")
    ] = None,
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
    targets: Annotated[
        Path | None,
        typer.Option(help="Metric limits (TOML) to mark met or missed (default: sim/targets.toml)."),
    ] = None,
) -> None:
    """Run a scenario fast on the simulator's clock and score the system against ground truth."""
    from sim.run import run_scenario_cli

    raise typer.Exit(run_scenario_cli(scenario, seed, report, plot, typer.echo, targets))


@sim_app.command("month")
def sim_month(
    seeds: Annotated[str, typer.Option(help="Seeds: a range (1-3) or a list (1,4).")] = "1-3",
    days: Annotated[int, typer.Option(min=7, max=92, help="Days to play.")] = 30,
    recall: Annotated[float, typer.Option(min=0, max=1, help="Share of visits the store recognises.")] = 0.98,
    till: Annotated[float, typer.Option(min=0, max=1, help="Share of purchases the till rings up to the customer "
                                        "by their loyalty number, card or phone number.")] = 0.8,
) -> None:
    """A month of a boutique's regulars: follow-ups, returns, purchases; attribution against ground truth."""
    from sim.library import parse_seeds
    from sim.month import Month, score_month

    try:
        seed_list = parse_seeds(seeds)
    except ValueError as exc:
        _fail(str(exc))
    for seed in seed_list:
        typer.echo(json.dumps(score_month(Month(days=days, recognition_recall=recall, till_id_share=till), seed)))


@sim_app.command("chain")
def sim_chain(
    stores: Annotated[int, typer.Option(min=1, help="Simulated stores, each with its own NATS leaf server.")] = 5,
    rate: Annotated[float, typer.Option(min=0.1, help="Event-log rows each store writes a second.")] = 20.0,
    duration: Annotated[float, typer.Option(min=3, help="Seconds the stores write events.")] = 30.0,
    cut: Annotated[float, typer.Option(min=1, help="Seconds HQ's server is down, a third into the run.")] = 10.0,
    seed: Annotated[int, typer.Option(help="Seed of the event mix.")] = 1,
    cut_at: Annotated[float | None, typer.Option(min=1, help="Seconds into the run the cut starts (default: a third).")]
    = None,
    hq_nodes: Annotated[int, typer.Option(min=1, max=5, help="HQ's NATS servers: 1 (the demo) or 3 (production).")] = 1,
) -> None:
    """Stores with real gateway publishers and NATS servers, a cut with a store server killed and a
    gateway restarted in it; HQ's view checked against every store's event log (JSON)."""
    from instore.chain_sim import CUT_AT, run_chain_sim

    start = duration * CUT_AT if cut_at is None else cut_at
    if start + cut >= duration:
        _fail(f"--duration {duration:g}: the cut ({start:g} s + {cut:g} s) must end before the run does")
    report = run_chain_sim(stores=stores, rate=rate, duration_s=duration, cut_s=cut, seed=seed, cut_at_s=cut_at,
                           hq_nodes=hq_nodes)
    typer.echo(json.dumps(report))
    if not report["ok"]:
        raise typer.Exit(1)


@sim_app.command("library")
def sim_library(
    scenarios: Annotated[
        list[str] | None, typer.Argument(help="Scenario files or library names (default: all of sim/scenarios/).")
    ] = None,
    seeds: Annotated[str, typer.Option(help="Seeds to run each scenario with: a range (1-3) or a list (1,4).")] = "1-3",
    jobs: Annotated[int, typer.Option(min=1, help="Runs at a time, each in its own process.")] = 2,
    out: Annotated[Path | None, typer.Option(help="Write every run's report as one JSON list here.")] = None,
    before: Annotated[
        Path | None, typer.Option(help="A JSON list written earlier with --out: cells show 'before -> now'.")
    ] = None,
    oracle: Annotated[
        bool, typer.Option(help="Run the entry and fitting-room oracles (the bounds) instead of the system.")
    ] = False,
    max_duration: Annotated[
        float | None, typer.Option(min=1, help="With --oracle: simulated seconds at most per scenario (an hour).")
    ] = None,
    curtains: Annotated[
        CurtainKind | None,
        typer.Option(help="Put a crossing sensor of this kind across every fitting room's curtain "
                     "(docs/fitting-rooms.md, 'Curtain sensors'); default: as each scenario says."),
    ] = None,
) -> None:
    """Run the whole scenario library with several seeds and print one Markdown table.

    Targets are measured this way: every scenario, seeds 1 to 3, not the one that looks best.
    """
    from rich.progress import Progress

    from sim.library import load_reports, parse_seeds, run_library, scenario_paths, table

    try:
        seed_list = parse_seeds(seeds)
        old = load_reports(before) if before else None
    except (ValueError, OSError) as exc:
        _fail(str(exc))
    paths = scenario_paths(scenarios or [])
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        _fail(f"scenario file not found: {', '.join(missing)}")
    with Progress(transient=True) as prog:
        task = prog.add_task("scenarios x seeds", total=len(paths) * len(seed_list))
        if oracle:
            from sim.library import ORACLE_MAX_DURATION_S, oracle_table, run_oracles

            cap = max_duration or ORACLE_MAX_DURATION_S
            results = run_oracles(paths, seed_list, jobs, cap, on_done=lambda _r: prog.advance(task))
        else:
            kind = None if curtains is None else cast("DoorSensorKind", curtains.value)
            reports = run_library(paths, seed_list, jobs, on_done=lambda _r: prog.advance(task), curtains=kind)
    if oracle:
        if out is not None:
            out.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        typer.echo(oracle_table(results))
        return
    if out is not None:
        out.write_text(json.dumps(reports, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    typer.echo(table(reports, before=old))


@decode_app.command("ble")
def decode_ble(
    hexdata: Annotated[str, typer.Argument(metavar="HEX", help="Raw advertising data (AD structures).")],
) -> None:
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
    from gateway.engines.epc import EpcError, describe_epc

    try:
        out = describe_epc(hexdata)
    except EpcError as exc:
        _fail(f"error: {exc}")
    typer.echo(json.dumps(out, indent=2))


@app.command()
def calibrate(
    store: Annotated[Path, typer.Option(help="The store file; the node's ble.ref_rssi_1m is written into it.")],
    node: Annotated[str, typer.Option(help="The node to calibrate (its id in the store file).")],
    beacon: Annotated[
        str,
        typer.Option(
            help="The beacon held 1 m from the node, as the node reports it, "
            "e.g. ibeacon:f7826da6-4fa2-4e98-8024-bc5b71e0893e:1:7."
        ),
    ],
    seconds: Annotated[float, typer.Option(help="How long to listen.")] = 30.0,
    broker_host: Annotated[str | None, typer.Option(help="Override the store file's broker host.")] = None,
    broker_port: Annotated[int | None, typer.Option(help="Override the store file's broker port.")] = None,
    username: Annotated[str | None, typer.Option(help="Broker user (the gateway's).")] = None,
    password_file: Annotated[Path | None, typer.Option(help="File holding that user's password.")] = None,
    dry_run: Annotated[bool, typer.Option(help="Print the estimate, do not write the file.")] = False,
) -> None:
    """Measure a node's RSSI at 1 m from a known beacon and write it into the store file."""
    import time

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from rich.progress import Progress

    from edge import protocol
    from firmware_config.calibrate import CalibrationError, estimate_ref_rssi, set_ref_rssi
    from firmware_config.validate import ConfigError

    parsed = _store_or_fail(store)
    try:
        parsed.node(node)
    except KeyError:
        _fail(f"{store}: no node {node!r}")
    samples: list[tuple[float, int]] = []

    def on_message(client, userdata, msg):  # noqa: ANN001, ANN202
        try:
            window = protocol.decode("ble", msg.payload)
        except protocol.WireError:
            return
        samples.extend((o.rssi_mean, o.n) for o in window.observations if o.id == beacon)

    c = mqtt.Client(CallbackAPIVersion.VERSION2)
    if username:
        c.username_pw_set(username, password_file.read_text().strip() if password_file else None)
    c.on_message = on_message
    try:
        c.connect(broker_host or parsed.broker.host, broker_port or parsed.broker.port)
    except OSError as exc:
        _fail(f"cannot reach the broker: {exc}")
    c.subscribe(protocol.node_topic(parsed.store.id, node, "ble"), qos=1)
    c.loop_start()
    with Progress(transient=True) as progress:
        task = progress.add_task(f"listening to {node} for {beacon}", total=seconds)
        t0 = time.monotonic()
        while (elapsed := time.monotonic() - t0) < seconds:
            progress.update(task, completed=elapsed)
            time.sleep(0.2)
    c.loop_stop()
    c.disconnect()
    try:
        value = estimate_ref_rssi(samples)
        typer.echo(f"{node}: ref_rssi_1m = {value} dBm from {sum(n for _, n in samples)} packets")
        if not dry_run:
            store.write_text(set_ref_rssi(store.read_text(encoding="utf-8"), node, value, str(store)), encoding="utf-8")
            typer.echo(f"wrote {store}")
    except (CalibrationError, ConfigError) as exc:
        _fail(str(exc))


@config_app.command("validate")
def config_validate(store: Annotated[Path, typer.Argument(help="The store file (TOML).")]) -> None:
    """Check a store file: every problem at once as file:line: key: message (exit 1), or a summary
    followed by any warnings (valid but likely wrong, such as a fitting room open to the floor)."""
    from firmware_config.validate import validate_cli

    code, text = validate_cli(store)
    typer.echo(text, err=code != 0)
    raise typer.Exit(code)


@config_app.command("mosquitto")
def config_mosquitto(
    store: Annotated[Path, typer.Argument(help="The store file (TOML).")],
    out: Annotated[Path, typer.Option(help="Directory for mosquitto.conf, passwd, acl and credentials.toml.")],
    persistence_dir: Annotated[str, typer.Option(help="Mosquitto's persistence location.")] = "/var/lib/mosquitto/",
    bridge_password_file: Annotated[
        Path | None, typer.Option(help="File holding the central broker's password.")
    ] = None,
) -> None:
    """Generate the store broker's config: no anonymous access, per-node passwords and ACLs."""
    from firmware_config.mosquitto import generate

    parsed = _store_or_fail(store)
    bridge_pw = bridge_password_file.read_text(encoding="utf-8").strip() if bridge_password_file else None
    files = generate(parsed, out, persistence_dir=persistence_dir, bridge_password=bridge_pw, store_file=store)
    for f in (files.conf, files.passwd, files.acl, files.credentials):
        typer.echo(f"wrote {f}")


@config_app.command("nats")
def config_nats(
    stores: Annotated[list[Path], typer.Argument(help="Store files (TOML) with a [chain] section.")],
    out: Annotated[Path, typer.Option(help="Directory for nats-<store>.conf, nats-hq.conf, chain-credentials.toml.")],
    hq: Annotated[bool, typer.Option(help="Also write HQ's config: one account per given store.")] = False,
    hq_port: Annotated[int, typer.Option(help="HQ's client port.")] = 4222,
    hq_leaf_port: Annotated[int, typer.Option(help="HQ's leaf-node port (the stores' hq_url).")] = 7422,
    hq_storage_dir: Annotated[str, typer.Option(help="HQ's JetStream directory.")] = "/var/lib/instore-nats-hq",
    hq_cert: Annotated[Path | None, typer.Option(help="HQ's leaf TLS certificate (PEM).")] = None,
    hq_key: Annotated[Path | None, typer.Option(help="HQ's leaf TLS key (PEM).")] = None,
    hq_node: Annotated[list[str] | None, typer.Option(
        help="A host of HQ's cluster (repeat for each; production: three): nats-hq-<n>.conf per node.")] = None,
    hq_cluster_port: Annotated[int, typer.Option(help="The port HQ's nodes route between themselves on.")] = 6222,
) -> None:
    """Generate each store's NATS leaf config (JetStream domain = store id) and, with --hq, HQ's (docs/chain.md)."""
    from firmware_config.nats import generate, hq_nodes

    parsed = [(_store_or_fail(s), s) for s in stores]
    for (p, path) in parsed:
        if p.chain is None:
            _fail(f"{path}: chain: missing: add a [chain] section (docs/chain.md)")
    files = generate(
        parsed, out, hq=hq, hq_port=hq_port, hq_leaf_port=hq_leaf_port, hq_storage_dir=hq_storage_dir,
        hq_certfile=str(hq_cert.resolve()) if hq_cert else None, hq_keyfile=str(hq_key.resolve()) if hq_key else None,
        hq_cluster=hq_nodes(hq_node or [], port=hq_port, cluster_port=hq_cluster_port, leaf_port=hq_leaf_port,
                            storage_dir=hq_storage_dir),
    )
    hq_files = [files.hq_conf] if files.hq_conf else list(files.hq_node_confs.values())
    for f in [*files.leaf_confs.values(), *hq_files, files.credentials]:
        typer.echo(f"wrote {f}")


@config_app.command("tls")
def config_tls(
    store: Annotated[Path, typer.Argument(help="The store file (TOML).")],
    out: Annotated[Path, typer.Option(help="Directory for ca.crt, ca.key, server.crt and server.key.")],
    name: Annotated[
        list[str] | None,
        typer.Option(help="A host name or address the gateway and broker are reached at (repeatable; default: "
                     "the store file's gateway.http_host and broker.host, localhost, 127.0.0.1). The store "
                     "file's broker.host is always included: the gateway reaches the broker there over TLS."),
    ] = None,
) -> None:
    """A store-local CA and a server certificate for the gateway's HTTPS and the broker's TLS listener."""
    from firmware_config.tls import generate

    parsed = _store_or_fail(store)
    names = [*name, parsed.broker.host] if name else [parsed.gateway.http_host, parsed.broker.host, "localhost",
                                                      "127.0.0.1"]
    names = [n for n in dict.fromkeys(names) if n not in ("0.0.0.0", "::")]
    files = generate(parsed.store.id, out, names)
    for f in (files.ca_cert, files.ca_key, files.cert, files.key):
        typer.echo(f"wrote {f}")
    typer.echo(f"certificate for: {', '.join(names)}; install {files.ca_cert} on every tablet")


@staff_app.command("add")
def staff_add(
    username: Annotated[str, typer.Argument(help="Sign-in name: lower-case letters, digits, '.', '_' or '-'.")],
    store: Annotated[Path, typer.Option(help="The store file (for the database location).")],
    role: Annotated[
        str, typer.Option(help="associate (tablet) or manager (tablet, dashboard, staff accounts).")
    ] = "associate",
    name: Annotated[str, typer.Option(help="Display name on the tablets.")] = "",
    db: Annotated[Path | None, typer.Option(help="Database file (default: the store file's gateway.database).")] = None,
    password_file: Annotated[
        Path | None, typer.Option(help="Read the password from this file instead of asking.")
    ] = None,
) -> None:
    """Add a staff account (the first manager is created this way); the database is the one the
    gateway uses: the store file's gateway.database, relative to the store file."""
    from firmware_config.paths import store_relative
    from gateway.storage.auth import create_staff
    from gateway.storage.db import open_db

    parsed = _store_or_fail(store)
    password = (
        password_file.read_text(encoding="utf-8").strip()
        if password_file
        else typer.prompt("password", hide_input=True, confirmation_prompt=True)
    )
    try:
        create_staff(open_db(db or store_relative(store, parsed.gateway.database)), username, password, role, name=name)
    except ValueError as exc:
        _fail(f"error: {exc}")
    typer.echo(f"added {role} {username!r}")


@app.command()
def bench(
    names: Annotated[
        list[str] | None, typer.Argument(metavar="[NAME]...", help="Benchmarks to run (default: all).")
    ] = None,
    quick: Annotated[bool, typer.Option(help="Small sizes: a smoke run, not a measurement.")] = False,
    list_: Annotated[bool, typer.Option("--list", help="List the benchmarks and exit.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Only JSON lines on stdout (no progress).")] = False,
    param: Annotated[
        list[str] | None, typer.Option(help="NAME=NUMBER for the benchmark's own sizes, e.g. stores=10 (repeatable).")
    ] = None,
) -> None:
    """Run benchmarks from benchmarks/, printing one JSON object per benchmark."""
    from benchmarks import discover, run_one

    params = {}
    for p in param or []:
        key, _, value = p.partition("=")
        try:
            params[key] = int(value) if value.isdigit() else float(value)
        except ValueError:
            _fail(f"--param {p!r}: expected NAME=NUMBER")

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
        typer.echo(json.dumps(run_one(found[name], quick=quick, **params)))


@fob_app.command("provision")
def fob_provision(
    address: Annotated[str, typer.Argument(help="The fob's Bluetooth address, e.g. C4:7C:8D:6A:12:34.")],
    customer: Annotated[str, typer.Option(help="The customer id the fob is for (from the customer record).")],
    gateway: Annotated[str, typer.Option(help="The gateway's URL, e.g. https://gateway.local:8443.")],
    user: Annotated[str, typer.Option(help="Your staff username.")],
    password: Annotated[
        str, typer.Option(prompt=True, hide_input=True, envvar="INSTORE_PASSWORD", help="Your staff password.")
    ],
    lock_key: Annotated[
        str,
        typer.Option(envvar="INSTORE_FOB_LOCK_KEY", help="The fob's 16-byte lock key as 32 hex digits (from its box)."),
    ],
    k: Annotated[int, typer.Option(min=0, max=15, help="Rotation exponent: a new EID every 2^k seconds.")] = 10,
) -> None:
    """Register a loyalty key fob over the Eddystone Configuration GATT Service and bind it to a customer.

    Press the fob's button (it is connectable for about 30 s) and hold it next to this machine's
    Bluetooth adapter. The command checks at the gateway that the customer agreed to be
    recognised, unlocks the fob with its lock key (an AES challenge: the key never goes on air),
    registers an Eddystone-EID slot by Curve25519 key exchange, sets the rotation exponent, reads
    the slot back and checks the fob's EID against the derived identity key, and only then binds
    that key to the customer at the gateway. A wrong lock key, a device that is not an Eddystone
    fob or a connection dropped midway stops with a message and registers nothing: run it again.
    """
    import asyncio

    from gateway.channels.fob_provision import FobError, provision
    from instore.fob import Gateway

    try:
        key = bytes.fromhex(lock_key)
        if len(key) != 16:
            raise ValueError
    except ValueError:
        _fail("--lock-key: must be 32 hex digits (16 bytes)")
    try:
        gw = Gateway(gateway, user, password)
        name = gw.check_customer(customer)
        typer.echo(f"provisioning the fob {address} for {name}...", err=True)
        fob = asyncio.run(provision(address, key, k))
        gw.register(customer, fob)
    except FobError as exc:
        _fail(f"fob not registered: {exc}")
    typer.echo(json.dumps({"customer_id": customer, "carrier": "key_fob", "k": fob.k, "registered": True}))


@app.command()
def chaos(
    runs: Annotated[int, typer.Option(min=1, help="Runs, each with its own seed (seed, seed + 1, ...).")] = 1,
    seed: Annotated[int, typer.Option(help="The first run's seed (faults, their times and the scenario).")] = 1,
    duration: Annotated[
        float, typer.Option(min=30, help="Seconds of the busy hour each run plays in real time.")
    ] = 120.0,
    faults: Annotated[int, typer.Option(min=0, help="Faults injected per run.")] = 3,
    out: Annotated[Path | None, typer.Option(help="Write the full JSON report (every run) here.")] = None,
) -> None:
    """Fault injection through the real processes: Mosquitto, the gateway and edge nodes fed by the
    simulator; then checks that no window was lost, no alert doubled, no process stuck (docs/deploy.md)."""
    import signal

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from instore.chaos import run_chaos

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a stopped campaign still stops what it started

    def after_run(report: dict) -> None:  # the report so far: a long campaign can be read while it runs
        prog.update(task, completed=report["runs"])
        if out is not None:
            out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")

    with Progress(TextColumn("chaos runs"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=Console(file=sys.stderr), transient=True) as prog:
        task = prog.add_task("chaos", total=runs)
        report = run_chaos(runs, seed, duration, faults, after_run=after_run)
    typer.echo(json.dumps({k: v for k, v in report.items() if k != "per_run"}, indent=2))
    raise typer.Exit(0 if report["ok"] else 1)


#: Commands that never use numpy. Why: they start without loading it (an edge node in < 0.3 s).
LIGHT_COMMANDS = frozenset({"edge", "decode"})


def main() -> None:
    """Every `instore` process runs numpy's BLAS on one thread: the gateway's products are small
    (identities x nodes), a second BLAS thread spin-waits and doubles the CPU they cost, and on a
    Pi the other cores are wanted by MQTT, HTTP and the edge processes. Commands that do not use
    numpy, and installs without it (an edge node's), skip loading it."""
    if sys.argv[1:2] and sys.argv[1] in LIGHT_COMMANDS:
        app.rich_markup_mode = None  # plain help: rendering it with rich costs more than the node's start
        app()
        return
    try:
        import numpy  # noqa: F401  (loads the BLAS library, so that the limit reaches it)
        from threadpoolctl import threadpool_limits
    except ImportError:  # installed for the edge only: no BLAS to limit
        app()
        return

    with threadpool_limits(limits=1, user_api="blas"):
        app()


if __name__ == "__main__":
    main()
