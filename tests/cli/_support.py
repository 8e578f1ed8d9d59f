"""Running ``ucwa-async`` and the examples as subprocesses, bounded and always reaped.

The commands run with ``PYTHONPATH`` set to this checkout, so they test this tree
even when another copy of the package is installed; stdout is a pipe, so the CLI
prints plain lines (no live view).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLI = (sys.executable, "-m", "ucwa_async")
RUN_TIMEOUT = 45.0


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def child_env(**extra: str | None) -> dict[str, str]:
    """The environment of a child: this checkout first, no forced colours, no password
    unless given, UTF-8 output."""
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    env.pop("UCWA_PASSWORD", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PYTHONIOENCODING"] = "utf-8"
    env["NO_COLOR"] = "1"
    for key, value in extra.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


async def run(
    *argv: str,
    env: dict[str, str] | None = None,
    stdin: bytes | None = None,
    timeout: float = RUN_TIMEOUT,
) -> Result:
    """Run a command to completion (killed after ``timeout``); stdin is never a terminal."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env if env is not None else child_env(),
        cwd=ROOT,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin or b""), timeout)
    finally:
        await reap(proc)
    assert proc.returncode is not None
    return Result(tuple(argv), proc.returncode, out.decode(), err.decode())


async def cli(*args: str, env: dict[str, str] | None = None) -> Result:
    return await run(*CLI, *args, env=env)


async def reap(proc: asyncio.subprocess.Process, grace: float = 10.0) -> None:
    """Terminate, then kill, a child that is still running; always wait for it."""
    if proc.returncode is not None:
        return
    try:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), grace)
    except (TimeoutError, ProcessLookupError):
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def read_until(
    stream: asyncio.StreamReader, pattern: str, *, timeout: float = 20.0, max_lines: int = 200
) -> tuple[re.Match[str], list[str]]:
    """Read lines until one matches ``pattern``; return the match and the lines read."""
    lines: list[str] = []
    async with asyncio.timeout(timeout):
        for _ in range(max_lines):
            raw = await stream.readline()
            if not raw:
                break
            line = raw.decode().rstrip("\n")
            lines.append(line)
            if match := re.search(pattern, line):
                return match, lines
    raise AssertionError(f"no line matching {pattern!r} in {lines!r}")


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses connections for as long as the block runs: bound
    but not listening, so no other test (another xdist worker) can take it meanwhile."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        yield port


def no_leaks(stderr: str) -> None:
    """No traceback, no unclosed session, no task destroyed while pending."""
    for bad in ("Traceback", "Unclosed", "Task was destroyed", "ResourceWarning", "never awaited"):
        assert bad not in stderr, stderr
