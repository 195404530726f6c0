"""Time you can trust: window timestamps checked against the gateway's clock, node clock offsets.

A Raspberry Pi has no real-time clock: until NTP answers, a node's clock may be a day off.
One window stamped tomorrow would move the presence engine's step clock to tomorrow (and
silence every node after it) or make it catch up second by second; so the gateway rejects
windows ahead of its own clock and far behind it, and estimates each node's offset from the
arrival times (docs/wire.md, "Time").
"""

from __future__ import annotations

from collections import deque
from typing import Literal

# A window may end this far ahead of the gateway's clock: NTP-synced clocks agree to
# milliseconds, and this absorbs a node that is still slewing after boot.
MAX_AHEAD_S = 5.0
# A window may end this far behind: a node's disk queue holds 100,000 windows (edge/queue.py),
# about 28 hours at one a second, so anything older is a clock set wrong, not a replay.
MAX_BEHIND_S = 2 * 86400.0
# A live (not replayed) window older than this is stale news: handled as late (counted, no
# presence alerts). Broker re-delivery after a gateway restart lands here.
LIVE_LAG_S = 60.0
# The presence engine steps once per second up to a new window's time; after a longer gap
# (store closed overnight, gateway clock stepped) it jumps, so one message costs bounded work.
MAX_CATCHUP_S = 600.0
# Offset samples kept per node: a minute of windows; the smallest transit time among them
# is the closest to the true offset.
OFFSET_SAMPLES = 60
# The gateway doubts its own clock (stepped back, or not yet synchronised after a boot) when at
# least this many nodes, and most of those it hears, see it off in the same direction.
CONSENSUS_NODES = 2

Verdict = Literal["ok", "ahead", "behind", "lagging"]


def check_window_time(end: float, now: float) -> Verdict:
    """Where a window's end stands against the gateway's clock `now`."""
    if end > now + MAX_AHEAD_S:
        return "ahead"
    if end < now - MAX_BEHIND_S:
        return "behind"
    if end < now - LIVE_LAG_S:
        return "lagging"
    return "ok"


def gateway_skew(offsets: list[float]) -> float:
    """How far the gateway's clock is behind the nodes' (negative: ahead), 0 unless they agree.

    One node a day ahead is that node's fault; every node an hour ahead means the gateway's
    clock stepped back, and rejecting them all would silence the store until it caught up.
    """
    if len(offsets) < CONSENSUS_NODES:
        return 0.0
    ahead = sorted(o for o in offsets if o > MAX_AHEAD_S)
    behind = sorted(o for o in offsets if o < -MAX_AHEAD_S)
    for side in (ahead, behind):
        if len(side) >= CONSENSUS_NODES and 2 * len(side) > len(offsets):
            return side[len(side) // 2]  # the median of the agreeing nodes
    return 0.0


class OffsetEstimate:
    """A node's clock offset (node minus gateway, seconds) from live windows' arrival times.

    Each window ends on the node's clock at `end` and arrives at `now` on ours, so
    `end - now = offset - transit`; transit is never negative, so the largest sample of the
    recent ones is the best estimate (the window that travelled fastest).
    """

    __slots__ = ("_samples",)

    def __init__(self) -> None:
        self._samples: deque[float] = deque(maxlen=OFFSET_SAMPLES)

    def add(self, end: float, now: float) -> None:
        self._samples.append(end - now)

    @property
    def offset_s(self) -> float | None:
        return round(max(self._samples), 3) if self._samples else None
