"""Background iPhones at the simulated nodes: the edge's real `IphoneTracker` per node, with the
connections it asks for played out on the simulation clock.

A connection takes a time drawn from the carrier's `connect_s` range and fails with its
`failure_probability` (sources in docs/carriers.md); a successful one reads the app's EID at that
moment. Each node has its own random stream, consumed in the order of that node's receptions, so
both aggregation modes of `sim.run` get the same reads. Not modelled: the extra observation the
real node sends at the read itself (only later advertisements carry the identity here).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

import numpy as np

from edge.iphone import IphoneTracker
from sim.scenario import IphoneApp

EXPIRE_EVERY_S = 60.0  # how often each node's tracker forgets rotated addresses


class IphoneNodes:
    def __init__(self, n_nodes: int, carrier: IphoneApp, seed: int, eid_of: Callable[[int, float], str]) -> None:
        self.carrier, self.eid_of = carrier, eid_of
        self.trackers = [IphoneTracker() for _ in range(n_nodes)]
        self.rngs = [np.random.default_rng([seed, 4409, j]) for j in range(n_nodes)]
        self.due: list[list[tuple[float, int, str, bool]]] = [[] for _ in range(n_nodes)]  # (done at, seq, addr, ok)
        self.agent_of: dict[str, int] = {}
        self.first_heard: dict[tuple[int, str], float] = {}
        self.read_latency: list[float] = []  # first advertisement heard -> identity read, per node and address
        self._seq = 0
        self._expired = [0.0] * n_nodes

    def heard(self, node: int, agent: int, address: str, t: float) -> str | None:
        """An iPhone's advertisement at a node: the identity the node forwards with it, if read by now."""
        self._complete(node, t)
        self.agent_of[address] = agent
        self.first_heard.setdefault((node, address), t)
        ident, start = self.trackers[node].heard(address, t)
        self._schedule(node, start, t)
        return ident

    def _schedule(self, node: int, addresses: list[str], t: float) -> None:
        rng = self.rngs[node]
        lo, hi = self.carrier.connect_s
        for address in addresses:
            done = t + float(rng.uniform(lo, hi))
            ok = bool(rng.random() >= self.carrier.failure_probability)
            self._seq += 1
            heapq.heappush(self.due[node], (done, self._seq, address, ok))

    def _complete(self, node: int, t: float) -> None:
        due, tracker = self.due[node], self.trackers[node]
        while due and due[0][0] <= t:
            done, _, address, ok = heapq.heappop(due)
            ident = self.eid_of(self.agent_of[address], done) if ok else None
            if ident is not None and (node, address) in self.first_heard:
                self.read_latency.append(done - self.first_heard.pop((node, address)))
            self._schedule(node, tracker.done(address, ident, done), done)
        if t - self._expired[node] >= EXPIRE_EVERY_S:
            self._expired[node] = t
            tracker.expire(t)

    def metrics(self, duration_s: float) -> dict:
        minutes = max(duration_s / 60.0, 1e-9)
        lat = self.read_latency
        return {
            "carrier.iphone_app.connections_per_node_min": max(t.connections for t in self.trackers) / minutes,
            "carrier.iphone_app.peak_concurrent_links": max(t.peak_concurrent for t in self.trackers),
            "carrier.iphone_app.failed_reads": sum(t.failures for t in self.trackers),
            "carrier.iphone_app.read_latency_p95_s": float(np.percentile(lat, 95)) if lat else None,
        }
