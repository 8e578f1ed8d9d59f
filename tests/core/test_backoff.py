"""Backoff: full jitter, capped, pure."""

from __future__ import annotations

import random
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ucwa_async._core.backoff import Backoff


class _MaxRandom(random.Random):
    """uniform() returns its upper bound: exposes the ceiling through delay()."""

    def uniform(self, a: float, b: float) -> float:
        return b


def test_ceiling_doubles_then_caps() -> None:
    backoff = Backoff(base=0.5, cap=30.0, rng=_MaxRandom())
    assert [backoff.delay(n) for n in range(8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_full_jitter_range_and_determinism() -> None:
    a = Backoff(base=1.0, cap=10.0, rng=random.Random(42))
    b = Backoff(base=1.0, cap=10.0, rng=random.Random(42))
    delays = [a.delay(n) for n in range(20)]
    assert delays == [b.delay(n) for n in range(20)]
    assert all(0.0 <= d <= min(10.0, 2.0**n) for n, d in enumerate(delays))
    # Full jitter: not all draws sit at the ceiling.
    assert len(set(delays)) > 10


def test_defaults() -> None:
    backoff = Backoff()
    assert (backoff.base, backoff.cap) == (0.5, 30.0)
    assert 0.0 <= backoff.delay(0) <= 0.5
    assert repr(backoff) == "Backoff(base=0.5, cap=30.0)"


@pytest.mark.parametrize("attempt", [64, 1023, 1024, 10_000, sys.maxsize, 10**100])
def test_huge_attempts_do_not_overflow(attempt: int) -> None:
    assert Backoff(base=0.5, cap=30.0, rng=_MaxRandom()).delay(attempt) == 30.0
    # Even a huge base overflows only internally.
    assert Backoff(base=1e308, cap=5.0).ceiling(attempt) == 5.0


def test_negative_attempt_counts_as_first() -> None:
    assert Backoff(base=0.5, cap=30.0, rng=_MaxRandom()).delay(-3) == 0.5


def test_zero_base_or_cap() -> None:
    assert Backoff(base=0.0, cap=30.0).delay(5) == 0.0
    assert Backoff(base=1.0, cap=0.0).delay(5) == 0.0


@pytest.mark.parametrize(
    ("base", "cap"), [(-1.0, 1.0), (1.0, -1.0), (float("nan"), 1.0), (1.0, float("inf"))]
)
def test_rejects_bad_parameters(base: float, cap: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        Backoff(base=base, cap=cap)


@given(
    attempt=st.integers(min_value=0, max_value=10**6),
    base=st.floats(min_value=0.001, max_value=10.0),
    cap=st.floats(min_value=0.0, max_value=3600.0),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_delay_within_bounds(attempt: int, base: float, cap: float, seed: int) -> None:
    backoff = Backoff(base=base, cap=cap, rng=random.Random(seed))
    delay = backoff.delay(attempt)
    assert 0.0 <= delay <= backoff.ceiling(attempt) <= cap
    if attempt < 30:
        assert backoff.ceiling(attempt) == min(cap, base * 2**attempt)
