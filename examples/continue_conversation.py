"""Minimal: continue a past conversation (the first the server lists) by instant message.

    UCWA_PASSWORD=... python examples/continue_conversation.py \
        --discovery https://lyncdiscover.contoso.com --user alice@contoso.com

Exit status: 0 connected, 1 not connected (or the server failed), 2 no password,
3 sign-in refused.
Try it against the simulator: ``ucwa-async simulator`` prints a URL and credentials.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Literal

import ucwa_async


async def main(
    discovery: str, user: str, password: str, message: str, wire: Literal["json", "xml"]
) -> int:
    async with ucwa_async.Session(
        discovery, auth=ucwa_async.PasswordAuth(user, password), wire_format=wire
    ) as session:
        logs = await session.conversation_logs(limit=1)
        if not logs:
            print("no past conversations")
            return 1
        print(f"continuing {logs[0].subject or 'the last conversation'!r} by IM")
        invitation = await session.continue_messaging(logs[0], message=message)
        print(f"invitation created: {invitation.href}")
        try:
            result = await invitation  # the final MessagingInvitation
        except ucwa_async.InvitationFailedError as exc:
            print(f"not connected: {exc}")
            return 1
        except ucwa_async.InvitationError as exc:  # timed out, lost, ...
            print(f"no outcome: {type(exc).__name__}: {exc}")
            return 1
        print(f"connected: {result.state}")
        return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--discovery", required=True, help="autodiscovery URL")
    parser.add_argument("--user", required=True, help="sign-in name")
    parser.add_argument("--message", default="Following up on our conversation")
    parser.add_argument("--wire", choices=("json", "xml"), default="json")
    args = parser.parse_args()
    password = os.environ.get("UCWA_PASSWORD")
    if not password:
        print("set UCWA_PASSWORD to the password of --user", file=sys.stderr)
        sys.exit(2)
    try:
        sys.exit(asyncio.run(main(args.discovery, args.user, password, args.message, args.wire)))
    except ucwa_async.AuthenticationError as exc:  # wrong password, most often
        print(f"sign-in refused: {exc}", file=sys.stderr)
        sys.exit(3)
    except ucwa_async.UcwaError as exc:  # unreachable, or the server refused something
        print(f"stopped: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
