"""ConversationTable's IO paths the simulator does not take: link-only events fetched
by GET (in order, same origin only), a bug in an event not stopping the channel."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

import pytest

import ucwa_async
from ucwa_async._application import Application
from ucwa_async._conversations import ConversationTable
from ucwa_async._core.models import parse_event_batch
from ucwa_async._core.urls import normalize, resolve_href
from ucwa_async._http import HttpResponse
from ucwa_async._session import SessionStats

APP = "https://fe1.contoso.com/ucwa/v1/applications/192"
CONV = f"{APP}/communication/conversations/137"


class FakeApplication:
    url = APP

    def resolve(self, href: str) -> str:
        return resolve_href(href, base_url=APP)

    def safe_resolve(self, href: str | None) -> str | None:
        return self.resolve(href) if href else None

    resolve_own = Application.resolve_own  # the real origin rule, on this url and resolve

    def key(self, href: str) -> str:
        return normalize(self.resolve(href))


class FakeTransport:
    def __init__(self) -> None:
        self.gets: list[str] = []
        self.release = asyncio.Event()

    async def get_json(self, url: str) -> dict[str, Any]:
        self.gets.append(url)
        await self.release.wait()
        n = url.rsplit("/", 1)[-1]
        if n == "404":
            from ucwa_async import NotFoundError

            raise NotFoundError(status=404, code="NotFound")
        if n == "boom":
            raise RuntimeError("a bug while reading")
        return {
            "rel": "message",
            "direction": "Incoming",
            "_links": {"self": {"href": url}, "plainMessage": {"href": f"data:,fetched{n}"}},
        }


def batch(*events: dict[str, Any]) -> Any:
    return parse_event_batch(
        {"sender": [{"rel": "conversation", "href": CONV, "events": list(events)}]}
    )


def message(n: int | str, *, body: bool) -> dict[str, Any]:
    href = f"{CONV}/messaging/messages/{n}" if isinstance(n, int) or n == "404" else n
    event: dict[str, Any] = {"link": {"rel": "message", "href": href}, "type": "started"}
    if body:
        event["type"] = "completed"
        event["_embedded"] = {
            "message": {
                "rel": "message",
                "direction": "Incoming",
                "_links": {"self": {"href": href}, "plainMessage": {"href": f"data:,inline{n}"}},
            }
        }
    return event


async def test_link_only_messages_are_fetched_in_order() -> None:
    transport = FakeTransport()
    tasks: set[asyncio.Task[None]] = set()

    def spawn(coroutine: Coroutine[Any, Any, None]) -> None:
        tasks.add(asyncio.create_task(coroutine))

    async def post(url: str, payload: bytes | None, content_type: str | None) -> Any:
        raise AssertionError("no POST here")

    stats = SessionStats()
    table = ConversationTable(
        transport=transport,  # type: ignore[arg-type]
        application=FakeApplication(),  # type: ignore[arg-type]
        post_payload=post,
        stats=stats,
        spawn=spawn,
        ensure_usable=lambda: None,
        wire_format="json",
        invitation_timeout=5.0,
        inbox_size=10,
        max_messages=100,
    )
    conversation = table.conversation_for(CONV, "messaging")
    stream = conversation.messages()
    table.deliver(
        batch(
            message(1, body=False),
            message("https://evil.example/x/messages/9", body=False),
            message("404", body=False),
            message(f"{CONV}/messaging/messages/boom", body=False),
            message(2, body=True),
        )
    )
    transport.release.set()
    async with asyncio.timeout(5):
        texts = [(await anext(stream)).text for _ in range(2)]
    # 9 (other origin), 404 and boom (an unexpected error) given up
    assert texts == ["fetched1", "inline2"]
    assert all(url.startswith(APP) for url in transport.gets)
    assert conversation.messages_dropped == 3
    await asyncio.gather(*tasks)

    # a bug of ours in one event: logged and counted, the rest still delivered
    def boom(event: Any) -> Any:
        raise RuntimeError("bug")

    feed = table.book.feed
    table.book.feed = boom  # type: ignore[method-assign]
    table.deliver(batch(message(3, body=True)))
    table.book.feed = feed  # type: ignore[method-assign]
    assert stats.events_rejected == 1
    table.close()
    async with asyncio.timeout(5):
        assert [m async for m in stream] == []
    with pytest.raises(StopAsyncIteration):
        await anext(stream)


async def test_link_only_started_invitation_of_ours_is_not_read() -> None:
    transport = FakeTransport()
    transport.release.set()
    tasks: set[asyncio.Task[None]] = set()

    def spawn(coroutine: Coroutine[Any, Any, None]) -> None:
        tasks.add(asyncio.create_task(coroutine))

    async def post(url: str, payload: bytes | None, content_type: str | None) -> Any:
        raise AssertionError("no POST here")

    ours = f"{APP}/communication/messagingInvitations/1"
    theirs = f"{APP}/communication/messagingInvitations/2"
    table = ConversationTable(
        transport=transport,  # type: ignore[arg-type]
        application=FakeApplication(),  # type: ignore[arg-type]
        post_payload=post,
        stats=SessionStats(),
        spawn=spawn,
        ensure_usable=lambda: None,
        wire_format="json",
        invitation_timeout=5.0,
        inbox_size=10,
        max_messages=100,
        owns_invitation=lambda href: href == ours,
    )
    for href in (ours, theirs):
        table.deliver(
            parse_event_batch(
                {
                    "sender": [
                        {
                            "rel": "communication",
                            "href": f"{APP}/communication",
                            "events": [
                                {
                                    "link": {"rel": "messagingInvitation", "href": href},
                                    "type": "started",
                                }
                            ],
                        }
                    ]
                }
            )
        )
    await asyncio.gather(*tasks)
    assert transport.gets == [theirs]  # only the one that may be incoming is read
    table.close()


async def test_a_message_stream_closed_from_another_task_stops_its_reader() -> None:
    async def post(url: str, payload: bytes | None, content_type: str | None) -> Any:
        raise AssertionError("no POST here")

    table = ConversationTable(
        transport=FakeTransport(),  # type: ignore[arg-type]
        application=FakeApplication(),  # type: ignore[arg-type]
        post_payload=post,
        stats=SessionStats(),
        spawn=lambda coroutine: coroutine.close(),
        ensure_usable=lambda: None,
        wire_format="json",
        invitation_timeout=5.0,
        inbox_size=10,
        max_messages=100,
    )
    conversation = table.conversation_for(CONV, "messaging")
    stream, other = conversation.messages(), conversation.messages()
    reader = asyncio.create_task(anext(stream))
    other_reader = asyncio.create_task(anext(other))
    await asyncio.sleep(0)
    stream.close()
    with pytest.raises(StopAsyncIteration):
        async with asyncio.timeout(1.0):
            await reader
    table.deliver(batch(message(1, body=True)))
    async with asyncio.timeout(1.0):
        assert (await other_reader).text == "inline1"  # the other stream still reads
    table.close()
    # a conversation asked for once the session is closed: an error, not a never-ending one
    with pytest.raises(ucwa_async.SessionClosedError):
        table.conversation_for(f"{APP}/communication/conversations/138", "messaging")


_RUNNING: set[asyncio.Task[None]] = set()


def _run_now(coroutine: Coroutine[Any, Any, None]) -> None:
    """A session's spawn: the task runs, a reference is kept until it ends."""
    task = asyncio.create_task(coroutine)
    _RUNNING.add(task)
    task.add_done_callback(_RUNNING.discard)


def make_table(transport: FakeTransport, spawn: Any) -> ConversationTable:
    async def post(url: str, payload: bytes | None, content_type: str | None) -> Any:
        raise AssertionError("no POST here")

    return ConversationTable(
        transport=transport,  # type: ignore[arg-type]
        application=FakeApplication(),  # type: ignore[arg-type]
        post_payload=post,
        stats=SessionStats(),
        spawn=spawn,
        ensure_usable=lambda: None,
        wire_format="json",
        invitation_timeout=5.0,
        inbox_size=10,
        max_messages=100,
    )


def deleted() -> Any:
    return parse_event_batch(
        {
            "sender": [
                {
                    "rel": "communication",
                    "href": f"{APP}/communication",
                    "events": [{"link": {"rel": "conversation", "href": CONV}, "type": "deleted"}],
                }
            ]
        }
    )


@pytest.mark.parametrize("close_first", [False, True])
async def test_a_message_announced_before_the_end_is_still_yielded(close_first: bool) -> None:
    """Link-only: the last message's GET finishes after the conversation ended."""
    transport = FakeTransport()
    tasks: set[asyncio.Task[None]] = set()
    table = make_table(transport, lambda c: tasks.add(asyncio.create_task(c)))
    conversation = table.conversation_for(CONV, "messaging")
    stream = conversation.messages()
    table.deliver(batch(message(1, body=False)))  # its GET waits for release
    table.deliver(deleted())
    assert conversation.ended is not None
    reader = asyncio.create_task(anext(stream))
    await asyncio.sleep(0.01)
    assert not reader.done()  # waits for the message being read
    if close_first:
        table.close()  # nothing more will be read: the stream ends
        with pytest.raises(StopAsyncIteration):
            async with asyncio.timeout(1.0):
                await reader
    else:
        transport.release.set()
        async with asyncio.timeout(1.0):
            assert (await reader).text == "fetched1"
            assert [m async for m in stream] == []
        table.close()
    transport.release.set()
    await asyncio.gather(*tasks, return_exceptions=True)


class ReferenceServer:
    """GETs answered with ReceiveAnIM step 15's messaging resource; POSTs recorded."""

    def __init__(self) -> None:
        self.gets: list[str] = []
        self.posts: list[str] = []

    async def get_json(self, url: str) -> dict[str, Any]:
        self.gets.append(url)
        if url == f"{CONV}/phoneAudio":  # phoneAudio_ref's GET sample, trimmed
            return {
                "state": "Connected",
                "_links": {
                    "self": {"href": f"{CONV}/phoneAudio"},
                    "stopPhoneAudio": {"href": f"{CONV}/phoneAudio/stopPhoneAudio"},
                },
                "rel": "phoneAudio",
            }
        assert url == f"{CONV}/messaging"
        return {
            "state": "Connected",
            "negotiatedMessageFormats": ["Plain"],
            "_links": {
                "self": {"href": f"{CONV}/messaging"},
                "conversation": {"href": CONV},
                "stopMessaging": {"href": f"{CONV}/messaging/terminate"},
                "sendMessage": {"href": f"{CONV}/messaging/messages"},
                "setIsTyping": {"href": f"{CONV}/messaging/typing"},
            },
            "rel": "messaging",
        }

    async def post(self, url: str, payload: bytes | None, content_type: str | None) -> Any:
        self.posts.append(url)
        return HttpResponse("POST", url, 204, None, b"")


@pytest.mark.parametrize(
    ("kind", "stop"),
    [("messaging", "messaging/terminate"), ("phoneAudio", "phoneAudio/stopPhoneAudio")],
)
async def test_leave_reads_the_stop_link_of_a_conversation_that_links_every_modality(
    kind: str, stop: str
) -> None:
    """A conversation resource links every modality it could have (conversation_ref;
    ReceiveAnIM step 15 and SendAnIM step 6: ``messaging`` and ``phoneAudio``). Left
    before its modality resource was seen, a conversation still stops its modality on
    the server: the stop link is read (GET messaging / phoneAudio), then POSTed."""
    server = ReferenceServer()
    table = ConversationTable(
        transport=server,  # type: ignore[arg-type]
        application=FakeApplication(),  # type: ignore[arg-type]
        post_payload=server.post,
        stats=SessionStats(),
        spawn=_run_now,  # leave()'s POSTs run in a task of the session
        ensure_usable=lambda: None,
        wire_format="json",
        invitation_timeout=5.0,
        inbox_size=10,
        max_messages=100,
    )
    conversation = table.conversation_for(CONV, kind)
    resource = {
        "state": "Connected",
        "subject": "",
        "activeModalities": [kind[0].upper() + kind[1:]],
        "_links": {
            "self": {"href": CONV},
            "messaging": {"href": f"{CONV}/messaging"},
            "phoneAudio": {"href": f"{CONV}/phoneAudio"},
            "localParticipant": {"href": f"{CONV}/participants/toshm@contoso.com"},
        },
        "rel": "conversation",
    }
    table.deliver(
        parse_event_batch(
            {
                "sender": [
                    {
                        "rel": "communication",
                        "href": f"{APP}/communication",
                        "events": [
                            {
                                "link": {"rel": "conversation", "href": CONV},
                                "_embedded": {"conversation": resource},
                                "type": "updated",
                            }
                        ],
                    }
                ]
            }
        )
    )
    await conversation.leave()
    assert server.gets == [f"{CONV}/{kind}"]
    assert server.posts == [f"{CONV}/{stop}"]
    assert conversation.ended is ucwa_async.ConversationEndReason.LEFT
    table.close()


def _communication_events(*events: dict[str, Any]) -> Any:
    return parse_event_batch(
        {
            "sender": [
                {"rel": "communication", "href": f"{APP}/communication", "events": list(events)}
            ]
        }
    )


def _messaging(state: str) -> dict[str, Any]:
    href = f"{CONV}/messaging"
    return {
        "link": {"rel": "messaging", "href": href},
        "_embedded": {"messaging": {"rel": "messaging", "state": state, "_links": {}}},
        "type": "updated",
    }


def _invited_again() -> Any:
    """ReceiveAnIM step 8's incoming messagingInvitation, into conversation CONV."""
    invitation = f"{APP}/communication/messagingInvitations/7"
    lene = f"{CONV}/participants/lenea@contoso.com"
    return _communication_events(
        {
            "link": {"rel": "messagingInvitation", "href": invitation},
            "_embedded": {
                "messagingInvitation": {
                    "direction": "Incoming",
                    "state": "Connecting",
                    "_links": {
                        "self": {"href": invitation},
                        "conversation": {"href": CONV},
                        "messaging": {"href": f"{CONV}/messaging"},
                        "accept": {"href": f"{invitation}/accept"},
                    },
                    "_embedded": {
                        "from": {
                            "uri": "sip:lenea@contoso.com",
                            "name": "Lene Aaling",
                            "_links": {"self": {"href": lene}},
                            "rel": "participant",
                        }
                    },
                    "rel": "messagingInvitation",
                }
            },
            "type": "started",
        }
    )


async def test_a_conversation_reopened_while_a_message_is_read_ends_its_old_stream() -> None:
    """A conversation that ended here (messaging Disconnected) while a link-only message
    was being read, then invited into again (messagingInvitation_ref: an invitation may
    add messaging to an existing conversation): the old Conversation's stream ends (the
    read now belongs to the reopened one) instead of waiting for ever."""
    transport = FakeTransport()
    tasks: set[asyncio.Task[None]] = set()
    table = make_table(transport, lambda c: tasks.add(asyncio.create_task(c)))
    old = table.conversation_for(CONV, "messaging")
    stream = old.messages()
    table.deliver(batch(_messaging("Connected")))
    table.deliver(batch(message(1, body=False)))  # its GET waits for release
    table.deliver(batch(_messaging("Disconnected")))
    assert old.ended is not None
    reader = asyncio.create_task(anext(stream))
    table.deliver(_invited_again())
    new = table.conversation_for(CONV, "messaging")  # as accept() does
    assert new is not old
    assert new.ended is None
    transport.release.set()
    with pytest.raises(StopAsyncIteration):
        async with asyncio.timeout(1.0):
            await reader
    async with asyncio.timeout(1.0):
        assert (await anext(new.messages())).text == "fetched1"
    table.close()
    await asyncio.gather(*tasks, return_exceptions=True)


@pytest.mark.parametrize("kind", ["messaging", "phoneAudio"])
async def test_leave_reads_a_modality_only_on_the_applications_origin(kind: str) -> None:
    """A modality href of another origin (a hostile event) is not read by leave() (nor
    is its stop link POSTed), as no announced href is read off the application's origin."""
    server = ReferenceServer()
    table = make_table(server, _run_now)  # type: ignore[arg-type]
    table._post_payload = server.post
    conversation = table.conversation_for(CONV, kind)
    elsewhere = f"https://evil.example/ucwa/v1/applications/192/conversations/137/{kind}"
    resource = {
        "state": "Connected",
        "_links": {"self": {"href": CONV}, kind: {"href": elsewhere}},
        "rel": "conversation",
    }
    event = {
        "link": {"rel": "conversation", "href": CONV},
        "_embedded": {"conversation": resource},
        "type": "updated",
    }
    table.deliver(_communication_events(event))
    assert conversation._state.links[kind] == elsewhere
    with contextlib.suppress(ucwa_async.UcwaError):
        await conversation.leave()
    assert server.gets == []
    assert server.posts == []
    assert conversation.ended is ucwa_async.ConversationEndReason.LEFT
    table.close()


def _incoming_started(n: int) -> dict[str, Any]:
    """messagingInvitation_ref.md's Started event (embedded, ReceiveAnIM.md step 8) for
    conversation c<n>."""
    conv = f"{APP}/communication/conversations/c{n}"
    href = f"{APP}/communication/messagingInvitations/{n}"
    caller = {
        "rel": "participant",
        "uri": f"sip:caller{n}@contoso.com",
        "name": f"Caller {n}",
        "_links": {"self": {"href": conv + "/participants/caller"}},
    }
    invitation = {
        "rel": "messagingInvitation",
        "direction": "Incoming",
        "state": "Connecting",
        "_links": {
            "self": {"href": href},
            "conversation": {"href": conv},
            "accept": {"href": href + "/accept"},
            "decline": {"href": href + "/decline"},
        },
        "_embedded": {"from": caller},
    }
    return {
        "link": {"rel": "messagingInvitation", "href": href},
        "type": "started",
        "_embedded": {"messagingInvitation": invitation},
    }


def _communication(events: list[dict[str, Any]]) -> Any:
    return parse_event_batch(
        {"sender": [{"rel": "communication", "href": f"{APP}/communication", "events": events}]}
    )


async def test_many_conversations_ending_cost_each_one_look_up() -> None:
    """Many callers hang up (conversation_ref.md's Deleted event each, their invitations'
    completed events merged away): each end withdraws its own invitations without going
    over every open invitation (n ends x n invitations blocked the loop for seconds)."""
    n = 400

    async def post(url: str, payload: bytes | None, content_type: str | None) -> Any:
        raise AssertionError("no POST here")

    table = ConversationTable(
        transport=FakeTransport(),  # type: ignore[arg-type]
        application=FakeApplication(),  # type: ignore[arg-type]
        post_payload=post,
        stats=SessionStats(),
        spawn=lambda coroutine: coroutine.close(),
        ensure_usable=lambda: None,
        wire_format="json",
        invitation_timeout=5.0,
        inbox_size=n,
        max_messages=100,
    )
    table.deliver(_communication([_incoming_started(i) for i in range(n)]))
    assert len(table.inbox) == n
    looked_up = 0
    key = table.book.key

    def counting_key(href: str) -> str | None:
        nonlocal looked_up
        looked_up += 1
        return key(href)

    table.book.key = counting_key  # type: ignore[method-assign]
    conversations = [f"{APP}/communication/conversations/c{i}" for i in range(n)]
    deleted = [
        {"link": {"rel": "conversation", "href": c}, "type": "deleted"} for c in conversations
    ]
    table.deliver(_communication(deleted))
    assert len(table.inbox) == 0  # every one withdrawn
    assert looked_up < 10 * n, looked_up
    table.close()


def _incoming_completed(n: int, status: str = "Failure") -> dict[str, Any]:
    """messagingInvitation_ref.md's Completed event for invitation <n>: Failure with a
    reason (EventChannelDetails.md: the caller gave up), the conversation not deleted."""
    href = f"{APP}/communication/messagingInvitations/{n}"
    event: dict[str, Any] = {
        "link": {"rel": "messagingInvitation", "href": href},
        "status": status,
        "type": "completed",
    }
    if status == "Failure":
        event["reason"] = {"code": "Gone", "message": "The caller hung up."}
    return event


def _growth_table(post: Any, tasks: set[asyncio.Task[None]]) -> ConversationTable:
    def spawn(coroutine: Coroutine[Any, Any, None]) -> None:
        tasks.add(asyncio.create_task(coroutine))

    table = ConversationTable(
        transport=FakeTransport(),  # type: ignore[arg-type]
        application=FakeApplication(),  # type: ignore[arg-type]
        post_payload=post,
        stats=SessionStats(),
        spawn=spawn,
        ensure_usable=lambda: None,
        wire_format="json",
        invitation_timeout=5.0,
        inbox_size=10,
        max_messages=100,
    )
    table.book._max_conversations = 5  # states nobody claims are evicted past this
    return table


@pytest.mark.parametrize(
    "how", ["withdrawn_during_accept", "accept_404", "accept_failed_then_withdrawn", "timed_out"]
)
async def test_accepts_that_never_return_a_conversation_do_not_keep_it(how: str) -> None:
    """A daemon answering invitations for months: an accept() that does not return the
    conversation (the caller withdrew it during the accept, its accept POST answered 404
    with no event after it, or failed and the caller then gave up, or it timed out before
    a Failure) must not keep that Conversation claimed (never evicted) when the server
    does not delete the conversation."""
    from ucwa_async import NotFoundError, ServiceFailureError

    tasks: set[asyncio.Task[None]] = set()
    posted = asyncio.Event()

    async def post(url: str, payload: bytes | None, content_type: str | None) -> Any:
        posted.set()
        if how == "accept_404":
            raise NotFoundError(status=404, code="NotFound")
        if how == "accept_failed_then_withdrawn":
            raise ServiceFailureError(status=500, code="ServiceFailure")
        return HttpResponse("POST", url, 204, None, b"")

    table = _growth_table(post, tasks)
    cycles = 30
    for n in range(cycles):
        table.deliver(_communication([_incoming_started(n)]))
        invitation = await table.inbox.get()
        assert invitation is not None
        posted.clear()
        accepting = asyncio.create_task(
            invitation.accept(timeout=0.01 if how == "timed_out" else None)
        )
        await posted.wait()
        if how == "withdrawn_during_accept":
            for _ in range(3):
                await asyncio.sleep(0)
            table.deliver(_communication([_incoming_completed(n)]))
        with pytest.raises(ucwa_async.UcwaError):
            async with asyncio.timeout(5):
                await accepting
        if how in ("accept_failed_then_withdrawn", "timed_out"):
            table.deliver(_communication([_incoming_completed(n)]))
        assert invitation.withdrawn
        await asyncio.sleep(0)
    # Back to the baseline: nothing claimed, nothing awaited, the book within its bound.
    assert table._conversations == {}
    assert not any(state.claimed for state in table.book._states.values())
    assert len(table.book._states) <= 5
    assert table._accepting == {}
    if how != "accept_404":  # (kept open for a completed event: bounded, see below)
        assert table._invitations == {}
        assert table._invitations_of == {}
    assert len(table.inbox) == 0
    table.close()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_accepts_a_server_never_completes_stay_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A server that never sends an accepted invitation's completed event (nor ends its
    conversation): every accept() times out. What each one leaves (its outcome waiter,
    its claimed Conversation) goes with the open invitation past the bound."""
    from ucwa_async import _conversations

    monkeypatch.setattr(_conversations, "_MAX_OPEN_INVITATIONS", 3)
    tasks: set[asyncio.Task[None]] = set()

    async def post(url: str, payload: bytes | None, content_type: str | None) -> Any:
        return HttpResponse("POST", url, 204, None, b"")

    table = _growth_table(post, tasks)
    for n in range(30):
        table.deliver(_communication([_incoming_started(n)]))
        invitation = await table.inbox.get()
        assert invitation is not None
        with pytest.raises(ucwa_async.InvitationTimeoutError):
            await invitation.accept(timeout=0.01)
    assert len(table._invitations) == 3
    assert len(table._accepting) <= 3
    assert len(table._conversations) <= 3
    assert len(table.book._states) <= 5
    table.close()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_message_streams_dropped_without_close_leave_no_reader() -> None:
    """A bot that takes one message at a time (``await anext(conversation.messages())``,
    no ``async with``) from a conversation that lasts for months: each stream it drops
    must not stay a reader of the log (one more per message, each message then costing
    a pass over all of them), and the next stream starts after what it took."""
    tasks: set[asyncio.Task[None]] = set()

    async def post(url: str, payload: bytes | None, content_type: str | None) -> Any:
        raise AssertionError("no POST here")

    table = _growth_table(post, tasks)
    conversation = table.conversation_for(CONV, "messaging")
    log = conversation._state.messages
    for n in range(50):
        table.deliver(batch(message(2 * n, body=True), message(2 * n + 1, body=True)))
        async with asyncio.timeout(5):
            first = await anext(conversation.messages())
            second = await anext(conversation.messages())
        assert [first.text, second.text] == [f"inline{2 * n}", f"inline{2 * n + 1}"]
    assert len(log._readers) == 0
    table.close()


async def test_a_dropped_stream_collected_while_the_log_walks_its_readers() -> None:
    """A stream dropped without close() inside a reference cycle is closed by the cyclic
    collector, which runs wherever the program is (at any bytecode on Python 3.12+, or in
    another thread): even while the log walks its readers to count an evicted message.
    Its finalizer leaving the set then must not make that walk raise ("Set changed size
    during iteration"), which failed the delivery of the whole batch."""
    import gc

    tasks: set[asyncio.Task[None]] = set()

    async def post(url: str, payload: bytes | None, content_type: str | None) -> Any:
        raise AssertionError("no POST here")

    table = _growth_table(post, tasks)
    conversation = table.conversation_for(CONV, "messaging")
    log = conversation._state.messages
    log._max = 1  # every new message evicts one: the readers are walked

    class CollectingReader:
        """A reader whose cursor is read while the collector runs (as it may, there)."""

        @property
        def next_seq(self) -> int:
            gc.collect()
            return 1 << 30

    dropped = conversation.messages()
    dropped.cycle = dropped  # type: ignore[attr-defined]  # freed by the collector only
    del dropped
    collecting = CollectingReader()
    log._readers.add(collecting)  # type: ignore[arg-type]
    gc.disable()  # (no collection before the walk)
    try:
        table.deliver(batch(message(0, body=True), message(1, body=True)))
    finally:
        gc.enable()
        log._readers.discard(collecting)  # type: ignore[arg-type]
    assert table._stats.events_rejected == 0  # (was: the message event failed)
    assert len(log._readers) == 0  # the dropped stream's reader is closed
    async with asyncio.timeout(5):
        assert (await anext(conversation.messages())).text == "inline1"
    table.close()


def _in(conv: str, *events: dict[str, Any]) -> Any:
    return parse_event_batch(
        {"sender": [{"rel": "conversation", "href": conv, "events": list(events)}]}
    )


def _said(conv: str, n: int, *, body: bool = True) -> dict[str, Any]:
    href = f"{conv}/messaging/messages/{n}"
    event: dict[str, Any] = {"link": {"rel": "message", "href": href}, "type": "started"}
    if body:
        event["type"] = "completed"
        event["_embedded"] = {
            "message": {
                "rel": "message",
                "direction": "Incoming",
                "_links": {"self": {"href": href}, "plainMessage": {"href": f"data:,said{n}"}},
            }
        }
    return event


def _deleted(conv: str) -> dict[str, Any]:
    return {"link": {"rel": "conversation", "href": conv}, "type": "deleted"}


async def test_ended_conversations_keep_a_bounded_number_of_messages() -> None:
    """A daemon's conversations end one after the other, each with its messages: the
    book's ended states, nobody claiming them, hold a bounded number of messages in
    total (not max_conversations x max_messages); a Conversation still held keeps its."""
    tasks: set[asyncio.Task[None]] = set()

    async def post(url: str, payload: bytes | None, content_type: str | None) -> Any:
        raise AssertionError("no POST here")

    table = _growth_table(post, tasks)
    table.book._max_conversations = 100
    table.book._max_ended_messages = 5
    held = []
    for n in range(6):
        conv = f"{APP}/communication/conversations/{n}"
        conversation = table.conversation_for(conv, "messaging")
        table.deliver(_in(conv, *(_said(conv, m) for m in range(3))))
        table.deliver(_in(conv, _deleted(conv)))
        assert conversation.ended is ucwa_async.ConversationEndReason.DELETED
        held.append(conversation)
    book = table.book
    assert sum(len(s.messages) for s in book._states.values() if s._messages) <= 5
    async with held[0].messages() as stream:  # held by the caller: all there
        assert [m.text async for m in stream] == ["said0", "said1", "said2"]
    later = table.conversation_for(held[0].href, "messaging")  # the book's: emptied
    assert later.ended is ucwa_async.ConversationEndReason.DELETED
    assert later.messages_dropped == 3
    table.close()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_an_ended_conversation_whose_message_is_being_read_is_kept() -> None:
    """Ended while a link-only message of it is still being read (GET): its streams wait
    for that message, so its state stays the book's (claimed) until the read lands; not
    evicted by newer states meanwhile, which would leave the streams waiting for ever."""
    tasks: set[asyncio.Task[None]] = set()

    async def post(url: str, payload: bytes | None, content_type: str | None) -> Any:
        raise AssertionError("no POST here")

    table = _growth_table(post, tasks)
    table.book._max_conversations = 1
    conversation = table.conversation_for(CONV, "messaging")
    stream = conversation.messages()
    table.deliver(batch(message(1, body=False)))
    table.deliver(batch(_deleted(CONV)))
    assert conversation.ended is not None
    assert conversation._state.key in table._draining
    other = f"{APP}/communication/conversations/2"
    table.deliver(_in(other, _said(other, 1)))  # a newer state: 1 is the bound
    assert table.book.get(conversation._state.key) is conversation._state
    transport = table._transport
    assert isinstance(transport, FakeTransport)
    transport.release.set()
    async with asyncio.timeout(5):
        assert [m.text async for m in stream] == ["fetched1"]
    assert table._draining == {}
    assert not conversation._state.claimed  # let go once drained
    table.close()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_asking_for_a_draining_conversation_keeps_it_claimed() -> None:
    """An ended conversation still waiting for a message being read (``_draining``) is
    asked for again (``Invitation.conversation()``, ``session.conversation(href)``): the
    answer is that Conversation, and its state stays claimed until the read lands; let
    go then, newer states evicted it and its streams waited for ever."""
    tasks: set[asyncio.Task[None]] = set()

    async def post(url: str, payload: bytes | None, content_type: str | None) -> Any:
        raise AssertionError("no POST here")

    table = _growth_table(post, tasks)
    table.book._max_conversations = 1
    conversation = table.conversation_for(CONV, "messaging")
    stream = conversation.messages()
    table.deliver(batch(message(1, body=False)))
    table.deliver(batch(_deleted(CONV)))
    assert conversation._state.key in table._draining
    assert table.conversation_for(CONV, "messaging") is conversation
    assert conversation._state.claimed
    other = f"{APP}/communication/conversations/2"
    table.deliver(_in(other, _said(other, 1)))  # a newer state: 1 is the bound
    assert table.book.get(conversation._state.key) is conversation._state
    transport = table._transport
    assert isinstance(transport, FakeTransport)
    transport.release.set()
    async with asyncio.timeout(5):
        assert [m.text async for m in stream] == ["fetched1"]
    assert table._draining == {}
    assert not conversation._state.claimed
    table.close()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_channel_failure_ends_the_streams_at_once_while_a_message_is_read() -> None:
    """The event channel failed for good while a link-only message was being read:
    nothing more will come, so the conversation's streams end now, not when that GET
    ends (up to a request timeout later), as for a lost application."""
    import ucwa_async

    transport = FakeTransport()
    tasks: set[asyncio.Task[None]] = set()
    table = make_table(transport, lambda c: tasks.add(asyncio.create_task(c)))
    conversation = table.conversation_for(CONV, "messaging")
    stream = conversation.messages()
    table.deliver(batch(_messaging("Connected")))
    table.deliver(batch(message(1, body=False)))  # its GET waits for release
    reader = asyncio.create_task(anext(stream))
    await asyncio.sleep(0)
    table.channel_failed(ucwa_async.ChannelFailedError("the event channel failed"))
    assert conversation.ended is ucwa_async.ConversationEndReason.CHANNEL_FAILED
    with pytest.raises(StopAsyncIteration):
        async with asyncio.timeout(1.0):
            await reader
    transport.release.set()
    table.close()
    await asyncio.gather(*tasks, return_exceptions=True)


def _modality(rel: str, state: str, links: dict[str, str]) -> dict[str, Any]:
    href = f"{CONV}/{rel}"
    return {
        "link": {"rel": rel, "href": href},
        "_embedded": {
            rel: {
                "rel": rel,
                "state": state,
                "_links": {name: {"href": f"{href}/{path}"} for name, path in links.items()},
            }
        },
        "type": "updated",
    }


@pytest.mark.parametrize("said", [True, False])
async def test_hang_up_whose_answer_is_lost_in_a_conversation_that_goes_on(
    said: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call with messaging too (the conversation goes on after stopPhoneAudio): a
    hang_up() whose answer is lost returns when the channel says phoneAudio Disconnected
    (stopPhoneAudio_ref.md: the stop ends that modality), the conversation still live; if
    nothing is said within the grace, it raises the TransportError."""
    from ucwa_async import _outcome

    monkeypatch.setattr(_outcome, "UNANSWERED_GRACE", 0.1)
    table: ConversationTable | None = None
    posts: list[str] = []

    async def post(url: str, payload: bytes | None, content_type: str | None) -> Any:
        posts.append(url)
        if said:  # the server acted: its events come, its answer is lost
            assert table is not None
            batch = _communication_events(_modality("phoneAudio", "Disconnected", {}))
            asyncio.get_running_loop().call_later(0.02, table.deliver, batch)
        raise ucwa_async.TransportError("POST failed: connection reset (injected)")

    server = ReferenceServer()
    table = ConversationTable(
        transport=server,  # type: ignore[arg-type]
        application=FakeApplication(),  # type: ignore[arg-type]
        post_payload=post,
        stats=SessionStats(),
        spawn=_run_now,
        ensure_usable=lambda: None,
        wire_format="json",
        invitation_timeout=5.0,
        inbox_size=10,
        max_messages=100,
    )
    conversation = table.conversation_for(CONV, "phoneAudio")
    messaging = {"sendMessage": "messages", "stopMessaging": "terminate"}
    table.deliver(
        _communication_events(
            _modality("messaging", "Connected", messaging),
            _modality("phoneAudio", "Connected", {"stopPhoneAudio": "stopPhoneAudio"}),
        )
    )
    if said:
        await conversation.hang_up()
        assert conversation._state.phone_audio_state == "Disconnected"
    else:
        with pytest.raises(ucwa_async.TransportError):
            await conversation.hang_up()
    assert posts == [f"{CONV}/phoneAudio/stopPhoneAudio"]
    assert conversation.ended is None  # messaging goes on
    assert conversation._state.leaving == 0
    table.close()
