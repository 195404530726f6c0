"""The simulated air in live mode: a loopback TCP server that each simulated scanner joins.

A scanner connects, says which node it is (`{"node": "entrance-1"}` on one line), and then
receives one JSON line per advertisement that node hears, in real time. Only what a radio
would hand bleak is sent (address, RSSI, manufacturer and service data), never who the
agent is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import orjson

from sim.emitter import Emitter, Packet

log = logging.getLogger("instore.sim.air")


def packet_line(p: Packet) -> bytes:
    return orjson.dumps({
        "t": p.t,
        "addr": p.address,
        "rssi": p.rssi,
        "mfr": {str(k): v.hex() for k, v in p.manufacturer_data.items()},
        "svc": {k: v.hex() for k, v in p.service_data.items()},
    }) + b"\n"


class AirServer:
    """Paces the emitter against a clock and fans packets out to the connected nodes."""

    def __init__(self, emitter: Emitter, clock: Callable[[], float], tick_s: float = 0.1):
        self.emitter, self.clock, self.tick_s = emitter, clock, tick_s
        self.clients: dict[str, set[asyncio.StreamWriter]] = {}
        self.sent = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            hello = orjson.loads(await asyncio.wait_for(reader.readline(), timeout=10))
            node = str(hello["node"])
        except (TimeoutError, orjson.JSONDecodeError, KeyError, TypeError):
            writer.close()
            return
        self.clients.setdefault(node, set()).add(writer)
        log.info("scanner %s joined the air", node)
        try:
            await reader.read()  # until the node disconnects
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.clients[node].discard(writer)
            writer.close()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._server = await asyncio.start_server(self._handle, host, port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def run(self, sim_time: Callable[[], float], until: float, stop: asyncio.Event) -> None:
        """Emit packets for simulated time [sim_time() at start, until), paced in real time."""
        t = sim_time()
        while t < until and not stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.tick_s)
            now = min(sim_time(), until)
            for p in self.emitter.step(t, now):
                for w in self.clients.get(p.node, ()):
                    w.write(packet_line(p))
                    self.sent += 1
            t = now
            for ws in self.clients.values():
                for w in ws:
                    with contextlib.suppress(ConnectionError):
                        await w.drain()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for ws in self.clients.values():
                for w in ws:
                    w.close()
            await self._server.wait_closed()
