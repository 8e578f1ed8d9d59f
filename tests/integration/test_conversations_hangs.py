"""Every conversation await is bounded, both wires: a server that never answers a
stopMessaging, a sendMessage or an accept, or never says how an accept ended."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

import ucwa_async
from ucwa_async.testing import Behaviour, Person, SimulatorConfig, UcwaSimulator

from ._support import EVENT_SHAPES, SessionFactory

LENE = "sip:lenea@contoso.com"
STEP = 10.0
SILENCE = 60.0  # the server's answer comes after the test is over


@pytest.fixture
def short_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    """The wait for the channel's word on a POST that got no answer: 0.2 s, not 2."""
    from ucwa_async import _outcome

    monkeypatch.setattr(_outcome, "UNANSWERED_GRACE", 0.2)


async def test_leave_when_the_server_never_answers(
    make_session: SessionFactory, short_grace: None
) -> None:
    config = SimulatorConfig(completion_delay=0.01)
    async with (
        UcwaSimulator(config=config, seed=0) as sim,
        make_session(sim, request_timeout=1.0) as session,
    ):
        conversation = await (await session.start_messaging(LENE)).conversation(STEP)
        sim.faults.latency(SILENCE, target="stopMessaging")
        started = time.monotonic()
        with pytest.raises(ucwa_async.UcwaError):
            async with asyncio.timeout(STEP):
                await conversation.leave()
        assert time.monotonic() - started < STEP
        # over here all the same: its streams end, a second leave returns at once
        assert conversation.ended is ucwa_async.ConversationEndReason.LEFT
        async with asyncio.timeout(1.0):
            await conversation.leave()
            assert await conversation.wait_ended() is ucwa_async.ConversationEndReason.LEFT
        sim.faults.latency(0, target="stopMessaging")


async def test_cancelled_leave_still_stops_on_the_server(
    make_session: SessionFactory,
) -> None:
    """A caller that gives up on leave() (cancelled, or an outer timeout) must not leave
    the conversation Connected on the server: the session finishes the stop POST."""
    config = SimulatorConfig(completion_delay=0.01)
    async with UcwaSimulator(config=config, seed=0) as sim:
        async with make_session(sim) as session:
            conversation = await (await session.start_messaging(LENE)).conversation(STEP)
            assert sim.conversation_state(conversation.href) == "Connected"
            sim.faults.latency(0.5, target="stopMessaging")  # handled after the delay
            leaving = asyncio.create_task(conversation.leave())
            await asyncio.sleep(0.1)  # the POST is under way
            leaving.cancel()
            with pytest.raises(asyncio.CancelledError):
                await leaving
            assert conversation.ended is ucwa_async.ConversationEndReason.LEFT
            async with asyncio.timeout(STEP):
                while sim.conversation_state(conversation.href) not in (None, "Disconnected"):  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
            # an outer timeout gives up the same way
            other = await (await session.start_messaging(LENE)).conversation(STEP)
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.1):
                    await other.leave()
            assert other.ended is ucwa_async.ConversationEndReason.LEFT
            async with asyncio.timeout(STEP):
                while sim.conversation_state(other.href) not in (None, "Disconnected"):  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
        assert not session._background  # its stop POST task ended with the session


async def test_cancelled_leave_when_the_server_never_answers(
    make_session: SessionFactory,
    caplog: pytest.LogCaptureFixture,
    short_grace: None,
) -> None:
    """The stop POST the session finishes is bounded by the request timeout, its error
    logged; a close meanwhile ends it cleanly."""
    config = SimulatorConfig(completion_delay=0.01)
    async with UcwaSimulator(config=config, seed=0) as sim:
        async with make_session(sim, request_timeout=0.5) as session:
            conversation = await (await session.start_messaging(LENE)).conversation(STEP)
            sim.faults.latency(SILENCE, target="stopMessaging")
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.1):
                    await conversation.leave()
            async with asyncio.timeout(STEP):
                while not _stop_failure_logged(caplog, conversation.href):  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
            stuck = await (await session.start_messaging(LENE)).conversation(STEP)
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.1):
                    await stuck.leave()
            started = time.monotonic()
        assert time.monotonic() - started < STEP  # the close did not wait for the server
        sim.faults.latency(0, target="stopMessaging")
        assert not session._background  # its stop POST task ended with the session


async def test_leave_cancelled_in_the_turn_its_stop_fails_still_reports(
    make_session: SessionFactory, monkeypatch: pytest.MonkeyPatch, short_grace: None
) -> None:
    """The caller's cancel lands in the very turn the stop POST fails (an outer timeout
    expiring then): the error is not lost, the next leave() raises it."""
    from ucwa_async import _conversations

    settles: list[asyncio.Future[None]] = []
    real = _conversations._settle_with

    def spy(work: Any, done: asyncio.Future[None]) -> Any:
        settles.append(done)
        return real(work, done)

    monkeypatch.setattr(_conversations, "_settle_with", spy)
    config = SimulatorConfig(completion_delay=0.01)
    async with (
        UcwaSimulator(config=config, seed=0) as sim,
        make_session(sim, request_timeout=0.3) as session,
    ):
        conversation = await (await session.start_messaging(LENE)).conversation(STEP)
        sim.faults.latency(SILENCE, target="stopMessaging")
        leaving = asyncio.create_task(conversation.leave())
        async with asyncio.timeout(STEP):
            while not settles:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        settles[0].add_done_callback(lambda _: leaving.cancel())  # after the caller's wake-up
        with pytest.raises(asyncio.CancelledError):
            await leaving
        assert settles[0].exception() is not None
        with pytest.raises(ucwa_async.UcwaError):
            async with asyncio.timeout(STEP):
                await conversation.leave()
        sim.faults.latency(0, target="stopMessaging")


def _stop_failure_logged(caplog: pytest.LogCaptureFixture, href: str) -> bool:
    return any(
        r.levelno == logging.WARNING
        and href in r.getMessage()
        and "stop POST failed" in r.getMessage()
        for r in caplog.records
    )


async def test_send_when_the_server_never_answers(make_session: SessionFactory) -> None:
    config = SimulatorConfig(completion_delay=0.01)
    async with (
        UcwaSimulator(config=config, seed=0) as sim,
        make_session(sim, request_timeout=1.0) as session,
    ):
        conversation = await (await session.start_messaging(LENE)).conversation(STEP)
        sim.faults.latency(SILENCE, target="sendMessage")
        with pytest.raises(ucwa_async.UcwaError):
            async with asyncio.timeout(STEP):
                await conversation.send("anyone?")
        assert len(session._conversation_table.sent) == 0  # nothing left pending
        sim.faults.latency(0, target="sendMessage")
        # a later message goes through
        async with asyncio.timeout(STEP):
            await (await conversation.send("still here")).wait()


async def test_accept_when_the_server_never_answers(
    make_session: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ucwa_async import _outcome

    # (A POST without an answer waits this long for the invitation's end: 2 s by default.)
    monkeypatch.setattr(_outcome, "UNANSWERED_GRACE", 0.2)
    config = SimulatorConfig(completion_delay=0.01)
    async with (
        UcwaSimulator(config=config, seed=0) as sim,
        make_session(sim, request_timeout=1.0) as session,
        session.incoming() as invitations,
    ):
        await sim.incoming_message(LENE, "there?")
        async with asyncio.timeout(STEP):
            invite = await anext(invitations)
        sim.faults.latency(SILENCE, target="accept")
        with pytest.raises(ucwa_async.UcwaError):
            async with asyncio.timeout(STEP):
                await invite.accept(timeout=2.0)
        sim.faults.latency(0, target="accept")


async def test_cancelled_hang_up_still_stops_on_the_server(
    make_session: SessionFactory,
) -> None:
    """hang_up() as leave(): a caller that gives up does not leave the call Connected on
    the server; the session finishes the stopPhoneAudio POST."""
    config = SimulatorConfig(completion_delay=0.01)
    async with UcwaSimulator(config=config, seed=0) as sim:
        async with make_session(sim) as session:
            call = await session.start_phone_audio(LENE, phone_number="+14255551234")
            conversation = await call.conversation(STEP)
            assert sim.conversation_state(conversation.href) == "Connected"
            sim.faults.latency(0.5, target="stopPhoneAudio")  # handled after the delay
            hanging_up = asyncio.create_task(conversation.hang_up())
            await asyncio.sleep(0.1)  # the POST is under way
            hanging_up.cancel()
            with pytest.raises(asyncio.CancelledError):
                await hanging_up
            async with asyncio.timeout(STEP):
                while sim.conversation_state(conversation.href) not in (None, "Disconnected"):  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
            assert await conversation.wait_ended(STEP) is ucwa_async.ConversationEndReason.LEFT
            stops = [r for r in sim.request_log if r.kind == "stopPhoneAudio"]
            assert len(stops) == 1
        assert not session._background  # its stop POST task ended with the session


async def test_leave_after_a_cancelled_leave_waits_for_its_stop(
    make_session: SessionFactory,
) -> None:
    """A cancelled leave() left its stop POST running: a later leave() waits for it (as
    a repeated close waits for the first one) instead of returning at once while the
    conversation is still Connected on the server."""
    config = SimulatorConfig(completion_delay=0.01)
    async with UcwaSimulator(config=config, seed=0) as sim, make_session(sim) as session:
        conversation = await (await session.start_messaging(LENE)).conversation(STEP)
        sim.faults.latency(0.5, target="stopMessaging")
        leaving = asyncio.create_task(conversation.leave())
        await asyncio.sleep(0.1)
        leaving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leaving
        async with asyncio.timeout(STEP):
            await conversation.leave()
        assert sim.conversation_state(conversation.href) in (None, "Disconnected")
        stops = [r for r in sim.request_log if r.kind == "stopMessaging"]
        assert len(stops) == 1  # waited for, not sent again


async def test_leave_after_a_cancelled_leave_reports_its_failure(
    make_session: SessionFactory, short_grace: None
) -> None:
    """The stop POST of a cancelled leave() failed: nobody was told; the next leave()
    raises its error (once: a leave() after that returns, as after a failed leave())."""
    config = SimulatorConfig(completion_delay=0.01)
    async with UcwaSimulator(config=config, seed=0) as sim:
        async with make_session(sim, request_timeout=0.5) as session:
            conversation = await (await session.start_messaging(LENE)).conversation(STEP)
            sim.faults.latency(SILENCE, target="stopMessaging")
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.1):
                    await conversation.leave()
            with pytest.raises(ucwa_async.UcwaError):
                async with asyncio.timeout(STEP):
                    await conversation.leave()
            async with asyncio.timeout(1.0):
                await conversation.leave()
        sim.faults.latency(0, target="stopMessaging")


async def test_a_close_is_no_failure_of_a_cancelled_leave(
    make_session: SessionFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """The session closes while the stop POST of a cancelled leave() is still waiting for
    the server: the close ends it (its DELETE of the application ends the conversation on
    the server). That is no failure to log as one, nor to raise from a later leave():
    it returns, as for any conversation the close ended."""
    config = SimulatorConfig(completion_delay=0.01)
    async with UcwaSimulator(config=config, seed=0) as sim:
        async with make_session(sim) as session:
            conversation = await (await session.start_messaging(LENE)).conversation(STEP)
            sim.faults.latency(SILENCE, target="stopMessaging")
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.1):
                    await conversation.leave()
        assert not session._background
        assert not _stop_failure_logged(caplog, conversation.href)
        async with asyncio.timeout(1.0):
            await conversation.leave()
        sim.faults.latency(0, target="stopMessaging")


async def test_cancelled_accept_the_server_took(make_session: SessionFactory) -> None:
    """The server took the accept POST, its answer came after the caller gave up: the
    invitation is accepted all the same (the server connected the conversation).
    decline() says so without a POST; a later accept() returns the conversation without
    a second POST."""
    config = SimulatorConfig(completion_delay=0.01)
    async with (
        UcwaSimulator(config=config, seed=0) as sim,
        make_session(sim) as session,
        session.incoming() as invitations,
    ):
        await sim.incoming_message(LENE, "there?")
        async with asyncio.timeout(STEP):
            invite = await anext(invitations)
        sim.faults.late_answer(0.5, target="accept")  # acted on at once, answered later
        accepting = asyncio.create_task(invite.accept())
        await asyncio.sleep(0.2)
        accepting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await accepting
        with pytest.raises(ucwa_async.ConversationError, match="accepted"):
            async with asyncio.timeout(STEP):
                await invite.decline()
        conversation = await invite.accept(timeout=STEP)
        assert conversation.ended is None
        assert sim.conversation_state(conversation.href) == "Connected"
        posts = [r for r in sim.request_log if r.method == "POST"]
        assert len([r for r in posts if r.kind == "accept"]) == 1
        assert not [r for r in posts if r.kind == "decline"]
        assert session.stats.incoming_accepted == 1
        assert not invite.withdrawn


@pytest.mark.parametrize("shape", list(EVENT_SHAPES))
async def test_accept_whose_answer_is_lost_returns_the_conversation(
    make_session: SessionFactory, monkeypatch: pytest.MonkeyPatch, shape: str
) -> None:
    """The server took the accept POST, then the connection dropped before its 204: the
    invitation's completed event (accept_ref.md: the outcome comes on the event channel)
    says it connected, so accept() returns the conversation. It raised the
    TransportError, and the completed event then marked the invitation withdrawn
    ("answered elsewhere"): a second accept() was refused, and nobody held a
    conversation the server had connected for this endpoint."""
    from ucwa_async import _outcome

    monkeypatch.setattr(_outcome, "UNANSWERED_GRACE", 1.0)
    config = SimulatorConfig(completion_delay=0.01, **EVENT_SHAPES[shape])
    async with (
        UcwaSimulator(config=config, seed=0) as sim,
        make_session(sim) as session,
        session.incoming() as invitations,
    ):
        await sim.incoming_message(LENE, "there?")
        async with asyncio.timeout(STEP):
            invite = await anext(invitations)
        sim.faults.late_answer(0.1, target="accept", drop=True)
        conversation = await invite.accept(timeout=STEP)
        assert sim.counters.faults_injected["late_answer"] == 1
        assert conversation.ended is None
        assert sim.conversation_state(conversation.href) == "Connected"
        assert not invite.withdrawn
        assert session.stats.incoming_accepted == 1
        assert await invite.accept(timeout=STEP) is conversation  # no second POST
        accepts = [r for r in sim.request_log if r.method == "POST" and r.kind == "accept"]
        assert len(accepts) == 1
        async with conversation.messages() as messages:
            await (await conversation.send("hi")).result(STEP)
            async with asyncio.timeout(STEP):
                assert (await anext(messages)).text == "echo: hi"


async def test_accept_whose_post_reached_nothing_raises_and_can_be_retried(
    make_session: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The accept POST got no answer and the server never took it: nothing names an
    outcome within the grace, accept() raises the TransportError, and the invitation can
    still be accepted."""
    from ucwa_async import _outcome

    monkeypatch.setattr(_outcome, "UNANSWERED_GRACE", 0.2)
    config = SimulatorConfig(completion_delay=0.01)
    async with (
        UcwaSimulator(config=config, seed=0) as sim,
        make_session(sim) as session,
        session.incoming() as invitations,
    ):
        await sim.incoming_message(LENE, "there?")
        async with asyncio.timeout(STEP):
            invite = await anext(invitations)
        table = session._conversation_table
        post = table._post_payload
        lost = True

        async def post_once_lost(url: str, payload: Any, content_type: Any) -> Any:
            nonlocal lost
            if lost and url.endswith("/accept"):
                lost = False
                raise ucwa_async.TransportError("POST failed: connection reset (injected)")
            return await post(url, payload, content_type)

        table._post_payload = post_once_lost  # type: ignore[method-assign]
        began = time.monotonic()
        with pytest.raises(ucwa_async.TransportError):
            await invite.accept(timeout=STEP)
        assert time.monotonic() - began >= 0.15  # it waited for the channel's word
        assert not invite.withdrawn
        conversation = await invite.accept(timeout=STEP)
        assert sim.conversation_state(conversation.href) == "Connected"
        assert session.stats.incoming_accepted == 1


async def test_invitation_conversation_honours_one_deadline(
    make_session: SessionFactory,
) -> None:
    """conversation(timeout) bounds the whole call: the wait for the outcome and then
    for the conversation's link-only reads share one deadline (were two: up to twice it)."""
    config = SimulatorConfig(completion_delay=0.01, embed_resources=False)
    async with UcwaSimulator(config=config, seed=0) as sim, make_session(sim) as session:
        sim.add_person(Person(uri=LENE, name="Lene Aaling", behaviour=Behaviour.echo(0.8)))
        invitation = await session.start_messaging(LENE)
        sim.faults.latency(SILENCE, target="conversation")  # its GET never lands in time
        loop = asyncio.get_running_loop()
        started = loop.time()
        conversation = await invitation.conversation(1.0)  # connected after 0.8 s
        elapsed = loop.time() - started
        assert 0.7 < elapsed < 1.3, elapsed
        # its GET still under way: a spent timeout waits no more (0 was the default, 10 s)
        started = loop.time()
        assert await invitation.conversation(0) is conversation
        assert loop.time() - started < 0.5
        assert conversation.ended is None
        sim.faults.latency(0, target="conversation")


async def test_cancelled_decline_the_server_took(make_session: SessionFactory) -> None:
    """The server took the decline POST, its answer came after the caller gave up: the
    invitation is declined all the same (counted; accept() says "declined", not
    "withdrawn", and sends nothing)."""
    config = SimulatorConfig(completion_delay=0.01)
    async with (
        UcwaSimulator(config=config, seed=0) as sim,
        make_session(sim) as session,
        session.incoming() as invitations,
    ):
        await sim.incoming_message(LENE, "there?")
        async with asyncio.timeout(STEP):
            invite = await anext(invitations)
        sim.faults.late_answer(0.5, target="decline")  # acted on at once, answered later
        declining = asyncio.create_task(invite.decline())
        await asyncio.sleep(0.2)
        declining.cancel()
        with pytest.raises(asyncio.CancelledError):
            await declining
        with pytest.raises(ucwa_async.InvitationWithdrawnError, match="declined"):
            async with asyncio.timeout(STEP):
                await invite.accept()
        async with asyncio.timeout(STEP):
            await invite.decline()  # declined: returns
        posts = [r for r in sim.request_log if r.method == "POST"]
        assert not [r for r in posts if r.kind == "accept"]
        assert len([r for r in posts if r.kind == "decline"]) == 1
        assert session.stats.incoming_declined == 1


async def test_cancelled_send_the_server_took_is_tracked(make_session: SessionFactory) -> None:
    """The server took the sendMessage POST, its 201 came after the caller gave up
    (cancelled, or an outer timeout): the message went out all the same. The session
    finishes the POST and tracks the message: counted as sent, settled (delivered) from
    its events, nothing left pending."""
    config = SimulatorConfig(completion_delay=0.01)
    async with UcwaSimulator(config=config, seed=0) as sim, make_session(sim) as session:
        conversation = await (await session.start_messaging(LENE)).conversation(STEP)
        sim.faults.late_answer(0.5, target="sendMessage")  # acted on at once, answered later
        sending = asyncio.create_task(conversation.send("are you there?"))
        await asyncio.sleep(0.2)
        sending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sending
        # an outer timeout gives up the same way
        sim.faults.late_answer(0.5, target="sendMessage")
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await conversation.send("hello?")
        async with asyncio.timeout(STEP):
            while session.stats.messages_delivered < 2:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        assert session.stats.messages_sent == 2
        assert sim.counters.messages_sent == 2
        assert len(session._conversation_table.sent) == 0  # both settled
        # the conversation goes on: a later message too
        async with asyncio.timeout(STEP):
            await (await conversation.send("still here")).wait()
        assert session.stats.messages_delivered == 3


@pytest.mark.parametrize("shape", list(EVENT_SHAPES))
@pytest.mark.parametrize("events", ["before", "after"])
async def test_send_whose_answer_is_lost_returns_the_message_the_server_took(
    make_session: SessionFactory, monkeypatch: pytest.MonkeyPatch, events: str, shape: str
) -> None:
    """The server took the sendMessage POST, then the connection dropped before its 201:
    the channel names the message's operationId (its embedded message, or a GET of a
    link-only started message: message_ref), before the failure or within the grace
    after it, so send() returns the message, which is delivered: no error that would
    make the caller say it twice."""
    from ucwa_async import _outcome

    monkeypatch.setattr(_outcome, "UNANSWERED_GRACE", 1.0)
    config = SimulatorConfig(
        completion_delay=0.01, message_operation_id=True, **EVENT_SHAPES[shape]
    )
    async with UcwaSimulator(config=config, seed=0) as sim, make_session(sim) as session:
        conversation = await (await session.start_messaging(LENE)).conversation(STEP)
        host = session._host
        assert host is not None
        deliver = host.deliver
        if events == "after":
            held: list[Any] = []
            host.deliver = held.append  # type: ignore[method-assign,assignment]

            async def release() -> None:
                await asyncio.sleep(0.3)  # after the drop, within the grace
                host.deliver = deliver  # type: ignore[method-assign]
                for batch in held:
                    deliver(batch)

            releasing = asyncio.create_task(release())
        sim.faults.late_answer(0.1, target="sendMessage", drop=True)
        async with asyncio.timeout(STEP):
            message = await conversation.send("are you there?")
            await message.wait()
        assert message.delivered
        assert sim.counters.messages_sent == 1
        assert sim.counters.faults_injected["late_answer"] == 1
        assert session.stats.messages_sent == 1
        assert session.stats.messages_delivered == 1
        if events == "after":
            await releasing


@pytest.mark.parametrize("how", ["no operationId", "not taken"])
async def test_send_whose_answer_is_lost_and_never_named_raises(
    make_session: SessionFactory, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """Nothing names the message within the grace (the server took it but its messages
    carry no operationId, as in the SendAnIM flow; or it never took it): send() raises
    the TransportError, and nothing of it stays pending."""
    from ucwa_async import _outcome

    monkeypatch.setattr(_outcome, "UNANSWERED_GRACE", 0.2)
    config = SimulatorConfig(completion_delay=0.01)
    async with UcwaSimulator(config=config, seed=0) as sim, make_session(sim) as session:
        conversation = await (await session.start_messaging(LENE)).conversation(STEP)
        table = session._conversation_table
        if how == "not taken":

            async def lost(url: str, payload: Any, content_type: Any) -> Any:
                raise ucwa_async.TransportError("POST failed: connection reset (injected)")

            table.sent._post = lost
        else:
            sim.faults.late_answer(0.1, target="sendMessage", drop=True)
        began = time.monotonic()
        with pytest.raises(ucwa_async.TransportError):
            await conversation.send("hello?")
        assert time.monotonic() - began >= 0.15  # it waited for the channel's word
        assert len(table.sent) == 0
        assert table.sent._unanswered == {}
        assert session.stats.messages_sent == 0
        assert sim.counters.messages_sent == (1 if how == "no operationId" else 0)


async def test_cancelled_send_then_close(make_session: SessionFactory) -> None:
    """The session closes while the POST of a send() whose caller gave up still waits
    for the server: the close ends it (no task left, nothing "never retrieved")."""
    config = SimulatorConfig(completion_delay=0.01)
    async with UcwaSimulator(config=config, seed=0) as sim:
        async with make_session(sim) as session:
            conversation = await (await session.start_messaging(LENE)).conversation(STEP)
            sim.faults.latency(SILENCE, target="sendMessage")
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.2):
                    await conversation.send("anyone?")
            assert session._background  # the session finishes the POST
            started = time.monotonic()
        assert time.monotonic() - started < STEP  # the close did not wait for the server
        assert not session._background
        assert session.stats.messages_sent == 0
        sim.faults.latency(0, target="sendMessage")


async def test_cancelled_send_whose_post_fails_is_logged(
    make_session: SessionFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """The POST of a send() whose caller gave up fails (no answer within the request
    timeout): nobody else would know; it is logged, nothing stays pending."""
    config = SimulatorConfig(completion_delay=0.01)
    async with UcwaSimulator(config=config, seed=0) as sim:
        async with make_session(sim, request_timeout=0.5) as session:
            conversation = await (await session.start_messaging(LENE)).conversation(STEP)
            sim.faults.latency(SILENCE, target="sendMessage")
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.1):
                    await conversation.send("anyone?")
            async with asyncio.timeout(STEP):
                while not any(  # noqa: ASYNC110
                    r.levelno == logging.WARNING
                    and conversation.href in r.getMessage()
                    and "sendMessage POST failed" in r.getMessage()
                    for r in caplog.records
                ):
                    await asyncio.sleep(0.05)
            assert len(session._conversation_table.sent) == 0
            assert session.stats.messages_sent == 0
        sim.faults.latency(0, target="sendMessage")


async def test_a_send_after_a_cancelled_one_reaches_the_server_after_it(
    make_session: SessionFactory,
) -> None:
    """A caller gives up on a send() during its POST and sends again at once: the
    session still finishes the first POST, so the second must not overtake it (in
    order, as two sends one after the other were before the first's POST outlived its
    caller)."""
    config = SimulatorConfig(completion_delay=0.01)
    async with UcwaSimulator(config=config, seed=0) as sim, make_session(sim) as session:
        conversation = await (await session.start_messaging(LENE)).conversation(STEP)
        sim.faults.latency(0.5, target="sendMessage")  # handled after the delay
        sending = asyncio.create_task(conversation.send("first"))
        await asyncio.sleep(0.2)  # the POST is under way
        sending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sending
        sim.faults.latency(0, target="sendMessage")
        async with asyncio.timeout(STEP):
            await (await conversation.send("second")).wait()
            while session.stats.messages_delivered < 2:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        assert sim.messages_from_client(conversation.href) == ["first", "second"]


async def test_a_send_waiting_behind_a_cancelled_one_ends_with_its_conversation(
    make_session: SessionFactory,
) -> None:
    """The conversation ends (leave()) while a send() waits for the POST of one whose
    caller gave up: it raises ConversationEndedError and POSTs nothing."""
    config = SimulatorConfig(completion_delay=0.01)
    async with UcwaSimulator(config=config, seed=0) as sim, make_session(sim) as session:
        conversation = await (await session.start_messaging(LENE)).conversation(STEP)
        sim.faults.latency(0.5, target="sendMessage")
        first = asyncio.create_task(conversation.send("first"))
        await asyncio.sleep(0.2)  # the POST is under way
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        sim.faults.latency(0, target="sendMessage")
        second = asyncio.create_task(conversation.send("second"))
        await asyncio.sleep(0.05)  # waits behind the first
        await conversation.leave()
        with pytest.raises(ucwa_async.ConversationEndedError):
            async with asyncio.timeout(STEP):
                await second
        async with asyncio.timeout(STEP):
            while session._background:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        assert sim.messages_from_client(conversation.href) in ([], ["first"])
        assert "second" not in sim.messages_from_client(conversation.href)


async def test_a_send_after_several_cancelled_ones_reaches_the_server_last(
    make_session: SessionFactory,
) -> None:
    """Several concurrent send()s given up during their POSTs: a send after them all
    waits for every one of them, not only the last given up."""
    config = SimulatorConfig(completion_delay=0.01)
    async with UcwaSimulator(config=config, seed=0) as sim, make_session(sim) as session:
        conversation = await (await session.start_messaging(LENE)).conversation(STEP)
        sim.faults.latency(0.6, target="sendMessage")
        slow = asyncio.create_task(conversation.send("slow"))
        await asyncio.sleep(0.1)
        sim.faults.latency(0.3, target="sendMessage")
        quick = asyncio.create_task(conversation.send("quick"))
        await asyncio.sleep(0.1)
        slow.cancel()  # the slow one given up first...
        await asyncio.sleep(0)
        quick.cancel()  # ...then the quicker one, answered before it
        for task in (quick, slow):
            with pytest.raises(asyncio.CancelledError):
                await task
        sim.faults.latency(0, target="sendMessage")
        async with asyncio.timeout(STEP):
            await (await conversation.send("last")).wait()
            while session.stats.messages_delivered < 3:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        assert sim.messages_from_client(conversation.href)[-1] == "last"
        assert session.stats.messages_sent == 3


async def test_many_sends_whose_answers_are_lost_at_once_are_each_named(
    make_session: SessionFactory,
) -> None:
    """A connection drop loses the answers of 12 sendMessage POSTs at once, on a server
    whose message events embed nothing: only the last 8 unclaimed started messages were
    kept, and each send read the same ones, so 4 sends never found theirs: they raised,
    for messages the server had taken (a retry says them twice)."""
    config = SimulatorConfig(
        completion_delay=0.01, message_operation_id=True, embed_resources=False
    )
    async with UcwaSimulator(config=config, seed=0) as sim, make_session(sim) as session:
        conversation = await (await session.start_messaging(LENE)).conversation(STEP)
        sim.faults.late_answer(0.3, next_n=12, target="sendMessage", drop=True)
        sends = [asyncio.create_task(conversation.send(f"line {i}")) for i in range(12)]
        async with asyncio.timeout(STEP):
            results = await asyncio.gather(*sends, return_exceptions=True)
        assert [r for r in results if isinstance(r, BaseException)] == []
        assert sim.counters.messages_sent == 12
        assert session.stats.messages_sent == 12
        assert session._conversation_table.sent._unanswered == {}


# -- a leave(), hang_up() or decline() whose answer is lost ------------------------------


def _lose_first_post(session: ucwa_async.Session, suffix: str) -> None:
    """The first POST to a URL ending with ``suffix`` gets no answer and reaches nothing
    (a TransportError whose request_sent is not False: it may have)."""
    table = session._conversation_table
    post = table._post_payload
    lost = True

    async def post_once_lost(url: str, payload: Any, content_type: Any) -> Any:
        nonlocal lost
        if lost and url.endswith(suffix):
            lost = False
            raise ucwa_async.TransportError("POST failed: connection reset (injected)")
        return await post(url, payload, content_type)

    table._post_payload = post_once_lost  # type: ignore[method-assign]


@pytest.mark.parametrize("shape", list(EVENT_SHAPES))
async def test_leave_whose_answer_is_lost_returns(
    make_session: SessionFactory, monkeypatch: pytest.MonkeyPatch, shape: str
) -> None:
    """The server took the stopMessaging POST (stopMessaging_ref.md: it stops the
    modality), then the connection dropped before its 204: the event channel shows the
    conversation ended, so leave() returns and the conversation ended LEFT. It raised the
    TransportError, and the end reason was the server's (disconnected, deleted)."""
    from ucwa_async import _outcome

    monkeypatch.setattr(_outcome, "UNANSWERED_GRACE", 1.0)
    config = SimulatorConfig(completion_delay=0.01, **EVENT_SHAPES[shape])
    async with UcwaSimulator(config=config, seed=0) as sim, make_session(sim) as session:
        conversation = await (await session.start_messaging(LENE)).conversation(STEP)
        sim.faults.late_answer(0.1, target="stopMessaging", drop=True)
        async with asyncio.timeout(STEP):
            await conversation.leave()
        assert sim.counters.faults_injected["late_answer"] == 1
        assert conversation.ended is ucwa_async.ConversationEndReason.LEFT
        assert await conversation.wait_ended(1.0) is ucwa_async.ConversationEndReason.LEFT
        assert sim.conversation_state(conversation.href) in (None, "Disconnected")
        stops = [r for r in sim.request_log if r.kind == "stopMessaging"]
        assert len(stops) == 1
        assert session.stats.conversations_ended == 1
        await conversation.leave()  # over: returns at once, nothing sent


@pytest.mark.parametrize("shape", list(EVENT_SHAPES))
async def test_hang_up_whose_answer_is_lost_returns(
    make_session: SessionFactory, monkeypatch: pytest.MonkeyPatch, shape: str
) -> None:
    """hang_up() as leave(): the server took the stopPhoneAudio POST
    (stopPhoneAudio_ref.md), its 204 was lost; the channel shows the call ended, so
    hang_up() returns and the conversation ended LEFT."""
    from ucwa_async import _outcome

    monkeypatch.setattr(_outcome, "UNANSWERED_GRACE", 1.0)
    config = SimulatorConfig(completion_delay=0.01, **EVENT_SHAPES[shape])
    async with UcwaSimulator(config=config, seed=0) as sim, make_session(sim) as session:
        call = await session.start_phone_audio(LENE, phone_number="+14255551234")
        conversation = await call.conversation(STEP)
        sim.faults.late_answer(0.1, target="stopPhoneAudio", drop=True)
        async with asyncio.timeout(STEP):
            await conversation.hang_up()
        assert sim.counters.faults_injected["late_answer"] == 1
        assert await conversation.wait_ended(1.0) is ucwa_async.ConversationEndReason.LEFT
        assert sim.conversation_state(conversation.href) in (None, "Disconnected")
        stops = [r for r in sim.request_log if r.kind == "stopPhoneAudio"]
        assert len(stops) == 1


@pytest.mark.parametrize("shape", list(EVENT_SHAPES))
async def test_leave_answered_after_its_events_ends_left(
    make_session: SessionFactory, shape: str
) -> None:
    """The events of the stop (the conversation deleted, its messaging Disconnected) come
    before its 204: the conversation ended LEFT all the same (it ended disconnected or
    deleted, whichever the server said first, as if someone else had ended it)."""
    config = SimulatorConfig(completion_delay=0.01, **EVENT_SHAPES[shape])
    async with UcwaSimulator(config=config, seed=0) as sim, make_session(sim) as session:
        conversation = await (await session.start_messaging(LENE)).conversation(STEP)
        sim.faults.late_answer(0.3, target="stopMessaging")  # acted on at once
        async with asyncio.timeout(STEP):
            await conversation.leave()
        assert sim.counters.faults_injected["late_answer"] == 1
        assert conversation.ended is ucwa_async.ConversationEndReason.LEFT


async def test_leave_whose_stop_reached_nothing_raises(
    make_session: SessionFactory, short_grace: None
) -> None:
    """The stopMessaging POST got no answer and the server never took it: nothing shows
    the end within the grace, leave() raises the TransportError (the conversation is over
    here all the same, LEFT) and the server still has it connected."""
    config = SimulatorConfig(completion_delay=0.01)
    async with UcwaSimulator(config=config, seed=0) as sim, make_session(sim) as session:
        conversation = await (await session.start_messaging(LENE)).conversation(STEP)
        _lose_first_post(session, "/terminate")
        began = time.monotonic()
        with pytest.raises(ucwa_async.TransportError):
            async with asyncio.timeout(STEP):
                await conversation.leave()
        assert time.monotonic() - began >= 0.15  # it waited for the channel's word
        assert conversation.ended is ucwa_async.ConversationEndReason.LEFT
        assert sim.conversation_state(conversation.href) == "Connected"


async def test_hang_up_whose_stop_reached_nothing_raises(
    make_session: SessionFactory, short_grace: None
) -> None:
    """hang_up()'s stopPhoneAudio got no answer and the server never took it: hang_up()
    raises the TransportError after the grace, and the call goes on (it may be hung up
    again)."""
    config = SimulatorConfig(completion_delay=0.01)
    async with UcwaSimulator(config=config, seed=0) as sim, make_session(sim) as session:
        call = await session.start_phone_audio(LENE, phone_number="+14255551234")
        conversation = await call.conversation(STEP)
        _lose_first_post(session, "/terminate")
        began = time.monotonic()
        with pytest.raises(ucwa_async.TransportError):
            async with asyncio.timeout(STEP):
                await conversation.hang_up()
        assert time.monotonic() - began >= 0.15
        assert conversation.ended is None
        assert sim.conversation_state(conversation.href) == "Connected"
        async with asyncio.timeout(STEP):
            await conversation.hang_up()
        assert await conversation.wait_ended(STEP) is ucwa_async.ConversationEndReason.LEFT


@pytest.mark.parametrize("shape", list(EVENT_SHAPES))
async def test_decline_whose_answer_is_lost_is_counted(
    make_session: SessionFactory, monkeypatch: pytest.MonkeyPatch, shape: str
) -> None:
    """The server took the decline POST (decline_ref.md: the invitation fails, declined),
    then the connection dropped before its 204: the invitation's end on the channel says
    it was taken. decline() returns, the decline is counted (SessionStats.
    incoming_declined: "their decline POST taken") and accept() says "declined". It
    returned uncounted, the invitation taken for withdrawn by its caller."""
    from ucwa_async import _outcome

    monkeypatch.setattr(_outcome, "UNANSWERED_GRACE", 1.0)
    config = SimulatorConfig(completion_delay=0.01, **EVENT_SHAPES[shape])
    async with (
        UcwaSimulator(config=config, seed=0) as sim,
        make_session(sim) as session,
        session.incoming() as invitations,
    ):
        await sim.incoming_message(LENE, "there?")
        async with asyncio.timeout(STEP):
            invite = await anext(invitations)
        sim.faults.late_answer(0.1, target="decline", drop=True)
        async with asyncio.timeout(STEP):
            await invite.decline()
        assert sim.counters.faults_injected["late_answer"] == 1
        assert session.stats.incoming_declined == 1
        with pytest.raises(ucwa_async.InvitationWithdrawnError, match="declined"):
            await invite.accept()
        await invite.decline()  # declined: returns, nothing sent
        posts = [r for r in sim.request_log if r.method == "POST"]
        assert len([r for r in posts if r.kind == "decline"]) == 1
        assert not [r for r in posts if r.kind == "accept"]
        assert session.stats.incoming_declined == 1


async def test_decline_whose_post_reached_nothing_raises_and_can_be_retried(
    make_session: SessionFactory, short_grace: None
) -> None:
    """The decline POST got no answer and the server never took it: the invitation does
    not end within the grace, decline() raises the TransportError, uncounted, and a later
    decline() sends the request again."""
    config = SimulatorConfig(completion_delay=0.01)
    async with (
        UcwaSimulator(config=config, seed=0) as sim,
        make_session(sim) as session,
        session.incoming() as invitations,
    ):
        await sim.incoming_message(LENE, "there?")
        async with asyncio.timeout(STEP):
            invite = await anext(invitations)
        _lose_first_post(session, "/decline")
        began = time.monotonic()
        with pytest.raises(ucwa_async.TransportError):
            async with asyncio.timeout(STEP):
                await invite.decline()
        assert time.monotonic() - began >= 0.15  # it waited for the channel's word
        assert session.stats.incoming_declined == 0
        assert not invite.withdrawn
        async with asyncio.timeout(STEP):
            await invite.decline()
        assert session.stats.incoming_declined == 1
        declines = [r for r in sim.request_log if r.method == "POST" and r.kind == "decline"]
        assert len(declines) == 1  # the lost one never reached the simulator
