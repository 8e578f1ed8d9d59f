"""Helpers shared by the integration tests (import them from here, not from conftest).

A conftest is pytest's to import: importing it by dotted path (``tests.integration.conftest``)
only works when the repository root happens to be on ``sys.path`` (``python -m pytest``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import ucwa_async

SessionFactory = Callable[..., ucwa_async.Session]


def _is_server_task(task: asyncio.Task[Any]) -> bool:
    code = getattr(task.get_coro(), "cr_code", None)
    return code is not None and "aiohttp" in code.co_filename and "web_" in code.co_filename


async def assert_no_leftover_tasks(check: Callable[[], None]) -> None:
    """Run ``no_leftover_tasks`` once the simulator's connection handlers have wound down.

    The simulator runs in the test's loop: a connection the client just closed leaves
    an aiohttp *server* task finishing its cancellation for a tick or two. Only those
    are waited for (bounded); any client task still alive fails the check.
    """
    for _ in range(100):
        current = asyncio.current_task()
        if not [
            t
            for t in asyncio.all_tasks()
            if t is not current and not t.done() and _is_server_task(t)
        ]:
            break
        await asyncio.sleep(0.01)
    check()
