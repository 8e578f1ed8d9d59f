"""ReauthBudget: a count per sliding window, spacing between grants; a fake clock, no sleeps."""

from __future__ import annotations

import pytest

from ucwa_async._core.budget import ReauthBudget, RefusingEndpoints


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def budget(clock: Clock, **overrides: float) -> ReauthBudget:
    options: dict[str, float] = {"max_grants": 3, "window": 60.0, "base": 0.5, "cap": 10.0}
    options.update(overrides)
    return ReauthBudget(
        max_grants=int(options["max_grants"]),
        window=options["window"],
        base=options["base"],
        cap=options["cap"],
        clock=clock,
    )


def test_first_grant_is_immediate_and_not_counted() -> None:
    clock = Clock()
    b = budget(clock)
    assert b.delay() == 0.0
    b.record(reauthentication=False)  # sign-in
    assert b.in_window == 0


def test_grants_are_spaced_then_the_budget_is_spent() -> None:
    clock = Clock()
    b = budget(clock)
    b.record(reauthentication=False)
    # Right after sign-in: wait base, then 2*base, then 4*base after each grant.
    assert b.delay() == pytest.approx(0.5)
    clock.now += 0.5
    assert b.delay() == 0.0
    b.record(reauthentication=True)
    assert b.delay() == pytest.approx(1.0)
    clock.now += 1.0
    b.record(reauthentication=True)
    assert b.delay() == pytest.approx(2.0)
    clock.now += 2.0
    b.record(reauthentication=True)
    assert b.in_window == 3
    assert b.delay() is None  # spent: no waiting it out inside the window
    clock.now += 30.0
    assert b.delay() is None


def test_the_window_slides() -> None:
    clock = Clock()
    b = budget(clock, max_grants=2, window=10.0)
    b.record(reauthentication=True)
    clock.now += 4.0
    b.record(reauthentication=True)
    assert b.delay() is None
    clock.now += 6.0  # the first one leaves the window
    assert b.in_window == 1
    assert b.delay() == 0.0
    clock.now += 4.0
    assert b.in_window == 0


def test_a_grant_long_after_the_last_one_is_immediate() -> None:
    clock = Clock()
    b = budget(clock)
    b.record(reauthentication=False)
    clock.now += 8 * 3600  # a token that expired after a working day
    assert b.delay() == 0.0


def test_spacing_is_capped() -> None:
    b = ReauthBudget(max_grants=100, base=1.0, cap=5.0)
    assert [b.spacing(k) for k in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert b.spacing(10**9) == 5.0


def test_zero_grants_means_never_reauthenticate() -> None:
    b = ReauthBudget(max_grants=0)
    assert b.delay() is None
    assert "max_grants=0" in repr(b)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_grants": -1},
        {"max_grants": True},
        {"window": -1.0},
        {"base": float("nan")},
        {"cap": float("inf")},
    ],
)
def test_bad_arguments(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="must be"):
        ReauthBudget(**kwargs)  # type: ignore[arg-type]


def test_expiries_are_not_counted_but_still_spaced() -> None:
    """Replacing a token the server had accepted is an expiry: free, however many."""
    clock = Clock()
    b = budget(clock, max_grants=2, base=1.0, cap=4.0)
    b.record(reauthentication=False)
    for _ in range(10):
        clock.now += 100.0
        assert b.delay() == 0.0
        b.record(reauthentication=True, futile=False)
    assert b.futile_in_window == 0
    # Back to back, expiries still slow down: the spacing counts every re-authentication.
    b.record(reauthentication=True, futile=False)
    b.record(reauthentication=True, futile=False)
    assert b.delay() == pytest.approx(4.0)  # capped; 3 in the window
    assert b.in_window == 3


def test_futile_reauthentications_spend_the_budget() -> None:
    clock = Clock()
    b = budget(clock, max_grants=2, base=0.0)
    b.record(reauthentication=True, futile=False)
    b.record(reauthentication=True, futile=True)
    assert b.delay() == 0.0
    b.record(reauthentication=True, futile=True)
    assert b.futile_in_window == 2
    assert b.delay() is None


def test_failed_grants_are_spaced_ever_wider_up_to_minutes_never_spent() -> None:
    """A token endpoint that fails (5xx, unreachable) while the token has expired: neither
    counted as futile (a 4 s blip must not end the session) nor retried at the pace of
    the re-authentication spacing forever: the gap after each failure doubles from
    ``base`` up to ``failure_cap``."""
    clock = Clock()
    b = budget(clock)
    assert b.failures == 0
    assert b.retry_in() == 0.0
    gaps = []
    for _ in range(14):
        b.record(reauthentication=True, futile=False)
        b.failed()
        gaps.append(b.retry_in())
        clock.now += b.retry_in()
        assert b.retry_in() == 0.0
    assert gaps == [0.5, 1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300, 300]
    assert b.failures == 14
    assert b.futile_in_window == 0
    assert b.delay() is not None  # never spent by failures
    b.succeeded()  # the endpoint works again: the next failure starts from base
    assert (b.failures, b.retry_in()) == (0, 0.0)
    b.failed()
    assert b.retry_in() == pytest.approx(0.5)
    clock.now += 0.2
    assert b.retry_in() == pytest.approx(0.3)


def test_failure_cap_is_configurable() -> None:
    clock = Clock()
    b = ReauthBudget(base=1.0, cap=2.0, failure_cap=5.0, clock=clock)
    for _ in range(6):
        b.failed()
    assert b.retry_in() == 5.0
    with pytest.raises(ValueError, match="failure_cap"):
        ReauthBudget(failure_cap=-1.0)


def test_a_failed_grant_s_retry_after_is_the_least_gap_up_to_the_failure_cap() -> None:
    clock = Clock()
    b = budget(clock)
    b.failed(retry_after=120.0)
    assert b.retry_in() == 120.0  # not base (0.5 s)
    clock.now += 119.0
    assert b.retry_in() == 1.0
    b.failed(retry_after=10_000.0)
    assert b.retry_in() == b.failure_cap
    b.succeeded()
    assert b.retry_in() == 0.0


def test_failure_log_level_warns_at_powers_of_two() -> None:
    import logging

    from ucwa_async._core.budget import failure_log_level

    warned = [n for n in range(1, 40) if failure_log_level(n) == logging.WARNING]
    assert warned == [1, 2, 4, 8, 16, 32]
    assert failure_log_level(3) == logging.DEBUG


# -- RefusingEndpoints: an endpoint that refuses every fresh token ------------------------


def refusing(clock: Clock, **overrides: float) -> RefusingEndpoints:
    options: dict[str, float] = {"free": 1, "base": 60.0, "cap": 600.0, "size": 4}
    options.update(overrides)
    return RefusingEndpoints(
        free=int(options["free"]),
        base=options["base"],
        cap=options["cap"],
        size=int(options["size"]),
        clock=clock,
    )


def test_an_endpoint_refusing_fresh_tokens_is_held_ever_longer_until_it_takes_one() -> None:
    clock = Clock()
    r = refusing(clock)
    assert not r
    assert r.wait("POST /me/reportMyActivity") == 0.0
    # The first ``free`` refusals cost nothing: a fresh token may be refused once in a
    # while (a front end that has not seen it yet).
    assert r.refused("POST /me/reportMyActivity") == 1
    assert r.wait("POST /me/reportMyActivity") == 0.0
    held = []
    for _ in range(8):
        r.refused("POST /me/reportMyActivity")
        held.append(r.wait("POST /me/reportMyActivity"))
        clock.now += held[-1]
        assert r.wait("POST /me/reportMyActivity") == 0.0
    assert held == [60.0, 120.0, 240.0, 480.0, 600.0, 600.0, 600.0, 600.0]
    assert r.refusals("POST /me/reportMyActivity") == 9
    assert r.wait("GET /people/contacts") == 0.0  # per endpoint
    r.refused("POST /me/reportMyActivity")
    clock.now += 1.0
    assert r.wait("POST /me/reportMyActivity") == pytest.approx(599.0)
    r.accepted("POST /me/reportMyActivity")  # it took a token: forgotten
    assert r.wait("POST /me/reportMyActivity") == 0.0
    assert r.refusals("POST /me/reportMyActivity") == 0
    assert not r


def test_refusing_endpoints_are_bounded() -> None:
    clock = Clock()
    r = refusing(clock, free=0, size=4)
    for n in range(10):
        r.refused(f"GET /{n}")
    assert len(r) == 4
    assert r.wait("GET /0") == 0.0  # the oldest was forgotten
    assert r.wait("GET /9") == 60.0


@pytest.mark.parametrize(
    "kwargs",
    [{"free": -1}, {"base": -1.0}, {"cap": float("nan")}, {"size": 0}, {"free": True}],
)
def test_refusing_endpoints_bad_arguments(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="must be"):
        RefusingEndpoints(**kwargs)  # type: ignore[arg-type]
