"""Pacing of the event channel's loops (sans-IO): pure counters, no clock of their own.

- :class:`PollPacer`: the minimum interval between P-GETs whose answer came back
  without being held (an empty batch, a ``resume`` or ``resync`` answer, an error, a
  batch of nothing but malformed events). A server that answers at once would
  otherwise be polled as fast as the network allows (~700 P-GETs/s were measured).
  A held answer (the server kept the P-GET at least ``held`` seconds) and a batch with
  events are normal and cost nothing.

The caller owns the clock: it passes elapsed times in. (The re-creation budget of the
application lives beside the re-authentication budget, in :mod:`._core.budget`.)
"""

from __future__ import annotations

import math

from ucwa_async._core.backoff import check_delays, doubling

__all__ = ["PollPacer"]


class PollPacer:
    """How long to wait before the next P-GET, given how the last one was answered.

    The first answer that was not held waits ``floor`` seconds (counted from the start
    of the P-GET: a minimum interval between P-GETs); each further one in a row waits
    twice as long, up to ``cap``. A held answer or a batch with events resets the streak.
    The cap is small on purpose: a sporadic fault must not delay events for long (an
    invitation may time out), and 2 s already holds a server answering at once to half
    a P-GET per second.
    """

    __slots__ = ("_streak", "cap", "floor", "held")

    def __init__(self, *, floor: float = 0.5, cap: float = 2.0, held: float = 0.1) -> None:
        check_delays(floor=floor, cap=cap, held=held)
        self.floor = float(floor)
        self.cap = max(float(cap), self.floor)
        self.held = float(held)
        self._streak = 0

    @property
    def streak(self) -> int:
        """Answers in a row that were neither held nor carried events."""
        return self._streak

    def after_answer(self, elapsed: float | None, *, delivered: bool) -> float:
        """Seconds to wait before the next P-GET.

        ``elapsed``: seconds from sending the P-GET to its answer (None: unknown, no
        pacing). ``delivered``: the answer carried at least one (valid) event.
        """
        if elapsed is None or not math.isfinite(elapsed):
            return 0.0
        if delivered or elapsed >= self.held:
            self._streak = 0
            return 0.0
        interval = doubling(self.floor, self._streak, self.cap)
        self._streak += 1
        return max(0.0, interval - max(elapsed, 0.0))

    def reset(self) -> None:
        self._streak = 0
