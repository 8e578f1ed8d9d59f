"""The floor: a minimal hand-written raw-aiohttp UCWA client, no error handling.

Signs in, creates an application, runs one P-GET loop, and has C workers POST
continueMessaging / continuePhoneAudio (-> 201) and wait for the ``completed`` event.
Events are matched by the embedded resource's ``operationId``, registered before the
POST (events may beat the 201). This is the least HTTP and Python work the job takes
with aiohttp; ``ucwa_async.Session`` is measured against it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

PHONE_NUMBER = "tel:+14255551234"
MESSAGE_HREF = "data:text/plain;base64," + base64.b64encode(b"benchmark").decode()


def _one(links: Any) -> Any:
    return links[0] if isinstance(links, list) else links


async def sign_in(
    http: aiohttp.ClientSession, discovery: str, user: str, password: str, accept: str
) -> dict[str, Any]:
    """Discovery -> token -> user -> application; the continue URLs of two logs."""
    root = await (await http.get(discovery)).json()
    user_url = root["_links"]["user"]["href"]
    origin = user_url.split("/autodiscover", 1)[0]
    token = await (
        await http.post(
            origin + "/WebTicket/oauthtoken",
            data={"grant_type": "password", "username": user, "password": password},
        )
    ).json()
    auth = {"Authorization": "Bearer " + token["access_token"]}
    user_res = await (await http.get(user_url, headers=auth)).json()
    app = await (
        await http.post(
            user_res["_links"]["applications"]["href"],
            json={"UserAgent": "floor", "EndpointId": str(uuid.uuid4()), "Culture": "en-US"},
            headers=auth,
        )
    ).json()
    comm = app["_embedded"]["communication"]["_links"]
    logs = await (await http.get(origin + comm["conversationLogs"]["href"], headers=auth)).json()
    targets: dict[str, str] = {}
    for link in logs["_links"]["conversationLog"]:
        log = await (await http.get(origin + link["href"], headers=auth)).json()
        for rel in ("continueMessaging", "continuePhoneAudio"):
            if rel in log["_links"] and rel not in targets:
                targets[rel] = origin + _one(log["_links"][rel])["href"]
    return {
        "origin": origin,
        "auth": auth,
        "pget_headers": {**auth, "Accept": accept},
        "events": origin + app["_links"]["events"]["href"],
        "targets": targets,
        "communication": {rel: origin + _one(link)["href"] for rel, link in comm.items()},
    }


async def event_batches(
    http: aiohttp.ClientSession, ctx: dict[str, Any]
) -> AsyncIterator[dict[str, Any]]:
    """The floor's P-GET loop: every event batch, decoded, for as long as it is iterated."""
    url = ctx["events"]
    while True:
        async with http.get(url + "&timeout=180", headers=ctx["pget_headers"]) as resp:
            batch: dict[str, Any] = json.loads(await resp.read())
        yield batch
        url = ctx["origin"] + batch["_links"]["next"]["href"]


def resolve_completed(batch: dict[str, Any], waiting: dict[str, asyncio.Future[str]]) -> None:
    """The floor's dispatch: each ``completed`` event's status to the future waiting for
    its operationId (nothing else is looked at)."""
    for sender in batch.get("sender", ()):
        for event in sender["events"]:
            if event["type"] != "completed":
                continue
            resource = next(iter(event["_embedded"].values()))
            future = waiting.pop(resource["operationId"], None)
            if future is not None:
                future.set_result(event["status"])


async def run(
    discovery: str, user: str, password: str, *, total: int, concurrency: int
) -> dict[str, float]:
    """``total`` invitations (even: IM, odd: phone audio) at ``concurrency``; timed."""
    async with aiohttp.ClientSession() as http:
        ctx = await sign_in(http, discovery, user, password, "application/json")
        auth, targets = ctx["auth"], ctx["targets"]
        waiting: dict[str, asyncio.Future[str]] = {}
        loop = asyncio.get_running_loop()

        async def channel() -> None:
            async for batch in event_batches(http, ctx):  # cancelled by the owner
                resolve_completed(batch, waiting)

        async def one(n: int) -> str:
            operation_id = uuid.uuid4().hex
            if n % 2 == 0:
                target = targets["continueMessaging"]
                body: dict[str, Any] = {
                    "operationId": operation_id,
                    "_links": {"message": {"href": MESSAGE_HREF}},
                }
            else:
                target = targets["continuePhoneAudio"]
                body = {"operationId": operation_id, "phoneNumber": PHONE_NUMBER}
            future: asyncio.Future[str] = loop.create_future()
            waiting[operation_id] = future
            async with http.post(target, json=body, headers=auth) as resp:
                assert resp.status == 201, resp.status
            return await future

        counter = iter(range(total))
        outcomes: list[str] = []

        async def worker() -> None:
            for n in counter:
                outcomes.append(await one(n))

        reader = asyncio.create_task(channel())
        try:
            await asyncio.sleep(0.2)  # the first P-GET must be pending before the first POST
            for _ in range(min(20, total)):  # warm-up: connections, code paths
                await one(0)
            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            elapsed = time.perf_counter() - started
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
    if len(outcomes) != total or any(o != "Success" for o in outcomes):
        raise RuntimeError(f"floor: {len(outcomes)} of {total} completed, not all Success")
    return {"invitations": total, "seconds": elapsed, "per_second": total / elapsed}
