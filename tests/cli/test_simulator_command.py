"""``ucwa-async simulator``: prints a discovery URL, serves, stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import aiohttp
import pytest

import ucwa_async
from ucwa_async.cli._args import build_parser
from ucwa_async.cli._simulator import run_simulator

from ._support import CLI, ROOT, child_env, cli, no_leaks, read_until, reap


async def test_simulator_prints_a_discovery_url_and_stops_on_sigterm() -> None:
    proc = await asyncio.create_subprocess_exec(
        *CLI, "simulator", "--port", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL, env=child_env(), cwd=ROOT,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        found, _ = await read_until(
            proc.stdout, r"^discovery_url: (http://127\.0\.0\.1:(\d+)/\S+)$"
        )
        url, port = found[1], int(found[2])
        user, _ = await read_until(proc.stdout, r"^username: (\S+)$")
        password, _ = await read_until(proc.stdout, r"^password: (\S+)$")
        await read_until(proc.stdout, r"^serving; press Ctrl\+C to stop$")
        async with aiohttp.ClientSession() as http, http.get(url) as resp:
            assert resp.status == 200
            assert "user" in (await resp.json())["_links"]
        # The printed credentials work with the real-server commands.
        logs = await cli(
            "logs", "--discovery", url, "--user", user[1], env=child_env(UCWA_PASSWORD=password[1])
        )
        assert logs.returncode == 0, logs.output
        assert "/conversationLogs/" in logs.stdout

        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 15)
    finally:
        await reap(proc)
    assert proc.returncode == 0
    assert "simulator stopped (" in err.decode()
    no_leaks(err.decode())
    with pytest.raises(ConnectionRefusedError):  # nothing listens there any more
        await asyncio.open_connection("127.0.0.1", port)


async def test_simulator_port_in_use_exits_4() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        result = await cli("simulator", "--port", str(port))
    finally:
        server.close()
        await server.wait_closed()
    assert result.returncode == 4
    assert f"ucwa-async: cannot listen on 127.0.0.1:{port}" in result.stderr


async def _serving(task: asyncio.Task[int], capsys: pytest.CaptureFixture[str]) -> str:
    """What the in-process simulator printed, once it says it is serving."""
    out = ""
    for _ in range(200):  # bounded: up to 10 s for the first lines
        out += capsys.readouterr().out
        if "serving;" in out or task.done():
            break
        await asyncio.sleep(0.05)
    assert "serving;" in out, out
    return out


async def test_simulator_in_process_leaves_no_task_behind(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = build_parser().parse_args(["simulator", "--port", "0"])
    before = asyncio.all_tasks()
    task = asyncio.create_task(run_simulator(args))
    await _serving(task, capsys)
    os.kill(os.getpid(), signal.SIGTERM)  # run_simulator's handler turns it into a stop
    assert await asyncio.wait_for(task, 10) == 0
    assert asyncio.all_tasks() == before
    assert "simulator stopped (" in capsys.readouterr().err


def test_both_simulator_runners_print_the_same_keys() -> None:
    # ``python -m ucwa_async.testing`` and ``ucwa-async simulator`` (checked above) start
    # with the same ``key: value`` lines.
    completed = subprocess.run(
        [sys.executable, "-m", "ucwa_async.testing", "--port", "0", "--duration", "0.2"],
        capture_output=True, text=True, timeout=60, env=child_env(), cwd=ROOT, check=True,
    )  # fmt: skip
    keys = [line.split(": ", 1)[0] for line in completed.stdout.splitlines()[:3]]
    assert keys == ["discovery_url", "username", "password"]
    assert "simulator stopped (" in completed.stderr


async def test_simulator_conversation_logs_option_sets_how_many_logs_the_account_has(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = build_parser().parse_args(["simulator", "--port", "0", "--conversation-logs", "7"])
    task = asyncio.create_task(run_simulator(args))
    out = await _serving(task, capsys)
    lines = dict(line.split(": ", 1) for line in out.splitlines()[:3])
    try:
        auth = ucwa_async.PasswordAuth(lines["username"], lines["password"])
        async with ucwa_async.Session(lines["discovery_url"], auth=auth) as session:
            logs = await session.conversation_logs()
    finally:
        os.kill(os.getpid(), signal.SIGTERM)
        assert await asyncio.wait_for(task, 10) == 0
    assert len(logs) == 7


@pytest.mark.parametrize("value", ["-1", "many"])
def test_simulator_conversation_logs_option_refuses_what_is_not_a_count(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["simulator", "--conversation-logs", value])
    assert "--conversation-logs" in capsys.readouterr().err
