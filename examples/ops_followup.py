"""Continue the most recent past conversations at once, by IM or phone, and read the replies.

    UCWA_PASSWORD=... python examples/ops_followup.py --discovery URL --user USER \
        [--count 50] [--answer-timeout 30] [--listen 60] [--phone tel:+14255551234]

Each log is continued the way it went: an audio call's log (``type`` AudioLog) by phone
audio (the server rings ``--phone``, or the user's own number), any other by IM. Each
follow-up ends one way, printed on its own line: connected, failed (the server's reason),
timed out (no answer within ``--answer-timeout``: cancelled on the server, so nothing is
left ringing) or error (the POST refused, or no outcome could be known). Then the bot reads
the replies in the connected IM conversations for ``--listen`` seconds, prints them, and
leaves those conversations.

Exit status: 0 every follow-up connected, 1 one did not (or the session failed),
2 no password, 3 sign-in refused.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import sys
from collections import Counter
from typing import Any, Literal, NamedTuple

import ucwa_async

_NO_DATE = datetime.datetime.min.replace(tzinfo=datetime.UTC)


class FollowUp(NamedTuple):
    log: ucwa_async.ConversationLog
    how: Literal["IM", "phone"]
    outcome: Literal["connected", "failed", "timed out", "error"]
    detail: str
    invitation: ucwa_async.Invitation[Any] | None


def is_audio(log: ucwa_async.ConversationLog) -> bool:
    """An audio call's log: ConversationLogType AudioLog, or an Audio modality."""
    return log.type == "AudioLog" or (log.type is None and "Audio" in log.modalities)


async def follow_up(
    session: ucwa_async.Session,
    log: ucwa_async.ConversationLog,
    *,
    phone: str | None,
    answer_timeout: float,
) -> FollowUp:
    """Continue one log; how it ended, for certain."""
    how: Literal["IM", "phone"] = "phone" if is_audio(log) else "IM"
    invitation: ucwa_async.Invitation[Any]
    try:
        if how == "phone":
            invitation = await session.continue_phone_audio(log, phone)
        else:
            text = f"Following up on: {log.subject or 'our conversation'}"
            invitation = await session.continue_messaging(log, message=text)
    except ucwa_async.UcwaError as exc:  # refused, or no answer (the session cancels it)
        return FollowUp(log, how, "error", f"not started: {type(exc).__name__}: {exc}", None)
    try:
        try:
            await invitation.wait(answer_timeout)
        except ucwa_async.InvitationTimeoutError:
            # Our wait is over, but the server may still be ringing: cancel it there, and
            # learn whether the cancel ended it or an outcome that came meanwhile did.
            invitation.cancel()
            if await invitation.cancel_outcome():
                return FollowUp(log, how, "timed out", "cancelled", invitation)
            await invitation  # connected or declined while the cancel was on its way
    except ucwa_async.InvitationFailedError as exc:
        return FollowUp(log, how, "failed", str(exc.reason), invitation)
    except ucwa_async.UcwaError as exc:  # lost with its application, channel down, ...
        return FollowUp(log, how, "error", f"{type(exc).__name__}: {exc}", invitation)
    return FollowUp(log, how, "connected", "", invitation)


async def replies(
    invitation: ucwa_async.Invitation[Any], deadline: float
) -> list[ucwa_async.Message]:
    """The messages of a connected IM conversation until ``deadline``; then leave it."""
    conversation = await invitation.conversation()
    received: list[ucwa_async.Message] = []
    try:
        async with asyncio.timeout_at(deadline), conversation.messages() as messages:
            async for message in messages:  # ends early if the other side leaves
                received.append(message)
    except TimeoutError:
        pass
    await conversation.leave()
    return received


async def main(
    discovery: str,
    user: str,
    password: str,
    *,
    wire: Literal["json", "xml"] = "json",
    count: int = 50,
    answer_timeout: float = 30.0,
    listen: float = 60.0,
    phone: str | None = None,
) -> int:
    async with ucwa_async.Session(
        discovery,
        auth=ucwa_async.PasswordAuth(user, password),
        wire_format=wire,
        invitation_timeout=answer_timeout + 30,  # a backstop: our own wait cancels first
    ) as session:
        # conversationLogs_ref.md promises no order: read them all, newest first.
        logs = await session.conversation_logs()
        logs.sort(key=lambda log: log.created_at or _NO_DATE, reverse=True)
        del logs[count:]
        print(f"following up {len(logs)} conversations", flush=True)
        async with asyncio.TaskGroup() as group:  # all at once; the session multiplexes
            tasks = [
                group.create_task(
                    follow_up(session, log, phone=phone, answer_timeout=answer_timeout)
                )
                for log in logs
            ]
        done = [task.result() for task in tasks]
        for f in done:
            subject = f.log.subject or "-"
            print(f"{f.outcome:<10} {f.how:<5} {subject[:24]:<24} {f.detail}".rstrip())
        chats = [f for f in done if f.how == "IM" and f.outcome == "connected"]
        if chats:
            print(f"listening {listen:g} s for replies in {len(chats)} conversations", flush=True)
        deadline = asyncio.get_running_loop().time() + listen
        async with asyncio.TaskGroup() as group:
            readers = [
                group.create_task(replies(f.invitation, deadline)) for f in chats if f.invitation
            ]
        for f, reader in zip(chats, readers, strict=True):
            for message in reader.result():
                sender = message.sender
                who = (sender.name or sender.uri) if sender is not None else None
                print(f"reply on {f.log.subject or '-'!r} from {who or 'them'}: {message.text}")
        outcomes = Counter(f.outcome for f in done)
        print("summary:", ", ".join(f"{k}={v}" for k, v in sorted(outcomes.items())) or "nothing")
        return 0 if outcomes["connected"] == len(done) else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--discovery", required=True, help="autodiscovery URL")
    parser.add_argument("--user", required=True, help="sign-in name")
    parser.add_argument("--wire", choices=("json", "xml"), default="json")
    parser.add_argument("--count", type=int, default=50, help="how many logs (the newest)")
    parser.add_argument("--answer-timeout", type=float, default=30.0, help="seconds")
    parser.add_argument("--listen", type=float, default=60.0, help="seconds to read replies")
    parser.add_argument("--phone", help="the number to ring for audio logs (tel:+1...)")
    args = parser.parse_args()
    password = os.environ.get("UCWA_PASSWORD")
    if not password:
        print("set UCWA_PASSWORD to the password of --user", file=sys.stderr)
        sys.exit(2)
    try:
        sys.exit(
            asyncio.run(
                main(
                    args.discovery,
                    args.user,
                    password,
                    wire=args.wire,
                    count=args.count,
                    answer_timeout=args.answer_timeout,
                    listen=args.listen,
                    phone=args.phone,
                )
            )
        )
    except ucwa_async.AuthenticationError as exc:  # wrong password, most often
        print(f"sign-in refused: {exc}", file=sys.stderr)
        sys.exit(3)
    except ucwa_async.UcwaError as exc:  # unreachable, or the server refused something
        print(f"stopped: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
