"""Inbox: bounded, first come first served, nothing lost to a cancelled reader."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ucwa_async._incoming import Inbox, InvitationStream


class Item:
    """Stands in for an IncomingInvitation (the inbox reads only ``withdrawn``)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.withdrawn = False


def inbox(size: int = 2) -> Inbox:
    return Inbox(size)


async def test_bounded_and_in_order() -> None:
    box = inbox(2)
    a, b, c = Item("a"), Item("b"), Item("c")
    assert box.push(a)  # type: ignore[arg-type]
    assert box.push(b)  # type: ignore[arg-type]
    assert not box.push(c)  # type: ignore[arg-type]
    assert len(box) == 2
    assert await box.get() is a
    box.drop(b)  # type: ignore[arg-type]
    box.drop(b)  # type: ignore[arg-type]
    assert len(box) == 0
    with pytest.raises(ValueError, match="at least 1"):
        Inbox(0)


async def test_a_waiting_reader_gets_it_directly_and_end_wakes_readers() -> None:
    box = inbox()
    getter = asyncio.create_task(box.get())
    await asyncio.sleep(0)
    item = Item("a")
    assert box.push(item)  # type: ignore[arg-type]
    assert await getter is item
    waiting = asyncio.create_task(box.get())
    await asyncio.sleep(0)
    box.end()
    assert await waiting is None
    assert await box.get() is None


async def test_an_item_handed_to_a_cancelled_reader_is_not_lost() -> None:
    box = inbox()
    getter = asyncio.create_task(box.get())
    await asyncio.sleep(0)
    item = Item("a")
    box.push(item)  # type: ignore[arg-type]
    getter.cancel()  # cancelled after the hand-over, before it ran
    with pytest.raises(asyncio.CancelledError):
        await getter
    assert await box.get() is item
    # a reader cancelled while nothing came: later pushes skip it
    idle = asyncio.create_task(box.get())
    await asyncio.sleep(0)
    idle.cancel()
    await asyncio.gather(idle, return_exceptions=True)
    assert box.push(Item("b"))  # type: ignore[arg-type]
    assert len(box) == 1


async def test_stream_skips_withdrawn_and_closes() -> None:
    box = inbox(3)
    gone, kept = Item("gone"), Item("kept")
    gone.withdrawn = True
    box.push(gone)  # type: ignore[arg-type]
    box.push(kept)  # type: ignore[arg-type]
    async with InvitationStream(box) as stream:
        assert await anext(stream) is kept  # type: ignore[comparison-overlap]
    with pytest.raises(StopAsyncIteration):
        await anext(stream)
    other: Any = InvitationStream(box)
    box.end()
    assert [i async for i in other] == []


async def test_close_from_another_task_stops_a_waiting_reader() -> None:
    box = inbox(2)
    closing, other = InvitationStream(box), InvitationStream(box)
    reader = asyncio.create_task(anext(closing))
    other_reader = asyncio.create_task(anext(other))
    await asyncio.sleep(0)
    closing.close()
    with pytest.raises(StopAsyncIteration):
        async with asyncio.timeout(1.0):
            await reader
    a = Item("a")
    assert box.push(a)  # type: ignore[arg-type]
    async with asyncio.timeout(1.0):
        assert await other_reader is a  # the other stream still reads


async def test_an_invitation_handed_to_a_stream_closing_goes_to_the_next() -> None:
    box = inbox(2)
    closing = InvitationStream(box)
    reader = asyncio.create_task(anext(closing))
    await asyncio.sleep(0)
    a = Item("a")
    assert box.push(a)  # type: ignore[arg-type]  # handed to the waiting reader...
    closing.close()  # ...whose stream closes before it runs
    with pytest.raises(StopAsyncIteration):
        await reader
    async with asyncio.timeout(1.0):
        assert await anext(InvitationStream(box)) is a


async def test_readers_polling_with_a_timeout_leave_nothing_behind() -> None:
    """A daemon on a quiet account polls ``incoming()`` with a timeout, for months: each
    wait that times out must not leave its getter in the inbox (one per poll, kept until
    an invitation came)."""
    box = inbox(2)
    stream = InvitationStream(box)
    for _ in range(200):
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0):
                await anext(stream)
    assert len(box._getters) == 0
    assert len(stream._waiting) == 0
    item = Item("a")
    assert box.push(item)  # type: ignore[arg-type]
    async with asyncio.timeout(5):
        assert await anext(stream) is item  # still handed out, to the next reader


async def test_a_failed_inbox_raises_until_the_session_closes() -> None:
    import ucwa_async

    inbox = Inbox(4)
    stream = InvitationStream(inbox)
    reader = asyncio.create_task(anext(aiter(stream), None))
    await asyncio.sleep(0)
    inbox.end(ucwa_async.ChannelFailedError("the event channel failed"))
    with pytest.raises(ucwa_async.ChannelFailedError):
        await reader
    with pytest.raises(ucwa_async.ChannelFailedError):  # again, a fresh error each time
        await anext(aiter(stream))
    inbox.end(ucwa_async.ChannelFailedError("a second failure"))  # the first one stands
    with pytest.raises(ucwa_async.ChannelFailedError, match="the event channel failed"):
        await anext(aiter(stream))
    inbox.end()  # then the session closes: readers stop quietly
    assert await anext(aiter(stream), None) is None
