"""How far HQ may acknowledge a store's stream under ack policy `all` (docs/chain.md, "Acknowledging").

One acknowledgement there covers every delivery before it, also one that a cut link lost on its
way to HQ: acknowledging the newest handled message would drop that one for good. So HQ
acknowledges only up to the end of the unbroken run of stream sequences it has handled above the
consumer's ack floor. A hole waits for its redelivery (after the consumer's ack wait); what was
handled above it comes again, a duplicate HQ ignores. Sequences the stream no longer holds (its size
limit dropped them while HQ was away) are no hole.
"""

from __future__ import annotations

from collections.abc import Iterable


class CumulativeAcks:
    """The stream sequences handled above the ack floor; pure (no clock, no connection)."""

    def __init__(self, floor: int) -> None:
        self.floor = floor  # every stream sequence up to here is handled, or gone from the stream
        self._above: set[int] = set()
        self.asked_at = float("-inf")  # when the stream was last asked for its first sequence (the caller's clock)

    @property
    def holes(self) -> bool:
        """Whether something handled waits above a sequence not yet handled."""
        return bool(self._above)

    def handled(self, seqs: Iterable[int]) -> int:
        """Record handled stream sequences; the floor they raise it to."""
        self._above.update(s for s in seqs if s > self.floor)
        while self.floor + 1 in self._above:
            self.floor += 1
            self._above.remove(self.floor)
        return self.floor

    def stream_starts_at(self, first_seq: int) -> int:
        """The stream's first sequence now: what lies below it can no longer come. The floor."""
        if first_seq - 1 > self.floor:
            self.floor = first_seq - 1
            self._above = {s for s in self._above if s > self.floor}
        return self.handled(())
