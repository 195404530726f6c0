"""HQ's cumulative acknowledgements never cover a delivery a cut link lost (instore.hq_acks)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace

import pytest
from nats.js.api import AckPolicy

from instore import hq
from instore.hq_acks import CumulativeAcks


def test_an_unbroken_run_is_acknowledged_to_its_end() -> None:
    acks = CumulativeAcks(floor=10)
    assert acks.handled([11, 12, 13]) == 13
    assert acks.handled([14]) == 14
    assert not acks.holes


def test_a_delivery_lost_in_the_cut_holds_the_floor_until_its_redelivery() -> None:
    acks = CumulativeAcks(floor=0)
    assert acks.handled([1, 2]) == 2
    assert acks.handled([4, 5, 6]) == 2  # 3 was delivered into the dropped link: acknowledging 6 would lose it
    assert acks.holes
    assert acks.handled([7]) == 2
    assert acks.handled([3, 4, 5, 6]) == 7  # the redelivery after the ack wait (4-6 are duplicates)
    assert not acks.holes


def test_out_of_order_and_repeated_sequences_and_those_at_or_below_the_floor() -> None:
    acks = CumulativeAcks(floor=5)
    assert acks.handled([3, 5, 8, 7, 8]) == 5
    assert acks.handled([6]) == 8


def test_what_the_stream_dropped_is_no_hole() -> None:
    acks = CumulativeAcks(floor=100)
    assert acks.handled([151, 152]) == 100  # 101-150 fell out of the stream's size limit while HQ was away
    assert acks.stream_starts_at(151) == 152
    assert not acks.holes
    assert acks.stream_starts_at(120) == 152  # an older first sequence changes nothing


class _Msg:
    def __init__(self, seq: int) -> None:
        self.metadata = SimpleNamespace(sequence=SimpleNamespace(stream=seq))
        self.acked = False

    async def ack(self) -> None:
        self.acked = True


class _Stream:
    """A store's stream as HQ's pull sees it: batches to fetch, and a link that drops when asked
    for the stream's state."""

    def __init__(self, batches: list[list[_Msg]], stop: asyncio.Event) -> None:
        self.batches, self.stop = batches, stop

    async def pull_subscribe(self, *args: object, **kwargs: object) -> _Stream:
        return self

    async def consumer_info(self) -> SimpleNamespace:
        return SimpleNamespace(config=SimpleNamespace(ack_policy=AckPolicy.ALL),
                               ack_floor=SimpleNamespace(stream_seq=0))

    async def fetch(self, *args: object, **kwargs: object) -> list[_Msg]:
        if not self.batches:
            self.stop.set()
            return []
        return self.batches.pop(0)

    async def stream_info(self, name: str) -> None:
        raise TimeoutError("the link dropped")


def test_a_failed_acknowledgement_does_not_end_the_pull(monkeypatch: pytest.MonkeyPatch) -> None:
    """A hole makes HQ ask the stream for its first sequence; the link drops right then: the
    failure is reported and HQ pulls on (the unacknowledged batch comes again after the ack wait)."""
    stop = asyncio.Event()
    first, second = [_Msg(2), _Msg(3)], [_Msg(1)]
    stream = _Stream([first, second], stop)

    @asynccontextmanager
    async def connected(*args: object, **kwargs: object) -> AsyncIterator[SimpleNamespace]:
        yield SimpleNamespace(jetstream=lambda domain: stream)

    monkeypatch.setattr(hq, "connected", connected)
    taken: list[int] = []
    failures: list[Exception] = []

    async def take(msgs: list) -> int:
        taken.extend(m.metadata.sequence.stream for m in msgs)
        return len(msgs)

    asyncio.run(asyncio.wait_for(hq.pull("nats://x", "pw", "s1", stop, take, failures.append), 10))
    assert taken == [2, 3, 1]  # the pull went on after the failed acknowledgement
    assert [str(f) for f in failures] == ["the link dropped"]
    assert not any(m.acked for m in first)  # 1 was missing then: nothing acknowledged over the hole
    assert second[0].acked  # once 1 came it was acknowledged (2 and 3 come again: duplicates HQ ignores)
