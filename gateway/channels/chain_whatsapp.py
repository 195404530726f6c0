"""The store's WhatsApp statuses and replies from the chain HQ's outbox (docs/chain.md, "WhatsApp at HQ").

In a chain the number's one outbox runs at HQ (`[outbox] at_hq`), and so do Meta's webhooks. HQ
publishes what they say about this store's conversations into the store's own stream
(`chain-<store>-wa`, subjects `chain.<store>.wa.>`, on the store's disk; no other store can read
it). `FromHq` makes that stream and applies each event through the channel's own webhook handlers
(statuses move the store's outbox rows, replies reach its inbox, STOP withdraws consent), then
acknowledges it: a restart resumes where it stopped, a redelivery is deduplicated.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from cloud_sync import relay
from cloud_sync.webhook import WebhookHandlers, WebhookProcessor
from firmware_config.nats import whatsapp_stream, whatsapp_subject
from firmware_config.store import Chain
from gateway.channels.chain_publish import connected, sleep_unless

log = logging.getLogger("instore.chain.whatsapp")

CONSUMER = "gateway"  # the gateway's durable consumer on the stream
STREAM_BYTES = 64 * 1024 * 1024  # statuses and replies are small (~1 KiB); 64 MiB is weeks of a busy store
FETCH_BATCH = 64
FETCH_WAIT_S = 1.0
RETRY_S = 1.0


class FromHq:
    """Applies HQ's relayed statuses and replies to this store's WhatsApp channel, until stopped."""

    def __init__(self, store_id: str, chain: Chain, handlers: WebhookHandlers):
        self.store_id, self.chain = store_id, chain
        self.processor = WebhookProcessor(handlers)
        self.applied = 0
        self.unreadable = 0
        self.failures = 0

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        log.warning("chain whatsapp: store NATS: %s (retrying)", exc)

    async def _stream(self, js: Any) -> Any:
        from nats.js.api import ConsumerConfig, StorageType, StreamConfig

        await js.add_stream(StreamConfig(name=whatsapp_stream(self.store_id),
                                         subjects=[f"{whatsapp_subject(self.store_id)}.>"],
                                         storage=StorageType.FILE, max_bytes=STREAM_BYTES))
        return await js.pull_subscribe(f"{whatsapp_subject(self.store_id)}.>", durable=CONSUMER,
                                       stream=whatsapp_stream(self.store_id), config=ConsumerConfig())

    def apply(self, data: bytes) -> None:
        """One relayed event through the webhook handlers; an unreadable one is counted and skipped."""
        try:
            ev = relay.from_wire(json.loads(data))
        except (ValueError, TypeError, KeyError) as exc:
            self.unreadable += 1
            log.warning("chain whatsapp: unreadable event from HQ skipped: %s", exc)
            return
        self.applied += self.processor.process([ev])

    async def run(self, stop: asyncio.Event) -> None:
        from nats.errors import TimeoutError as NatsTimeout

        url = f"nats://{self.chain.nats_host}:{self.chain.nats_port}"
        async with connected(url, stop, self._failed) as nc:
            sub = None
            while nc is not None and not stop.is_set():
                try:
                    sub = sub or await self._stream(nc.jetstream())
                    for m in await sub.fetch(FETCH_BATCH, timeout=FETCH_WAIT_S):
                        await asyncio.to_thread(self.apply, m.data)
                        await m.ack()
                except (TimeoutError, NatsTimeout):
                    continue
                except Exception as exc:  # noqa: BLE001 (the store's NATS restarting, the database busy:
                    self._failed(exc)  # the unacknowledged rest comes again)
                    sub = None
                    await sleep_unless(stop, RETRY_S)
