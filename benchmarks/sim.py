"""Start a fresh simulator in its own process (:mod:`benchmarks.simproc`) and talk to it.

The machine has two cores: the client under test and the server must not share one
event loop, so each contender gets its own simulator process, started fresh and
always terminated (``with SimProcess(...) as sim:`` - the ``finally`` kills it).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from types import TracebackType
from typing import Any

_START_TIMEOUT = 20.0
_REPLY_TIMEOUT = 30.0


class SimProcess:
    """``python -m benchmarks.simproc`` as a child process on 127.0.0.1."""

    def __init__(
        self,
        *,
        latency: float = 0.0,
        hold: bool = False,
        require_channel: bool = True,
        max_events_per_batch: int = 500,
        users: int = 1,
    ) -> None:
        self.args = [
            "--latency",
            repr(latency),
            "--max-events-per-batch",
            str(max_events_per_batch),
        ]
        if hold:
            self.args.append("--hold")
        if users > 1:
            self.args += ["--users", str(users)]
        if not require_channel:
            self.args.append("--no-require-channel")
        self.latency = latency
        self.discovery_url = ""
        self.username = ""
        self.password = ""
        self.users = users
        self._proc: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> SimProcess:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.simproc", *self.args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        try:
            fields = dict(self._read_line().split(": ", 1) for _ in range(3))
            self.discovery_url = fields["discovery_url"]
            self.username = fields["username"]
            self.password = fields["password"]
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _read_line(self, timeout: float = _START_TIMEOUT) -> str:
        proc = self._proc
        assert proc is not None
        stdout = proc.stdout
        assert stdout is not None
        result: list[str] = []
        reader = threading.Thread(target=lambda: result.append(stdout.readline()))
        reader.daemon = True
        reader.start()
        reader.join(timeout)
        if not result or not result[0]:
            raise RuntimeError(f"simulator process gave no answer (exit code {proc.poll()})")
        return result[0].strip()

    def accounts(self) -> list[tuple[str, str]]:
        """(username, password) of every account (``users=N``; the first is the default)."""
        domain = self.username.partition("@")[2]
        extra = [(f"bench{n}@{domain}", f"bench-{n}") for n in range(1, self.users)]
        return [(self.username, self.password), *extra]

    def command(self, line: str) -> str:
        """Send one control command, return its one-line answer (blocking)."""
        proc = self._proc
        if proc is None or proc.stdin is None:
            raise RuntimeError("simulator process not running")
        with self._lock:
            proc.stdin.write(line + "\n")
            proc.stdin.flush()
            return self._read_line(_REPLY_TIMEOUT)

    async def acommand(self, line: str) -> str:
        """:meth:`command` without blocking the event loop."""
        return await asyncio.to_thread(self.command, line)

    def counters(self) -> dict[str, Any]:
        value = json.loads(self.command("counters"))
        assert isinstance(value, dict)
        return value

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
        finally:
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()
