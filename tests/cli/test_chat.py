"""``ucwa-async chat``: typed lines are sent, replies printed, Ctrl-D / Ctrl-C leave.

The command runs as a subprocess with stdin a pipe the test writes to line by line,
against the embedded simulator (``--simulator``) or the test's own simulator (the
real-server path: ``--discovery`` / ``--user`` / ``$UCWA_PASSWORD``).
"""

from __future__ import annotations

import asyncio
import os
import signal
import urllib.parse

import pytest

from ucwa_async.cli import main
from ucwa_async.cli._args import build_parser
from ucwa_async.cli._chat import _LINE_QUEUE, StdinLines
from ucwa_async.testing import Behaviour, Person, UcwaSimulator

from ._support import CLI, ROOT, child_env, no_leaks, read_until, reap, run

WIRES = pytest.mark.parametrize("wire", ["json", "xml"])


def left(sim: UcwaSimulator) -> list[str]:
    """Paths of the conversations the client left (its stopMessaging requests)."""
    return [
        r.path.removesuffix("/messaging/terminate")
        for r in sim.request_log
        if r.kind == "stopMessaging"
    ]


async def _start(*args: str, env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *CLI, "chat", *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env or child_env(), cwd=ROOT,
    )  # fmt: skip


async def _say(proc: asyncio.subprocess.Process, line: str) -> None:
    assert proc.stdin is not None
    proc.stdin.write(f"{line}\n".encode())
    await proc.stdin.drain()


@WIRES
async def test_chat_simulator_two_lines_echoed_then_eof_leaves(wire: str) -> None:
    proc = await _start("--simulator", "--wire", wire)
    try:
        assert proc.stdout is not None
        assert proc.stdin is not None
        await read_until(proc.stdout, r"^chat with sip:lenea@contoso\.com: type a message")
        await _say(proc, "hello there")
        await read_until(proc.stdout, r"^connected with sip:lenea@contoso\.com$")
        await read_until(proc.stdout, r"^Lene Aaling: echo: hello there$")
        await _say(proc, "second line")
        await read_until(proc.stdout, r"^Lene Aaling: echo: second line$")
        proc.stdin.close()  # Ctrl-D
        rest, err = await asyncio.wait_for(proc.communicate(), 20)
    finally:
        await reap(proc)
    assert proc.returncode == 0, err.decode()
    assert rest.decode().splitlines()[-1] == "left the conversation"
    no_leaks(err.decode())


async def test_chat_simulator_ctrl_c_leaves_cleanly() -> None:
    proc = await _start("--simulator")
    try:
        assert proc.stdout is not None
        await read_until(proc.stdout, r"^chat with ")
        await _say(proc, "ping")
        await read_until(proc.stdout, r"^Lene Aaling: echo: ping$")
        proc.send_signal(signal.SIGINT)  # stdin still open: only the signal stops it
        rest, err = await asyncio.wait_for(proc.communicate(), 20)
    finally:
        await reap(proc)
    assert proc.returncode == 0, err.decode()
    assert rest.decode().splitlines() == ["left the conversation"]
    no_leaks(err.decode())


async def test_chat_piped_input_sends_every_line_and_prints_replies() -> None:
    result = await run(*CLI, "chat", "--simulator", stdin=b"one\n\ntwo\n")
    assert result.returncode == 0, result.output
    out = result.stdout.splitlines()
    assert "Lene Aaling: echo: one" in out
    assert "Lene Aaling: echo: two" in out
    assert out[-1] == "left the conversation"
    no_leaks(result.stderr)


async def test_chat_without_input_sends_nothing() -> None:
    result = await run(*CLI, "chat", "--simulator", stdin=b"")
    assert result.returncode == 0, result.output
    assert result.stdout.splitlines()[-1] == "nothing sent"


@WIRES
async def test_chat_real_server_path(ucwa_simulator: UcwaSimulator, wire: str) -> None:
    argv = [
        "--discovery", ucwa_simulator.discovery_url, "--user", ucwa_simulator.username,
        "--wire", wire, "--subject", "CI", "sip:lenea@contoso.com",
    ]  # fmt: skip
    proc = await _start(*argv, env=child_env(UCWA_PASSWORD=ucwa_simulator.password))
    try:
        assert proc.stdout is not None
        assert proc.stdin is not None
        await _say(proc, "build 42 failed")
        await read_until(proc.stdout, r": echo: build 42 failed$")
        await _say(proc, "rolling back")
        await read_until(proc.stdout, r": echo: rolling back$")
        [url] = ucwa_simulator.conversation_urls()  # gone with the application at exit
        sent = ucwa_simulator.messages_from_client(url)
        proc.stdin.close()
        rest, err = await asyncio.wait_for(proc.communicate(), 20)
    finally:
        await reap(proc)
    assert proc.returncode == 0, err.decode()
    assert rest.decode().splitlines()[-1] == "left the conversation"
    assert sent == ["build 42 failed", "rolling back"]
    assert left(ucwa_simulator) == [urllib.parse.urlsplit(url).path]
    no_leaks(err.decode())


async def test_chat_person_leaves(ucwa_simulator: UcwaSimulator) -> None:
    ucwa_simulator.add_person(
        Person(uri="sip:brief@contoso.com", name="Brief", behaviour=Behaviour.leave_after(1))
    )
    argv = ["--discovery", ucwa_simulator.discovery_url, "--user", ucwa_simulator.username]
    proc = await _start(
        *argv, "sip:brief@contoso.com", env=child_env(UCWA_PASSWORD=ucwa_simulator.password)
    )
    try:
        assert proc.stdout is not None
        await _say(proc, "hi")
        await read_until(proc.stdout, r"^sip:brief@contoso\.com left the conversation$")
        _, err = await asyncio.wait_for(proc.communicate(), 20)
    finally:
        await reap(proc)
    assert proc.returncode == 0, err.decode()
    no_leaks(err.decode())


async def test_chat_server_ends_the_conversation(ucwa_simulator: UcwaSimulator) -> None:
    argv = ["--discovery", ucwa_simulator.discovery_url, "--user", ucwa_simulator.username]
    proc = await _start(
        *argv, "sip:lenea@contoso.com", env=child_env(UCWA_PASSWORD=ucwa_simulator.password)
    )
    try:
        assert proc.stdout is not None
        await _say(proc, "hi")
        await read_until(proc.stdout, r": echo: hi$")
        [url] = ucwa_simulator.conversation_urls()
        await ucwa_simulator.end_conversation(url)
        await read_until(proc.stdout, r"^the conversation ended \((deleted|disconnected)\)$")
        _, err = await asyncio.wait_for(proc.communicate(), 20)
    finally:
        await reap(proc)
    assert proc.returncode == 0, err.decode()
    assert left(ucwa_simulator) == []  # nothing to leave
    no_leaks(err.decode())


async def test_chat_declined_exits_1(ucwa_simulator: UcwaSimulator) -> None:
    ucwa_simulator.add_person(
        Person(uri="sip:busy@contoso.com", name="Busy", behaviour=Behaviour.decline())
    )
    argv = ["--discovery", ucwa_simulator.discovery_url, "--user", ucwa_simulator.username]
    result = await run(
        *CLI, "chat", *argv, "sip:busy@contoso.com",
        env=child_env(UCWA_PASSWORD=ucwa_simulator.password), stdin=b"anyone?\n",
    )  # fmt: skip
    assert result.returncode == 1, result.output
    assert result.stdout.splitlines()[-1].startswith("not connected: ")
    no_leaks(result.stderr)


async def test_chat_without_password_exits_2(ucwa_simulator: UcwaSimulator) -> None:
    argv = ["--discovery", ucwa_simulator.discovery_url, "--user", ucwa_simulator.username]
    result = await run(*CLI, "chat", *argv, "sip:lenea@contoso.com", stdin=b"hi\n")
    assert result.returncode == 2
    assert "no password: set the environment variable UCWA_PASSWORD" in result.stderr
    assert ucwa_simulator.counters.requests == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sip:a@b.c"], "chat needs --discovery URL --user USER and a SIP URI"),
        (["--discovery", "http://x/", "sip:a@b.c"], "chat needs --discovery URL --user USER"),
        (["--simulator", "lenea"], "'lenea': people are named by SIP URI"),
        (["--simulator", "--user", "u"], "--user goes with --discovery, not with --simulator"),
    ],
)
def test_chat_usage_errors_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["chat", *args]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--simulator", "--discovery", "http://x/"], "not allowed with argument"),
        (["--discovery", "http://x/", "--user", "u", "--password", "s"], "never taken"),
    ],
)
def test_chat_parser_refuses(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["chat", *args])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


async def test_stdin_lines_pauses_when_full_and_keeps_every_line() -> None:
    read_fd, write_fd = os.pipe()
    try:
        total = _LINE_QUEUE * 3
        payload = "".join(f"line {i}\r\n" for i in range(total)).encode() + b"tail"
        async with StdinLines(read_fd) as lines:
            writer = asyncio.create_task(asyncio.to_thread(_write_all, write_fd, payload))
            got: list[str] = []
            paused = False
            while (line := await lines.next()) is not None:
                got.append(line)
                paused = paused or not lines._watching
                if len(got) == 1:
                    await asyncio.sleep(0.2)  # fall behind: the reader must pause, not grow
            await writer
        assert got == [f"line {i}" for i in range(total)] + ["tail"]
        assert paused
    finally:
        os.close(read_fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view[:4096]) :]
    finally:
        os.close(fd)
