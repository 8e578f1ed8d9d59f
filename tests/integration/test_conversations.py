"""Conversations end to end against the simulator, both wires: incoming invitations
(accept, decline, withdrawn, overflow), start_messaging, send, receive, leave."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

import ucwa_async
from ucwa_async.testing import Behaviour, Person, SimulatorConfig, UcwaSimulator

from ._support import BOTH_SHAPES, SessionFactory, assert_no_leftover_tasks, until

LENE = "sip:lenea@contoso.com"
STEP = 10.0  # generous: the machine is shared


@pytest.fixture
async def sim(shaped: Callable[..., SimulatorConfig]) -> AsyncIterator[UcwaSimulator]:
    async with UcwaSimulator(config=shaped(completion_delay=0.01), seed=0) as simulator:
        yield simulator


async def next_invitation(
    invitations: ucwa_async.InvitationStream,
) -> ucwa_async.IncomingInvitation:
    async with asyncio.timeout(STEP):
        return await anext(invitations)


async def next_message(messages: ucwa_async.MessageStream) -> ucwa_async.Message:
    async with asyncio.timeout(STEP):
        return await anext(messages)


@BOTH_SHAPES
async def test_incoming_accept_reply_receive_leave(
    sim: UcwaSimulator, make_session: SessionFactory, no_leftover_tasks: Callable[[], None]
) -> None:
    async with make_session(sim, available_for=("Messaging",)) as session:
        # sent before anyone listens: the inbox keeps it
        url = await sim.incoming_message(LENE, "deploy status", subject="CI")
        async with session.incoming() as invitations:
            invite = await next_invitation(invitations)
        assert invite.kind == "messaging"
        assert invite.href == url
        assert invite.sender.uri == LENE
        assert invite.sender.name == "Lene Aaling"
        assert invite.subject == "CI"
        assert invite.message == "deploy status"
        conversation = await invite.accept()
        assert conversation.state == "Connected"
        assert [p.uri for p in conversation.participants] == [LENE]
        async with conversation.messages() as messages:
            sent = await conversation.send("all green")
            async with asyncio.timeout(STEP):
                await sent
            assert sent.delivered
            assert sim.messages_from_client(conversation.href) == ["all green"]
            echo = await next_message(messages)  # Lene's default behaviour: echo
            assert echo.text == "echo: all green"
            await sim.say(conversation.href, LENE, "thanks!")
            message = await next_message(messages)
            assert message.text == "thanks!"
            assert message.html is None
            assert message.sender is not None
            assert message.sender.uri == LENE
            assert message.href is not None
            # the invitation's first message is invite.message, not repeated here
            await conversation.leave()
            await conversation.leave()  # idempotent
            async with asyncio.timeout(STEP):
                assert [m async for m in messages] == []
        assert await conversation.wait_ended(STEP) is ucwa_async.ConversationEndReason.LEFT
        with pytest.raises(ucwa_async.ConversationEndedError):
            await conversation.send("too late")
        assert session.stats.incoming_invitations == 1
        assert session.stats.incoming_accepted == 1
        assert session.stats.messages_delivered == 1
    await assert_no_leftover_tasks(no_leftover_tasks)


@BOTH_SHAPES
async def test_decline(sim: UcwaSimulator, make_session: SessionFactory) -> None:
    async with make_session(sim) as session, session.incoming() as invitations:
        url = await sim.incoming_message(LENE, "lunch?")
        invite = await next_invitation(invitations)
        await invite.decline()
        await invite.decline()  # answered already: nothing more is sent
        declines = [
            r for r in sim.request_log if r.method == "POST" and r.path.endswith("/decline")
        ]
        assert len(declines) == 1
        assert session.stats.incoming_declined == 1
        assert sim.conversation_state(url) in (None, "Disconnected")
        # declined: accept() says so at once, without a POST the server would refuse
        with pytest.raises(ucwa_async.InvitationWithdrawnError, match="declined"):
            await invite.accept()
        assert not [r for r in sim.request_log if r.method == "POST" and r.path.endswith("/accept")]


@BOTH_SHAPES
async def test_decline_after_accept(sim: UcwaSimulator, make_session: SessionFactory) -> None:
    """An accepted invitation is a conversation: decline() says so instead of returning
    as if it had declined (leave() ends the conversation)."""
    async with make_session(sim) as session, session.incoming() as invitations:
        await sim.incoming_message(LENE, "lunch?")
        invite = await next_invitation(invitations)
        conversation = await invite.accept()
        with pytest.raises(ucwa_async.ConversationError, match="accepted"):
            await invite.decline()
        declines = [
            r for r in sim.request_log if r.method == "POST" and r.path.endswith("/decline")
        ]
        assert declines == []
        assert session.stats.incoming_declined == 0
        assert conversation.ended is None


@BOTH_SHAPES
async def test_withdrawn_before_accept(sim: UcwaSimulator, make_session: SessionFactory) -> None:
    async with make_session(sim) as session, session.incoming() as invitations:
        url = await sim.incoming_message(LENE, "never mind")
        invite = await next_invitation(invitations)
        await sim.withdraw(url)
        await until(lambda: invite.withdrawn, STEP)
        with pytest.raises(ucwa_async.InvitationWithdrawnError) as caught:
            async with asyncio.timeout(1.0):  # promptly: no request, no wait
                await invite.accept()
        assert caught.value.href == url
        assert caught.value.reason is not None
        assert caught.value.reason.code == "Gone"
        await invite.decline()  # nothing to decline: returns


async def test_withdrawn_while_queued_is_skipped(
    sim: UcwaSimulator, make_session: SessionFactory
) -> None:
    async with make_session(sim) as session:
        gone = await sim.incoming_message(LENE, "first")
        await sim.withdraw(gone)
        await sim.incoming_message(LENE, "second")
        async with session.incoming() as invitations:
            invite = await next_invitation(invitations)
        assert invite.message == "second"


async def test_inbox_overflow_declines_and_counts(
    sim: UcwaSimulator, make_session: SessionFactory
) -> None:
    limits = ucwa_async.Limits(incoming_queue_size=2)
    async with make_session(sim, limits=limits) as session:
        urls = [await sim.incoming_message(LENE, f"m{n}") for n in range(4)]
        await until(lambda: session.stats.incoming_declined == 2, STEP)
        assert session.stats.incoming_invitations == 4
        assert session.stats.incoming_overflowed == 2
        async with session.incoming() as invitations:
            kept = [await next_invitation(invitations), await next_invitation(invitations)]
        assert [i.href for i in kept] == urls[:2]
        assert all(sim.conversation_state(u) in (None, "Disconnected") for u in urls[2:])


async def test_several_incoming_streams_share_the_inbox(
    sim: UcwaSimulator, make_session: SessionFactory
) -> None:
    async with make_session(sim) as session:
        seen: list[list[str]] = [[], []]

        async def reader(index: int) -> None:
            async with session.incoming() as invitations:
                async for invite in invitations:
                    seen[index].append(invite.href)
                    await invite.decline()
                    if sum(map(len, seen)) == 10:
                        return

        readers = [asyncio.create_task(reader(i)) for i in range(2)]
        await asyncio.sleep(0)
        urls = [await sim.incoming_message(LENE, f"m{n}") for n in range(10)]
        async with asyncio.timeout(STEP):
            _done, pending = await asyncio.wait(readers, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        assert sorted(seen[0] + seen[1]) == sorted(urls)  # each to exactly one reader


@BOTH_SHAPES
async def test_phone_call_cannot_be_accepted_but_can_be_declined(
    sim: UcwaSimulator, make_session: SessionFactory
) -> None:
    async with make_session(sim) as session, session.incoming() as invitations:
        await sim.incoming_call(LENE)
        invite = await next_invitation(invitations)
        assert invite.kind == "phoneAudio"
        with pytest.raises(ucwa_async.UnsupportedModalityError, match="audio"):
            await invite.accept()
        await invite.decline()
        assert session.stats.incoming_declined == 1


async def test_available_for(sim: UcwaSimulator, make_session: SessionFactory) -> None:
    for bad in (("Video",), "Messaging", ("Messaging", "Messaging"), None):
        with pytest.raises(ValueError, match="available_for"):
            make_session(sim, available_for=bad)
    async with make_session(sim, available_for=()) as session:
        with pytest.raises(LookupError):
            await sim.incoming_message(LENE, "anyone?")
        assert session.available_for == ()
    async with make_session(sim, available_for=["Messaging"]):
        with pytest.raises(LookupError):
            await sim.incoming_call(LENE)


async def test_start_messaging_success(sim: UcwaSimulator, make_session: SessionFactory) -> None:
    async with make_session(sim) as session:
        inv = await session.start_messaging(LENE, message="Build 42 failed", subject="CI")
        conversation = await inv.conversation(timeout=STEP)
        assert conversation is await inv.conversation()
        assert conversation.subject == "CI"
        assert conversation.kind == "messaging"
        # Invitation.kind is the resource's rel; modality the vocabulary of the others.
        assert (inv.kind, inv.modality) == ("messagingInvitation", "messaging")
        assert [p.uri for p in conversation.participants] == [LENE]
        async with conversation.messages() as messages:
            reply = await next_message(messages)  # echo of the invitation's message
            assert reply.text == "echo: Build 42 failed"
            sent = await conversation.send("<b>rolling back</b>", html=True)
            await sent.result(STEP)
            assert (await next_message(messages)).text == "echo: <b>rolling back</b>"
        await conversation.set_typing()
        await conversation.leave()
        assert sim.conversation_state(conversation.href) in (None, "Disconnected")


async def test_start_messaging_to_a_bare_address_adds_sip(
    sim: UcwaSimulator, make_session: SessionFactory
) -> None:
    # As the docstrings of start_messaging / start_phone_audio say.
    async with make_session(sim) as session:
        inv = await session.start_messaging("lenea@contoso.com", message="hi")
        conversation = await inv.conversation(timeout=STEP)
        assert [p.uri for p in conversation.participants] == [LENE]
        await conversation.leave()


@BOTH_SHAPES
async def test_start_messaging_failure(sim: UcwaSimulator, make_session: SessionFactory) -> None:
    sim.add_person(
        Person(
            uri="sip:busy@contoso.com",
            name="Busy",
            behaviour=Behaviour.decline(code="Forbidden", subcode="DeclinedByUser"),
        )
    )
    async with make_session(sim) as session:
        inv = await session.start_messaging("sip:busy@contoso.com", message="hi")
        with pytest.raises(ucwa_async.InvitationFailedError) as caught:
            await inv.conversation(timeout=STEP)
        assert caught.value.reason is not None
        assert caught.value.reason.subcode == "DeclinedByUser"
        unknown = await session.start_messaging("sip:nobody@contoso.com")
        with pytest.raises(ucwa_async.InvitationFailedError):
            await unknown.result(STEP)
        with pytest.raises(ValueError, match="to must be"):
            await session.start_messaging("  ")


@BOTH_SHAPES
async def test_start_phone_audio_and_hang_up(
    sim: UcwaSimulator, make_session: SessionFactory
) -> None:
    async with make_session(sim) as session:
        call = await session.start_phone_audio(LENE, phone_number="+14255551234")
        conversation = await call.conversation(timeout=STEP)
        assert conversation.kind == "phoneAudio"
        assert (call.kind, call.modality) == ("phoneAudioInvitation", "phoneAudio")
        await conversation.hang_up()
        assert await conversation.wait_ended(STEP) is ucwa_async.ConversationEndReason.LEFT


async def test_start_phone_audio_without_phone_number(
    sim: UcwaSimulator, make_session: SessionFactory
) -> None:
    """startPhoneAudio_ref.md: phoneNumber is optional (the server rings the number given
    when the application was created): left out, none is sent and the call connects."""
    async with make_session(sim) as session:
        call = await session.start_phone_audio(LENE)
        conversation = await call.conversation(timeout=STEP)
        assert conversation.kind == "phoneAudio"
        assert "phoneNumber" not in (call.result().properties)
        await conversation.hang_up()


@BOTH_SHAPES
async def test_send_failed(sim: UcwaSimulator, make_session: SessionFactory) -> None:
    async with make_session(sim) as session:
        conversation = await (await session.start_messaging(LENE)).conversation(timeout=STEP)
        sim.faults.message_delivery_failed(
            1, code="ServiceFailure", subcode="RecipientUnreachable", message="nope"
        )
        sent = await conversation.send("are you there?")
        with pytest.raises(ucwa_async.MessageFailedError) as caught:
            await sent.result(STEP)
        assert caught.value.reason is not None
        assert caught.value.reason.subcode == "RecipientUnreachable"
        assert "RecipientUnreachable" in str(caught.value)
        assert session.stats.messages_failed == 1
        delivered = await conversation.send("and now?")
        await delivered.result(STEP)


@BOTH_SHAPES
async def test_send_retried_after_callback_channel_error(
    sim: UcwaSimulator, make_session: SessionFactory
) -> None:
    async with make_session(sim) as session:
        conversation = await (await session.start_messaging(LENE)).conversation(timeout=STEP)
        sim.faults.callback_channel_error(1, target="sendMessage")
        sent = await conversation.send("after a hiccup")
        await sent.result(STEP)
        assert session.stats.callback_channel_retries == 1
        posts = [r for r in sim.request_log if r.method == "POST" and r.kind == "sendMessage"]
        ids = {q for r in posts for q in r.query.split("&") if q.lower().startswith("operationid=")}
        assert len(posts) == 2
        assert len(ids) == 1  # the same operationId both times
        assert sim.messages_from_client(conversation.href) == ["after a hiccup"]


@BOTH_SHAPES
async def test_remote_leaves(sim: UcwaSimulator, make_session: SessionFactory) -> None:
    sim.add_person(Person(uri=LENE, name="Lene Aaling", behaviour=Behaviour.leave_after(1)))
    async with make_session(sim) as session:
        conversation = await (await session.start_messaging(LENE)).conversation(timeout=STEP)
        async with conversation.messages() as messages:
            await (await conversation.send("bye")).result(STEP)
            async with asyncio.timeout(STEP):
                texts = [m.text async for m in messages]
        assert texts == ["echo: bye"]
        reason = await conversation.wait_ended(STEP)
        assert reason is ucwa_async.ConversationEndReason.REMOTE_LEFT
        assert conversation.state == "Disconnected"
        with pytest.raises(ucwa_async.ConversationEndedError) as caught:
            await conversation.send("still there?")
        assert caught.value.reason == "remote_left"


@BOTH_SHAPES
async def test_server_ends_the_conversation(
    sim: UcwaSimulator, make_session: SessionFactory
) -> None:
    async with make_session(sim) as session:
        conversation = await (await session.start_messaging(LENE)).conversation(timeout=STEP)
        await sim.end_conversation(conversation.href)
        reason = await conversation.wait_ended(STEP)
        assert reason in (
            ucwa_async.ConversationEndReason.DELETED,
            ucwa_async.ConversationEndReason.DISCONNECTED,
        )


async def test_session_close_ends_every_stream(
    sim: UcwaSimulator, make_session: SessionFactory, no_leftover_tasks: Callable[[], None]
) -> None:
    session = make_session(sim)
    await session.open()
    conversation = await (await session.start_messaging(LENE)).conversation(timeout=STEP)
    messages = conversation.messages()
    invitations = session.incoming()

    async def drain_messages() -> list[ucwa_async.Message]:
        return [m async for m in messages]

    async def drain_invitations() -> list[ucwa_async.IncomingInvitation]:
        return [i async for i in invitations]

    readers = asyncio.gather(drain_messages(), drain_invitations())
    await asyncio.sleep(0.05)
    await session.aclose()
    async with asyncio.timeout(STEP):
        got_messages, got_invitations = await readers
    assert got_invitations == []
    assert await conversation.wait_ended(STEP) is ucwa_async.ConversationEndReason.SESSION_CLOSED
    with pytest.raises(ucwa_async.SessionClosedError):
        await conversation.send("closed")
    assert got_messages == []
    await assert_no_leftover_tasks(no_leftover_tasks)


async def test_request_escape_hatch(sim: UcwaSimulator, make_session: SessionFactory) -> None:
    async with make_session(sim) as session:
        conversation = await (await session.start_messaging(LENE)).conversation(timeout=STEP)
        resource = await session.request("GET", conversation.href)
        assert resource is not None
        assert resource.rel == "conversation"
        messaging = resource.link("messaging")
        assert messaging is not None
        modality = await session.request("GET", messaging)
        assert modality is not None
        typing = modality.link("setIsTyping")
        assert typing is not None
        assert await session.request("post", typing) is None  # 204
        with pytest.raises(ucwa_async.NotFoundError):
            await session.request("GET", conversation.href + "/nothing-here")
        with pytest.raises(ValueError, match="method"):
            await session.request("PATCH", conversation.href)


@BOTH_SHAPES
async def test_application_lost_ends_conversations(
    sim: UcwaSimulator, make_session: SessionFactory
) -> None:
    async with make_session(sim, available_for=("Messaging",)) as session:
        conversation = await (await session.start_messaging(LENE)).conversation(timeout=STEP)
        async with conversation.messages() as messages, session.events() as events:
            assert sim.faults.delete_application() == 1
            async with asyncio.timeout(STEP):
                assert [m async for m in messages] == []
                async for item in events:
                    if isinstance(item, ucwa_async.ChannelReconnected):
                        break
        reason = await conversation.wait_ended(STEP)
        assert reason is ucwa_async.ConversationEndReason.APPLICATION_LOST
        # the new application made itself available again: IMs still arrive
        await session.wait_connected(timeout=STEP)
        await until(
            lambda: len([r for r in sim.request_log if r.kind == "makeMeAvailable"]) == 2, STEP
        )
        async with session.incoming() as invitations:
            await sim.incoming_message(LENE, "still there?")
            invite = await next_invitation(invitations)
        assert invite.message == "still there?"


@pytest.mark.parametrize("operation_id_in_events", [False, True])
async def test_send_resolved_by_events_before_the_201(
    make_session: SessionFactory, operation_id_in_events: bool
) -> None:
    config = SimulatorConfig(
        completion_delay=0.01,
        message_operation_id=operation_id_in_events,
        incoming_message_events=("started", "completed"),
    )
    async with UcwaSimulator(config=config, seed=0) as sim, make_session(sim) as session:
        conversation = await (await session.start_messaging(LENE)).conversation(timeout=STEP)
        async with conversation.messages() as messages:
            sim.faults.events_before_201(1, target="sendMessage")
            sent = await conversation.send("early")
            await sent.result(STEP)
            assert sent.href is not None
            assert (await next_message(messages)).text == "echo: early"
            await (await conversation.send("again")).result(STEP)
            assert (await next_message(messages)).text == "echo: again"
        assert session.stats.messages_delivered == 2


async def test_start_messaging_resolved_by_events_before_the_201(
    sim: UcwaSimulator, make_session: SessionFactory
) -> None:
    async with make_session(sim) as session:
        sim.faults.events_before_201(1, target="startMessaging")
        inv = await session.start_messaging(LENE, message="early bird")
        conversation = await inv.conversation(timeout=STEP)
        async with conversation.messages() as messages:
            assert (await next_message(messages)).text == "echo: early bird"


async def test_message_buffer_overflow_is_counted(
    sim: UcwaSimulator, make_session: SessionFactory
) -> None:
    limits = ucwa_async.Limits(message_buffer_size=2)
    sim.add_person(Person(uri=LENE, name="Lene Aaling", behaviour=Behaviour.silent()))
    async with make_session(sim, limits=limits) as session:
        conversation = await (await session.start_messaging(LENE)).conversation(timeout=STEP)
        for n in range(5):
            await sim.say(conversation.href, LENE, f"m{n}")
        await until(lambda: conversation.messages_dropped == 3, STEP)
        async with conversation.messages() as messages:
            assert [(await next_message(messages)).text for _ in range(2)] == ["m3", "m4"]
            assert messages.missed == 3
        # a second stream, opened after the first was closed, starts where it stopped
        await sim.say(conversation.href, LENE, "m5")
        async with conversation.messages() as messages:
            assert (await next_message(messages)).text == "m5"


async def test_two_readers_each_see_every_message(
    sim: UcwaSimulator, make_session: SessionFactory
) -> None:
    sim.add_person(Person(uri=LENE, name="Lene Aaling", behaviour=Behaviour.silent()))
    async with make_session(sim) as session:
        conversation = await (await session.start_messaging(LENE)).conversation(timeout=STEP)
        first, second = conversation.messages(), conversation.messages()
        for n in range(3):
            await sim.say(conversation.href, LENE, f"m{n}")
        async with first, second:
            for stream in (first, second):
                assert [(await next_message(stream)).text for _ in range(3)] == ["m0", "m1", "m2"]


async def test_typing_events_do_not_end_the_conversation(make_session: SessionFactory) -> None:
    config = SimulatorConfig(completion_delay=0.01, typing_events=True)
    async with UcwaSimulator(config=config, seed=0) as sim, make_session(sim) as session:
        conversation = await (await session.start_messaging(LENE)).conversation(timeout=STEP)
        async with conversation.messages() as messages:
            for text in ("one", "two"):
                await (await conversation.send(text)).result(STEP)
                assert (await next_message(messages)).text == f"echo: {text}"
        assert conversation.ended is None
        assert [p.uri for p in conversation.participants] == [LENE]
        assert conversation.typing == []


@pytest.mark.parametrize("conversation_events", [False, True])
async def test_continue_messaging_gives_a_conversation(
    make_session: SessionFactory, conversation_events: bool
) -> None:
    config = SimulatorConfig(
        completion_delay=0.01, continue_conversation_events=conversation_events
    )
    async with UcwaSimulator(config=config, seed=0) as sim, make_session(sim) as session:
        logs = await session.conversation_logs(limit=1)
        inv = await session.continue_messaging(logs[0], message="following up")
        conversation = await inv.conversation(timeout=STEP)
        assert conversation.href.startswith("http")
        async with conversation.messages() as messages:
            sent = await conversation.send("and one more thing")
            await sent.result(STEP)
            assert sim.messages_from_client(conversation.href)[-1] == "and one more thing"
            # As docs/testing.md says: the log's first recipient (echoing) answers what is
            # sent in the conversation, not the continue's own message; without the
            # conversation's events, the client knows the sender by its link only.
            reply = await next_message(messages)
        assert reply.text == "echo: and one more thing"
        assert reply.sender is not None
        assert reply.sender.href is not None
        recipient = logs[0].recipients[0].sip_uri
        if conversation_events:
            assert reply.sender.uri == recipient
            assert [p.uri for p in conversation.participants] == [recipient]
        else:
            assert (reply.sender.uri, reply.sender.name) == (None, None)
            assert conversation.participants == []
        await conversation.leave()


async def test_accept_right_after_withdraw_raises_withdrawn(
    sim: UcwaSimulator, make_session: SessionFactory
) -> None:
    async with make_session(sim) as session, session.incoming() as invitations:
        url = await sim.incoming_message(LENE, "oops")
        invite = await next_invitation(invitations)
        await sim.withdraw(url)  # its events may not have reached the session yet
        with pytest.raises(ucwa_async.InvitationWithdrawnError):
            async with asyncio.timeout(STEP):
                await invite.accept()
        await invite.decline()  # gone: returns quietly
        assert invite.withdrawn


async def test_html_and_unicode_bodies(sim: UcwaSimulator, make_session: SessionFactory) -> None:
    sim.add_person(Person(uri=LENE, name="Lene Aaling", behaviour=Behaviour.silent()))
    async with make_session(sim) as session, session.incoming() as invitations:
        await sim.incoming_message(LENE, "Grüße 1+1", html="<p>Grüße <b>1+1</b></p>")
        invite = await next_invitation(invitations)
        assert invite.message == "Grüße 1+1"
        conversation = await invite.accept()
        async with conversation.messages() as messages:
            await sim.say(conversation.href, LENE, "plain ✓ 100%", html="<i>plain ✓ 100%</i>")
            message = await next_message(messages)
            assert message.text == "plain ✓ 100%"
            assert message.html == "<i>plain ✓ 100%</i>"
            sent = await conversation.send("réponse ✓")
            await sent.result(STEP)
        assert sim.messages_from_client(conversation.href) == ["réponse ✓"]


async def test_resync_rereads_conversations(
    sim: UcwaSimulator, make_session: SessionFactory
) -> None:
    async with make_session(sim) as session:
        kept = await (await session.start_messaging(LENE)).conversation(timeout=STEP)
        ended = await (await session.start_messaging(LENE)).conversation(timeout=STEP)
        await session.wait_connected(timeout=STEP)
        sim.faults.resync(discard_events=True)
        await sim.end_conversation(ended.href)
        reason = await ended.wait_ended(STEP)
        assert reason in (
            ucwa_async.ConversationEndReason.DELETED,
            ucwa_async.ConversationEndReason.DISCONNECTED,
        )
        rereads = [r for r in sim.request_log if r.method == "GET" and ended.href.endswith(r.path)]
        assert sim.counters.faults_injected["resync"] == 1
        assert len(rereads) == 1  # read again after the resync (its events were discarded)
        assert kept.ended is None
        await (await kept.send("still here")).result(STEP)


@BOTH_SHAPES
async def test_a_channel_failed_for_good_ends_the_inbox_and_the_conversations(
    make_session: SessionFactory,
    no_leftover_tasks: Callable[[], None],
    shaped: Callable[..., SimulatorConfig],
) -> None:
    # The channel fails for good (401 on every P-GET while the token endpoint grants:
    # the re-authentication budget runs out). Nothing more can be heard: a daemon on
    # its inbox and a reader of messages() must learn it, not wait forever.
    config = shaped(completion_delay=0.01, pget_timeout_cap=0.2)
    async with UcwaSimulator(config=config, seed=0) as sim:
        session = make_session(sim, available_for=("Messaging",))
        async with session:
            await sim.incoming_message(LENE, "first")
            invitations = session.incoming()
            invite = await next_invitation(invitations)
            conversation = await invite.accept()
            messages = conversation.messages()
            waiting = asyncio.create_task(anext(aiter(messages), None))
            next_invite = asyncio.create_task(anext(aiter(invitations), None))
            sim.faults.unauthorized_forever(target="pget", next_n=None)
            async with asyncio.timeout(STEP):
                with pytest.raises(ucwa_async.ChannelFailedError):
                    await next_invite
                assert await waiting is None  # messages() ended
            reason = await conversation.wait_ended(STEP)
            assert reason is ucwa_async.ConversationEndReason.CHANNEL_FAILED
            assert conversation.ended is ucwa_async.ConversationEndReason.CHANNEL_FAILED
            with pytest.raises(ucwa_async.ChannelFailedError):
                await conversation.send("too late")
            with pytest.raises(ucwa_async.ChannelFailedError):
                await anext(aiter(invitations))  # again: the stream stays failed
            with pytest.raises(ucwa_async.ChannelFailedError):
                session.incoming()
        await assert_no_leftover_tasks(no_leftover_tasks)


@BOTH_SHAPES
async def test_a_channel_failed_for_good_fails_the_messages_waiting_for_their_outcome(
    make_session: SessionFactory, shaped: Callable[..., SimulatorConfig]
) -> None:
    # A sent message waits for its outcome (its events held) when the channel fails for
    # good: it ends with ChannelFailedError, as documented (it ended with the
    # ConversationEndedError of its conversation, ended first).
    config = shaped(completion_delay=0.01, pget_timeout_cap=0.2)
    async with UcwaSimulator(config=config, seed=0) as sim, make_session(sim) as session:
        conversation = await (await session.start_messaging(LENE)).conversation(STEP)
        host = session._host
        assert host is not None
        host.deliver = lambda batch: None  # type: ignore[method-assign]
        message = await conversation.send("still there?")
        assert not message.done()
        sim.faults.unauthorized_forever(target="pget", next_n=None)
        async with asyncio.timeout(STEP):
            with pytest.raises(ucwa_async.ChannelFailedError):
                await message
        assert await conversation.wait_ended(STEP) is (
            ucwa_async.ConversationEndReason.CHANNEL_FAILED
        )
        assert len(session._conversation_table.sent) == 0
