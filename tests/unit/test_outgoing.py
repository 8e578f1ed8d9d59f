"""SentMessages: events before the 201, outcomes, timeout, conversation end, close."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import ucwa_async
from ucwa_async import MessageFailedError, MessageTimeoutError
from ucwa_async._core.models import parse_event_batch, parse_resource
from ucwa_async._core.urls import normalize, resolve_href
from ucwa_async._http import HttpResponse
from ucwa_async._outgoing import OutgoingMessage, SentMessages
from ucwa_async._session import SessionStats

BASE = "https://fe1.contoso.com/ucwa/v1/applications/192"
CONV = f"{BASE}/communication/conversations/137"
SEND = f"{CONV}/messaging/messages"


class FakeApplication:
    def resolve(self, href: str) -> str:
        return resolve_href(href, base_url=BASE)

    def safe_resolve(self, href: str | None) -> str | None:
        return self.resolve(href) if href else None

    def key(self, href: str) -> str:
        return normalize(self.resolve(href))


def message_event(
    n: int, status: str | None, *, direction: str = "Outgoing", reason: Any = None
) -> Any:
    event: dict[str, Any] = {
        "link": {"rel": "message", "href": f"{SEND}/{n}"},
        "type": "completed" if status is not None else "started",
        "_embedded": {
            "message": {
                "rel": "message",
                "direction": direction,
                "_links": {"self": {"href": f"{SEND}/{n}"}},
            }
        },
    }
    if status is not None:
        event["status"] = status
    if reason is not None:
        event["reason"] = reason
    batch = {"sender": [{"rel": "conversation", "href": CONV, "events": [event]}]}
    return parse_event_batch(batch).events[0]


def table(post: Any) -> tuple[SentMessages, SessionStats]:
    stats = SessionStats()
    return SentMessages(application=FakeApplication(), post_payload=post, stats=stats), stats  # type: ignore[arg-type]


async def test_events_before_the_201_resolve_the_message() -> None:
    sent: SentMessages

    async def post(url: str, payload: bytes | None, content_type: str | None) -> HttpResponse:
        assert "operationId=" in url
        assert payload == "héllo".encode()
        assert content_type == "text/plain; charset=utf-8"
        # the channel delivers the outcome before the POST returns
        assert not sent.claims(message_event(1, None))
        assert not sent.claims(message_event(1, "Success"))
        return HttpResponse("POST", url, 201, None, b"", location=f"{SEND}/1")

    sent, stats = table(post)
    message = await sent.send(SEND, "héllo", html=False, conversation_href=CONV, timeout=5)
    assert message.done()
    assert message.delivered
    await message
    assert message.href == f"{SEND}/1"
    assert (stats.messages_sent, stats.messages_delivered) == (1, 1)
    assert len(sent) == 0
    assert sent.claims(message_event(1, "Success")) is False  # finished: dropped quietly


async def test_failure_with_reason_and_incoming_events_are_not_claimed() -> None:
    async def post(url: str, payload: bytes | None, content_type: str | None) -> HttpResponse:
        assert content_type == "text/html; charset=utf-8"
        return HttpResponse("POST", url, 201, None, b"", location=f"{SEND}/2")

    sent, stats = table(post)
    message = await sent.send(SEND, "<b>x</b>", html=True, conversation_href=CONV, timeout=5)
    assert not sent.claims(message_event(2, "Success", direction="Incoming"))
    assert sent.claims(message_event(2, None))  # progress of ours
    reason = {"code": "ServiceFailure", "subcode": "Unreachable", "message": "gone"}
    assert sent.claims(message_event(2, "Failure", reason=reason))
    with pytest.raises(
        ucwa_async.MessageFailedError, match="ServiceFailure/Unreachable: gone"
    ) as caught:
        await message
    assert caught.value.reason.subcode == "Unreachable"
    assert not message.delivered
    assert stats.messages_failed == 1


async def test_completed_without_status_reads_the_resource_status() -> None:
    async def post(url: str, payload: bytes | None, content_type: str | None) -> HttpResponse:
        return HttpResponse("POST", url, 201, None, b"", location=f"{SEND}/3")

    sent, _ = table(post)
    failed = await sent.send(SEND, "a", html=False, conversation_href=CONV, timeout=5)
    event = message_event(3, None)
    batch = {
        "sender": [
            {
                "rel": "conversation",
                "href": CONV,
                "events": [
                    {
                        "link": {"rel": "message", "href": f"{SEND}/3"},
                        "type": "completed",
                        "_embedded": {"message": {"rel": "message", "status": "Failed"}},
                    }
                ],
            }
        ]
    }
    assert event.type == "started"
    sent.claims(parse_event_batch(batch).events[0])
    with pytest.raises(ucwa_async.MessageFailedError, match="no reason"):
        await failed


async def test_timeout_end_of_conversation_and_close() -> None:
    count = 0

    async def post(url: str, payload: bytes | None, content_type: str | None) -> HttpResponse:
        nonlocal count
        count += 1
        location = None if count == 2 else f"{SEND}/{10 + count}"
        return HttpResponse("POST", url, 201, None, b"", location=location)

    sent, stats = table(post)
    slow = await sent.send(SEND, "a", html=False, conversation_href=CONV, timeout=0.05)
    with pytest.raises(ucwa_async.MessageTimeoutError, match="still pending") as waited:
        await slow.result(0.01)  # this wait only
    assert "within this wait's 0.01 s" in str(waited.value)
    with pytest.raises(ucwa_async.MessageTimeoutError, match="stopped waiting") as expired:
        await slow
    assert "within its timeout (send()'s timeout" in str(expired.value)
    assert stats.messages_timed_out == 1
    no_location = await sent.send(SEND, "b", html=False, conversation_href=CONV, timeout=5)
    assert no_location.href is None
    ended = ucwa_async.ConversationEndedError("over", reason="left", href=CONV)
    sent.end_conversation(CONV, ended)
    with pytest.raises(ucwa_async.ConversationEndedError):
        await no_location
    pending = await sent.send(SEND, "c", html=False, conversation_href=CONV, timeout=5)
    sent.close_all(ucwa_async.SessionClosedError("closed"))
    with pytest.raises(ucwa_async.SessionClosedError):
        await pending
    with pytest.raises(ucwa_async.SessionClosedError):
        await sent.send(SEND, "d", html=False, conversation_href=CONV, timeout=5)
    assert "OutgoingMessage" in repr(pending)


async def test_ending_a_conversation_settles_only_its_own_messages() -> None:
    count = 0

    async def post(url: str, payload: bytes | None, content_type: str | None) -> HttpResponse:
        nonlocal count
        count += 1
        return HttpResponse("POST", url, 201, None, b"", location=f"{SEND}/{20 + count}")

    sent, _stats = table(post)
    other = CONV + "-other"
    mine = [
        await sent.send(SEND, str(n), html=False, conversation_href=CONV, timeout=5)
        for n in range(3)
    ]
    theirs = await sent.send(SEND, "x", html=False, conversation_href=other, timeout=5)
    assert len(sent) == 4
    sent.end_conversation(CONV, ucwa_async.ConversationEndedError("over", reason="left", href=CONV))
    for message in mine:
        with pytest.raises(ucwa_async.ConversationEndedError):
            await message
    assert not theirs.done()
    assert len(sent) == 1
    sent.end_conversation(CONV, ucwa_async.ConversationEndedError("again", reason="left"))
    assert len(sent) == 1  # nothing left of the first one
    sent.end_conversation(other, ucwa_async.ConversationEndedError("over", reason="left"))
    with pytest.raises(ucwa_async.ConversationEndedError):
        await theirs
    assert len(sent) == 0


async def test_a_failed_post_forgets_the_message() -> None:
    async def post(url: str, payload: bytes | None, content_type: str | None) -> HttpResponse:
        raise ucwa_async.CallbackChannelError(status=500, code="ServiceFailure")

    sent, stats = table(post)
    with pytest.raises(ucwa_async.CallbackChannelError):
        await sent.send(SEND, "a", html=False, conversation_href=CONV, timeout=5)
    assert len(sent) == 0
    assert stats.messages_sent == 0
    await asyncio.sleep(0)


async def test_unknown_message_events_wait_for_a_201_only_while_a_post_is_in_flight() -> None:
    sent: SentMessages
    orphans_during_post: list[int] = []

    async def post(url: str, payload: bytes | None, content_type: str | None) -> HttpResponse:
        sent.claims(message_event(7, None))  # may be ours: kept until the 201
        orphans_during_post.append(sent._correlator.orphan_count)
        return HttpResponse("POST", url, 201, None, b"", location=f"{SEND}/7")

    sent, _stats = table(post)
    for n in range(2000):  # link-only events of incoming messages: not kept
        link_only = parse_event_batch(
            {
                "sender": [
                    {
                        "rel": "conversation",
                        "href": CONV,
                        "events": [
                            {"link": {"rel": "message", "href": f"{SEND}/x{n}"}, "type": "started"}
                        ],
                    }
                ]
            }
        ).events[0]
        assert sent.claims(link_only) is False
    assert sent._correlator.orphan_count == 0
    message = await sent.send(SEND, "hi", html=False, conversation_href=CONV, timeout=5)
    assert orphans_during_post == [1]
    assert sent.claims(message_event(7, "Success")) is True
    assert message.delivered


def _message(operation_id: str = "op-1") -> OutgoingMessage:
    return OutgoingMessage(
        operation_id=operation_id,
        text="hi",
        html=False,
        conversation_href="https://x.example/c/1",
        loop=asyncio.get_running_loop(),
    )


async def test_outgoing_message_is_a_future_for_asyncio_helpers() -> None:
    delivered, failed = _message("a"), _message("b")
    assert asyncio.isfuture(delivered)
    seen: list[str] = []
    delivered.add_done_callback(lambda m: seen.append("done"))
    with pytest.raises(asyncio.InvalidStateError):
        delivered.result()
    asyncio.get_running_loop().call_soon(delivered._settle, None)
    asyncio.get_running_loop().call_soon(failed._settle, MessageFailedError("no"))
    done, pending = await asyncio.wait({delivered, failed}, timeout=5)
    assert done == {delivered, failed}
    assert not pending
    assert seen == ["done"]
    assert delivered.result() is None
    assert delivered.delivered
    assert isinstance(failed.exception(), MessageFailedError)
    assert not failed.delivered
    outcomes = await asyncio.gather(delivered, failed, return_exceptions=True)
    assert outcomes[0] is None
    assert isinstance(outcomes[1], MessageFailedError)
    assert [m async for m in _as_completed_ok(delivered)] == [None]
    assert await delivered.result(1) is None  # the awaitable form, as on Invitation


async def _as_completed_ok(message: OutgoingMessage) -> Any:
    for next_done in asyncio.as_completed([message]):
        yield await next_done


async def test_outgoing_message_cannot_be_cancelled_and_await_is_shielded() -> None:
    message = _message()
    assert message.cancel() is False
    assert not message.cancelled()
    with pytest.raises(MessageTimeoutError):
        await message.wait(0.01)
    waiter = asyncio.create_task(message.wait())
    await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    assert not message.done()  # the waiting task's cancel did not reach the message
    with pytest.raises(RuntimeError):
        message.set_result(None)
    with pytest.raises(RuntimeError):
        message.set_exception(ValueError())
    message._settle(None)
    assert message._settle(None) is False  # never resolved twice
    await message


async def test_a_link_only_completed_without_status_reads_the_message() -> None:
    """message_ref: a message's ``status`` (Failed, Pending, Succeeded) is its delivery
    status. A ``completed`` event that embeds nothing and gives no status says nothing of
    the delivery: the message is read (GET) and its status decides."""
    resources = {
        f"{SEND}/{n}": {
            "rel": "message",
            "direction": "Outgoing",
            "status": status,
            "_links": {"self": {"href": f"{SEND}/{n}"}},
        }
        for n, status in ((4, "Failed"), (5, "Succeeded"))
    }
    reads: list[str] = []
    tasks: set[asyncio.Task[None]] = set()

    async def read(href: str) -> Any:
        reads.append(href)
        return parse_resource(resources[href]) if href in resources else None

    locations = iter((4, 5, 6))

    async def post(url: str, payload: bytes | None, content_type: str | None) -> HttpResponse:
        return HttpResponse("POST", url, 201, None, b"", location=f"{SEND}/{next(locations)}")

    stats = SessionStats()
    sent = SentMessages(
        application=FakeApplication(),  # type: ignore[arg-type]
        post_payload=post,
        stats=stats,
        read=read,
        spawn=lambda coroutine: tasks.add(asyncio.create_task(coroutine)),
    )
    failed, delivered, unreadable = [
        await sent.send(SEND, text, html=False, conversation_href=CONV, timeout=5)
        for text in ("a", "b", "c")
    ]
    for n in (4, 5, 6):
        event = {"link": {"rel": "message", "href": f"{SEND}/{n}"}, "type": "completed"}
        batch = {"sender": [{"rel": "conversation", "href": CONV, "events": [event]}]}
        assert sent.claims(parse_event_batch(batch).events[0])
    async with asyncio.timeout(5):
        with pytest.raises(ucwa_async.MessageFailedError):
            await failed
        await delivered
        await unreadable  # completed, and nothing says it failed
    assert reads == [f"{SEND}/4", f"{SEND}/5", f"{SEND}/6"]
    assert delivered.delivered
    assert unreadable.delivered
    assert (stats.messages_delivered, stats.messages_failed) == (2, 1)
    await asyncio.gather(*tasks)


async def test_failing_every_message_when_the_channel_fails() -> None:
    async def post(url: str, payload: bytes | None, content_type: str | None) -> HttpResponse:
        return HttpResponse("POST", url, 201, None, b"", location=f"{SEND}/30")

    sent, _stats = table(post)
    pending = await sent.send(SEND, "a", html=False, conversation_href=CONV, timeout=5)
    error = ucwa_async.ChannelFailedError("the event channel failed")
    sent.fail_all(error)
    with pytest.raises(ucwa_async.ChannelFailedError):
        await pending
    assert len(sent) == 0
    assert not sent.claims(message_event(30, "Success"))  # forgotten: not ours any more


async def test_a_lost_answer_named_by_the_channel_returns_the_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The POST reached the server, which took the message; its 201 was lost. The event
    # channel names the operationId (an embedded message carrying it): send() returns.
    from ucwa_async import _outcome

    monkeypatch.setattr(_outcome, "UNANSWERED_GRACE", 1.0)
    sent: SentMessages | None = None
    posted: list[str] = []

    async def post(url: str, payload: bytes | None, content_type: str | None) -> HttpResponse:
        posted.append(url.partition("operationId=")[2])

        def name_it() -> None:
            assert sent is not None
            raw = {
                "link": {"rel": "message", "href": f"{SEND}/40"},
                "type": "started",
                "_embedded": {
                    "message": {
                        "rel": "message",
                        "direction": "Outgoing",
                        "operationId": posted[0],
                        "_links": {"self": {"href": f"{SEND}/40"}},
                    }
                },
            }
            batch = {"sender": [{"rel": "conversation", "href": CONV, "events": [raw]}]}
            sent.claims(parse_event_batch(batch).events[0])

        asyncio.get_running_loop().call_later(0.1, name_it)
        raise ucwa_async.TransportError("POST failed: connection reset (injected)")

    sent, stats = table(post)
    message = await sent.send(SEND, "a", html=False, conversation_href=CONV, timeout=5)
    assert message.href == f"{SEND}/40"
    assert not message.done()
    assert stats.messages_sent == 1
    assert sent.claims(message_event(40, "Success"))
    await message
    assert message.delivered


async def test_a_post_never_sent_raises_at_once() -> None:
    async def post(url: str, payload: bytes | None, content_type: str | None) -> HttpResponse:
        error = ucwa_async.TransportError("cannot connect (injected)")
        error.request_sent = False
        raise error

    sent, stats = table(post)
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(ucwa_async.TransportError):
        await sent.send(SEND, "a", html=False, conversation_href=CONV, timeout=5)
    assert loop.time() - began < 0.5
    assert len(sent) == 0
    assert stats.messages_sent == 0


def link_only_started(n: int) -> Any:
    event = {"link": {"rel": "message", "href": f"{SEND}/{n}"}, "type": "started"}
    batch = {"sender": [{"rel": "conversation", "href": CONV, "events": [event]}]}
    return parse_event_batch(batch).events[0]


async def test_a_lost_answer_waits_no_longer_than_the_grace_for_its_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The GETs of unclaimed link-only started messages, made to find the message whose
    # answer was lost, are cut at the grace's end: send() raises within it (each GET had
    # the request's own timeout, up to 8 of them one after the other).
    from ucwa_async import _outcome

    monkeypatch.setattr(_outcome, "UNANSWERED_GRACE", 0.2)
    sent: SentMessages | None = None
    reads: list[str] = []

    async def read(href: str) -> Any:
        reads.append(href)
        await asyncio.sleep(5)  # a slow server
        return None

    async def post(url: str, payload: bytes | None, content_type: str | None) -> HttpResponse:
        assert sent is not None
        for n in (50, 51):  # started messages nobody claims (somebody else's, say)
            assert not sent.claims(link_only_started(n))
        raise ucwa_async.TransportError("POST failed: connection reset (injected)")

    stats = SessionStats()
    sent = SentMessages(
        application=FakeApplication(),  # type: ignore[arg-type]
        post_payload=post,
        stats=stats,
        read=read,
    )
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(ucwa_async.TransportError):
        await sent.send(SEND, "a", html=False, conversation_href=CONV, timeout=5)
    assert loop.time() - began < 1.0
    assert reads == [f"{SEND}/50"]
    assert len(sent) == 0
    assert sent._unanswered == {}


async def test_a_send_cancelled_during_the_grace_leaves_nothing_pending(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The task of a send() whose answer was lost is cancelled while it waits for the
    # channel's word: the message is no longer tracked (it stayed pending, without a
    # timeout, until its conversation ended).
    from ucwa_async import _outcome

    monkeypatch.setattr(_outcome, "UNANSWERED_GRACE", 5.0)

    async def post(url: str, payload: bytes | None, content_type: str | None) -> HttpResponse:
        raise ucwa_async.TransportError("POST failed: connection reset (injected)")

    sent, stats = table(post)
    task = asyncio.create_task(sent.send(SEND, "a", html=False, conversation_href=CONV, timeout=5))
    await asyncio.sleep(0.1)
    assert len(sent._unanswered) == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(sent) == 0
    assert sent._unanswered == {}
    assert stats.messages_sent == 0


async def test_a_lost_answer_in_a_conversation_that_ended_meanwhile_raises(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The conversation ends while the POST is under way, and its answer is lost: nothing
    # named the message, so send() raises the TransportError at once (it returned the
    # message, counted as sent, as if the server had said it took it).
    from ucwa_async import _outcome

    monkeypatch.setattr(_outcome, "UNANSWERED_GRACE", 5.0)
    sent: SentMessages | None = None

    async def post(url: str, payload: bytes | None, content_type: str | None) -> HttpResponse:
        assert sent is not None
        sent.end_conversation(CONV, ucwa_async.ConversationEndedError("over", reason="left"))
        raise ucwa_async.TransportError("POST failed: connection reset (injected)")

    sent, stats = table(post)
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(ucwa_async.TransportError):
        await sent.send(SEND, "a", html=False, conversation_href=CONV, timeout=5)
    assert loop.time() - began < 1.0
    assert stats.messages_sent == 0
    assert len(sent) == 0


async def test_a_lost_answer_whose_conversation_ends_during_the_grace_raises_then(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The conversation ends during the grace: send() stops waiting and raises.
    from ucwa_async import _outcome

    monkeypatch.setattr(_outcome, "UNANSWERED_GRACE", 5.0)
    sent: SentMessages | None = None

    async def post(url: str, payload: bytes | None, content_type: str | None) -> HttpResponse:
        assert sent is not None
        loop = asyncio.get_running_loop()
        error = ucwa_async.ConversationEndedError("over", reason="left")
        loop.call_later(0.1, sent.end_conversation, CONV, error)
        raise ucwa_async.TransportError("POST failed: connection reset (injected)")

    sent, stats = table(post)
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(ucwa_async.TransportError):
        await sent.send(SEND, "a", html=False, conversation_href=CONV, timeout=5)
    assert loop.time() - began < 1.0
    assert stats.messages_sent == 0


# --- rev14 audit -------------------------------------------------------------------------


async def test_older_unclaimed_messages_do_not_spend_a_lost_answers_lookups(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Link-only events: 8 started messages nobody claimed came while earlier POSTs were
    # under way (someone else's: link-only incoming messages look the same), before this
    # send's POST was made. The send read the oldest first, spent its MAX_LOOKUPS on
    # them, and never read its own, the newest: it raised, though the server took it.
    from ucwa_async import _outcome

    monkeypatch.setattr(_outcome, "UNANSWERED_GRACE", 1.0)
    holder: list[SentMessages] = []
    reads: list[str] = []
    posted: list[str] = []

    async def read(href: str) -> Any:
        reads.append(href)
        n = int(href.rsplit("/", 1)[1])
        operation_id = posted[0] if n == 99 else f"someone-else-{n}"
        return parse_resource({"rel": "message", "operationId": operation_id})

    async def post(url: str, payload: bytes | None, content_type: str | None) -> HttpResponse:
        if not posted:  # an earlier send: others' messages came while it was under way
            posted.append("")
            for n in range(8):
                assert not holder[0].claims(link_only_started(n))
            return HttpResponse("POST", url, 201, None, b"", location=f"{SEND}/98")
        posted[0] = url.partition("operationId=")[2]
        assert not holder[0].claims(link_only_started(99))
        raise ucwa_async.TransportError("POST failed: connection reset (injected)")

    stats = SessionStats()
    sent = SentMessages(
        application=FakeApplication(),  # type: ignore[arg-type]
        post_payload=post,
        stats=stats,
        read=read,
    )
    holder.append(sent)
    await sent.send(SEND, "earlier", html=False, conversation_href=CONV, timeout=5)
    message = await asyncio.wait_for(
        sent.send(SEND, "a", html=False, conversation_href=CONV, timeout=5), 5
    )
    assert message.href == f"{SEND}/99"
    assert reads == [f"{SEND}/99"]
    assert stats.messages_sent == 2


async def test_many_sends_waiting_for_lost_answers_do_not_rescan_bound_messages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 1000 messages whose started event beat their 201 (kept as unclaimed, then bound by
    # the 201), and 1000 sends that lose their answers at once (the server never got
    # them). Each waiting send walked every kept href, normalising each to ask its
    # owner, every _LOOKUP_STEP of its grace: 1000 x 1000 per step, the loop saturated.
    from ucwa_async import _outcome

    monkeypatch.setattr(_outcome, "UNANSWERED_GRACE", 0.2)
    holder: list[SentMessages] = []
    bound = iter(range(1000))

    async def post(url: str, payload: bytes | None, content_type: str | None) -> HttpResponse:
        n = next(bound, None)
        if n is None:
            raise ucwa_async.TransportError("POST failed: connection reset (injected)")
        assert not holder[0].claims(link_only_started(n))  # before its 201
        return HttpResponse("POST", url, 201, None, b"", location=f"{SEND}/{n}")

    async def read(href: str) -> Any:
        raise AssertionError(f"no unclaimed message to read: {href}")

    stats = SessionStats()
    sent = SentMessages(
        application=FakeApplication(),  # type: ignore[arg-type]
        post_payload=post,
        stats=stats,
        read=read,
    )
    holder.append(sent)
    for _ in range(1000):
        await sent.send(SEND, "x", html=False, conversation_href=CONV, timeout=60)
    owners = 0
    owner = sent._correlator.owner

    def counted(href: str) -> str | None:
        nonlocal owners
        owners += 1
        return owner(href)

    monkeypatch.setattr(sent._correlator, "owner", counted)
    sends = [
        asyncio.create_task(sent.send(SEND, "y", html=False, conversation_href=CONV, timeout=60))
        for _ in range(1000)
    ]
    results = await asyncio.wait_for(asyncio.gather(*sends, return_exceptions=True), 60)
    assert all(isinstance(r, ucwa_async.TransportError) for r in results)
    assert owners <= 1000, owners  # not 1000 sends x 5 steps x 1000 hrefs
    assert len(sent) == 1000
