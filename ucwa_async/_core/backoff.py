"""Retry delays: capped exponential backoff with full jitter (sans-IO).

Full jitter (a uniform draw in ``[0, min(cap, base * 2**attempt)]``) spreads the
reconnects of many clients after a server restart better than equal jitter does.
The object is stateless apart from its random source: the caller counts attempts
(``ChannelState.attempt``), so one ``Backoff`` can serve several loops.
"""

from __future__ import annotations

import math
import random

__all__ = ["Backoff", "check_delays", "doubling"]

# Past this exponent the un-jittered delay is above any sane cap; clamping the
# exponent keeps ldexp from overflowing on absurd attempt counts.
_MAX_EXPONENT = 1000


def check_delays(**values: float) -> None:
    """Every value a finite number of seconds >= 0, else ``ValueError`` naming it."""
    for name, value in values.items():
        if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def doubling(base: float, exponent: int, cap: float) -> float:
    """``min(cap, base * 2**exponent)``, exponent clamped to ``0..``: the one growth rule
    of every delay of the library (backoff, re-authentication spacing, pacing)."""
    try:
        raw = math.ldexp(base, min(max(exponent, 0), _MAX_EXPONENT))
    except OverflowError:
        return cap
    return min(cap, raw)


class Backoff:
    """``delay(attempt)`` = ``rng.uniform(0, min(cap, base * 2**attempt))``; attempt is 0-based."""

    __slots__ = ("_rng", "base", "cap")

    def __init__(
        self, base: float = 0.5, cap: float = 30.0, rng: random.Random | None = None
    ) -> None:
        if not (math.isfinite(base) and base >= 0):
            raise ValueError(f"base must be a finite number >= 0, got {base!r}")
        if not (math.isfinite(cap) and cap >= 0):
            raise ValueError(f"cap must be a finite number >= 0, got {cap!r}")
        self.base = float(base)
        self.cap = float(cap)
        # A private Random: tests inject a seeded one; production never shares state
        # with the global generator.
        self._rng = rng if rng is not None else random.Random()

    def ceiling(self, attempt: int) -> float:
        """The un-jittered upper bound for ``attempt``: ``min(cap, base * 2**attempt)``."""
        return doubling(self.base, attempt, self.cap)

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (0 for the first retry)."""
        return self._rng.uniform(0.0, self.ceiling(attempt))

    def __repr__(self) -> str:
        return f"Backoff(base={self.base!r}, cap={self.cap!r})"
