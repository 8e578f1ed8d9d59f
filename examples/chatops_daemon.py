"""A chat-ops daemon: commands arrive on an asyncio queue; each places a phone-audio continue.

Commands are read from standard input, one per line: ``call <log-index> <tel:+1...>``
(a chat adapter would put them on the same queue). ``--concurrency`` workers take
commands from the queue, so at most that many calls are in progress at once.

Graceful shutdown on SIGTERM / SIGINT: stop taking commands, drop the ones not
started yet, let the calls in progress end (for up to ``--grace`` seconds), close
the session, print "stopped cleanly", exit 0. At the end of the input the queued
calls are placed first (a signal still cuts that short).

    UCWA_PASSWORD=... python examples/chatops_daemon.py --discovery URL --user USER
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from typing import Any, Literal

import ucwa_async

Queue = asyncio.Queue[str | None]


async def read_commands(queue: Queue) -> None:
    """Put stdin lines on the queue until end of input. Cancellable."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    try:
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
        )
    except ValueError:  # stdin is a regular file: it cannot block, read it as it is
        for line in sys.stdin:
            if line.strip():
                await queue.put(line.strip())
        return
    try:
        while line := await reader.readline():
            if text := line.decode(errors="replace").strip():
                await queue.put(text)  # waits while the queue is full: back-pressure
    finally:
        transport.close()


async def place_call(
    session: ucwa_async.Session, logs: list[ucwa_async.ConversationLog], command: str
) -> None:
    parts = command.split()
    if len(parts) != 3 or parts[0] != "call" or not parts[1].isdigit():
        print(f"bad command {command!r}: use 'call <log-index> <tel:+1...>'", flush=True)
        return
    index, number = int(parts[1]), parts[2]
    if index >= len(logs):
        print(f"call {number}: no log #{index} (there are {len(logs)})", flush=True)
        return
    try:
        invitation = await session.continue_phone_audio(logs[index], phone_number=number)
        await invitation
    except ucwa_async.InvitationFailedError as exc:
        print(f"call {number}: failed: {exc}", flush=True)
    except (ucwa_async.UcwaError, ValueError) as exc:
        print(f"call {number}: error: {type(exc).__name__}: {exc}", flush=True)
    else:
        print(f"call {number}: connected", flush=True)


def drop_queued(queue: Queue) -> int:
    """Drop the commands not started yet (and say so); keep the workers' end markers
    and return how many there were."""
    ends = 0
    while not queue.empty():
        command = queue.get_nowait()
        if command is None:
            ends += 1
        else:
            print(f"not started: {command!r}", flush=True)
    for _ in range(ends):
        queue.put_nowait(None)
    return ends


async def worker(
    session: ucwa_async.Session, logs: list[ucwa_async.ConversationLog], queue: Queue
) -> None:
    while (command := await queue.get()) is not None:
        await place_call(session, logs, command)


async def main(
    discovery: str,
    user: str,
    password: str,
    *,
    concurrency: int = 4,
    grace: float = 30.0,
    wire: Literal["json", "xml"] = "json",
) -> int:
    stop = asyncio.Event()  # SIGTERM / SIGINT
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    queue: Queue = asyncio.Queue(maxsize=100 + concurrency)  # room for the end markers
    async with ucwa_async.Session(
        discovery, auth=ucwa_async.PasswordAuth(user, password), wire_format=wire
    ) as session:
        logs = await session.conversation_logs(limit=20)
        workers = [asyncio.create_task(worker(session, logs, queue)) for _ in range(concurrency)]
        reader = asyncio.create_task(read_commands(queue))
        signalled = asyncio.create_task(stop.wait())
        print(f"ready: {len(logs)} logs; send 'call <index> <tel:...>' lines", flush=True)

        await asyncio.wait({reader, signalled}, return_when=asyncio.FIRST_COMPLETED)
        if not stop.is_set():
            print("end of input: finishing the queued calls", flush=True)
            for _ in workers:
                queue.put_nowait(None)  # after the queued commands: each worker then ends
            running: set[asyncio.Task[Any]] = set(workers)
            while running and not stop.is_set():  # queued calls run until a signal comes
                _, running = await asyncio.wait(
                    {*running, signalled}, return_when=asyncio.FIRST_COMPLETED
                )
                running.discard(signalled)
        if stop.is_set():
            print("shutting down: waiting for calls in progress", flush=True)
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            if drop_queued(queue) == 0:  # the workers' end markers were not queued yet
                for _ in workers:
                    queue.put_nowait(None)
        _, late = await asyncio.wait(workers, timeout=grace)
        for task in late:  # a call outlived the grace period: give up on it
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        signalled.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await signalled
        if late:
            print(f"{len(late)} call(s) still pending after {grace:g} s were abandoned")
    print("stopped cleanly", flush=True)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--discovery", required=True, help="autodiscovery URL")
    parser.add_argument("--user", required=True, help="sign-in name")
    parser.add_argument("--wire", choices=("json", "xml"), default="json")
    parser.add_argument("--concurrency", type=int, default=4, help="calls at once (4)")
    parser.add_argument("--grace", type=float, default=30.0, help="shutdown grace, s (30)")
    args = parser.parse_args()
    password = os.environ.get("UCWA_PASSWORD")
    if not password:
        print("set UCWA_PASSWORD to the password of --user", file=sys.stderr)
        sys.exit(2)
    if args.concurrency < 1:
        parser.error("--concurrency must be at least 1")
    sys.exit(
        asyncio.run(
            main(
                args.discovery,
                args.user,
                password,
                concurrency=args.concurrency,
                grace=args.grace,
                wire=args.wire,
            )
        )
    )
