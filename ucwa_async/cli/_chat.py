"""``ucwa-async chat``: an interactive chat line with one person.

The first line typed starts the conversation (``start_messaging``), every further line is
sent in it (``Conversation.send``); the person's messages are printed as they arrive.
End of input (Ctrl-D) or Ctrl-C leaves the conversation and exits 0; the person leaving
ends the command too. Against a real server (``--discovery`` / ``--user``, the password
read as the other real-server commands read it) or, with ``--simulator``, the embedded
simulator, whose people answer ``echo: <text>``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

import ucwa_async
from ucwa_async.cli._errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CliError
from ucwa_async.cli._real import _check_url, _password, _reason_text

T = TypeVar("T")

SIMULATED_PERSON = "sip:lenea@contoso.com"
"""The person ``--simulator`` chats with when no SIP URI is given (an echo person)."""

_LINE_QUEUE = 100
"""Typed lines waiting to be sent; reading stdin pauses while this many wait."""
_MAX_LINE = 64 * 1024
_LINGER = 1.0
"""Seconds to wait for replies after the end of piped (not typed) input."""


def add_chat_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``chat`` on the ``ucwa-async`` sub-command parsers."""
    from ucwa_async.cli import _args

    chat = commands.add_parser(
        "chat",
        allow_abbrev=False,
        # the commands' one "(default: X)" style, where _args has it
        formatter_class=getattr(_args, "HelpFormatter", argparse.HelpFormatter),
        help="chat with someone by instant message (or with --simulator, locally)",
        description=(
            "An interactive chat line: the first line you type starts the conversation, "
            "every line is sent, replies are printed as they arrive. Ctrl-D or Ctrl-C "
            "leaves the conversation."
        ),
        epilog=_args._REAL_EPILOG,
    )
    chat.add_argument(
        "to",
        nargs="?",
        metavar="SIP_URI",
        help=f"who to chat with, e.g. sip:someone@contoso.com (--simulator: {SIMULATED_PERSON})",
    )
    where = chat.add_mutually_exclusive_group()
    where.add_argument(
        "--discovery",
        metavar="URL",
        help="autodiscovery URL, e.g. https://lyncdiscover.contoso.com",
    )
    where.add_argument(
        "--simulator",
        action="store_true",
        help="chat with a person of the embedded simulator, who echoes every message",
    )
    chat.add_argument("--user", help="sign-in name (user@domain)")
    chat.add_argument("--subject", help="subject of the conversation")
    chat.add_argument("--wire", choices=("json", "xml"), default="json", help="wire format")
    chat.add_argument(
        "--password-env",
        default="UCWA_PASSWORD",
        metavar="VAR",
        help="environment variable holding the password",
    )
    chat.add_argument("--password", nargs="?", action=_args._RefusePassword, help=argparse.SUPPRESS)
    chat.add_argument(
        "--connect-timeout",
        type=_args._seconds,
        default=30.0,
        metavar="SECONDS",
        help="time allowed for sign-in and for each request",
    )
    chat.add_argument(
        "--timeout",
        type=_args._seconds,
        default=60.0,
        metavar="SECONDS",
        help="how long the person has to accept the conversation",
    )


async def run_chat(args: argparse.Namespace) -> int:
    if args.simulator:
        if args.user is not None:
            raise CliError("--user goes with --discovery, not with --simulator", EXIT_USAGE)
        return await _with_simulator(args, _target(args.to or SIMULATED_PERSON))
    if args.discovery is None or args.user is None or args.to is None:
        raise CliError(
            "chat needs --discovery URL --user USER and a SIP URI "
            "(or --simulator to try it locally)",
            EXIT_USAGE,
        )
    to = _target(args.to)
    url = _check_url(args.discovery)
    auth = ucwa_async.PasswordAuth(args.user, _password(args))
    async with ucwa_async.Session(
        url,
        auth=auth,
        wire_format=args.wire,
        invitation_timeout=args.timeout,
        connect_timeout=args.connect_timeout,
        request_timeout=args.connect_timeout,
    ) as session:
        return await chat(session, to, subject=args.subject)


def _target(uri: str) -> str:
    if not uri.startswith("sip:") or "@" not in uri:
        raise CliError(
            f"{uri!r}: people are named by SIP URI, e.g. sip:someone@contoso.com", EXIT_USAGE
        )
    return uri


async def _with_simulator(args: argparse.Namespace, to: str) -> int:
    from ucwa_async.testing import UcwaSimulator

    async with UcwaSimulator() as sim:
        print(
            f"embedded UCWA simulator at {sim.discovery_url}; signed in as {sim.username}",
            flush=True,
        )
        async with ucwa_async.Session(
            sim.discovery_url,
            auth=ucwa_async.PasswordAuth(sim.username, sim.password),
            wire_format=args.wire,
            invitation_timeout=args.timeout,
        ) as session:
            return await chat(session, to, subject=args.subject)


async def chat(session: ucwa_async.Session, to: str, *, subject: str | None = None) -> int:
    """The chat line itself: stdin to ``to`` and back, until EOF, Ctrl-C or the person leaves."""
    loop = asyncio.get_running_loop()
    interrupted = asyncio.Event()
    with contextlib.suppress(NotImplementedError, RuntimeError):  # not on Windows
        loop.add_signal_handler(signal.SIGINT, interrupted.set)
    try:
        async with StdinLines() as lines:
            return await _converse(session, to, subject, lines, interrupted)
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGINT)


async def _converse(
    session: ucwa_async.Session,
    to: str,
    subject: str | None,
    lines: StdinLines,
    interrupted: asyncio.Event,
) -> int:
    print(f"chat with {to}: type a message and press Enter; Ctrl-D or Ctrl-C leaves", flush=True)
    first = await _first_of(lines.next(), interrupted)
    if first is None:
        print("nothing sent", flush=True)
        return EXIT_OK
    invitation = await session.start_messaging(to, message=first, subject=subject)
    print(f"inviting {to}...", flush=True)
    try:
        conversation = await _first_of(invitation.conversation(), interrupted)
    except ucwa_async.InvitationFailedError as exc:
        print(f"not connected: {_reason_text(exc)}", flush=True)
        return EXIT_FAILED
    except ucwa_async.InvitationError as exc:
        print(f"not connected: {type(exc).__name__}: {exc}", flush=True)
        return EXIT_FAILED
    if conversation is None:  # Ctrl-C while the person had not answered yet
        if invitation.cancel():
            with contextlib.suppress(ucwa_async.UcwaError):
                await invitation.cancel_outcome()
        print("cancelled", flush=True)
        return EXIT_OK
    print(f"connected with {to}", flush=True)
    printer = asyncio.create_task(_print_replies(conversation), name="chat-replies")
    sender = asyncio.create_task(_send_lines(conversation, lines), name="chat-send")
    ended = asyncio.create_task(conversation.wait_ended(), name="chat-ended")
    stop = asyncio.create_task(interrupted.wait(), name="chat-interrupted")
    try:
        await asyncio.wait({sender, ended, stop}, return_when=asyncio.FIRST_COMPLETED)
        if sender.done() and conversation.ended is None and not lines.is_terminal:
            await asyncio.wait({ended, stop}, timeout=_LINGER)  # piped input: replies to come
        reason = conversation.ended
        if reason is not None and not stop.done():
            if reason == ucwa_async.ConversationEndReason.REMOTE_LEFT:
                print(f"{to} left the conversation", flush=True)
            else:
                print(f"the conversation ended ({reason})", flush=True)
        else:
            with contextlib.suppress(ucwa_async.UcwaError):
                await conversation.leave()
            print("left the conversation", flush=True)
    finally:
        for task in (sender, stop, ended):
            task.cancel()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5.0):  # the replies stream ends with the conversation
                await asyncio.gather(printer, return_exceptions=True)
        printer.cancel()
        await asyncio.gather(printer, sender, ended, stop, return_exceptions=True)
    return EXIT_OK


async def _first_of(work: Awaitable[T], interrupted: asyncio.Event) -> T | None:
    """The result of ``work``, or ``None`` when Ctrl-C comes first (``work`` is cancelled)."""
    task = asyncio.ensure_future(work)
    stop = asyncio.create_task(interrupted.wait())
    try:
        await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
        if not task.done():
            task.cancel()
        await asyncio.gather(task, stop, return_exceptions=True)
    if task.cancelled():
        return None
    return task.result()


async def _print_replies(conversation: ucwa_async.Conversation) -> None:
    async with conversation.messages() as messages:
        async for message in messages:
            who = message.sender.name or message.sender.uri if message.sender else "?"
            text = message.text if message.text is not None else message.html
            print(f"{who}: {text}", flush=True)


async def _send_lines(conversation: ucwa_async.Conversation, lines: StdinLines) -> None:
    """Send each typed line; say when one was not delivered. Ends at end of input."""
    async for line in lines:
        if not line.strip():
            continue
        try:
            sent = await conversation.send(line)
            await sent
        except ucwa_async.ConversationEndedError:
            return  # the person left: the caller says so
        except ucwa_async.UcwaError as exc:
            print(f"not delivered: {type(exc).__name__}: {exc}", flush=True)


class StdinLines:
    """Lines of standard input as an async iterator, read by an event-loop reader on fd 0.

    No thread (a blocked reader thread cannot be stopped on Ctrl-C) and no non-blocking
    mode on the terminal (it is shared with stdout). A regular file cannot be polled: it
    is read as it is. Reading pauses while ``_LINE_QUEUE`` lines wait to be sent.
    """

    def __init__(self, fd: int | None = None) -> None:
        self._fd = sys.stdin.fileno() if fd is None else fd
        self._lines: collections.deque[str] = collections.deque()
        self._more = asyncio.Event()
        self._partial = b""
        self._watching = False
        self._eof = False
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def is_terminal(self) -> bool:
        return os.isatty(self._fd)

    async def __aenter__(self) -> StdinLines:
        self._loop = asyncio.get_running_loop()
        try:
            self._watch()
        except PermissionError:  # a regular file: never blocks, nothing to poll
            data = os.read(self._fd, _LINE_QUEUE * _MAX_LINE)
            self._lines.extend(raw.decode(errors="replace") for raw in data.splitlines())
            self._eof = True
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._unwatch()

    def __aiter__(self) -> AsyncIterator[str]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[str]:
        while (line := await self.next()) is not None:
            yield line

    async def next(self) -> str | None:
        """The next line, or ``None`` at end of input."""
        while not self._lines:
            if self._eof:
                return None
            self._more.clear()
            await self._more.wait()
        line = self._lines.popleft()
        if len(self._lines) < _LINE_QUEUE and not self._eof:
            self._watch()  # room again after a pause
        return line

    def _watch(self) -> None:
        assert self._loop is not None
        if not self._watching:
            self._loop.add_reader(self._fd, self._readable)
            self._watching = True

    def _unwatch(self) -> None:
        if self._watching and self._loop is not None:
            self._loop.remove_reader(self._fd)
            self._watching = False

    def _readable(self) -> None:
        try:
            chunk = os.read(self._fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if chunk:
            *complete, partial = (self._partial + chunk).split(b"\n")
            self._partial = partial[-_MAX_LINE:]
            self._lines.extend(raw.rstrip(b"\r").decode(errors="replace") for raw in complete)
            if len(self._lines) >= _LINE_QUEUE:
                self._unwatch()  # resumed by next() when there is room
        else:  # end of input (Ctrl-D on a terminal)
            if self._partial:
                self._lines.append(self._partial.decode(errors="replace"))
                self._partial = b""
            self._eof = True
            self._unwatch()
        self._more.set()
