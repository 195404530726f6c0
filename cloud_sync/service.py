"""The WhatsApp channel inside the gateway process: wiring, not logic.

:class:`WhatsAppService` joins rules, outbox, webhook, journeys and catalogue to the gateway
through :class:`cloud_sync.port.GatewayPort`, one mix-in per concern. Here: the consent hooks and
the background threads (docs/whatsapp.md, "How it fits together").
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING

from . import catalogue, daily_summary, inbox, journeys, outbox
from .channel import EVENT_KIND, HQ_REQUEST_KIND, InboxError
from .client import CloudApiClient
from .config import WhatsAppConfig
from .inbound import Inbound
from .migrations import migrate
from .outbound import Outbound
from .port import GatewayPort
from .queries import Queries
from .ratelimit import TokenBucket
from .rounds import Rounds
from .rules import Rules
from .webhook import WebhookHandlers, create_webhook_router

if TYPE_CHECKING:
    from fastapi import APIRouter

log = logging.getLogger("instore.whatsapp")

WEBHOOK_PATH = "/whatsapp/webhook"
CANCEL_ON_WITHDRAW = {  # gateway consent purpose -> outbox purposes whose queued rows are cancelled
    "whatsapp_marketing": ("marketing",),
    "whatsapp_service": ("service", "utility", "authentication"),
}


class WhatsAppService(Inbound, Outbound, Rounds, Queries):
    def __init__(
        self, gateway: GatewayPort, config: WhatsAppConfig, *, client: CloudApiClient | None = None,
        lookup: outbox.Lookup | None = None,
    ) -> None:
        """`lookup`: an idempotency-key lookup for the outbox's reconciliation; the real API has none,
        developer tooling injects our emulator's (sim/emulator_outbox.py)."""
        self.gateway, self.cfg = gateway, config
        self.lookup = lookup
        self.lock, self.conn, self.db_path = gateway.lock, gateway.conn, gateway.db_path
        self.clock = gateway.clock
        self.policy = config.policy(gateway.timezone)
        self.rules = Rules(self.policy, consent=self.has_consent)
        self.settings = journeys.settings_from_config(config, self.policy.tz, self.policy.quiet_hours)
        api = config.api
        self.client = client or CloudApiClient(
            api.base_url, api.version, api.phone_number_id, config.access_token, timeout_s=api.timeout_s
        )
        with self.lock:
            migrate(self.conn)
        self.handlers = WebhookHandlers(
            on_status=self.on_status,
            on_message=self.on_message,
            on_error=self.on_error,
            on_opt_out=self.on_opt_out,
            send_opt_out_confirmation=self.confirm_opt_out,
        )
        self._cancels: list[Callable[[], None]] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.worker: outbox.OutboxWorker | None = None
        self.counters = {
            "inbound": 0,
            "statuses": 0,
            "statuses_unknown": 0,
            "opt_outs": 0,
            "journey_messages": 0,
        }
        self.last_catalogue: catalogue.SyncResult | None = None
        self.summary_sent: date | None = None  # the last day whose daily summary went out

    # ------------------------------------------------------------------ wiring

    def attach(self) -> None:
        """Register with the gateway's consent hooks (withdrawal per WhatsApp purpose, erasure)."""
        for purpose in CANCEL_ON_WITHDRAW:
            self._cancels.append(self.gateway.on_withdraw(purpose, self._withdraw_hook(purpose)))
        self._cancels.append(self.gateway.on_erase(self.erase_customer))

    def webhook_router(self) -> APIRouter:
        return create_webhook_router(
            app_secret=self.cfg.app_secret,
            verify_token=self.cfg.verify_token,
            handlers=self.handlers,
            path=WEBHOOK_PATH,
        )

    def start(self) -> None:
        """Outbox worker and the journeys/catalogue ticker, in daemon threads."""
        if self._threads:
            return
        self._stop.clear()
        if self.cfg.outbox.worker and not self.cfg.outbox.at_hq:  # at_hq: HQ's outbox sends for the chain
            if not self.db_path:
                raise RuntimeError("whatsapp: the outbox worker needs a gateway database file, not :memory:")
            self.worker = outbox.OutboxWorker(
                self.db_path,
                self.client,
                self.rules,
                clock=time.time,
                bucket=TokenBucket(self.cfg.outbox.rate_per_s, 1.0, now=time.time()),
                reconcile_after_s=self.cfg.outbox.reconcile_after_s,
                lookup=self.lookup,
                poll_interval_s=0.05,
                on_alert=lambda e: log.error("whatsapp alert %s: %s", e.code, e.message),
                on_opt_out=self.on_opt_out,
            )
            self._spawn("wa-outbox", self._run_worker)
        if self.cfg.journeys.enabled or (self.cfg.catalogue.enabled and self.cfg.api.catalog_id) \
                or self.cfg.daily_summary.customer:
            self._spawn("wa-ticker", self._run_ticker)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=10)
        self._threads.clear()
        if self.worker is not None:
            self.worker.close()
            self.worker = None

    def close(self) -> None:
        self.stop()
        for cancel in self._cancels:
            cancel()
        self._cancels.clear()
        self.client.close()

    def _spawn(self, name: str, fn: Callable[[], None]) -> None:
        t = threading.Thread(target=fn, name=name, daemon=True)
        self._threads.append(t)
        t.start()

    def _run_worker(self) -> None:
        assert self.worker is not None
        while not self._stop.is_set():
            try:
                self.worker.run(stop=self._stop)
                if self.worker.halted is not None:
                    log.error("whatsapp outbox halted: %s", self.worker.halted)
                    return
            except Exception:  # keep the channel up; the row stays for the next round
                log.exception("whatsapp outbox worker failed; restarting in 1 s")
                self._stop.wait(1.0)

    def _run_ticker(self) -> None:
        next_j = next_c = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            try:
                if self.cfg.journeys.enabled and now >= next_j:
                    next_j = now + self.cfg.journeys.interval_s
                    self.run_journeys()
                if self.cfg.catalogue.enabled and self.cfg.api.catalog_id and now >= next_c:
                    next_c = now + self.cfg.catalogue.interval_s
                    self.sync_catalogue()
                self.summary_sent = daily_summary.tick(self, self.summary_sent)
            except Exception:
                log.exception("whatsapp journeys/catalogue round failed")
            self._stop.wait(1.0)

    # ------------------------------------------------------------------ consent hooks

    def _withdraw_hook(self, purpose: str) -> Callable[[str], None]:
        kinds = CANCEL_ON_WITHDRAW[purpose]

        def cancel(customer_id: str) -> None:
            wa_id = self.number_of(customer_id)
            if wa_id is None:
                return
            marks = ",".join("?" * len(kinds))
            with self.lock:
                self.conn.execute(
                    f"UPDATE wa_outbox SET status = 'cancelled', error_detail = 'consent withdrawn: {purpose}' "
                    f"WHERE customer = ? AND status = 'pending' AND purpose IN ({marks})",
                    (wa_id, *kinds),
                )

        return cancel

    def erase_customer(self, customer_id: str) -> None:
        """Erasure: every WhatsApp row of the customer goes (outbox, statuses, window, inbox), for
        every number they ever had."""
        with self.lock:
            for number in self.gateway.numbers_of(customer_id):
                wa_id = number.lstrip("+")
                inbox.erase_number(self.conn, wa_id, customer_id)
                self.gateway.anonymise_events(EVENT_KIND, wa_id)  # stream rows from before the number was linked
                self.gateway.anonymise_events(HQ_REQUEST_KIND, wa_id)  # requests for HQ's outbox, likewise
            self.conn.execute("DELETE FROM wa_appointments WHERE customer_id = ?", (customer_id,))


__all__ = ["WhatsAppService", "InboxError", "WEBHOOK_PATH", "EVENT_KIND"]
