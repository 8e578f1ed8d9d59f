"""Cancellation never leaves a task behind: a caller cancelling ``await invitation``, a task
cancelled mid-sign-in (at every step), closing the session during a reconnect or while an
invitation is being read back."""

from __future__ import annotations

import asyncio
import random

import pytest

import ucwa_async
from ucwa_async._core.backoff import Backoff
from ucwa_async.testing import SimulatorConfig, UcwaSimulator

from ._engine import unclosed_http_objects


def _session(sim: UcwaSimulator, **overrides: object) -> ucwa_async.Session:
    options: dict[str, object] = {
        "invitation_timeout": 10.0,
        "request_timeout": 5.0,
        "connect_timeout": 10.0,
        "keepalive_interval": None,
        "backoff": Backoff(base=0.01, cap=0.1, rng=random.Random(0)),
    }
    options.update(overrides)
    return ucwa_async.Session(
        sim.discovery_url,
        auth=ucwa_async.PasswordAuth(sim.username, sim.password),
        **options,  # type: ignore[arg-type]
    )


def _client_tasks() -> list[asyncio.Task[object]]:
    """Live tasks other than this one and the simulator's own request handlers."""
    current = asyncio.current_task()
    return [
        t
        for t in asyncio.all_tasks()
        if t is not current and not t.done() and "aiohttp/web_" not in repr(t)
    ]


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


@pytest.mark.parametrize("wire", ["json", "xml"])
async def test_caller_cancelling_await_leaves_invitation_and_session_intact(wire: str) -> None:
    config = SimulatorConfig(completion_delay=0.3)
    async with UcwaSimulator(config=config, seed=1) as sim:
        async with _session(sim, wire_format=wire) as session:
            log = (await session.conversation_logs(limit=1))[0]
            invitation = await session.continue_messaging(log, "cancel my wait")
            waiter = asyncio.create_task(invitation.wait())
            await asyncio.sleep(0.05)
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
            assert not invitation.done()  # the wait was cancelled, not the invitation
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(invitation.wait(), 0.01)
            result = await invitation  # still resolves, once
            assert result.state == "Connected"
            assert session.pending_invitations == 0
        assert _client_tasks() == []
    assert unclosed_http_objects() == []


@pytest.mark.parametrize(
    "target",
    ["discovery", "user", "token", "applications", "makeMeAvailable"],
)
async def test_task_cancelled_mid_sign_in_leaves_nothing(target: str) -> None:
    async with UcwaSimulator(seed=2) as sim:
        sim.faults.latency(2.0, target=target)
        session = _session(sim)
        opening = asyncio.create_task(session.open())
        await asyncio.sleep(0.5)  # sign-in takes ~0.1 s; now it is held at ``target``
        assert not opening.done(), f"sign-in finished before reaching {target}"
        # The request log records a request when it is answered: ``target`` is not yet.
        assert target not in {r.kind for r in sim.request_log}
        opening.cancel()
        with pytest.raises(asyncio.CancelledError):
            await opening
        assert session.closed
        await _settle()
        assert _client_tasks() == []
        sim.faults.latency(0, target=target)
        with pytest.raises(ucwa_async.SessionClosedError):
            await session.conversation_logs()
    assert unclosed_http_objects() == []


@pytest.mark.parametrize("fault", ["service_unavailable", "drop_pget", "delete_application"])
async def test_close_during_reconnect(fault: str) -> None:
    config = SimulatorConfig(completion_delay=5.0)
    async with UcwaSimulator(config=config, seed=3) as sim:
        session = _session(sim, retry_after_cap=30.0, backoff=Backoff(base=5.0, cap=5.0))
        await session.open()
        log = (await session.conversation_logs(limit=1))[0]
        invitation = await session.continue_messaging(log, "pending")
        reconnecting = asyncio.Event()
        stream = session.events()

        async def watch() -> None:
            async for event in stream:
                if isinstance(event, ucwa_async.ChannelReconnecting):
                    reconnecting.set()

        watcher = asyncio.create_task(watch())
        if fault == "service_unavailable":
            sim.faults.service_unavailable(next_n=50, retry_after=20, target="pget")
            sim.faults.drop_pget(next_n=2)
        elif fault == "drop_pget":
            sim.faults.drop_pget(next_n=50)
        else:
            sim.faults.html_access_denied(next_n=50)
            sim.faults.delete_application()
        async with asyncio.timeout(5):
            await reconnecting.wait()
        assert session.channel_state is ucwa_async.ChannelStatus.RECONNECTING
        async with asyncio.timeout(3):  # does not wait out the backoff / Retry-After
            await session.aclose()
        await watcher
        with pytest.raises((ucwa_async.SessionClosedError, ucwa_async.InvitationLostError)):
            await invitation
        await _settle()
        assert _client_tasks() == []
    assert unclosed_http_objects() == []


async def test_close_while_an_invitation_is_read_back() -> None:
    """Link-only events: the session GETs the invitation; closing meanwhile still ends it."""
    config = SimulatorConfig(completion_delay=0.0, embed_resources=False)
    async with UcwaSimulator(config=config, seed=4) as sim:
        session = _session(sim)
        await session.open()
        log = (await session.conversation_logs(limit=1))[0]
        sim.faults.latency(3.0, target="invitation")
        invitation = await session.continue_messaging(log, "read me back")
        async with asyncio.timeout(5):
            while not session._background:  # noqa: ASYNC110 - the read-back GET is under way
                await asyncio.sleep(0.01)
        async with asyncio.timeout(3):
            await session.aclose()
        assert invitation.done(), "an invitation being read back was left pending by close"
        # The completed event said Success: that outcome stands; otherwise SessionClosedError.
        assert (await invitation).state == "Connected"
        await _settle()
        assert _client_tasks() == []
    assert unclosed_http_objects() == []
