"""The progress bar of long catch-ups and rebuilds."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from eventkit._projections._plan import RateMeter

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TextIO

_WIDTH = 24


def render_progress(label: str, done: int, total: int, rate: float) -> str:
    """Return one line of progress: a bar, the positions done and the rate."""
    fraction = 1.0 if total <= 0 else min(1.0, done / total)
    filled = round(fraction * _WIDTH)
    bar = "#" * filled + "-" * (_WIDTH - filled)
    return f"{label} [{bar}] {done:,}/{total:,} {fraction:4.0%} {rate:,.0f} events/s"


class ProgressBar:
    """
    Writes `render_progress` lines to a stream, at most a few times a second.

    On a terminal the line redraws in place; elsewhere (a log file) each update is
    its own line. A quiet bar writes nothing.
    """

    def __init__(
        self,
        label: str,
        out: TextIO | None,
        *,
        interval: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.out = out
        self.interval = interval
        self._clock = clock
        self._meter = RateMeter()
        self._last_shown = -interval
        self._tty = out is not None and out.isatty()

    def update(self, done: int, total: int, handled: int) -> None:
        """Report progress: *done* of *total* positions, *handled* events since the last call."""
        now = self._clock()
        self._meter.add(now, handled)
        if self.out is None or now - self._last_shown < self.interval:
            return
        self._last_shown = now
        self._write(self.out, render_progress(self.label, done, total, self._meter.rate(now)))

    def finish(self, total: int) -> None:
        """Show the final state and end the line."""
        if self.out is None:
            return
        line = render_progress(self.label, total, total, self._meter.rate(self._clock()))
        self._write(self.out, line)
        if self._tty:
            self.out.write("\n")
        self.out.flush()

    def _write(self, out: TextIO, line: str) -> None:
        out.write(f"\r{line}" if self._tty else f"{line}\n")
        out.flush()
