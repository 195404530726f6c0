"""HQ's WhatsApp outbox on HQ's /metrics, and `instore hq --workers 2` running that one outbox in its
supervisor: requests queued, refused and repeated, messages sent, sends that waited for the number's
rate or the 24-hour budget, rows per status; a store's erasure handled by a worker reaches the outbox.
The Cloud API is sim.whatsapp_emulator; the servers are real NATS and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import nats
import pytest
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.chain_outbox import PHONE_NUMBER_ID, TOKEN, emulator_app, hq_config, wait_for
from cloud_sync.client import CloudApiClient
from firmware_config.nats import HQ_USER, subject_prefix
from instore.broker import free_port
from instore.hq_metrics import MetricsServer
from instore.hq_outbox import HqOutbox, OutboxCollector
from sim.whatsapp_emulator import ServerThread
from tests.chain_env import Chain, running_chain

STORES = ["a", "d"]  # worker 1 and worker 0 of two (crc32)
WAIT_S = 60.0


def _request(store: str, n: int, to: str, customer: str) -> tuple[str, str, bytes]:
    """A store's `message` chain event (gateway.channels.chain_publish) as HQ's outbox pulls it."""
    message = {"messaging_product": "whatsapp", "type": "template",
               "template": {"name": "followup", "language": {"code": "en"},
                            "components": [{"type": "body", "parameters": [{"type": "text", "text": "Ann"}]}]}}
    body = {"store": store, "id": n, "ts": time.time(), "kind": "message", "customer_id": customer,
            "data": {"key": f"k{n}", "to": to, "purpose": "utility", "due_at": time.time(), "message": message}}
    return f"{subject_prefix(store)}.events.message", f"{store}:g:{n}", json.dumps(body).encode()


def _metrics(text: str) -> dict[str, float]:
    return {s.name + (f'{{status="{s.labels["status"]}"}}' if "status" in s.labels else ""): s.value
            for family in text_string_to_metric_families(text) for s in family.samples
            if s.name.startswith("instore_hq_whatsapp")}


def test_the_outbox_counts_what_it_queued_refused_sent_and_held_back(tmp_path: Path) -> None:
    port = free_port()
    cfg = hq_config(tmp_path, port, 2.0).model_copy(update={"recipients_per_24h": 2})
    outbox = HqOutbox(cfg)
    for n in range(3):
        assert outbox.take("a", *_request("a", n, f"4915100000{n:02d}", f"c{n}")) == "queued"
    assert outbox.take("a", *_request("a", 0, "491510000000", "c0")) == "duplicate"
    subject, msg_id, payload = _request("b", 7, "491510000007", "c7")
    assert outbox.take("a", "chain.a.events.message", "a:g:7", payload) == "forged"  # names store b
    assert outbox.take("a", subject.replace(".b.", ".a."), "a:g:8", b'{"store": "a", "data": {}}') == "bad"
    with ServerThread(emulator_app(port)) as emu, CloudApiClient(emu.url, "v23.0", PHONE_NUMBER_ID, TOKEN) as client:
        worker = outbox.worker(client)
        worker.run(max_seconds=2.0)  # two go out, the second after waiting for the rate; the third waits a day
    with MetricsServer("127.0.0.1", 0, dict, lambda: {"ok": True}, collectors=[OutboxCollector(outbox)]) as server:
        m = _metrics(httpx.get(f"http://127.0.0.1:{server.port}/metrics").text)
    assert m["instore_hq_whatsapp_queued_total"] == 3
    assert m["instore_hq_whatsapp_duplicates_total"] == m["instore_hq_whatsapp_forged_total"] == 1
    assert m["instore_hq_whatsapp_bad_total"] == 1
    assert m["instore_hq_whatsapp_sent_total"] == 2
    assert m["instore_hq_whatsapp_rate_limited_total"] >= 1
    assert m["instore_hq_whatsapp_budget_deferred_total"] >= 1
    assert m['instore_hq_whatsapp_outbox_rows{status="pending"}'] == 1
    assert m['instore_hq_whatsapp_outbox_rows{status="failed"}'] == 0
    assert m['instore_hq_whatsapp_outbox_rows{status="accepted"}'] == 2


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    with running_chain(tmp_path_factory.mktemp("chain"), STORES) as c:
        yield c


async def _publish(chain: Chain, store: str, messages: list[tuple[str, str, bytes]]) -> None:
    """Into the store's stream on its own NATS, as its gateway publishes (the stream made as it makes it)."""
    from nats.js.api import StorageType, StreamConfig

    from firmware_config.nats import stream_name

    nc = await nats.connect(f"nats://127.0.0.1:{chain.leafs[store].port}")
    js = nc.jetstream()
    try:
        await js.add_stream(StreamConfig(name=stream_name(store), subjects=[f"{subject_prefix(store)}.events.>"],
                                         storage=StorageType.FILE))
    except Exception:  # noqa: BLE001, S110 (made by the first call)
        pass
    for subject, msg_id, payload in messages:
        await js.publish(subject, payload, headers={"Nats-Msg-Id": msg_id})
    await nc.close()


def _scrape(port: int) -> dict[str, float]:
    try:
        return _metrics(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text)
    except httpx.HTTPError:
        return {}


def test_instore_hq_with_workers_runs_one_outbox_and_a_workers_erasure_reaches_it(chain: Chain,
                                                                                   tmp_path: Path) -> None:
    webhook, metrics = free_port(), free_port()
    wa = hq_config(tmp_path, webhook, 20.0)
    (tmp_path / "hq-password").write_text(chain.passwords[HQ_USER])
    templates = "".join(f'[[whatsapp.templates]]\nname = "{t.name}"\nlanguage = "{t.language}"\n'
                        f'category = "{t.category}"\nparams = {t.params}\n' for t in wa.templates)
    emu_app = emulator_app(webhook)
    with ServerThread(emu_app) as emu:
        (tmp_path / "hq.toml").write_text(
            f'nats_url = "nats://127.0.0.1:{chain.hq_port}"\npassword_file = "hq-password"\n'
            f'postgres = "{chain.dsn}"\nstores = {json.dumps(STORES)}\nmetrics_port = {metrics}\n'
            f'[whatsapp]\ndb = "{wa.db}"\nbase_url = "{emu.url}"\nphone_number_id = "{wa.phone_number_id}"\n'
            f'token_file = "{wa.token_file}"\napp_secret_file = "{wa.app_secret_file}"\n'
            f'verify_token = "{wa.verify_token}"\nwebhook_port = {webhook}\n{templates}')
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        hq = subprocess.Popen([sys.executable, "-m", "instore.cli", "hq", "--config", str(tmp_path / "hq.toml"),
                               "--workers", "2"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            asyncio.run(_publish(chain, "a", [_request("a", 1, "491511111111", "a-c1"),
                                              _request("a", 2, "491512222222", "a-c2")]))
            asyncio.run(_publish(chain, "d", [_request("d", 1, "491513333333", "d-c1")]))
            wait_for(lambda: _scrape(metrics).get("instore_hq_whatsapp_sent_total") == 3, WAIT_S)
            assert sorted(emu_app.state.emulator.per_key.values()) == [1, 1, 1]  # one outbox: each sent once
            erasure = {"store": "d", "kind": "erasure", "customer_id": "d-c1", "ts": time.time()}
            asyncio.run(_publish(chain, "d", [("chain.d.events.erasure", "d:g:erasure:1",
                                               json.dumps(erasure).encode())]))

            def in_outbox() -> int:
                with sqlite3.connect(wa.db) as conn:
                    return conn.execute("SELECT count(*) FROM wa_outbox WHERE customer = '491513333333'").fetchone()[0]
            wait_for(lambda: in_outbox() == 0, WAIT_S)  # d's worker erased the number from the supervisor's outbox
            m = _scrape(metrics)
            assert m["instore_hq_whatsapp_queued_total"] == 3 and m["instore_hq_whatsapp_duplicates_total"] == 0
            assert m['instore_hq_whatsapp_outbox_rows{status="pending"}'] == 0
        finally:
            hq.send_signal(signal.SIGTERM)
            assert hq.wait(30) == 0
