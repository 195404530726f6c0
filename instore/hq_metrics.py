"""HQ's counters per store and the small HTTP server of `instore hq`: Prometheus `/metrics`, `/healthz`
and, when configured, the chain dashboard `/dashboard` (instore.hq_dashboard) and the chain's EPCIS
query `/epcis/events` (instore.hq_epcis).

The counters are plain integers in each worker (no Prometheus objects on the hot path); the server
renders whatever snapshot it is given, merged over the workers (each store belongs to one worker).
A worker that is restarted starts its stores' counters at 0 again: a counter reset to Prometheus.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# name in StoreStats -> (Prometheus name, help); the counters end in _total when rendered
COUNTERS = {
    "taken": ("instore_hq_events_taken", "Store events recorded in the chain CRM, by the store of the link"),
    "duplicates": ("instore_hq_duplicates", "Redelivered events already recorded (ignored)"),
    "forged": ("instore_hq_forged", "Recorded events naming another store than their link's (flagged)"),
    "refused": ("instore_hq_refused_erased", "Events and snapshots of customers erased at HQ (not recorded)"),
    "write_errors": ("instore_hq_write_errors", "Failed PostgreSQL writes of a batch (retried)"),
    "epcis_malformed": ("instore_hq_epcis_malformed", "EPCIS events of the store that are no readable ObjectEvent"),
}
Response = tuple[int, bytes, str, dict[str, str]]  # status, body, content type, extra headers
Page = Callable[[str, Mapping[str, str]], Response]  # path, headers (lower-case names) -> response
LAG = ("instore_hq_consumer_lag", "Messages in the store's stream that HQ's consumer has not yet been given")


@dataclass(slots=True)
class StoreStats:
    """What one store's consumer did since this worker started."""

    taken: int = 0
    duplicates: int = 0
    forged: int = 0
    refused: int = 0
    write_errors: int = 0
    epcis_malformed: int = 0  # recorded as sent, left out of chain_epcis (instore.hq_epcis.malformed)
    lag: int = 0

    def count(self, outcome: str, ev: object) -> None:
        """One outcome of `instore.hq.record_batch` for event `ev` (a Classified)."""
        if outcome == "recorded":
            self.taken += 1
            self.forged += bool(getattr(ev, "forged", None))
        elif outcome == "duplicate":
            self.duplicates += 1
        else:
            self.refused += 1


Snapshot = dict[str, dict[str, int]]  # store -> StoreStats as a dict


def snapshot(stats: dict[str, StoreStats]) -> Snapshot:
    return {store: asdict(st) for store, st in stats.items()}


class HqCollector:
    """Renders a snapshot of every store's counters at scrape time."""

    def __init__(self, source: Callable[[], Snapshot]):
        self.source = source

    def collect(self) -> Iterator[Metric]:
        snap = self.source()
        for key, (name, doc) in COUNTERS.items():
            family = CounterMetricFamily(name, doc, labels=["store"])
            for store, values in sorted(snap.items()):
                family.add_metric([store], values[key])
            yield family
        lag = GaugeMetricFamily(*LAG, labels=["store"])
        for store, values in sorted(snap.items()):
            lag.add_metric([store], values["lag"])
        yield lag


def registry(source: Callable[[], Snapshot], *others: Collector) -> CollectorRegistry:
    reg = CollectorRegistry()
    for collector in (HqCollector(source), *others):
        reg.register(collector)
    return reg


class MetricsServer:
    """`/metrics` (Prometheus text), `/healthz` (200 while `health` says ok, else 503), `/dashboard` and
    `/epcis/events` (each when given) in a thread."""

    def __init__(self, host: str, port: int, source: Callable[[], Snapshot], health: Callable[[], dict],
                 dashboard: Page | None = None, collectors: Sequence[Collector] = (), epcis: Page | None = None):
        reg = registry(source, *collectors)
        pages = {path: page for path, page in (("/dashboard", dashboard), ("/epcis/events", epcis)) if page}

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                if self.path == "/metrics":
                    self._send(200, generate_latest(reg), "text/plain; version=0.0.4")
                elif self.path == "/healthz":
                    state = health()
                    self._send(200 if state["ok"] else 503, json.dumps(state).encode(), "application/json")
                elif (page := pages.get(self.path.split("?")[0])) is not None:
                    self._send(*page(self.path, {k.lower(): v for k, v in self.headers.items()}))
                else:
                    self._send(404, b"not found\n", "text/plain")

            def _send(self, code: int, body: bytes, kind: str, extra: Mapping[str, str] | None = None) -> None:
                self.send_response(code)
                for name, value in (extra or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (scrapes are not news)
                return None

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> MetricsServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
