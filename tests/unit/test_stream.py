"""EventStream: bounded, drop-oldest overflow policy, clean end."""

from __future__ import annotations

import asyncio

import pytest

from ucwa_async._events import ChannelClosed
from ucwa_async._stream import EventStream


def make(maxsize: int = 3) -> tuple[EventStream, list[EventStream]]:
    closed: list[EventStream] = []
    return EventStream(maxsize=maxsize, on_close=closed.append), closed


async def test_items_in_order_then_end() -> None:
    stream, _ = make()
    stream._push(1)
    stream._push(2)
    stream._end(ChannelClosed())
    assert [item async for item in stream] == [1, 2, ChannelClosed()]
    assert stream.closed


async def test_full_queue_drops_oldest_and_counts() -> None:
    stream, _ = make(maxsize=3)
    for i in range(5):
        stream._push(i)
    assert stream.dropped == 2
    stream._end(ChannelClosed())
    items = [item async for item in stream]
    assert items[:3] == [2, 3, 4]


async def test_slow_subscriber_never_blocks_pusher() -> None:
    stream, _ = make(maxsize=10)
    # A push is synchronous: 10 000 pushes into a consumer that never reads finish at once.
    for i in range(10_000):
        stream._push(i)
    assert stream.dropped == 9_990


async def test_waiting_consumer_is_woken() -> None:
    stream, _ = make()
    got = asyncio.create_task(stream.__anext__())
    await asyncio.sleep(0)
    stream._push("x")
    assert await asyncio.wait_for(got, 1) == "x"


async def test_close_ends_iteration_and_unsubscribes() -> None:
    stream, closed = make()
    async with stream as s:
        s._push(1)
    assert closed == [stream]
    with pytest.raises(StopAsyncIteration):
        await stream.__anext__()
    stream._push(2)  # ignored after close
    stream.close()  # idempotent
    assert closed == [stream]


def test_maxsize_must_be_positive() -> None:
    with pytest.raises(ValueError, match="maxsize"):
        EventStream(maxsize=0, on_close=lambda s: None)


async def test_a_stream_is_held_while_a_task_waits_on_it() -> None:
    """The session holds its streams weakly; ``reading`` holds one (and so the task
    waiting on it, which asyncio itself holds only weakly) while a task waits on it."""
    reading: set[EventStream] = set()
    stream = EventStream(maxsize=3, on_close=lambda s: None, reading=reading)
    assert reading == set()
    got = asyncio.create_task(stream.__anext__())
    await asyncio.sleep(0)
    assert reading == {stream}
    stream._push("x")
    assert await asyncio.wait_for(got, 1) == "x"
    assert reading == set()
    cancelled = asyncio.create_task(stream.__anext__())
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert reading == set()
