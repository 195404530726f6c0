"""Short-window aggregation at the edge: many raw sightings in, one small batch out.

A phone advertising at 10 Hz seen by a scanner gives hundreds of callbacks a minute; the
gateway only needs, per identifier and window, how often and how strongly it was heard.
Aggregating at the node keeps the broker and the gateway cool and makes each message a
self-contained, replayable unit (numbered by `seq` for de-duplication after an outage).
Pure: sightings and window boundaries come with their timestamps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edge.protocol import VERSION, BleObservation, BleWindow, Footfall, RfidObservation, RfidWindow


@dataclass(slots=True)
class _Acc:
    n: int
    rssi_sum: float
    rssi_max: float
    first: float
    last: float
    tx: int | None = None

    def add(self, rssi: float, t: float) -> None:
        self.n += 1
        self.rssi_sum += rssi
        if rssi > self.rssi_max:
            self.rssi_max = rssi
        if t < self.first:
            self.first = t
        if t > self.last:
            self.last = t


def _acc(rssi: float, t: float, tx: int | None = None) -> _Acc:
    return _Acc(1, rssi, rssi, t, t, tx)


@dataclass(slots=True)
class BleWindowAggregator:
    """Collects one window of BLE sightings for a node.

    `add` takes identifiers the node may forward (the store's beacons); `count_anonymous`
    takes an opaque per-window device key for everything else, which is counted and then
    forgotten with the window (never published, never written to disk).
    """

    store: str
    node: str
    seq: int = 0
    _start: float | None = None
    _ids: dict[str, _Acc] = field(default_factory=dict)
    _anon_devices: set[int] = field(default_factory=set)
    _anon_adverts: int = 0

    def add(self, ident: str, rssi: float, t: float, tx: int | None = None) -> None:
        if self._start is None:
            self._start = t
        acc = self._ids.get(ident)
        if acc is None:
            self._ids[ident] = _acc(rssi, t, tx)
        else:
            acc.add(rssi, t)

    def count_anonymous(self, device_key: int, t: float) -> None:
        if self._start is None:
            self._start = t
        self._anon_devices.add(device_key)
        self._anon_adverts += 1

    def flush(self, t_end: float, t_start: float | None = None) -> BleWindow:
        """Close the window at `t_end` and return it (possibly empty: an empty window is a heartbeat)."""
        start = t_start if t_start is not None else (self._start if self._start is not None else t_end)
        obs = [
            BleObservation(
                id=k,
                n=a.n,
                rssi_mean=round(a.rssi_sum / a.n, 2),
                rssi_max=a.rssi_max,
                first=a.first,
                last=a.last,
                tx=a.tx,
            )
            for k, a in self._ids.items()
        ]
        msg = BleWindow(
            v=VERSION,
            store=self.store,
            node=self.node,
            seq=self.seq,
            window=(min(start, t_end), t_end),
            observations=obs,
            anonymous=Footfall(devices=len(self._anon_devices), adverts=self._anon_adverts),
        )
        self.seq += 1
        self._start = None
        self._ids = {}
        self._anon_devices = set()
        self._anon_adverts = 0
        return msg


@dataclass(slots=True)
class RfidWindowAggregator:
    """Per window, per (tag, antenna): read count, RSSI mean/max, first/last seen."""

    store: str
    node: str
    seq: int = 0
    _start: float | None = None
    _tags: dict[tuple[str, int], _Acc] = field(default_factory=dict)

    def add(self, epc_hex: str, antenna: int, rssi: float, t: float) -> None:
        if self._start is None:
            self._start = t
        key = (epc_hex, antenna)
        acc = self._tags.get(key)
        if acc is None:
            self._tags[key] = _acc(rssi, t)
        else:
            acc.add(rssi, t)

    def flush(self, t_end: float, reader: str = "ok", t_start: float | None = None) -> RfidWindow:
        start = t_start if t_start is not None else (self._start if self._start is not None else t_end)
        obs = [
            RfidObservation(
                epc=epc,
                ant=ant,
                n=a.n,
                rssi_mean=round(a.rssi_sum / a.n, 2),
                rssi_max=a.rssi_max,
                first=a.first,
                last=a.last,
            )
            for (epc, ant), a in self._tags.items()
        ]
        msg = RfidWindow(
            v=VERSION,
            store=self.store,
            node=self.node,
            seq=self.seq,
            window=(min(start, t_end), t_end),
            observations=obs,
            reader=reader,
        )
        self.seq += 1
        self._start = None
        self._tags = {}
        return msg
