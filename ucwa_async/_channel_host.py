"""The session side of the event channel: what ``ChannelRunner`` calls back into.

A private adapter, so the session's public surface carries no channel plumbing. It
routes each callback to the part that owns it: the P-GET and re-authentication to the
transport, batches to the subscribers and the operations table, application loss to
the application and the table.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from ucwa_async._application import Application
from ucwa_async._conversations import ConversationTable
from ucwa_async._core.errors import ChannelFailedError, UcwaError
from ucwa_async._core.models import EventBatch
from ucwa_async._events import ApplicationRecreated, ChannelFailed, ChannelSignal
from ucwa_async._http import HttpResponse
from ucwa_async._operations import OperationTable
from ucwa_async._transport import Transport

if TYPE_CHECKING:
    from ucwa_async._channel import ChannelRunner
    from ucwa_async._session import SessionStats

__all__ = ["SessionChannelHost"]

log = logging.getLogger("ucwa_async.session")


class SessionChannelHost:
    """Implements ``ucwa_async._channel.ChannelHost`` for one session."""

    def __init__(
        self,
        *,
        transport: Transport,
        application: Application,
        operations: OperationTable,
        conversations: ConversationTable,
        channel: Callable[[], ChannelRunner],
        stats: SessionStats,
        publish: Callable[[object], None],
        pget_read_timeout: float,
    ) -> None:
        self._transport = transport
        self._app = application
        self._operations = operations
        self._conversations = conversations
        self._channel = channel
        self._stats = stats
        self._publish = publish
        self._pget_read_timeout = pget_read_timeout
        self._make_me_available: asyncio.Task[None] | None = None
        self._lost_invitations = 0  # ended when the application was last lost

    async def poll(self, url: str, sent: asyncio.Future[None] | None = None) -> HttpResponse:
        return await self._transport.poll(url, self._pget_read_timeout, sent)

    def deliver(self, batch: EventBatch) -> None:
        if batch.rejected_count:
            self._stats.events_rejected += batch.rejected_count
            if batch.rejected:  # a batch comes in slices: only those with reports log
                log.warning(
                    "skipped %d malformed event(s) in a batch: %s",
                    batch.rejected_count,
                    "; ".join(batch.rejected[:3]),
                )
        self._stats.events_received += len(batch.events)
        for event in batch.events:
            self._publish(event)
        self._operations.deliver(batch)
        self._conversations.deliver(batch)

    def resynced(self) -> None:
        self._operations.resynced()
        self._conversations.resynced()

    def emit(self, signal: ChannelSignal) -> None:
        self._publish(signal)

    async def reauthenticate(self, url: str, error: UcwaError) -> None:
        await self._transport.reauthenticate(url, error)

    def application_lost(self, error: UcwaError) -> None:
        """End what was bound to the lost application now, not after the pause before its
        re-creation; once per loss."""
        if self._app.lose():
            self._lost_invitations = self._operations.lose_bound(
                f"the application was lost ({error}); outcome unknown"
            )
            self._conversations.application_lost()

    async def recreate_application(self, error: UcwaError) -> str:
        self.application_lost(error)
        events_url = await self._app.recreate()
        self._stats.applications_created = self._app.created
        self.emit(
            ApplicationRecreated(
                application_url=self._app.url or "", lost_invitations=self._lost_invitations
            )
        )
        self._start_make_me_available()
        return events_url

    def channel_failed(self, error: ChannelFailedError) -> None:
        self._operations.fail_all(error)
        self._conversations.channel_failed(error)
        self.emit(ChannelFailed(error=error))

    async def stop(self) -> None:
        """Cancel a makeMeAvailable still under way (the session is closing)."""
        task, self._make_me_available = self._make_me_available, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def _start_make_me_available(self) -> None:
        # Exactly one makeMeAvailable per new application: a previous one still waiting
        # for its (now lost) application's channel is superseded.
        previous = self._make_me_available
        if previous is not None and not previous.done():
            previous.cancel()
        self._make_me_available = asyncio.create_task(
            self._make_me_available_when_connected(), name="ucwa_async.make-me-available"
        )

    async def _make_me_available_when_connected(self) -> None:
        try:
            await self._channel().wait_connected()  # raises if the channel fails meanwhile
            await self._app.make_me_available(self._operations.post_operation)
        except UcwaError as exc:
            log.warning("makeMeAvailable after re-creating the application failed: %s", exc)
