"""A chat-ops daemon: people send it commands by IM, it answers in the same conversation.

The session is reachable by IM only (``available_for=("Messaging",)``); every invitation
is accepted (up to --max-conversations at once, the others are declined), and each
conversation is served by its own task, so several people can talk to it at once. Commands:

    help            the list of commands
    status          uptime, conversations, commands running
    deploy <name>   takes a while (--deploy-seconds), says when it starts and when it is done

Graceful shutdown on SIGTERM / SIGINT (Ctrl-C, Windows too): stop accepting invitations,
let running commands finish for up to --grace seconds (the others are cut short and say
so), leave every conversation, close the session, print "stopped cleanly", exit 0. If the
event channel fails for good (nothing more can arrive: the inbox raises
``ChannelFailedError``), the daemon says so, shuts down the same way and exits 1.

    UCWA_PASSWORD=... python examples/chatops_daemon.py --discovery URL --user USER
    python examples/chatops_daemon.py --simulator    # lines you type arrive as IMs
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import TYPE_CHECKING, Any, Literal

import ucwa_async

if TYPE_CHECKING:
    from ucwa_async.testing import UcwaSimulator

HELP = "commands: help | status | deploy <name> (takes a while, reports back when done)"
SIMULATED_PERSON = "sip:lenea@contoso.com"
"""With --simulator: who the typed lines come from."""


class ChatOps:
    """Serves every conversation; knows the commands running in them."""

    def __init__(
        self,
        session: ucwa_async.Session,
        *,
        deploy_seconds: float,
        max_conversations: int,
    ) -> None:
        self.session = session
        self.deploy_seconds = deploy_seconds
        self.max_conversations = max_conversations
        self.conversations: dict[str, ucwa_async.Conversation] = {}
        self.serving: set[asyncio.Task[None]] = set()
        self.jobs: dict[asyncio.Task[None], str] = {}
        self.commands = 0
        """Commands received so far (every IM counts as one)."""
        self.stopping = False
        self.started = time.monotonic()
        self._progress = asyncio.Event()
        """Set when a command arrives or a job ends (see settled())."""

    async def settled(self, condition: Callable[[], bool], seconds: float = 10.0) -> bool:
        """Wait until ``condition()`` holds (checked at every command and job end), at most
        ``seconds``; whether it holds."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while not condition():
                    self._progress.clear()
                    await self._progress.wait()
        return condition()

    # --- accepting ----------------------------------------------------------------------

    async def accept_invitations(self) -> None:
        """Take invitations from the session's inbox until cancelled."""
        async with self.session.incoming() as invitations:
            async for invite in invitations:
                who = invite.sender.uri or invite.sender.name or "someone"
                if invite.kind != "messaging" or len(self.serving) >= self.max_conversations:
                    why = "not an IM" if invite.kind != "messaging" else "too many conversations"
                    print(f"{who}: declined ({why})", flush=True)
                    with contextlib.suppress(ucwa_async.UcwaError):
                        await invite.decline()
                    continue
                task = asyncio.create_task(self.serve(invite, who), name=f"chatops {who}")
                self.serving.add(task)
                task.add_done_callback(self.serving.discard)

    async def serve(self, invite: ucwa_async.IncomingInvitation, who: str) -> None:
        """One conversation: its first message, then every message, until it ends."""
        try:
            conversation = await invite.accept()
        except ucwa_async.UcwaError as exc:
            print(f"{who}: not accepted: {type(exc).__name__}: {exc}", flush=True)
            return
        self.conversations[conversation.href] = conversation
        print(f"{who}: conversation accepted", flush=True)
        try:
            async with conversation.messages() as messages:
                if invite.message:
                    await self.handle(conversation, who, invite.message)
                async for message in messages:
                    await self.handle(conversation, who, message.text or "")
        finally:
            self.conversations.pop(conversation.href, None)
            print(f"{who}: conversation ended", flush=True)

    # --- commands -----------------------------------------------------------------------

    async def handle(self, conversation: ucwa_async.Conversation, who: str, text: str) -> None:
        self.commands += 1
        self._progress.set()
        print(f"{who} says: {text}", flush=True)
        words = text.split()
        if not words:
            return
        command, args = words[0].lower(), words[1:]
        if self.stopping:
            await self.reply(conversation, who, "shutting down: not taking new commands")
        elif command == "help" and not args:
            await self.reply(conversation, who, HELP)
        elif command == "status" and not args:
            await self.reply(conversation, who, self.status())
        elif command == "deploy" and len(args) == 1:
            job = asyncio.create_task(self.deploy(conversation, who, args[0]))
            self.jobs[job] = f"deploy {args[0]}"
            job.add_done_callback(self._job_ended)
        else:
            await self.reply(conversation, who, f"unknown command {text!r}; try: help")

    def _job_ended(self, job: asyncio.Task[None]) -> None:
        self.jobs.pop(job, None)
        self._progress.set()

    def status(self) -> str:
        running = ", ".join(sorted(self.jobs.values())) or "nothing"
        return (
            f"up {time.monotonic() - self.started:.0f} s; "
            f"{len(self.conversations)} conversation(s); running: {running}"
        )

    async def deploy(self, conversation: ucwa_async.Conversation, who: str, name: str) -> None:
        """The long command: a stand-in for real work (a sleep), reported at both ends."""
        await self.reply(conversation, who, f"deploying {name} (about {self.deploy_seconds:g} s)")
        started = time.monotonic()
        try:
            await asyncio.sleep(self.deploy_seconds)
        except asyncio.CancelledError:
            await self.reply(conversation, who, f"deploy {name}: cut short by shutdown")
            raise
        await self.reply(
            conversation, who, f"deploy {name}: done in {time.monotonic() - started:.1f} s"
        )

    async def reply(self, conversation: ucwa_async.Conversation, who: str, text: str) -> None:
        """Send ``text`` in the conversation; log it once the server says it was delivered."""
        try:
            sent = await conversation.send(text)
            await sent
        except ucwa_async.UcwaError as exc:
            print(f"to {who}: not delivered ({type(exc).__name__}: {exc}): {text}", flush=True)
        else:
            print(f"to {who}: {text}", flush=True)

    # --- shutdown -----------------------------------------------------------------------

    async def shut_down(self, acceptor: asyncio.Task[None], grace: float) -> None:
        """Stop accepting, let the commands finish (or cut them), leave every conversation."""
        self.stopping = True
        acceptor.cancel()
        await asyncio.gather(acceptor, return_exceptions=True)
        jobs = set(self.jobs)
        if jobs:
            print(f"waiting up to {grace:g} s for {len(jobs)} command(s)", flush=True)
            _, late = await asyncio.wait(jobs, timeout=grace)
            for job in late:
                job.cancel()
            await asyncio.gather(*jobs, return_exceptions=True)
        await asyncio.gather(
            *(self._leave(c) for c in list(self.conversations.values())), return_exceptions=True
        )
        # Each conversation's messages end once it is left; bounded, in case one does not.
        serving = set(self.serving)
        if serving:
            _, stuck = await asyncio.wait(serving, timeout=5.0)
            for task in stuck:
                task.cancel()
            await asyncio.gather(*serving, return_exceptions=True)

    @staticmethod
    async def _leave(conversation: ucwa_async.Conversation) -> None:
        with contextlib.suppress(ucwa_async.UcwaError):
            await conversation.leave()


Feeder = Callable[[ChatOps, asyncio.Event], Coroutine[Any, Any, None]]
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextlib.contextmanager
def stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """SIGTERM / SIGINT set ``stop`` while in the block.

    The running loop's ``add_signal_handler`` where it has one (POSIX). Windows' event loops
    have none (``NotImplementedError``): there ``signal.signal`` instead, its handler handing
    ``stop.set`` to the loop with ``call_soon_threadsafe`` (Ctrl-C is SIGINT); the previous
    handlers are put back on the way out.
    """
    loop = asyncio.get_running_loop()
    try:
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, stop.set)
    except NotImplementedError:
        pass
    else:
        try:
            yield
        finally:
            for sig in STOP_SIGNALS:
                loop.remove_signal_handler(sig)
        return

    def handler(signum: int, frame: object) -> None:
        loop.call_soon_threadsafe(stop.set)

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


async def main(
    discovery: str,
    user: str,
    password: str,
    *,
    wire: Literal["json", "xml"] = "json",
    grace: float = 30.0,
    deploy_seconds: float = 5.0,
    max_conversations: int = 100,
    feeder: Feeder | None = None,
) -> int:
    """Serve until SIGTERM / SIGINT (or until ``feeder`` sets the stop event), or until
    the event channel fails for good (then exit status 1)."""
    stop = asyncio.Event()
    failure: BaseException | None = None
    with stop_on_signals(stop):
        session = ucwa_async.Session(
            discovery,
            auth=ucwa_async.PasswordAuth(user, password),
            wire_format=wire,
            available_for=("Messaging",),
        )
        async with session:
            daemon = ChatOps(
                session, deploy_seconds=deploy_seconds, max_conversations=max_conversations
            )
            acceptor = asyncio.create_task(daemon.accept_invitations(), name="chatops-accept")
            print(f"ready: send an IM to {user} ({HELP})", flush=True)
            fed = asyncio.create_task(feeder(daemon, stop)) if feeder else None
            signalled = asyncio.create_task(stop.wait())
            await asyncio.wait({acceptor, signalled}, return_when=asyncio.FIRST_COMPLETED)
            if acceptor.done() and not acceptor.cancelled():
                # The inbox ends only with the session, or with the event channel's failure
                # (ChannelFailedError: nothing more can arrive, every call raises it).
                failure = acceptor.exception()
                if isinstance(failure, ucwa_async.ChannelFailedError):
                    print(f"event channel failed: {failure}", flush=True)
                elif failure is not None:
                    print(f"inbox failed: {failure!r}", flush=True)
            print("shutting down: no new conversations", flush=True)
            for task in (fed, signalled):
                if task is not None:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
            await daemon.shut_down(acceptor, grace)
    if isinstance(failure, ucwa_async.ChannelFailedError):
        print("stopped: the event channel failed", flush=True)
        return 1
    if failure is not None:
        print("stopped: the inbox failed", flush=True)
        return 1
    print("stopped cleanly", flush=True)
    return 0


# --- --simulator: an embedded simulator; the lines typed arrive as IMs -------------------


async def main_with_simulator(
    *,
    wire: Literal["json", "xml"] = "json",
    grace: float = 30.0,
    deploy_seconds: float = 5.0,
    max_conversations: int = 100,
) -> int:
    from ucwa_async.testing import Behaviour, Person, UcwaSimulator

    async with UcwaSimulator() as sim:
        # Silent: the person only says what you type (an echo person would answer back).
        lene = Person(uri=SIMULATED_PERSON, name="Lene Aaling", behaviour=Behaviour.silent())
        sim.add_person(lene)
        print(
            f"simulator: lines you type are IMs from {SIMULATED_PERSON}; Ctrl-D stops", flush=True
        )

        async def feed(daemon: ChatOps, stop: asyncio.Event) -> None:
            await type_ims(sim, daemon)
            stop.set()

        return await main(
            sim.discovery_url,
            sim.username,
            sim.password,
            wire=wire,
            grace=grace,
            deploy_seconds=deploy_seconds,
            max_conversations=max_conversations,
            feeder=feed,
        )


async def type_ims(sim: UcwaSimulator, daemon: ChatOps) -> None:
    """Each stdin line becomes an IM from SIMULATED_PERSON: the first one an invitation,
    the others messages in that conversation. Waits for the daemon to take each one."""
    conversation: str | None = None
    async for line in stdin_lines():
        taken = daemon.commands + 1
        if conversation is None or conversation not in daemon.conversations:
            known = set(daemon.conversations)
            await sim.incoming_message(SIMULATED_PERSON, line)
            await daemon.settled(lambda: daemon.commands >= taken)  # noqa: B023 - awaited here
            conversation = next(iter(set(daemon.conversations) - known), None)
        else:
            await sim.say(conversation, SIMULATED_PERSON, line)
            await daemon.settled(lambda: daemon.commands >= taken)  # noqa: B023 - awaited here
    await daemon.settled(lambda: not daemon.jobs, seconds=daemon.deploy_seconds + 5.0)


async def stdin_lines() -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    try:
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
        )
    except ValueError:  # stdin is a regular file: it cannot block, read it as it is
        for line in sys.stdin:
            if line.strip():
                yield line.strip()
        return
    try:
        while line := await reader.readline():
            if text := line.decode(errors="replace").strip():
                yield text
    finally:
        transport.close()


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--discovery", help="autodiscovery URL")
    where.add_argument("--simulator", action="store_true", help="an embedded simulator")
    parser.add_argument("--user", help="sign-in name (with --discovery)")
    parser.add_argument("--wire", choices=("json", "xml"), default="json")
    parser.add_argument("--grace", type=float, default=30.0, help="shutdown grace, s (30)")
    parser.add_argument(
        "--deploy-seconds", type=float, default=5.0, help="how long a deploy takes, s (5)"
    )
    parser.add_argument(
        "--max-conversations", type=int, default=100, help="conversations at once (100)"
    )
    args = parser.parse_args(argv)
    if args.max_conversations < 1:
        parser.error("--max-conversations must be at least 1")
    if not (args.grace >= 0 and args.deploy_seconds >= 0):
        parser.error("--grace and --deploy-seconds must be 0 or more")
    wire: Literal["json", "xml"] = args.wire
    options = {"grace": args.grace, "deploy_seconds": args.deploy_seconds}
    if args.simulator:
        return asyncio.run(
            main_with_simulator(wire=wire, max_conversations=args.max_conversations, **options)
        )
    if not args.user:
        parser.error("--discovery needs --user")
    password = os.environ.get("UCWA_PASSWORD")
    if not password:
        print("set UCWA_PASSWORD to the password of --user", file=sys.stderr)
        return 2
    try:
        return asyncio.run(
            main(
                args.discovery,
                args.user,
                password,
                wire=wire,
                max_conversations=args.max_conversations,
                **options,
            )
        )
    except ucwa_async.AuthenticationError as exc:
        print(f"sign-in refused: {exc}", file=sys.stderr)
        return 3
    except ucwa_async.UcwaError as exc:
        print(f"stopped: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(cli())
