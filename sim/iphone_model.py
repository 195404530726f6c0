"""Background iPhones at the simulated nodes: the edge's real `IphoneTracker` per node, with the
connections it asks for played out on the simulation clock.

A connection takes a time drawn from the carrier's `connect_s` range and fails with its
`failure_probability` (sources in docs/carriers.md); a successful one reads the app's EID at that
moment. A failed one is iOS missing the connected state (Herald): nothing tells the node, which
gives up only at its tracker's `attempt_timeout_s`. Each node has its own random stream, consumed
in the order of that node's receptions, so both aggregation modes of `sim.run` get the same reads.
Not modelled: the extra observation the real node sends at the read itself (only later
advertisements carry the identity here).

Each read is broken down (`ReadParts`) into the wait for a first link, the failed attempts, the
waits between a failure and the next attempt, and the connection that read it, so the report says
what the slow reads spent their time on (docs/carriers.md, "Read latency").
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from edge.iphone import IphoneTracker
from sim.scenario import IphoneApp

EXPIRE_EVERY_S = 60.0  # how often each node's tracker forgets rotated addresses
TAIL_PERCENTILE = 95  # the reads at or above this latency percentile are the ones the breakdown explains


@dataclass(frozen=True, slots=True)
class ReadParts:
    """One identity read at one node: where the time from its first advertisement there went."""

    first_wait_s: float  # first advertisement heard -> first connection started (a free link)
    failed_s: float  # inside connections that failed
    retry_wait_s: float  # a failure's end -> the next attempt (back-off, the next advertisement, a link)
    connect_s: float  # the connection that read the identity
    failures: int

    @property
    def total_s(self) -> float:
        return self.first_wait_s + self.failed_s + self.retry_wait_s + self.connect_s

    @classmethod
    def of(cls, first_heard: float, attempts: list[tuple[float, float, bool]]) -> ReadParts:
        """From the attempts (start, end, read) in order, the last one the read."""
        failed = attempts[:-1]
        return cls(
            first_wait_s=attempts[0][0] - first_heard,
            failed_s=sum(end - start for start, end, _ in failed),
            retry_wait_s=sum(nxt[0] - prev[1] for prev, nxt in pairwise(attempts)),
            connect_s=attempts[-1][1] - attempts[-1][0],
            failures=len(failed),
        )


def breakdown(reads: list[ReadParts]) -> dict:
    """The mean parts of the slowest reads (at or above the TAIL_PERCENTILE latency), and the failure share."""
    if not reads:
        return {}
    cut = float(np.percentile([r.total_s for r in reads], TAIL_PERCENTILE))
    tail = [r for r in reads if r.total_s >= cut]
    key = "carrier.iphone_app.read_tail_"
    return {
        key + "first_wait_s": float(np.mean([r.first_wait_s for r in tail])),
        key + "failed_s": float(np.mean([r.failed_s for r in tail])),
        key + "retry_wait_s": float(np.mean([r.retry_wait_s for r in tail])),
        key + "connect_s": float(np.mean([r.connect_s for r in tail])),
        key + "with_failure_share": sum(r.failures > 0 for r in tail) / len(tail),
        "carrier.iphone_app.reads_with_failure_share": sum(r.failures > 0 for r in reads) / len(reads),
    }


class IphoneNodes:
    def __init__(self, n_nodes: int, carrier: IphoneApp, seed: int, eid_of: Callable[[int, float], str]) -> None:
        self.carrier, self.eid_of = carrier, eid_of
        self.trackers = [IphoneTracker() for _ in range(n_nodes)]
        self.rngs = [np.random.default_rng([seed, 4409, j]) for j in range(n_nodes)]
        self.due: list[list[tuple[float, int, str, bool]]] = [[] for _ in range(n_nodes)]  # (done at, seq, addr, ok)
        self.agent_of: dict[str, int] = {}
        self.first_heard: dict[tuple[int, str], float] = {}
        self.attempts: dict[tuple[int, str], list[tuple[float, float, bool]]] = {}  # (start, end, read) so far
        self.reads: list[ReadParts] = []  # first advertisement heard -> identity read, per node and address
        self.store_first_heard: dict[str, float] = {}  # by any node
        self.store_read_latency: list[float] = []  # first advertisement heard by any node -> first read by any
        self.read_at: set[tuple[int, str] | str] = set()  # (node, address) and address already read once
        self._seq = 0
        self._expired = [0.0] * n_nodes

    def heard(self, node: int, agent: int, address: str, t: float) -> str | None:
        """An iPhone's advertisement at a node: the identity the node forwards with it, if read by now."""
        self._complete(node, t)
        self.agent_of[address] = agent
        if (node, address) not in self.read_at:  # a re-read (after CACHE_MAX_S) is no first read
            self.first_heard.setdefault((node, address), t)
        if address not in self.read_at:
            self.store_first_heard.setdefault(address, t)
        ident, start = self.trackers[node].heard(address, t)
        self._schedule(node, start, t)
        return ident

    def _schedule(self, node: int, addresses: list[str], t: float) -> None:
        rng = self.rngs[node]
        lo, hi = self.carrier.connect_s
        for address in addresses:
            took = float(rng.uniform(lo, hi))
            ok = bool(rng.random() >= self.carrier.failure_probability)
            done = t + (took if ok else self.trackers[node].attempt_timeout_s)
            self._seq += 1
            heapq.heappush(self.due[node], (done, self._seq, address, ok))
            if (node, address) in self.first_heard:
                self.attempts.setdefault((node, address), []).append((t, done, ok))

    def _complete(self, node: int, t: float) -> None:
        due, tracker = self.due[node], self.trackers[node]
        while due and due[0][0] <= t:
            done, _, address, ok = heapq.heappop(due)
            ident = self.eid_of(self.agent_of[address], done) if ok else None
            if ident is not None and (node, address) in self.first_heard:
                self._read(node, address, done)
            self._schedule(node, tracker.done(address, ident, done), done)
        if t - self._expired[node] >= EXPIRE_EVERY_S:
            self._expired[node] = t
            tracker.expire(t)

    def _read(self, node: int, address: str, done: float) -> None:
        self.reads.append(ReadParts.of(self.first_heard.pop((node, address)), self.attempts.pop((node, address))))
        self.read_at |= {(node, address), address}
        first = self.store_first_heard.pop(address, None)
        if first is not None:  # the store's first read of this address
            self.store_read_latency.append(done - first)

    def metrics(self, duration_s: float) -> dict:
        minutes = max(duration_s / 60.0, 1e-9)
        lat = [r.total_s for r in self.reads]
        store = self.store_read_latency
        return {
            "carrier.iphone_app.connections_per_node_min": max(t.connections for t in self.trackers) / minutes,
            "carrier.iphone_app.peak_concurrent_links": max(t.peak_concurrent for t in self.trackers),
            "carrier.iphone_app.failed_reads": sum(t.failures for t in self.trackers),
            "carrier.iphone_app.read_latency_p95_s": float(np.percentile(lat, 95)) if lat else None,
            "carrier.iphone_app.store_read_latency_p95_s": float(np.percentile(store, 95)) if store else None,
        } | breakdown(self.reads)
