"""Loopback test stack (emulator + webhook receiver + outbox DB) and the SIGKILL crash run.

Used by the tests, the ``outbox`` benchmark and by hand::

    python -m sim.whatsapp_harness crash --runs 100 --messages 200

Everything listens on 127.0.0.1 only, on ports the OS picks.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from fastapi import FastAPI

from cloud_sync import messages
from cloud_sync.client import CloudApiClient
from cloud_sync.migrations import migrate
from cloud_sync.outbox import OutboxSink, connect, enqueue, row_counts
from cloud_sync.rules import Category, Policy, Rules, Template, TemplateRegistry
from cloud_sync.webhook import WebhookHandlers, create_webhook_router
from sim.whatsapp_emulator import EmulatorConfig, ServerThread, create_emulator

VERSION = "v23.0"
PHONE_NUMBER_ID = "106540352242922"
TOKEN = "test-access-token"
APP_SECRET = "test-app-secret"
VERIFY_TOKEN = "test-verify-token"
TEMPLATES = (
    Template("order_ready", "de", Category.UTILITY, 1),
    Template("order_ready", "en_US", Category.UTILITY, 1),
    Template("spring_sale", "de", Category.MARKETING, 2),
    Template("login_code", "de", Category.AUTHENTICATION, 1),
)


def templates_arg(templates: Sequence[Template] = TEMPLATES) -> str:
    return ",".join(f"{t.name}:{t.language}:{t.category.value}:{t.param_count}" for t in templates)


@dataclass
class Stack:
    """Emulator and receiver on loopback sharing one outbox database (use as a context manager)."""

    emulator_config: EmulatorConfig = field(default_factory=EmulatorConfig)
    handlers: WebhookHandlers | None = None  # default: the outbox sink
    webhooks: bool = True
    workdir: Path | None = None

    def __enter__(self) -> Stack:
        self._tmp = None
        if self.workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="wa-stack-")
            self.workdir = Path(self._tmp.name)
        self.db_path = self.workdir / "outbox.db"
        self.conn = connect(self.db_path)
        migrate(self.conn)
        self.sink = OutboxSink(self.db_path)
        handlers = self.handlers or WebhookHandlers(
            on_status=self.sink.on_status, on_message=self.sink.on_message
        )
        recv_app = FastAPI()
        self.router = create_webhook_router(
            app_secret=APP_SECRET, verify_token=VERIFY_TOKEN, handlers=handlers
        )
        recv_app.include_router(self.router)
        self.receiver = ServerThread(recv_app).start()
        cfg = self.emulator_config
        cfg.access_token, cfg.app_secret, cfg.phone_number_ids = TOKEN, APP_SECRET, (PHONE_NUMBER_ID,)
        if not cfg.templates:
            cfg.templates = TEMPLATES
        cfg.webhook_url = f"{self.receiver.url}/webhook" if self.webhooks else None
        self.emulator_app = create_emulator(cfg)
        self.emulator = self.emulator_app.state.emulator
        self.server = ServerThread(self.emulator_app).start()
        self.http = httpx.Client(timeout=10.0)
        return self

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, token: str = TOKEN, timeout_s: float = 10.0) -> CloudApiClient:
        return CloudApiClient(self.url, VERSION, PHONE_NUMBER_ID, token, timeout_s=timeout_s)

    def stats(self) -> dict[str, Any]:
        return self.http.get(f"{self.url}/_emulator/stats").json()

    def inbound(self, **spec: Any) -> dict[str, Any]:
        return self.http.post(f"{self.url}/_emulator/inbound", json=spec).json()

    def inject(self, **spec: Any) -> None:
        self.http.post(f"{self.url}/_emulator/errors", json=spec).raise_for_status()

    def settle(self, timeout_s: float = 10.0) -> None:
        """Wait until the emulator has no status webhooks left to post."""
        deadline = time.monotonic() + timeout_s
        while self.stats()["webhooks_pending"] and time.monotonic() < deadline:
            time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        self.http.close()
        self.server.stop()
        self.receiver.stop()
        self.conn.close()
        if self._tmp is not None:
            self._tmp.cleanup()


def permissive_rules(templates: Sequence[Template] = TEMPLATES) -> Rules:
    policy = Policy(tz=ZoneInfo("UTC"), templates=TemplateRegistry(templates), quiet_hours=None)
    return Rules(policy, consent=lambda _c, _p: True)


def enqueue_templates(stack: Stack, n: int, *, prefix: str = "k") -> list[str]:
    keys = []
    stack.conn.execute("BEGIN")
    for i in range(n):
        to = f"4917{i:09d}"
        key = f"{prefix}{i}"
        body = messages.template(to, "order_ready", "de", body_params=[f"#{i}"])
        enqueue(stack.conn, key, to, body, "utility", 0.0)
        keys.append(key)
    stack.conn.execute("COMMIT")
    return keys


def worker_cmd(
    stack: Stack, *, rate: float, reconcile_after_s: float, lookup: str, until_idle: bool, seed: int
) -> list[str]:
    """The worker process's command line; with `lookup` "emulator", one that reconciles with the
    emulator's by-key lookup (sim/emulator_outbox.py), else the plain production worker."""
    cmd = [
        sys.executable,
        "-m",
        "sim.emulator_outbox" if lookup == "emulator" else "cloud_sync.outbox",
        "--db",
        str(stack.db_path),
        "--base-url",
        stack.url,
        "--version",
        VERSION,
        "--phone-number-id",
        PHONE_NUMBER_ID,
        "--token",
        TOKEN,
        "--rate",
        str(rate),
        "--reconcile-after",
        str(reconcile_after_s),
        "--templates",
        templates_arg(),
        "--timeout",
        "2",
        "--seed",
        str(seed),
    ]
    return cmd + (["--until-idle"] if until_idle else [])


def crash_runs(
    runs: int = 10,
    n_messages: int = 300,
    *,
    seed: int = 1,
    rate: float = 400.0,  # fast enough that most kills land inside a send, not a bucket wait
    lookup: str = "none",
    reconcile_after_s: float = 1.5,
    max_kill_delay_s: float = 0.08,
) -> dict[str, Any]:
    """Start a worker subprocess, SIGKILL it at a random moment while it sends, ``runs`` times;
    then let one worker finish.  Returns the emulator's per-key counts and a verdict.

    ``reconcile_after_s`` must exceed the emulator's webhook delay so that, in ``lookup='none'``
    mode, a message the emulator took always has its recorded ``sent`` webhook by then.
    """
    rng = random.Random(seed)
    cfg = EmulatorConfig(webhook_delay_s=(0.05, 0.3), throughput_per_s=1000.0, seed=seed, auto_read=False)
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent) + os.pathsep + env.get("PYTHONPATH", "")
    kills_while_sending = 0
    with Stack(cfg) as stack:
        keys = enqueue_templates(stack, n_messages)
        for run in range(runs):
            proc = subprocess.Popen(
                worker_cmd(
                    stack,
                    rate=rate,
                    reconcile_after_s=reconcile_after_s,
                    lookup=lookup,
                    until_idle=False,
                    seed=seed * 1000 + run,
                ),
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=env,
                text=True,
            )
            assert proc.stdout is not None
            proc.stdout.readline()  # "ready": imports done, the loop is about to start
            time.sleep(rng.uniform(0.0, max_kill_delay_s))
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            proc.stdout.close()
            kills_while_sending += (
                stack.conn.execute("SELECT COUNT(*) FROM wa_outbox WHERE status = 'sending'").fetchone()[0]
                > 0
            )
        final = subprocess.run(
            worker_cmd(
                stack,
                rate=rate,
                reconcile_after_s=reconcile_after_s,
                lookup=lookup,
                until_idle=True,
                seed=seed,
            ),
            capture_output=True,
            env=env,
            text=True,
            timeout=120,
        )
        stack.settle()
        time.sleep(0.2)
        stats = stack.stats()
        counts = row_counts(stack.conn)
    per_key = stats["per_key"]
    missing = [k for k in keys if per_key.get(k, 0) == 0]
    twice = {k: n for k, n in per_key.items() if n > 1}
    return {
        "runs": runs,
        "messages": n_messages,
        "kills_leaving_sending_rows": kills_while_sending,
        "final_worker_rc": final.returncode,
        "delivered_keys": sum(1 for k in keys if per_key.get(k, 0) >= 1),
        "missing": missing,
        "duplicates": twice,
        "rows": counts,
        "ok": not missing and not twice and final.returncode == 0,
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sim.whatsapp_harness")
    sub = ap.add_subparsers(dest="cmd", required=True)
    crash = sub.add_parser("crash", help="SIGKILL a worker repeatedly; check none lost, none twice")
    crash.add_argument("--runs", type=int, default=100)
    crash.add_argument("--messages", type=int, default=2000)
    crash.add_argument("--seed", type=int, default=1)
    crash.add_argument("--lookup", choices=("none", "emulator"), default="none")
    args = ap.parse_args(argv)
    result = crash_runs(args.runs, args.messages, seed=args.seed, lookup=args.lookup)
    print(json.dumps(result, indent=2))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
