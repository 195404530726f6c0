"""HQ's cumulative acknowledgements never cover a delivery a cut link lost (instore.hq_acks)."""

from __future__ import annotations

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
