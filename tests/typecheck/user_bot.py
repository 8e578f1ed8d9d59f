"""A user-style bot, type-checked with ``mypy --strict`` against the installed package
(tests/typecheck/test_user_bot_types.py). It is never run: it only has to type-check."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any, Literal

import ucwa_async
from ucwa_async import (
    ConversationLog,
    Invitation,
    InvitationFailedError,
    MessagingInvitation,
    PhoneAudioInvitation,
    Session,
)

log = logging.getLogger("bot")


def credentials() -> ucwa_async.Auth:
    token = os.environ.get("UCWA_TOKEN")
    if token:
        return ucwa_async.TokenAuth(token)
    return ucwa_async.PasswordAuth("alice@contoso.com", os.environ["UCWA_PASSWORD"])


def describe(log_entry: ConversationLog) -> str:
    href: str = log_entry.href  # always a str, absolute
    return f"{log_entry.subject or '(no subject)'} at {href} ({log_entry.status})"


async def watch(session: Session) -> None:
    async with session.events() as stream:
        async for item in stream:
            if isinstance(item, ucwa_async.ChannelReconnecting):
                log.warning("reconnecting: %s", item.reason)
            elif isinstance(item, ucwa_async.Event):
                log.info("event %s on %s", item.type, item.link.href)
            elif isinstance(item, ucwa_async.ChannelClosed):
                return


async def follow_up(session: Session, logs: list[ConversationLog]) -> int:
    ims: list[Invitation[MessagingInvitation]] = [
        await session.continue_messaging(entry, message="Following up") for entry in logs
    ]
    call: Invitation[PhoneAudioInvitation] = await session.continue_phone_audio(
        logs[0], phone_number="tel:+14255551234"
    )
    done, pending = await asyncio.wait(ims, timeout=30)
    for invitation in pending:
        if invitation.cancel():
            cancelled: bool = await invitation.cancel_outcome()
            log.info("cancelled %s: %s", invitation.href, cancelled)
    connected = 0
    for invitation in done:
        error = invitation.exception()
        if error is None:
            resource: MessagingInvitation = invitation.result()
            connected += resource.state == "Connected"
        elif isinstance(error, InvitationFailedError) and error.reason is not None:
            log.info("declined: %s", error.reason.subcode)
    for next_done in asyncio.as_completed([call], timeout=60):
        phone: PhoneAudioInvitation = await next_done
        log.info("call %s", phone.phone_number)
    outcomes = await asyncio.gather(*ims, return_exceptions=True)
    # Both kinds in one list: annotated as docs/invitations.md says.
    both: list[Invitation[Any]] = [*ims, call]
    _, still_pending = await asyncio.wait(both, timeout=1)
    log.info("%d still pending", len(still_pending))
    return connected + sum(isinstance(o, MessagingInvitation) for o in outcomes)


Modality = Literal["messaging", "phoneAudio"]


def modalities(
    invitation: Invitation[Any],
    incoming: ucwa_async.IncomingInvitation,
    conversation: ucwa_async.Conversation,
) -> list[Modality]:
    # One vocabulary: what an invitation continues, what is offered, how one was joined.
    return [invitation.modality, incoming.kind, conversation.kind]


async def main() -> None:
    async with Session("https://lyncdiscover.contoso.com", auth=credentials()) as session:
        watcher = asyncio.create_task(watch(session))
        logs = await session.conversation_logs(limit=5)
        for entry in logs:
            print(describe(entry))
        missed = [entry for entry in logs if entry.status == "Missed"]
        print("connected:", await follow_up(session, missed or logs))
        try:
            async with asyncio.timeout(5):
                await (await session.continue_messaging(logs[0])).wait(timeout=10)
        except (TimeoutError, ucwa_async.InvitationError) as exc:
            print("no luck:", exc)
        href = logs[0].href
        again = await session.invitation(href) if href.endswith("/invitations/1") else None
        if again is not None and again.done() and not again.cancelled() and not again.exception():
            final: MessagingInvitation | PhoneAudioInvitation = again.result()
            print(final.state)
        watcher.cancel()


if __name__ == "__main__":
    asyncio.run(main())
