"""``python -m ucwa_async.testing --port 0`` runs standalone and prints its URL."""

from __future__ import annotations

import asyncio
import re
import sys

import aiohttp


async def test_standalone_prints_discovery_url_and_serves() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ucwa_async.testing",
        "--port",
        "0",
        "--duration",
        "30",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        first = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        user = (await asyncio.wait_for(proc.stdout.readline(), 5)).decode()
        password = (await asyncio.wait_for(proc.stdout.readline(), 5)).decode()
        match = re.fullmatch(r"discovery_url: (http://127\.0\.0\.1:\d+/\S+)\n", first)
        assert match, first
        assert user.startswith("username: ")
        assert password.startswith("password: ")
        async with aiohttp.ClientSession() as http, http.get(match.group(1)) as resp:
            assert resp.status == 200
            assert "user" in (await resp.json())["_links"]
    finally:
        if proc.returncode is None:
            proc.terminate()
        await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == 0  # SIGTERM is a clean stop
