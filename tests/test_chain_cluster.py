"""HQ as a 3-node JetStream cluster on REAL nats-servers, from the configs `instore config nats
--hq-node` generates: a store's gateway keeps publishing and HQ keeps pulling while the leader of
HQ's customer bucket (R3) is SIGKILLed; nothing is lost or doubled and the node rejoins and catches up.
"""

from __future__ import annotations

import asyncio
import random
import subprocess
import time
import tomllib
from pathlib import Path

import nats
import nats.errors
import nats.js.errors
from typer.testing import CliRunner

from firmware_config.nats import (
    DEFAULT_HQ_STORAGE_DIR,
    HQ_GOMEMLIMIT,
    HQ_USER,
    ROUTE_USER,
    customers_stream,
    store_bytes,
    stream_name,
)
from firmware_config.store import StoreFile
from instore.chain_sim import STORE, SimStore, local_chain
from instore.cli import app
from instore.hq import Hq, HqConfig, pull
from instore.nats_server import NatsServer
from tests.chain_env import nats_server_bin

EVENT_EVERY_S = 0.05  # the store's event-log rows: 20 a second
KILLED_S = 6.0  # how long the bucket's leader stays dead
PUTS_WHILE_DOWN = 20  # bucket writes HQ makes while one node is dead: the rejoined node must get them
ARRIVE_S = 30.0  # bound for HQ to hold everything, and for the rejoined node to be current


def _cluster(tmp: Path) -> tuple[dict[str, NatsServer], NatsServer, StoreFile, list[str], str]:
    """HQ's three nodes and store a's server from the configs `instore sim chain --hq-nodes 3` uses."""
    net = local_chain(tmp, ["a"], hq_nodes=3)
    servers = {s.conf.stem.removeprefix("nats-"): s for s in net.hq_servers()}
    return servers, net.leafs["a"], net.stores["a"], net.hq_urls(), net.passwords[HQ_USER]


def test_generated_cluster_configs_route_each_node_to_the_two_others(tmp_path: Path) -> None:
    servers, leaf, store, _, _ = _cluster(tmp_path)
    confs = {name: s.conf.read_text(encoding="utf-8") for name, s in servers.items()}
    for name, conf in confs.items():
        assert f'server_name: "{name}"' in conf and 'domain: "hq"' in conf
        assert conf.count("nats-route://") == 2 and f'user: "{ROUTE_USER}"' in conf
        assert conf.count("no_advertise: true") == 2  # neither clients nor leaves learn HQ's addresses
    assert leaf.conf.read_text(encoding="utf-8").count("tls://store-a:") == 3  # the leaf may reach any node


def test_cli_writes_one_config_per_hq_node_that_nats_server_accepts(tmp_path: Path) -> None:
    hosts = ["hq1.example.com", "hq2.example.com", "hq3.example.com"]
    urls = ", ".join(f'"tls://{h}:7422"' for h in hosts)
    text = STORE.read_text(encoding="utf-8").replace('id = "boutique"', 'id = "a"', 1)
    (tmp_path / "a.toml").write_text(text + f'\n[chain]\nhq_url = [{urls}]\n', encoding="utf-8")
    out = tmp_path / "out"
    args = ["config", "nats", str(tmp_path / "a.toml"), "--out", str(out), "--hq", *(f"--hq-node={h}" for h in hosts)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} == {"nats-a.conf", "nats-hq-1.conf", "nats-hq-2.conf", "nats-hq-3.conf",
                                               "chain-credentials.toml"}
    assert ROUTE_USER in tomllib.loads((out / "chain-credentials.toml").read_text(encoding="utf-8"))
    hq2 = (out / "nats-hq-2.conf").read_text(encoding="utf-8")
    assert "@hq1.example.com:6222" in hq2 and "@hq3.example.com:6222" in hq2 and "@hq2.example.com" not in hq2
    for conf in out.glob("nats-*.conf"):
        subprocess.run([nats_server_bin(), "-t", "-c", str(conf)], check=True, capture_output=True)


def test_hq_cluster_survives_its_bucket_leader_being_killed(tmp_path: Path) -> None:
    nats_server_bin()  # fails clearly without the binary
    servers, leaf, store, urls, password = _cluster(tmp_path)
    sim = SimStore("a", store, tmp_path / "a.db")
    try:
        for s in [*servers.values(), leaf]:
            s.start()
        sim.start()
        report = asyncio.run(_scenario(servers, leaf, sim, urls, password))
    finally:
        sim.stop()
        for s in [leaf, *servers.values()]:
            s.stop()
    print(f"\nHQ cluster: {report}")
    assert report["killed"] in servers
    assert report["events"] > 50
    assert (report["lost"], report["unexpected"]) == (0, 0)
    assert report["repeats"] == 0
    assert report["rejoined_current"]
    assert report["bucket_keys"] == report["puts"]
    assert report["stream_max_bytes"] == store_bytes(store.chain)  # 72 h at the store's peak rate, as documented


async def _scenario(servers: dict[str, NatsServer], leaf: NatsServer, sim: SimStore, urls: list[str],
                    password: str) -> dict:
    stop, seen, repeats, arrivals = asyncio.Event(), set(), [0], []

    async def take(msgs: list) -> int:
        for m in msgs:
            msg_id = (m.headers or {}).get("Nats-Msg-Id", "")
            repeats[0] += msg_id in seen
            seen.add(msg_id)
            arrivals.append(time.monotonic())
        return len(msgs)  # `pull` acknowledges them

    async def quiet(exc: Exception) -> None:
        return None

    rng, writing = random.Random(1), asyncio.Event()

    async def write() -> None:
        while not writing.is_set():
            sim.add_event(rng, time.time())
            await asyncio.sleep(EVENT_EVERY_S)

    nc = await nats.connect(urls, user=HQ_USER, password=password, max_reconnect_attempts=-1, error_cb=quiet)
    hq = Hq(HqConfig(nats_url=urls, password_file="-", postgres="-", stores=["a"], replicas=3), password)
    kv = await asyncio.wait_for(hq._bucket(nc.jetstream(), stop), ARRIVE_S)
    js = nc.jetstream()
    for i in range(PUTS_WHILE_DOWN):
        await kv.put(f"before-{i}", b"x")
    info = await js.stream_info(customers_stream())
    assert info.config.num_replicas == 3
    killed = info.cluster.leader
    first = [u for u, name in zip(urls, servers, strict=True) if name == killed]  # HQ's pull loses its server too
    puller = asyncio.create_task(pull([*first, *(u for u in urls if u not in first)], password, "a", stop, take,
                                      lambda exc: None, error_cb=quiet, dont_randomize=True))
    writer = asyncio.create_task(write())
    await asyncio.sleep(2.0)
    servers[killed].stop(kill=True)
    killed_at = time.monotonic()
    await _retry(lambda: kv.put("down-0", b"x"))  # a new leader is elected within a few seconds
    written_at = time.monotonic()
    for i in range(1, PUTS_WHILE_DOWN):
        await _retry(lambda i=i: kv.put(f"down-{i}", b"x"))
    await asyncio.sleep(max(0.0, KILLED_S - (time.monotonic() - killed_at)))
    servers[killed].start()
    restarted = time.monotonic()
    rejoined = await _until_current(js, killed, restarted + ARRIVE_S)
    current_at = time.monotonic()
    await asyncio.sleep(1.0)
    writing.set()
    await writer
    truth = sim.truth()
    deadline = time.monotonic() + ARRIVE_S
    while not truth <= seen and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    keys = await _bucket_keys(kv, 2 * PUTS_WHILE_DOWN, time.monotonic() + ARRIVE_S)
    leaf_nc = await nats.connect(f"nats://127.0.0.1:{leaf.port}")
    max_bytes = (await leaf_nc.jetstream().stream_info(stream_name("a"))).config.max_bytes
    await leaf_nc.close()
    stop.set()
    await puller
    await nc.close()
    during = [t for t in arrivals if t >= killed_at]
    gap = max((b - a for a, b in zip([killed_at, *during], during, strict=False)), default=None)
    return {"killed": killed, "events": len(truth), "lost": len(truth - seen), "unexpected": len(seen - truth),
            "repeats": repeats[0], "longest_gap_after_kill_s": None if gap is None else round(gap, 2),
            "first_write_after_kill_s": round(written_at - killed_at, 2), "rejoined_current": rejoined,
            "current_after_restart_s": round(current_at - restarted, 2), "bucket_keys": keys,
            "puts": 2 * PUTS_WHILE_DOWN, "stream_max_bytes": max_bytes}


async def _retry(act, timeout_s: float = ARRIVE_S) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            await act()
            return
        except Exception:  # noqa: BLE001 (no leader yet)
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def _bucket_keys(kv, expected: int, deadline: float) -> int:  # noqa: ANN001
    """How many keys the bucket lists, asked again while it answers fewer than `expected` (or none:
    a watcher placed while the cluster settles after the rejoin can see an empty bucket) until `deadline`."""
    while True:
        try:
            keys = len(await kv.keys())
        except (nats.js.errors.NoKeysError, nats.errors.TimeoutError):
            keys = 0
        if keys >= expected or time.monotonic() > deadline:
            return keys
        await asyncio.sleep(0.5)


async def _until_current(js, node: str, deadline: float) -> bool:  # noqa: ANN001
    """Whether `node` is back in the bucket's replica set, current and without lag, by `deadline`."""
    while time.monotonic() < deadline:
        try:
            cluster = (await js.stream_info(customers_stream())).cluster
            peers = {cluster.leader: True, **{r.name: bool(r.current) and not r.lag for r in cluster.replicas or []}}
            if peers.get(node):
                return True
        except Exception:  # noqa: BLE001 (the cluster is electing)
            pass
        await asyncio.sleep(0.5)
    return False


def test_hq_unit_drop_in_sets_the_configured_memory_limit_and_storage() -> None:
    text = (Path(__file__).resolve().parent.parent / "deploy" / "instore-nats-hq.conf").read_text(encoding="utf-8")
    settings = dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith(("#", "[")))
    assert settings["Environment"] == f"GOMEMLIMIT={HQ_GOMEMLIMIT}"
    assert f"/var/lib/{settings['StateDirectory']}" == DEFAULT_HQ_STORAGE_DIR  # writable under ProtectSystem=strict
