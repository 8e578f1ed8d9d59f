"""Pacing of the event channel's loops (sans-IO): pure counters, no clock of their own.

- :class:`PollPacer`: the minimum interval between P-GETs whose answer came back
  without being held (an empty batch, a ``resume`` or ``resync`` answer, an error, a
  batch of nothing but malformed events). A server that answers at once would
  otherwise be polled as fast as the network allows (~700 P-GETs/s were measured).
  A held answer (the server kept the P-GET at least ``held`` seconds) and a batch with
  events are normal and cost nothing.
- :class:`RecreationBudget`: how often the application may be re-created (a budget
  per window) and how long to wait before each re-creation (growing while new
  applications keep getting lost before their channel proved to work).

The caller owns the clock: it passes elapsed times and ``now`` values in.
"""

from __future__ import annotations

import math
from collections import deque

__all__ = ["PollPacer", "RecreationBudget"]

# 2**60 times any sane floor is far above any sane cap: clamping keeps ldexp finite.
_MAX_EXPONENT = 60


def _grow(base: float, exponent: int, cap: float) -> float:
    return min(cap, math.ldexp(base, min(max(exponent, 0), _MAX_EXPONENT)))


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
        for name, value in (("floor", floor), ("cap", cap), ("held", held)):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
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
        interval = _grow(self.floor, self._streak, self.cap)
        self._streak += 1
        return max(0.0, interval - max(elapsed, 0.0))

    def reset(self) -> None:
        self._streak = 0


class RecreationBudget:
    """How often, and how soon, a lost application may be re-created.

    - A pause before each re-creation: none for the first after a working channel;
      then ``base``, doubling up to ``cap``, while new applications keep getting lost
      before their channel proved to work (:meth:`proven`). A successful re-creation
      alone does not reset it: a server answering 404 to every P-GET would otherwise
      get a new application per round trip.
    - At least ``min_interval`` seconds between two re-creations, proven or not.
    - At most ``limit`` re-creations per ``window`` seconds whose application never
      proved to work, and at most ``hard_limit`` per window in all: past either, the
      budget is spent (:meth:`next_delay` answers None) and the caller gives up. A
      server that loses applications now and then (each new one working) never
      spends the first; one that lets each new one work for an instant and then
      loses it spends the second.
    """

    __slots__ = (
        "_all",
        "_proved",
        "_streak",
        "_unproven",
        "base",
        "cap",
        "hard_limit",
        "limit",
        "min_interval",
        "window",
    )

    def __init__(
        self,
        *,
        limit: int = 5,
        hard_limit: int = 60,
        window: float = 600.0,
        base: float = 2.0,
        cap: float = 60.0,
        min_interval: float = 1.0,
    ) -> None:
        if limit < 1 or hard_limit < 1:
            raise ValueError(f"limit and hard_limit must be at least 1, got {limit}, {hard_limit}")
        for name, value in (
            ("window", window),
            ("base", base),
            ("cap", cap),
            ("min_interval", min_interval),
        ):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        self.limit = limit
        self.hard_limit = hard_limit
        self.window = float(window)
        self.base = float(base)
        self.cap = max(float(cap), self.base)
        self.min_interval = float(min_interval)
        self._all: deque[float] = deque()
        self._unproven: deque[float] = deque()
        self._streak = 0
        self._proved = True  # nothing re-created yet: nothing to prove

    @property
    def streak(self) -> int:
        """Re-creations since a channel last proved to work."""
        return self._streak

    def used(self, now: float) -> tuple[int, int]:
        """(unproven, all) re-creations within the window ending at ``now``."""
        horizon = now - self.window
        for stamps in (self._all, self._unproven):
            while stamps and stamps[0] <= horizon:
                stamps.popleft()
        return len(self._unproven), len(self._all)

    def spent(self, now: float) -> bool:
        unproven, every = self.used(now)
        return unproven >= self.limit or every >= self.hard_limit

    def next_delay(self, now: float) -> float | None:
        """Seconds to wait before re-creating, or None when the budget is spent."""
        if self.spent(now):
            return None
        pause = 0.0 if self._streak == 0 else _grow(self.base, self._streak - 1, self.cap)
        if self._all:
            pause = max(pause, self._all[-1] + self.min_interval - now)
        return max(0.0, pause)

    def created(self, now: float) -> None:
        """A new application exists (counted against the budget until it proves to work)."""
        self._all.append(now)
        self._unproven.append(now)
        self._streak += 1
        self._proved = False

    def proven(self) -> None:
        """The current application's channel held a poll or delivered events."""
        self._streak = 0
        if not self._proved:
            self._proved = True
            if self._unproven:
                self._unproven.pop()  # the newest stamp is the current application's
