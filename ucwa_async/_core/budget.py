"""Budgets of the loops that talk to a server (sans-IO): how many tries per window, how
far apart. Pure counters over a clock the caller owns (injectable); nothing here waits.

- :class:`ReauthBudget`: token grants (re-authentications).
- :class:`RecreationBudget`: re-creations of a lost application.
- :class:`RefusingEndpoints`: endpoints that refuse every fresh token.

The re-authentication budget: how many token grants, how far apart.

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

A grant that *fails* (the token endpoint answers 5xx or cannot be reached) is neither
counted as futile (a blip of a few seconds must not end a session) nor retried at the
pace above forever: after ``n`` failures in a row the next grant waits
``base * 2**(n-1)``, up to ``failure_cap`` (minutes), until one succeeds.

The clock is injectable (``time.monotonic`` by default), so tests need no sleeps.
The caller sleeps and counts; nothing here waits.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from ucwa_async._core.backoff import check_delays, doubling

__all__ = [
    "ReauthBudget",
    "RecreationBudget",
    "RefusingEndpoints",
    "SlidingWindow",
    "failure_log_level",
]


def failure_log_level(failures: int) -> int:
    """The log level of the ``failures``-th failure in a row: WARNING at the 1st, 2nd,
    4th, 8th... (a server failing forever must not write a WARNING at every try,
    forever), DEBUG otherwise."""
    return logging.WARNING if failures & (failures - 1) == 0 else logging.DEBUG


class SlidingWindow:
    """Times of the events of the last ``window`` seconds (oldest first)."""

    __slots__ = ("_stamps", "window")

    def __init__(self, window: float) -> None:
        self.window = float(window)
        self._stamps: deque[float] = deque()

    def add(self, now: float) -> None:
        self._stamps.append(now)

    def count(self, now: float) -> int:
        """Events within the window ending at ``now`` (older ones are forgotten)."""
        horizon = now - self.window
        while self._stamps and self._stamps[0] <= horizon:
            self._stamps.popleft()
        return len(self._stamps)

    def newest(self) -> float | None:
        return self._stamps[-1] if self._stamps else None

    def drop_newest(self) -> None:
        if self._stamps:
            self._stamps.pop()


class ReauthBudget:
    """At most ``max_grants`` futile re-authentications per ``window`` seconds, spaced out."""

    __slots__ = (
        "_all",
        "_clock",
        "_failed_at",
        "_failures",
        "_futile",
        "_last",
        "_not_before",
        "base",
        "cap",
        "failure_cap",
        "max_grants",
        "window",
    )

    def __init__(
        self,
        *,
        max_grants: int = 3,
        window: float = 60.0,
        base: float = 0.5,
        cap: float = 10.0,
        failure_cap: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        _check_count("max_grants", max_grants, 0)
        check_delays(window=window, base=base, cap=cap, failure_cap=failure_cap)
        self.max_grants = max_grants
        self.window = float(window)
        self.base = float(base)
        self.cap = float(cap)
        self.failure_cap = float(failure_cap)
        self._failures = 0  # failed grants since the last one that succeeded
        self._failed_at = 0.0
        self._not_before = 0.0  # a failed grant's Retry-After: no grant before it
        self._clock = clock
        self._all = SlidingWindow(window)  # every re-authentication
        self._futile = SlidingWindow(window)  # those the budget counts
        self._last: float | None = None

    def spacing(self, reauths: int) -> float:
        """The least gap before re-authentication number ``reauths`` (0-based) of a window."""
        return doubling(self.base, reauths, self.cap)

    @property
    def in_window(self) -> int:
        """Re-authentications within the current window (futile or not)."""
        return self._all.count(self._clock())

    @property
    def futile_in_window(self) -> int:
        """Futile re-authentications within the current window: what the budget counts."""
        return self._futile.count(self._clock())

    def delay(self) -> float | None:
        """Seconds to wait before the next re-authentication; None: the budget is spent."""
        now = self._clock()
        if self._futile.count(now) >= self.max_grants:
            return None
        if self._last is None:
            return 0.0
        return max(0.0, self._last + self.spacing(self._all.count(now)) - now)

    def record(self, *, reauthentication: bool, futile: bool = True) -> None:
        """A grant was made now. ``reauthentication``: it replaced an existing token;
        ``futile``: one the server had never accepted (counted against the budget)."""
        now = self._clock()
        self._last = now
        if reauthentication:
            self._all.add(now)
            if futile:
                self._futile.add(now)

    @property
    def failures(self) -> int:
        """Failed grants in a row (0 once one succeeds)."""
        return self._failures

    def failed(self, retry_after: float | None = None) -> int:
        """A grant failed now (the token endpoint failed, not refused): the count in a row.
        ``retry_after``: the endpoint's Retry-After (seconds, up to ``failure_cap``), the
        least gap before the next grant."""
        self._failures += 1
        self._failed_at = self._clock()
        wait = min(retry_after, self.failure_cap) if retry_after is not None else 0.0
        self._not_before = self._failed_at + max(0.0, wait)
        return self._failures

    def succeeded(self) -> None:
        """A grant succeeded: failures are forgotten."""
        self._failures = 0

    def retry_in(self) -> float:
        """Seconds before a grant may follow the failed ones (0: now, or none failed)."""
        if not self._failures:
            return 0.0
        gap = doubling(self.base, self._failures - 1, self.failure_cap)
        return max(0.0, self._failed_at + gap - self._clock(), self._not_before - self._clock())

    def __repr__(self) -> str:
        return (
            f"ReauthBudget(max_grants={self.max_grants!r}, window={self.window!r}, "
            f"base={self.base!r}, cap={self.cap!r})"
        )


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
        check_delays(window=window, base=base, cap=cap, min_interval=min_interval)
        self.limit = limit
        self.hard_limit = hard_limit
        self.window = float(window)
        self.base = float(base)
        self.cap = max(float(cap), self.base)
        self.min_interval = float(min_interval)
        self._all = SlidingWindow(window)
        self._unproven = SlidingWindow(window)
        self._streak = 0
        self._proved = True  # nothing re-created yet: nothing to prove

    @property
    def streak(self) -> int:
        """Re-creations since a channel last proved to work."""
        return self._streak

    def used(self, now: float) -> tuple[int, int]:
        """(unproven, all) re-creations within the window ending at ``now``."""
        return self._unproven.count(now), self._all.count(now)

    def spent(self, now: float) -> bool:
        unproven, every = self.used(now)
        return unproven >= self.limit or every >= self.hard_limit

    def next_delay(self, now: float) -> float | None:
        """Seconds to wait before re-creating, or None when the budget is spent."""
        if self.spent(now):
            return None
        pause = 0.0 if self._streak == 0 else doubling(self.base, self._streak - 1, self.cap)
        last = self._all.newest()
        if last is not None:
            pause = max(pause, last + self.min_interval - now)
        return max(0.0, pause)

    def created(self, now: float) -> None:
        """A new application exists (counted against the budget until it proves to work)."""
        self._all.add(now)
        self._unproven.add(now)
        self._streak += 1
        self._proved = False

    def proven(self) -> None:
        """The current application's channel held a poll or delivered events."""
        self._streak = 0
        if not self._proved:
            self._proved = True
            self._unproven.drop_newest()  # the newest stamp is the current application's


class RefusingEndpoints:
    """Endpoints that refused the token granted because of their own 401, and for how
    long no grant goes for them again.

    A 401 from an endpoint that refuses every token while the rest of the API takes the
    same token (a keep-alive's ``reportMyActivity`` POST...) looks like an expiry each
    time: the token had worked. :class:`ReauthBudget` does not count expiries, and its
    window slides between two keep-alives: one password grant per period, forever. Here
    the refusals count per endpoint (``key``), in a row, with no window: the first
    ``free`` cost nothing (a fresh token refused once by a front end that has not seen it
    yet); past them, each refusal holds the endpoint's grants for ``base`` seconds,
    doubling up to ``cap``. An endpoint that takes a token (:meth:`accepted`) is
    forgotten. At most ``size`` endpoints are remembered (the oldest is forgotten).
    """

    __slots__ = ("_clock", "_endpoints", "base", "cap", "free", "size")

    def __init__(
        self,
        *,
        free: int = 4,
        base: float = 60.0,
        cap: float = 86400.0,
        size: int = 64,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        _check_count("free", free, 0)
        _check_count("size", size, 1)
        check_delays(base=base, cap=cap)
        self.free = free
        self.base = float(base)
        self.cap = float(cap)
        self.size = size
        self._clock = clock
        # key -> (refusals in a row, clock time before which no grant goes for it)
        self._endpoints: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._endpoints)

    def refusals(self, key: str) -> int:
        """Fresh tokens ``key`` refused in a row."""
        return self._endpoints.get(key, (0, 0.0))[0]

    def wait(self, key: str) -> float:
        """Seconds before a token may be granted because of ``key``'s 401 (0: now)."""
        entry = self._endpoints.get(key)
        return 0.0 if entry is None else max(0.0, entry[1] - self._clock())

    def refused(self, key: str) -> int:
        """``key`` refused a token granted because of its 401: the count in a row."""
        count = self.refusals(key) + 1
        held = doubling(self.base, count - self.free - 1, self.cap) if count > self.free else 0.0
        self._endpoints[key] = (count, self._clock() + held)
        self._endpoints.move_to_end(key)
        while len(self._endpoints) > self.size:
            self._endpoints.popitem(last=False)
        return count

    def accepted(self, key: str) -> None:
        """``key`` took a token: it refuses none."""
        self._endpoints.pop(key, None)

    def __repr__(self) -> str:
        return (
            f"RefusingEndpoints(free={self.free!r}, base={self.base!r}, cap={self.cap!r}, "
            f"size={self.size!r})"
        )


def _check_count(name: str, value: object, least: int) -> None:
    """A count argument: an int (not a bool) of at least ``least``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        raise ValueError(f"{name} must be an int >= {least}, got {value!r}")
