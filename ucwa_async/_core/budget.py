"""The re-authentication budget (sans-IO): how many token grants, how far apart.

A server that answers 401 to everything while its token endpoint keeps granting
would otherwise make the client re-send the password as fast as the network allows,
and a real server locks the account. The budget bounds *re-authentications* (a new
grant for a host that already had a token): at most ``max_grants`` in any sliding
``window`` seconds, each one at least ``spacing(k)`` after the previous grant, where
``k`` counts the re-authentications already in the window and ``spacing`` doubles
from ``base`` up to ``cap``. The first grant for each host of the sign-in chain is
not a re-authentication (the chain's length is bounded elsewhere), but it starts
the spacing clock.

The clock is injectable (``time.monotonic`` by default), so tests need no sleeps.
The caller sleeps and counts; nothing here waits.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

__all__ = ["ReauthBudget"]


class ReauthBudget:
    """At most ``max_grants`` re-authentications per ``window`` seconds, spaced out."""

    __slots__ = ("_clock", "_last", "_reauths", "base", "cap", "max_grants", "window")

    def __init__(
        self,
        *,
        max_grants: int = 3,
        window: float = 60.0,
        base: float = 0.5,
        cap: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not isinstance(max_grants, int) or isinstance(max_grants, bool) or max_grants < 0:
            raise ValueError(f"max_grants must be an int >= 0, got {max_grants!r}")
        for name, value in (("window", window), ("base", base), ("cap", cap)):
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        self.max_grants = max_grants
        self.window = float(window)
        self.base = float(base)
        self.cap = float(cap)
        self._clock = clock
        self._reauths: deque[float] = deque()
        self._last: float | None = None

    def _prune(self, now: float) -> None:
        while self._reauths and now - self._reauths[0] >= self.window:
            self._reauths.popleft()

    def spacing(self, reauths: int) -> float:
        """The least gap before re-authentication number ``reauths`` (0-based) of a window."""
        return min(self.cap, math.ldexp(self.base, min(max(reauths, 0), 64)))

    @property
    def in_window(self) -> int:
        """Re-authentications within the current window."""
        self._prune(self._clock())
        return len(self._reauths)

    def delay(self) -> float | None:
        """Seconds to wait before the next re-authentication; None: the budget is spent."""
        now = self._clock()
        self._prune(now)
        if len(self._reauths) >= self.max_grants:
            return None
        if self._last is None:
            return 0.0
        return max(0.0, self._last + self.spacing(len(self._reauths)) - now)

    def record(self, *, reauthentication: bool) -> None:
        """A grant was made now (``reauthentication``: it replaced an existing token)."""
        now = self._clock()
        self._last = now
        if reauthentication:
            self._prune(now)
            self._reauths.append(now)

    def __repr__(self) -> str:
        return (
            f"ReauthBudget(max_grants={self.max_grants!r}, window={self.window!r}, "
            f"base={self.base!r}, cap={self.cap!r})"
        )
