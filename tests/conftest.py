"""Shared fixtures: real brokers, real HTTP servers on loopback ports, headless Chromium."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from instore.broker import Broker, free_port, start_broker

ROOT = Path(__file__).resolve().parent.parent
BOUTIQUE = ROOT / "firmware_config" / "examples" / "boutique.toml"
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Broker]:
    if not shutil.which("mosquitto"):
        pytest.fail("mosquitto is not installed: apt-get install mosquitto (.ci/run does this)")
    broker = start_broker("mosquitto", workdir=tmp_path)
    yield broker
    broker.stop()


class ServerThread:
    """uvicorn serving an app on a free loopback port, in a thread; stop() and start() again."""

    def __init__(self, app, port: int | None = None):  # noqa: ANN001
        self.app, self.port = app, port or free_port()
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServerThread:
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on",
                                timeout_graceful_shutdown=1)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline:
                raise TimeoutError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
            self.thread.join(timeout=10)  # type: ignore[union-attr]


@pytest.fixture
def serve() -> Iterator:
    servers: list[ServerThread] = []

    def _serve(app, port: int | None = None) -> ServerThread:  # noqa: ANN001
        s = ServerThread(app, port).start()
        servers.append(s)
        return s

    yield _serve
    for s in servers:
        s.stop()


@pytest.fixture
def browser():  # noqa: ANN201
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed: apt-get install chromium (.ci/run does this)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--no-first-run", "--disable-sync"],
        )
        yield b
        b.close()
