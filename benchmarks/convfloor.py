"""The conversations floor: the work of :mod:`benchmarks.conversations` in raw aiohttp.

Signs in as :mod:`benchmarks.floor` does, runs one P-GET loop, and per conversation:
POST startMessaging (-> 201), wait for its messagingInvitation ``completed`` event
(matched by ``operationId``, registered before the POST), take the sendMessage and
stopMessaging links from the ``messaging`` resource the same push carried, POST the M
messages (each -> 201 with the message's Location), wait for each message's
``completed`` event (matched by that href; the event may beat the 201), read the M
incoming message events (their text is the ``plainMessage`` data URI), then POST
stopMessaging. Events are dispatched by operationId, message href and sender
(conversation) href. No error handling: the least work the job takes with aiohttp.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote_plus

import aiohttp

from benchmarks.floor import event_batches, sign_in

PERSON = "sip:lenea@contoso.com"  # echoes every message (the simulator's default people)
WARM_UP = 5  # conversations before the timed part: connections, code paths
_TEXT_PLAIN = {"Content-Type": "text/plain; charset=utf-8"}


def texts_of(index: int, messages: int) -> list[str]:
    return [f"c{index}-m{n}" for n in range(messages)]


def _href(link: Any) -> str:
    return str((link[0] if isinstance(link, list) else link)["href"])


async def run(
    discovery: str,
    user: str,
    password: str,
    *,
    conversations: int,
    messages: int,
    probe: Callable[[], Awaitable[dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """``conversations`` at once, ``messages`` each way; timed as the ucwa_async side."""
    async with aiohttp.ClientSession() as http:
        ctx = await sign_in(http, discovery, user, password, "application/json")
        origin, auth = ctx["origin"], ctx["auth"]
        start_url = ctx["communication"]["startMessaging"]
        loop = asyncio.get_running_loop()
        invitations: dict[str, asyncio.Future[tuple[str, str]]] = {}
        delivered: dict[str, asyncio.Future[str]] = {}  # message href -> its status
        links: dict[str, tuple[str, str]] = {}  # conversation -> sendMessage, stopMessaging
        inboxes: defaultdict[str, asyncio.Queue[str]] = defaultdict(asyncio.Queue)

        def slot(href: str) -> asyncio.Future[str]:
            future = delivered.get(href)
            if future is None:
                future = delivered[href] = loop.create_future()
            return future

        async def channel() -> None:
            async for batch in event_batches(http, ctx):  # cancelled by the owner
                for sender in batch.get("sender", ()):
                    source = sender["href"]
                    for event in sender["events"]:
                        rel = event["link"]["rel"]
                        if rel == "message":
                            resource = event["_embedded"]["message"]
                            if resource["direction"] == "Incoming":
                                uri = resource["_links"]["plainMessage"]["href"]
                                inboxes[source].put_nowait(unquote_plus(uri.partition(",")[2]))
                            elif event["type"] == "completed":
                                slot(event["link"]["href"]).set_result(event["status"])
                        elif rel == "messaging" and event["type"] == "updated":
                            res_links = event["_embedded"]["messaging"]["_links"]
                            if "sendMessage" in res_links:
                                links[source] = (
                                    origin + _href(res_links["sendMessage"]),
                                    origin + _href(res_links["stopMessaging"]),
                                )
                        elif rel == "messagingInvitation" and event["type"] == "completed":
                            resource = event["_embedded"]["messagingInvitation"]
                            invitations.pop(resource["operationId"]).set_result(
                                (event["status"], _href(resource["_links"]["conversation"]))
                            )

        async def one(index: int) -> tuple[list[str], list[str]]:
            operation_id = uuid.uuid4().hex
            invited = invitations[operation_id] = loop.create_future()
            body = {"to": PERSON, "operationId": operation_id, "subject": f"bench {index}"}
            async with http.post(start_url, json=body, headers=auth) as resp:
                assert resp.status == 201, resp.status
            status, conversation = await invited
            assert status == "Success", status
            send_url, stop_url = links[conversation]
            texts = texts_of(index, messages)
            hrefs: list[str] = []
            for text in texts:
                async with http.post(
                    send_url, data=text.encode(), headers={**auth, **_TEXT_PLAIN}
                ) as resp:
                    assert resp.status == 201, resp.status
                    hrefs.append(resp.headers["Location"])
            for href in hrefs:
                assert await slot(href) == "Success"
                del delivered[href]
            inbox = inboxes[conversation]
            received = [await inbox.get() for _ in range(messages)]
            async with http.post(stop_url, headers=auth) as resp:
                assert resp.status == 204, resp.status
            while not inbox.empty():  # anything more is a duplicate (check() fails it)
                received.append(inbox.get_nowait())
            del inboxes[conversation], links[conversation]
            return texts, received

        reader = asyncio.create_task(channel())
        try:
            await asyncio.sleep(0.2)  # the first P-GET must be pending before the first POST
            warm_up = await asyncio.gather(*(one(-1 - i) for i in range(WARM_UP)))
            check(list(warm_up), "floor")
            before = await probe() if probe else {}
            started, cpu0 = time.perf_counter(), time.process_time()
            results = await asyncio.gather(*(one(i) for i in range(conversations)))
            elapsed = time.perf_counter() - started
            cpu = time.process_time() - cpu0
            after = await probe() if probe else {}
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
    check(list(results), "floor")
    return figures(conversations, messages, elapsed, cpu, before, after)


def check(results: list[tuple[list[str], list[str]]], who: str) -> None:
    """Every echo once, in order; raises otherwise (a benchmark of wrong work is void)."""
    for texts, received in results:
        if received != [f"echo: {text}" for text in texts]:
            raise RuntimeError(f"{who}: sent {texts}, received {received}")


def figures(
    conversations: int,
    messages: int,
    elapsed: float,
    cpu: float,
    before: dict[str, Any],
    after: dict[str, Any],
) -> dict[str, Any]:
    """Messages/s of a timed run (both directions), the client process's CPU time per
    message (less hurt than wall time when other processes take the cores), and the wire
    work the simulator counted."""
    total = 2 * conversations * messages
    out: dict[str, Any] = {
        "conversations": conversations,
        "messages": total,
        "seconds": elapsed,
        "per_second": total / elapsed,
        "cpu_seconds": cpu,
        "cpu_us_per_message": cpu / total * 1e6,
    }
    if before and after:
        out["requests"] = after["requests"] - before["requests"]
        out["pgets"] = after["pgets"] - before["pgets"]
    return out
