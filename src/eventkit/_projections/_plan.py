"""The runner's decisions about positions and rates, as pure functions."""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime


def batch_target(start: int, positions: Sequence[int], batch_size: int, head: int) -> int:
    """
    Return the checkpoint a batch moves to once all its events are handled.

    The batch holds the events read after *start* (at most *batch_size*, of the
    projection's types only), and *head* is the store's head position read before
    them. A full batch ends at its last event: more may follow. A short one means
    nothing of the projection's types lies between its last event and *head*, so the
    checkpoint moves to *head*, past the events of other types.
    """
    last = positions[-1] if positions else start
    if len(positions) >= batch_size:
        return last
    return max(start, last, head)


def checkpoint_before(position: int) -> int:
    """Return the checkpoint that leaves the event at *position* still to be handled."""
    return position - 1


def lag_seconds(now: datetime, oldest_unhandled: datetime | None) -> float:
    """Return how long the oldest unhandled event has waited: 0 when none waits."""
    if oldest_unhandled is None:
        return 0.0
    return max(0.0, (now - oldest_unhandled).total_seconds())


class RateMeter:
    """
    Events per second over a sliding window, fed with ``(time, count)`` samples.

    Times are monotonic seconds, passed in by the caller, so the meter is testable
    without a clock.
    """

    def __init__(self, window: float = 10.0) -> None:
        self.window = window
        self._samples: collections.deque[tuple[float, int]] = collections.deque()
        self._started: float | None = None

    def add(self, now: float, count: int) -> None:
        """Record that *count* events were handled at time *now*."""
        if self._started is None:
            self._started = now
        self._samples.append((now, count))
        self._forget(now)

    def rate(self, now: float) -> float:
        """Return the events per second over the window ending at *now*."""
        self._forget(now)
        if not self._samples or self._started is None:
            return 0.0
        span = min(self.window, now - self._started)
        total = sum(count for _, count in self._samples)
        return total / span if span > 0 else 0.0

    def _forget(self, now: float) -> None:
        while self._samples and self._samples[0][0] < now - self.window:
            self._samples.popleft()
