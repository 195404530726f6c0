"""Resumable live streams of staff events (Server-Sent Events) for the tablets and screens.

One generator for every stream: replay what the client missed (`id > Last-Event-ID`) from
the event log, in pages, then go live from the broadcaster, skipping anything already sent.
Keep-alive comments hold idle connections open through proxies and flaky Wi-Fi. A stream
that needs a staff session re-checks it every RECHECK_S and ends when it has expired or been
signed out: a tablet left open must not go on showing customers to whoever picks it up.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing

from fastapi.sse import ServerSentEvent

from gateway.events import Broadcaster, EventLog, StaffEvent
from gateway.storage.db import MAX_ROW_ID

KEEPALIVE_S = 15.0
RECHECK_S = 5.0
PAGE = 1000


def resume_point(log: EventLog, last_event_id: str | None, after: int | None) -> int:
    """Where a stream starts: the browser's Last-Event-ID, else `?after=`, else now."""
    try:
        if last_event_id and 0 <= int(last_event_id) <= MAX_ROW_ID:
            return int(last_event_id)
    except ValueError:
        pass
    return after if after is not None else log.last_id()


def full_event(ev: StaffEvent) -> ServerSentEvent:
    return ServerSentEvent(id=str(ev.id), event=ev.kind, raw_data=ev.to_json())


async def event_stream(
    log: EventLog,
    broadcaster: Broadcaster,
    last: int,
    *,
    select: Callable[[StaffEvent], bool] = lambda ev: True,
    wire: Callable[[StaffEvent], ServerSentEvent] = full_event,
    on_clients: Callable[[int], None] = lambda n: None,
    allowed: Callable[[], bool] | None = None,
) -> AsyncIterator[ServerSentEvent]:
    """`allowed` (blocking, run off the event loop): is the client still entitled to the stream?"""
    queue, cancel = broadcaster.subscribe()
    on_clients(broadcaster.clients)
    try:
        yield ServerSentEvent(comment="connected", retry=1000)
        async with aclosing(_missed(log, last)) as missed:  # replay what was missed, then go live
            async for old in missed:
                if select(old):
                    yield wire(old)
                last = old.id
        async with aclosing(_live(queue, allowed)) as live:
            async for ev in live:
                if ev is None:
                    yield ServerSentEvent(comment="keep-alive")
                    continue
                if ev.id <= last:
                    continue
                last = ev.id
                if select(ev):
                    yield wire(ev)
    finally:
        cancel()
        on_clients(broadcaster.clients)


async def _missed(log: EventLog, last: int) -> AsyncGenerator[StaffEvent, None]:
    """The events after `last` in the log, read in pages."""
    while True:
        missed = await asyncio.to_thread(log.after, last, PAGE)
        for old in missed:
            yield old
            last = old.id
        if len(missed) < PAGE:
            break


async def _live(
    queue: asyncio.Queue[StaffEvent | None], allowed: Callable[[], bool] | None
) -> AsyncGenerator[StaffEvent | None, None]:
    """Events as the broadcaster hands them over, None when a keep-alive is due; ends when the
    client fell too far behind or is no longer allowed."""
    loop = asyncio.get_running_loop()
    next_check = loop.time() + RECHECK_S if allowed is not None else float("inf")
    next_keepalive = loop.time() + KEEPALIVE_S
    while True:
        if allowed is not None and loop.time() >= next_check:
            if not await asyncio.to_thread(allowed):
                return
            next_check = loop.time() + RECHECK_S
        try:
            wait = min(next_keepalive, next_check) - loop.time()
            ev = await asyncio.wait_for(queue.get(), timeout=max(0.0, wait))
        except TimeoutError:
            if loop.time() >= next_keepalive:
                yield None
                next_keepalive = loop.time() + KEEPALIVE_S
            continue
        if ev is None:  # fell too far behind: the client reconnects and replays
            return
        yield ev
