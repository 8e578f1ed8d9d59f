"""Running a step generator (``wire.decode_steps``, ``ChannelState.on_response_steps``)
to its end in a test, counting its steps."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any


def run_counting(steps: Generator[None, None, Any]) -> tuple[int, Any]:
    """(how many times ``steps`` yielded, the value it returned)."""
    taken = 0
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            return taken, stop.value
        taken += 1
