"""``session.events()``: every subscriber gets UCWA events and channel signals in order;
bounded queues drop the oldest item and never hold up invitations."""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any

import pytest

import ucwa_async
from ucwa_async.testing import SimulatorConfig, UcwaSimulator

from ._support import SessionFactory

PHONE = "tel:+14255551234"


async def _collect(stream: ucwa_async.EventStream, quiet: float = 0.25) -> list[Any]:
    """Read until nothing arrives for ``quiet`` seconds (bounded in count)."""
    items: list[Any] = []
    for _ in range(10_000):
        try:
            items.append(await asyncio.wait_for(anext(stream), quiet))
        except (TimeoutError, StopAsyncIteration):
            break
    return items


def _describe(item: Any) -> tuple[str, ...]:
    if isinstance(item, ucwa_async.Event):
        return ("event", item.type, item.link.href)
    return ("signal", type(item).__name__)


async def test_every_subscriber_gets_events_and_signals_in_order(
    make_session: SessionFactory, wire_format: str
) -> None:
    config = SimulatorConfig(completion_delay=0.05)
    async with UcwaSimulator(config) as sim, make_session(sim) as session:
        logs = await session.conversation_logs(limit=1)
        async with session.events() as first, session.events() as second:
            im = await session.continue_messaging(logs[0], message="watched")
            await im.result(timeout=8)
            sim.faults.callback_channel_error(next_n=1)
            call = await session.continue_phone_audio(logs[0], phone_number=PHONE)
            await call.result(timeout=8)
            seen_first = await _collect(first)
            seen_second = await _collect(second)
        # both saw the very same items in the very same order
        assert [_describe(i) for i in seen_first] == [_describe(i) for i in seen_second]
        assert all(a is b for a, b in zip(seen_first, seen_second, strict=True))
        kinds = [_describe(i)[:2] for i in seen_first]
        # the messaging invitation's life, then the reconnect, then the call's life
        im_events = [
            i.type for i in seen_first if isinstance(i, ucwa_async.Event) and _is(i, im.href)
        ]
        call_events = [
            i.type for i in seen_first if isinstance(i, ucwa_async.Event) and _is(i, call.href)
        ]
        assert im_events == ["started", "completed"]
        assert call_events == ["started", "completed"]
        reconnecting = kinds.index(("signal", "ChannelReconnecting"))
        reconnected = kinds.index(("signal", "ChannelReconnected"))
        assert reconnecting < reconnected
        last_im = max(
            n
            for n, i in enumerate(seen_first)
            if isinstance(i, ucwa_async.Event) and _is(i, im.href)
        )
        first_call = min(
            n
            for n, i in enumerate(seen_first)
            if isinstance(i, ucwa_async.Event) and _is(i, call.href)
        )
        assert last_im < reconnecting < reconnected < first_call
        # the events carry what the server sent: the embedded invitation and its reason
        completed = [
            i for i in seen_first if isinstance(i, ucwa_async.Event) and i.type == "completed"
        ]
        assert {e.status for e in completed} == {"Success"}
        assert {e.operation_id for e in completed} == {im.operation_id, call.operation_id}
        assert isinstance(completed[0].resource, ucwa_async.MessagingInvitation)
        assert first.dropped == second.dropped == 0


def _is(event: ucwa_async.Event, href: str | None) -> bool:
    assert href is not None
    path = href.split("/ucwa/", 1)[1]
    return event.link.href.endswith(path)


async def test_failure_events_carry_the_reason(
    make_session: SessionFactory, wire_format: str
) -> None:
    config = SimulatorConfig(fail_rate=1.0, completion_delay=0.01)
    async with UcwaSimulator(config) as sim, make_session(sim) as session:
        logs = await session.conversation_logs(limit=1)
        async with session.events() as stream:
            invitation = await session.continue_messaging(logs[0])
            with pytest.raises(ucwa_async.InvitationFailedError):
                await invitation.result(timeout=8)
            items = await _collect(stream)
        completed = [i for i in items if isinstance(i, ucwa_async.Event) and i.type == "completed"]
        assert len(completed) == 1
        assert completed[0].status == "Failure"
        assert completed[0].reason is not None
        assert completed[0].reason.subcode == "Declined"


async def test_slow_subscriber_drops_oldest_and_never_blocks(
    make_session: SessionFactory, wire_format: str
) -> None:
    count = 30
    config = SimulatorConfig(completion_delay=0.01)
    async with UcwaSimulator(config) as sim, make_session(sim) as session:
        logs = await session.conversation_logs(limit=2)
        async with session.events(maxsize=5) as stalled, session.events() as reader:
            loop = asyncio.get_running_loop()
            started = loop.time()
            invitations = await asyncio.gather(
                *(
                    session.continue_messaging(logs[i % 2], message=str(i))
                    if i % 2
                    else session.continue_phone_audio(logs[i % 2], phone_number=PHONE)
                    for i in range(count)
                )
            )
            results = await asyncio.gather(*(inv.result(timeout=8) for inv in invitations))
            assert loop.time() - started < 5.0
            assert all(r.state == "Connected" for r in results)
            everything = await _collect(reader)
            # the stalled stream kept only the newest five items
            kept = await _collect(stalled)
        assert len(everything) >= 2 * count
        assert stalled.dropped == len(everything) - 5
        assert stalled.dropped > 0
        assert kept == everything[-5:]
        assert reader.dropped == 0
        assert session.stats.invitations_connected == count


async def test_stream_ends_with_channel_closed(
    make_session: SessionFactory, wire_format: str
) -> None:
    async with UcwaSimulator(SimulatorConfig(completion_delay=0.01)) as sim:
        async with make_session(sim) as session:
            stream = session.events()
            closed_early = session.events()
            closed_early.close()
            assert closed_early.closed
            logs = await session.conversation_logs(limit=1)
            await (await session.continue_messaging(logs[0])).result(timeout=8)
        items = await _collect(stream)
        assert isinstance(items[-1], ucwa_async.ChannelClosed)
        assert any(isinstance(i, ucwa_async.Event) for i in items)
        assert stream.closed
        with pytest.raises(StopAsyncIteration):
            await anext(stream)
        # a stream closed by its reader got nothing after it closed
        assert await _collect(closed_early) == []
        with pytest.raises(ucwa_async.SessionClosedError):
            session.events()


async def test_unsubscribed_stream_gets_nothing_more(
    make_session: SessionFactory, wire_format: str
) -> None:
    async with (
        UcwaSimulator(SimulatorConfig(completion_delay=0.01)) as sim,
        make_session(sim) as session,
    ):
        logs = await session.conversation_logs(limit=1)
        async with session.events(maxsize=1) as stream:
            pass
        await (await session.continue_messaging(logs[0])).result(timeout=8)
        assert stream.dropped == 0  # nothing was pushed after the context exited
        assert await _collect(stream) == []


async def test_a_second_concurrent_reader_of_one_stream_is_refused(
    make_session: SessionFactory, wire_format: str
) -> None:
    config = SimulatorConfig(completion_delay=0.05)
    async with UcwaSimulator(config) as sim, make_session(sim) as session:
        logs = await session.conversation_logs(limit=1)
        async with session.events() as stream:
            first = asyncio.create_task(anext(stream))
            await asyncio.sleep(0.01)  # the first reader is waiting now
            # The second reader is refused at once; it cannot steal the first one's wake-up.
            with pytest.raises(RuntimeError, match="already being read by another task"):
                await asyncio.wait_for(anext(stream), 1)
            im = await session.continue_messaging(logs[0], message="one reader")
            item = await asyncio.wait_for(first, 5)
            assert isinstance(item, ucwa_async.Event)
            assert item.type == "started"
            await im.result(timeout=8)
            # One reader at a time is fine: the stream goes on where the first left off.
            following = await asyncio.wait_for(anext(stream), 5)
            assert isinstance(following, ucwa_async.Event)
        # Two subscribers are the way to have two readers: each gets every item.
        async with session.events() as one, session.events() as two:
            readers = [asyncio.create_task(anext(s)) for s in (one, two)]
            await asyncio.sleep(0.01)
            await session.continue_messaging(logs[0], message="two subscribers")
            got = [await asyncio.wait_for(r, 5) for r in readers]
            assert got[0] is got[1]


async def test_a_stream_taken_before_open_sees_the_first_channel_connected(
    simulator: UcwaSimulator, make_session: SessionFactory
) -> None:
    # events.md: ChannelConnected is "the channel is up for the first time"; events()
    # refused a session not yet open, and after open() that signal is gone.
    session = make_session(simulator)
    async with session.events() as stream:
        async with session:
            first = await asyncio.wait_for(anext(stream), 5)
            assert isinstance(first, ucwa_async.ChannelConnected)
            assert first.events_url
        assert [type(item) async for item in stream][-1:] == [ucwa_async.ChannelClosed]


async def test_a_stream_taken_before_a_session_closed_unopened_ends(
    simulator: UcwaSimulator, make_session: SessionFactory
) -> None:
    session = make_session(simulator)
    stream = session.events()
    await session.aclose()
    assert [type(item) async for item in stream] == [ucwa_async.ChannelClosed]
    with pytest.raises(ucwa_async.SessionClosedError):
        session.events()


async def test_streams_dropped_without_close_do_not_stay_subscribed(
    make_session: SessionFactory, wire_format: str
) -> None:
    """A daemon that takes a stream per turn of its loop (``await anext(session.events())``,
    no ``async with``) and drops it: each one stayed subscribed, its queue filling up to
    ``event_queue_size`` and every event pushed to it, for as long as the session lasted.
    A stream nobody references any more (and no task reads) is unsubscribed."""
    config = SimulatorConfig(completion_delay=0.01)
    async with UcwaSimulator(config) as sim, make_session(sim) as session:
        logs = await session.conversation_logs(limit=1)
        for n in range(5):
            first = asyncio.create_task(anext(session.events()))
            await asyncio.sleep(0.01)  # (it is waiting: subscribed)
            await (await session.continue_messaging(logs[0], message=f"turn {n}")).result(8)
            assert isinstance(await asyncio.wait_for(first, 5), ucwa_async.Event)
            del first
        session.events()  # dropped at once
        cyclic = session.events()
        cyclic.cycle = cyclic  # type: ignore[attr-defined]  # freed by the collector only
        del cyclic
        gc.collect()
        assert len(session._streams) == 0
        # A stream a task reads, though nobody holds the task nor the stream, is kept
        # while the task waits on it (else the collector would destroy the pending task).
        got: list[Any] = []

        async def read(stream: ucwa_async.EventStream) -> None:
            async for item in stream:
                got.append(item)

        reader = weakref.ref(asyncio.create_task(read(session.events())))
        await asyncio.sleep(0.01)
        gc.collect()
        assert reader() is not None
        await (await session.continue_messaging(logs[0], message="still read")).result(8)
        await asyncio.sleep(0.05)
        assert any(isinstance(item, ucwa_async.Event) for item in got)
        assert len(session._streams) == 1
    assert any(isinstance(item, ucwa_async.ChannelClosed) for item in got)
