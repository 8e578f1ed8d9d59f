"""``UcwaSimulator``: start/stop the server and expose what a test needs."""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from types import TracebackType

from aiohttp import web

from ucwa_async.testing import _invitations
from ucwa_async.testing._config import Outcome, SimulatorConfig
from ucwa_async.testing._conv_api import ConversationControl
from ucwa_async.testing._faults import FaultInjector
from ucwa_async.testing._people import Person, person_key
from ucwa_async.testing._records import Counters, RequestRecord
from ucwa_async.testing._server import build_app
from ucwa_async.testing._state import World
from ucwa_async.testing._urls import DISCOVERY_PATH

__all__ = ["UcwaSimulator"]

_SHUTDOWN_TIMEOUT = 1.0  # handlers still running at stop (latency faults) get this long


class UcwaSimulator:
    """A real UCWA 2.0 server (aiohttp.web) on 127.0.0.1, with fault injection.

    ::

        async with UcwaSimulator(config=SimulatorConfig(fail_rate=0.2), seed=1) as sim:
            run_my_bot(sim.discovery_url, sim.username, sim.password)
            sim.faults.callback_channel_error(next_n=1)
            ...
            assert sim.counters.faults_injected["callback_channel_error"] == 1
            assert sim.counters.invitations_by_state["Connected"] >= 1

    Binds a free port (``config.port=0``); ``stop()`` (or leaving the ``async with``)
    answers pending P-GETs, cancels timers and closes the server. ``seed`` makes the
    outcome rules, conversation logs and random faults deterministic.
    """

    def __init__(self, config: SimulatorConfig | None = None, *, seed: int = 0) -> None:
        self.config = config if config is not None else SimulatorConfig()
        self.seed = seed
        self.counters = Counters()
        self._world = World(self.config, self.counters, seed)
        self.faults = FaultInjector(self.counters, self._world)
        self._log: deque[RequestRecord] = deque(maxlen=self.config.request_log_limit)
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._conversations = ConversationControl(self._world, self.username)

    # --- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        if self._runner is not None or self._world.closing:
            raise RuntimeError("a simulator starts once; make a new one to start again")
        app = build_app(self._world, self.faults, self._log)
        runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=_SHUTDOWN_TIMEOUT,
            handler_cancellation=True,
        )
        await runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.config.host, self.config.port))
            sock.setblocking(False)
            site = web.SockSite(runner, sock)
            await site.start()
        except BaseException:
            sock.close()
            await runner.cleanup()
            raise
        self._port = sock.getsockname()[1]
        self._runner = runner

    async def stop(self) -> None:
        """Stop serving. Idempotent."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self._world.shutdown()
        await asyncio.sleep(0)  # let woken P-GETs write their answers
        await runner.cleanup()

    async def __aenter__(self) -> UcwaSimulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # --- addresses and credentials -----------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the simulator is not started")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://{self.config.host}:{self.port}"

    @property
    def discovery_url(self) -> str:
        """The autodiscovery URL to give a client (``.../autodiscoverservice.svc/root``)."""
        return self.base_url + DISCOVERY_PATH

    @property
    def redirect_base_url(self) -> str | None:
        """Base URL of the redirect host (``config.redirect_host``), if one is configured."""
        host = self.config.redirect_host
        return f"http://{host}:{self.port}" if host else None

    @property
    def username(self) -> str:
        return next(iter(self.config.users))

    @property
    def password(self) -> str:
        return self.config.users[self.username]

    def url(self, path: str) -> str:
        """Absolute URL of a server path (``/ucwa/oauth/v1/...``)."""
        return self.base_url + path

    # --- observation ------------------------------------------------------------------

    @property
    def request_log(self) -> list[RequestRecord]:
        """A copy of the request log, oldest first (the last ``request_log_limit``)."""
        return list(self._log)

    def clear_request_log(self) -> None:
        self._log.clear()

    @property
    def application_ids(self) -> list[str]:
        """Ids of the live applications."""
        return list(self._world.apps)

    def invitation_state(self, location: str) -> str | None:
        """State of the invitation at ``location`` (any href style), or None."""
        number = location.rstrip("/").rsplit("/", 1)[-1]
        for app in self._world.apps.values():
            # continue invitations and the others share one numbering
            inv = app.invitations.get(number) or app.conv_invitations.get(number)
            if inv is not None:
                return inv.state
        return None

    def release_held(self, outcome: Outcome | None = None) -> int:
        """End every invitation still Connecting (e.g. held by ``Outcome(complete=False)``).

        All of an application's invitations complete in one push, so they reach
        the client in as few batches as the channel allows. Returns how many ended.
        """
        return _invitations.release_held(self._world, outcome or Outcome())

    def pending_pget(self, app_id: str) -> bool:
        """Whether the application has a P-GET held open right now."""
        app = self._world.apps.get(app_id)
        return app is not None and app.channel.pget_pending

    # --- people and conversations (issue 12) -----------------------------------------

    def add_person(self, person: Person) -> None:
        """Add ``person`` to the directory (replacing one with the same uri)."""
        self._world.people[person_key(person.uri)] = person

    async def incoming_message(
        self,
        uri: str,
        text: str,
        subject: str | None = None,
        html: str | None = None,
        app_id: str | None = None,
    ) -> str:
        """``uri`` (someone in the directory) sends an IM to the signed-in user: a
        messagingInvitation starts in the application (the newest live one of
        ``sim.username`` unless ``app_id``), which must have made itself available
        for Messaging (else LookupError). Returns the invitation's absolute URL."""
        return self._conversations.incoming(uri, "Messaging", text, html, subject, app_id)

    async def incoming_call(self, uri: str, app_id: str | None = None) -> str:
        """As :meth:`incoming_message`, a phoneAudioInvitation (available for PhoneAudio)."""
        return self._conversations.incoming(uri, "PhoneAudio", None, None, None, app_id)

    async def withdraw(self, url: str) -> None:
        """The caller gives up an incoming invitation before it is accepted: it
        completes with Failure (reason ``Gone``), its conversation is deleted and the
        invitation is forgotten (a later accept answers 404 NotFound)."""
        self._conversations.withdraw(url)

    async def say(
        self, conversation_url: str, uri: str, text: str, html: str | None = None
    ) -> None:
        """The remote participant ``uri`` sends a message in the conversation."""
        self._conversations.say(conversation_url, uri, text, html)

    async def leave(self, conversation_url: str, uri: str) -> None:
        """The remote participant leaves: participant deleted, the conversation ends."""
        self._conversations.leave(conversation_url, uri)

    async def end_conversation(self, conversation_url: str) -> None:
        """The server ends the conversation (modality Disconnected, conversation deleted)."""
        self._conversations.end(conversation_url)

    def conversation_urls(self) -> list[str]:
        """Absolute URLs of the conversations kept (live and ended), in creation order."""
        return self._conversations.urls()

    def messages_from_client(self, conversation_url: str) -> list[str]:
        """Texts (or HTML) of the messages the client sent that were delivered, in order."""
        return self._conversations.client_texts(conversation_url)

    def conversation_state(self, conversation_url: str) -> str | None:
        """Incoming / Connecting / Connected / Disconnected, or None if unknown."""
        return self._conversations.state(conversation_url)

    def conversation_peer(self, conversation_url: str) -> str | None:
        """The SIP URI of the remote participant of a peer-to-peer conversation, the one
        ``say()`` and ``leave()`` speak for; None while nobody is there (not joined yet,
        or left), once the conversation ended, or if it is unknown."""
        return self._conversations.peer(conversation_url)
