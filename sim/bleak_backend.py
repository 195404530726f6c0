"""A bleak scanner backend that listens to the simulator's air instead of a radio.

Passed as `BleakScanner(callback, backend=SimScanner, air_url="tcp://127.0.0.1:PORT",
node_id="entrance-1")`; bleak forwards the extra keywords to the backend. The node's code
path (callback, AdvertisementData, BLEDevice) is exactly the one used with real hardware.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any
from urllib.parse import urlparse

import orjson
from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner

log = logging.getLogger("instore.sim.bleak")


class SimScanner(BaseBleakScanner):
    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None,
        service_uuids: list[str] | None,
        scanning_mode: str = "passive",
        *,
        air_url: str | None = None,
        node_id: str = "",
        **kwargs: Any,
    ):
        super().__init__(detection_callback, service_uuids)
        if not air_url:
            raise ValueError("SimScanner needs air_url='tcp://host:port' (the simulator's air server)")
        u = urlparse(air_url)
        if u.scheme != "tcp" or not u.hostname or not u.port:
            raise ValueError(f"air_url must look like tcp://host:port, got {air_url!r}")
        self.host, self.port, self.node_id = u.hostname, u.port, node_id
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self.seen_devices = {}
        self._task = asyncio.create_task(self._listen())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _listen(self) -> None:
        while True:
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            except OSError:
                await asyncio.sleep(0.5)
                continue
            writer.write(orjson.dumps({"node": self.node_id}) + b"\n")
            await writer.drain()
            try:
                while line := await reader.readline():
                    self._deliver(orjson.loads(line))
            except (ConnectionError, orjson.JSONDecodeError) as exc:
                log.warning("air connection lost: %s", exc)
            finally:
                writer.close()
            await asyncio.sleep(0.5)

    def _deliver(self, p: dict) -> None:
        mfr = {int(k): bytes.fromhex(v) for k, v in p["mfr"].items()}
        svc = {k: bytes.fromhex(v) for k, v in p["svc"].items()}
        adv = AdvertisementData(
            local_name=None,
            manufacturer_data=mfr,
            service_data=svc,
            service_uuids=list(svc),
            tx_power=None,
            rssi=int(p["rssi"]),
            platform_data=(),
        )
        if not self.is_allowed_uuid(adv.service_uuids):
            return
        device = self.create_or_update_device(p["addr"], p["addr"], None, None, adv)
        self.call_detection_callbacks(device, adv)
