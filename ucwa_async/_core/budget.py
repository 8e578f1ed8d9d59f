"""The re-authentication budget (sans-IO): how many token grants, how far apart.

A server that answers 401 to everything while its token endpoint keeps granting
would otherwise make the client re-send the password as fast as the network allows,
and a real server locks the account. The budget bounds *re-authentications* (a new
grant for a host that already had a token):

- at most ``max_grants`` *futile* ones in any sliding ``window`` seconds: a futile
  re-authentication replaces a token the server never accepted (it was refused as
  soon as it was used). Replacing a token that had been accepted is an expiry, the
  normal life of a token, and is not counted: a session outlives any number of
  expiries, but not ``max_grants`` refusals in a row;
- every re-authentication at least ``spacing(k)`` after the previous grant, where
  ``k`` counts all re-authentications in the window and ``spacing`` doubles from
  ``base`` up to ``cap``: even a server whose tokens work once each gets a
  slowing trickle of grants, never a stream.

The first grant for each host of the sign-in chain is not a re-authentication (the
chain's length is bounded elsewhere), but it starts the spacing clock.

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
    """At most ``max_grants`` futile re-authentications per ``window`` seconds, spaced out."""

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
        self._reauths: deque[tuple[float, bool]] = deque()  # (when, futile)
        self._last: float | None = None

    def _prune(self, now: float) -> None:
        while self._reauths and now - self._reauths[0][0] >= self.window:
            self._reauths.popleft()

    def spacing(self, reauths: int) -> float:
        """The least gap before re-authentication number ``reauths`` (0-based) of a window."""
        return min(self.cap, math.ldexp(self.base, min(max(reauths, 0), 64)))

    @property
    def in_window(self) -> int:
        """Re-authentications within the current window (futile or not)."""
        self._prune(self._clock())
        return len(self._reauths)

    @property
    def futile_in_window(self) -> int:
        """Futile re-authentications within the current window: what the budget counts."""
        self._prune(self._clock())
        return sum(1 for _, futile in self._reauths if futile)

    def delay(self) -> float | None:
        """Seconds to wait before the next re-authentication; None: the budget is spent."""
        now = self._clock()
        self._prune(now)
        if sum(1 for _, futile in self._reauths if futile) >= self.max_grants:
            return None
        if self._last is None:
            return 0.0
        return max(0.0, self._last + self.spacing(len(self._reauths)) - now)

    def record(self, *, reauthentication: bool, futile: bool = True) -> None:
        """A grant was made now. ``reauthentication``: it replaced an existing token;
        ``futile``: one the server had never accepted (counted against the budget)."""
        now = self._clock()
        self._last = now
        if reauthentication:
            self._prune(now)
            self._reauths.append((now, futile))

    def __repr__(self) -> str:
        return (
            f"ReauthBudget(max_grants={self.max_grants!r}, window={self.window!r}, "
            f"base={self.base!r}, cap={self.cap!r})"
        )
