"""When to re-read pending invitations after a resync (sans-IO).

A ``resync`` tells the client that events may be lost: every pending invitation must be
read back by GET. A server that answers ``resync`` to every poll must not turn that into
a GET per invitation per poll, so re-reads come in *waves*: one wave reads each pending
invitation once; a resync during a wave asks for exactly one more wave after it; and
waves start at least ``interval`` seconds apart. The caller owns the clock and the IO.
"""

from __future__ import annotations

import math

__all__ = ["RereadWaves"]


class RereadWaves:
    """The schedule of re-read waves; ``now`` is any monotonic clock in seconds."""

    __slots__ = ("_again", "_last_start", "_running", "_scheduled", "interval")

    def __init__(self, interval: float = 1.0) -> None:
        if not (math.isfinite(interval) and interval >= 0):
            raise ValueError(f"interval must be a finite number >= 0, got {interval!r}")
        self.interval = float(interval)
        self._running = False
        self._scheduled = False
        self._again = False
        self._last_start = -math.inf

    @property
    def running(self) -> bool:
        return self._running

    def requested(self, now: float) -> float | None:
        """A resync happened: seconds until a wave should start, or None when a wave
        already running or scheduled covers it (a running one is followed by one more)."""
        if self._running:
            self._again = True
            return None
        if self._scheduled:
            return None
        self._scheduled = True
        return self._wait(now)

    def started(self, now: float) -> None:
        """The scheduled wave starts now (it reads every invitation pending now)."""
        self._scheduled = False
        self._running = True
        self._again = False
        self._last_start = now

    def finished(self, now: float) -> float | None:
        """The running wave read everything: seconds until the next wave, None if none."""
        self._running = False
        if not self._again:
            return None
        self._again = False
        self._scheduled = True
        return self._wait(now)

    def reset(self) -> None:
        """Forget everything scheduled (the session is closing)."""
        self._running = self._scheduled = self._again = False

    def _wait(self, now: float) -> float:
        return max(0.0, self._last_start + self.interval - now)
