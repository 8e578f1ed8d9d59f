"""An async bot: continue every missed conversation log by IM, concurrently, and report outcomes.

    UCWA_PASSWORD=... python examples/followup_bot.py --discovery URL --user USER [--all]

``--all`` follows up every log, answered (``Archived``) or not. One line per log, then a
summary line.
Exit status: 0 when every follow-up ended (connected or declined), 1 when one ended
with an error or no outcome (or the session failed), 2 no password, 3 sign-in refused.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections import Counter
from typing import Literal

import ucwa_async


async def follow_up(session: ucwa_async.Session, log: ucwa_async.ConversationLog, text: str) -> str:
    """Continue one log by IM; the outcome as a short word."""
    try:
        invitation = await session.continue_messaging(log, message=text)
        await invitation
    except ucwa_async.InvitationFailedError as exc:
        reason = exc.reason  # the server's Reason, or None
        word = (reason.subcode or reason.code) if reason is not None else None
        return f"declined ({word})" if word else "failed"
    except ucwa_async.InvitationTimeoutError:
        return "error (timed out)"
    except ucwa_async.UcwaError as exc:
        return f"error ({type(exc).__name__})"
    return "connected"


async def main(
    discovery: str,
    user: str,
    password: str,
    wire: Literal["json", "xml"],
    *,
    everything: bool = False,
) -> int:
    async with ucwa_async.Session(
        discovery,
        auth=ucwa_async.PasswordAuth(user, password),
        wire_format=wire,
        invitation_timeout=30,
    ) as session:
        logs = await session.conversation_logs(limit=50)
        # ConversationLogStatus_ref.md: Archived (answered) or Missed.
        todo = [log for log in logs if everything or (log.status or "").lower() != "archived"]
        print(f"{len(todo)} of {len(logs)} conversation logs to follow up", flush=True)
        async with asyncio.TaskGroup() as group:  # all at once; the session multiplexes
            tasks = {
                log.href: group.create_task(
                    follow_up(session, log, f"Following up on: {log.subject or 'our chat'}")
                )
                for log in todo
            }
        outcomes = Counter(task.result() for task in tasks.values())
        for href, task in tasks.items():
            print(f"{task.result():<28} {href}")
        print("summary:", ", ".join(f"{k}={v}" for k, v in sorted(outcomes.items())) or "nothing")
        errors = sum(v for k, v in outcomes.items() if k.startswith("error"))
        return 1 if errors else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--discovery", required=True, help="autodiscovery URL")
    parser.add_argument("--user", required=True, help="sign-in name")
    parser.add_argument("--wire", choices=("json", "xml"), default="json")
    parser.add_argument("--all", action="store_true", help="follow up answered (Archived) logs too")
    args = parser.parse_args()
    password = os.environ.get("UCWA_PASSWORD")
    if not password:
        print("set UCWA_PASSWORD to the password of --user", file=sys.stderr)
        sys.exit(2)
    try:
        sys.exit(
            asyncio.run(main(args.discovery, args.user, password, args.wire, everything=args.all))
        )
    except ucwa_async.AuthenticationError as exc:  # wrong password, most often
        print(f"sign-in refused: {exc}", file=sys.stderr)
        sys.exit(3)
    except ucwa_async.UcwaError as exc:  # unreachable, or the server refused something
        print(f"stopped: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
