"""Measure the simulator's throughput: completed invitations per second.

Not a test: a script. It starts ``python -m ucwa_async.testing`` in its own process,
signs in with a plain aiohttp client, keeps one P-GET running, and has N workers
POST continueMessaging back to back; it counts ``completed`` events read from the
event channel and prints invitations/s.

    python tests/simulator/measure_throughput.py [--seconds 5] [--workers 64] [--xml]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import re
import subprocess
import sys
import time
import uuid

import aiohttp

_URL = re.compile(r"discovery_url: (\S+)")


async def _sign_in(session: aiohttp.ClientSession, discovery: str, user: str, pw: str) -> dict:
    root = await (await session.get(discovery)).json()
    user_url = root["_links"]["user"]["href"]
    origin = user_url.split("/autodiscover", 1)[0]
    token = await (
        await session.post(
            origin + "/WebTicket/oauthtoken",
            data={"grant_type": "password", "username": user, "password": pw},
        )
    ).json()
    auth = {"Authorization": "Bearer " + token["access_token"]}
    user_res = await (await session.get(user_url, headers=auth)).json()
    app = await (
        await session.post(
            user_res["_links"]["applications"]["href"],
            json={"UserAgent": "bench", "EndpointId": str(uuid.uuid4()), "Culture": "en-US"},
            headers=auth,
        )
    ).json()
    return {"origin": origin, "auth": auth, "app": app}


async def _run(discovery: str, user: str, pw: str, seconds: float, workers: int, xml: bool) -> None:
    connector = aiohttp.TCPConnector(limit=workers + 4)
    async with aiohttp.ClientSession(connector=connector) as session:
        ctx = await _sign_in(session, discovery, user, pw)
        origin, auth, app = ctx["origin"], ctx["auth"], ctx["app"]
        accept = {"Accept": "application/xml" if xml else "application/json", **auth}
        comm = app["_embedded"]["communication"]["_links"]
        logs = await (
            await session.get(origin + comm["conversationLogs"]["href"], headers=auth)
        ).json()
        first = logs["_links"]["conversationLog"]
        log_href = (first[0] if isinstance(first, list) else first)["href"]
        log = await (await session.get(origin + log_href, headers=auth)).json()
        target = origin + log["_links"]["continueMessaging"]["href"]
        link = {"href": "data:text/plain;base64," + base64.b64encode(b"benchmark").decode()}

        completed = 0
        posted = 0
        stop_posting = asyncio.Event()
        all_done = asyncio.Event()
        final_posted: int | None = None

        async def channel() -> None:
            nonlocal completed
            url = origin + app["_links"]["events"]["href"]
            while True:
                async with session.get(url + "&timeout=180", headers=accept) as resp:
                    raw = await resp.read()
                if xml:
                    completed += raw.count(b"<completed ")
                    url = origin + re.search(rb'rel="next" href="([^"]+)"', raw).group(1).decode()
                else:
                    batch = json.loads(raw)
                    for sender in batch.get("sender", ()):
                        completed += sum(1 for e in sender["events"] if e["type"] == "completed")
                    url = origin + batch["_links"]["next"]["href"]
                if final_posted is not None and completed >= final_posted:
                    all_done.set()

        async def worker() -> None:
            nonlocal posted
            while not stop_posting.is_set():
                async with session.post(
                    target,
                    json={
                        "operationId": uuid.uuid4().hex,
                        "_links": {"message": link},
                    },
                    headers=auth,
                ) as resp:
                    if resp.status != 201:
                        raise RuntimeError(f"POST answered {resp.status}: {await resp.text()}")
                posted += 1

        reader = asyncio.create_task(channel())
        # makeMeAvailable succeeds only once the P-GET is pending (as UCWA wants it).
        for _ in range(100):
            async with session.post(
                origin + app["_embedded"]["me"]["_links"]["makeMeAvailable"]["href"],
                json={"supportedModalities": ["Messaging"], "supportedMessageFormats": ["Plain"]},
                headers=auth,
            ) as resp:
                if resp.status == 204:
                    break
            await asyncio.sleep(0.05)
        else:
            raise RuntimeError("the event channel never came up")
        tasks = [asyncio.create_task(worker()) for _ in range(workers)]
        await asyncio.sleep(1.0)  # warm-up
        c0, t0 = completed, time.perf_counter()
        await asyncio.sleep(seconds)
        c1, t1 = completed, time.perf_counter()
        stop_posting.set()
        await asyncio.gather(*tasks)
        final_posted = posted
        if completed >= final_posted:
            all_done.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_done.wait(), 5)  # the last batches still in flight
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        rate = (c1 - c0) / (t1 - t0)
        wire = "xml" if xml else "json"
        print(
            f"{rate:.0f} completed invitations/s ({wire}, {workers} workers, {seconds:g} s;"
            f" {posted} posted, {completed} completed)"
        )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--workers", type=int, default=64)
    p.add_argument("--xml", action="store_true")
    args = p.parse_args()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ucwa_async.testing",
            "--port",
            "0",
            "--pget-timeout-cap",
            "30",
            "--request-log-limit",
            "1000",
            "--duration",
            str(args.seconds + 60),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]
        url = _URL.search(lines[0]).group(1)
        user = lines[1].split(": ", 1)[1].strip()
        pw = lines[2].split(": ", 1)[1].strip()
        asyncio.run(_run(url, user, pw, args.seconds, args.workers, args.xml))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
