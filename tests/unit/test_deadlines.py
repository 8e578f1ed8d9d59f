"""``Deadlines``: one loop timer for many invitation timeouts (issue 13)."""

from __future__ import annotations

import asyncio

from ucwa_async._deadlines import Deadlines


async def test_deadlines_fire_in_order_and_skip_what_ended() -> None:
    loop = asyncio.get_running_loop()
    fired: list[str] = []
    ended = {"b"}
    deadlines = Deadlines(lambda key, _when: fired.append(key), lambda k, _w: k not in ended)
    now = loop.time()
    deadlines.add("c", now + 0.06)
    deadlines.add("a", now + 0.02)  # earlier than the armed timer: re-armed
    deadlines.add("b", now + 0.04)
    await asyncio.sleep(0.1)
    assert fired == ["a", "c"]
    assert len(deadlines) == 0


async def test_stale_deadlines_are_compacted_and_close_stops_everything() -> None:
    loop = asyncio.get_running_loop()
    fired: list[str] = []
    live: set[str] = set()
    deadlines = Deadlines(lambda key, _when: fired.append(key), lambda k, _w: k in live)
    far = loop.time() + 60
    for n in range(200):
        deadlines.add(str(n), far)  # none of them live: compacted as the heap grows
    assert len(deadlines) < 100
    live.add("soon")
    deadlines.add("soon", loop.time() + 0.01)
    deadlines.close()
    await asyncio.sleep(0.03)
    assert fired == []
    assert len(deadlines) == 0
