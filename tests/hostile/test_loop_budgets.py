"""Every loop that talks to a server has a budget: servers that answer at once, with
events, on the hostile server (the simulator always moves the cursor on)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web

import ucwa_async

from ._server import APP, HostileServer

ME = APP + "/me"


async def test_a_batch_that_never_moves_the_cursor_is_not_polled_in_a_hot_loop(
    server: HostileServer, make_session: Callable[..., ucwa_async.Session]
) -> None:
    # EventsInUCWA.md: "The URL changes with each request". A server answering every
    # P-GET at once with an event and a ``next`` that is the URL just polled (it never
    # takes our acknowledgement) was polled ~3 000 times a second.
    stuck = {"on": False, "pgets": 0}

    async def pget(request: web.Request) -> web.StreamResponse | None:
        if not stuck["on"]:
            return None
        stuck["pgets"] += 1
        return server.answer(
            {
                "_links": {"next": {"href": APP + "/events?ack=7"}},
                "sender": [
                    {
                        "rel": "me",
                        "href": ME,
                        "events": [{"link": {"rel": "me", "href": ME}, "type": "updated"}],
                    }
                ],
            }
        )

    server.hooks["pget"] = pget
    async with make_session() as session:
        await session.wait_connected(timeout=5)
        stuck["on"] = True
        await asyncio.sleep(2.0)
        pgets = stuck["pgets"]
        # 0.5 s, 1 s, then 2 s apart (plus the P-GET under way when it started)
        assert 2 <= pgets <= 6, pgets
        assert session.stats.events_received >= 2  # its events are still handed on
        # the server moves on again: the channel polls as usual
        stuck["on"] = False

        def polls() -> int:
            return len([s for s in server.seen if "/events" in s.url])

        before = polls()
        for _ in range(40):  # the pacing sleep under way ends within 2 s
            if polls() >= before + 3:
                break
            await asyncio.sleep(0.1)
        assert polls() >= before + 3
        assert session.channel_state is ucwa_async.ChannelStatus.CONNECTED
