"""Commands against a real UCWA server: ``logs``, ``continue-messaging``, ``continue-phone-audio``.

The password comes from an environment variable or a prompt, never from argv.
Output is text (coloured outcomes when ``rich`` is installed and stdout is a terminal;
plain otherwise): one line per log (or one JSON array with ``logs --json``), or the
invitation's href and then its outcome.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import sys
import urllib.parse
from typing import Any

import ucwa_async
from ucwa_async.cli._console import OK, PROBLEM, WARN, say
from ucwa_async.cli._errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CliError


def _password(args: argparse.Namespace) -> str:
    value = os.environ.get(args.password_env)
    if value:
        return value
    if not sys.stdin.isatty():
        raise CliError(
            f"no password: set the environment variable {args.password_env} "
            "(stdin is not a terminal, so there is no prompt)",
            EXIT_USAGE,
        )
    try:
        value = getpass.getpass(f"password for {args.user}: ")
    except EOFError:
        value = ""
    if not value:
        raise CliError("no password given", EXIT_USAGE)
    return value


def _check_url(url: str) -> str:
    try:
        parsed = urllib.parse.urlsplit(url)
        parsed.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise CliError(f"--discovery is not a valid URL ({exc}): {url!r}", EXIT_USAGE) from None
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise CliError(
            f"--discovery must be an http(s) URL such as "
            f"https://lyncdiscover.contoso.com, got {url!r}",
            EXIT_USAGE,
        )
    if parsed.username or parsed.password:
        raise CliError("--discovery must not carry credentials", EXIT_USAGE)
    return url


async def run_real(args: argparse.Namespace) -> int:
    url = _check_url(args.discovery)
    auth = ucwa_async.PasswordAuth(args.user, _password(args))
    timeout = getattr(args, "timeout", 60.0)
    async with ucwa_async.Session(
        url,
        auth=auth,
        wire_format=args.wire,
        invitation_timeout=timeout,
        connect_timeout=args.connect_timeout,
        request_timeout=args.connect_timeout,
    ) as session:
        if args.command == "logs":
            return await _logs(session, args.limit, as_json=args.json)
        return await _continue(session, args, timeout)


async def _logs(session: ucwa_async.Session, limit: int, *, as_json: bool = False) -> int:
    logs = await session.conversation_logs(limit=limit)
    if as_json:
        print(json.dumps([_log_record(i, log) for i, log in enumerate(logs)], indent=2))
        return EXIT_OK
    if not logs:
        print("no conversation logs")
        return EXIT_OK
    print(f"{'#':>3}  {'created':<28}  {'status':<7}  {'subject':<30}  href")
    for index, log in enumerate(logs):
        # The same instant reads the same in both wires (JSON writes /Date(ms)/).
        created = log.created_at.isoformat(timespec="seconds") if log.created_at else None
        say(
            f"{index:>3}  {created or log.creation_time or '-':<28}  {log.status or '-':<7}  "
            f"{log.subject or '-':<30}  {log.href}",
            style="bold" if (log.status or "").lower() == "missed" else None,
        )
    return EXIT_OK


def _log_record(index: int, log: ucwa_async.ConversationLog) -> dict[str, Any]:
    """One log for ``logs --json``: UCWA's property names, the absolute href."""
    return {
        "index": index,
        "href": log.href,
        "creationTime": log.creation_time,
        "status": log.status,
        "subject": log.subject,
        "direction": log.direction,
        "modalities": list(log.modalities),
        "previewMessage": log.preview_message,
        "type": log.type,
    }


async def _continue(session: ucwa_async.Session, args: argparse.Namespace, timeout: float) -> int:
    if args.log is not None:
        target: ucwa_async.ConversationLog = await _log_at(session, args.log)
    else:
        logs = await session.conversation_logs(limit=args.index + 1)
        if args.index >= len(logs):
            raise CliError(
                f"--index {args.index}: there are only {len(logs)} conversation logs "
                "(see 'ucwa-async logs')",
                EXIT_USAGE,
            )
        target = logs[args.index]
    if args.command == "continue-messaging":
        invitation: ucwa_async.Invitation[Any] = await session.continue_messaging(
            target, message=args.message
        )
    else:
        invitation = await session.continue_phone_audio(target, phone_number=args.phone)
    print(
        f"invitation {invitation.href or '(no Location)'} (operationId {invitation.operation_id})"
    )
    print(f"waiting up to {timeout:g} s for the outcome...", flush=True)
    try:
        await invitation.wait(timeout=timeout)
    except ucwa_async.InvitationFailedError as exc:
        say(f"not connected: {_reason_text(exc)}", PROBLEM)
        return EXIT_FAILED
    except ucwa_async.InvitationTimeoutError:
        say(f"no outcome within {timeout:g} s; stopped waiting", WARN)
        return EXIT_FAILED
    except ucwa_async.InvitationError as exc:
        say(f"no outcome: {type(exc).__name__}: {exc}", PROBLEM)
        return EXIT_FAILED
    say(f"connected (state {invitation.state})", OK)
    return EXIT_OK


async def _log_at(session: ucwa_async.Session, href: str) -> ucwa_async.ConversationLog:
    url = _onto_current_application(href, session.application_url)
    try:
        return await session.conversation_log(url)
    except ucwa_async.NotFoundError:
        raise CliError(
            f"--log {href}: no such conversation log (see 'ucwa-async logs')", EXIT_USAGE
        ) from None


_APPLICATION_PATH = re.compile(r"^(?P<app>.*/applications/[^/]+)(?P<rest>/.+)$")


def _onto_current_application(href: str, application_url: str | None) -> str:
    """UCWA hrefs live under one application, and each run of this command creates its
    own: move an href that 'ucwa-async logs' printed onto this run's application."""
    if application_url is None:
        return href
    parts = urllib.parse.urlsplit(href)
    app = urllib.parse.urlsplit(application_url)
    if parts.netloc and parts.netloc != app.netloc:
        return href
    match = _APPLICATION_PATH.match(parts.path)
    if match is None or match["app"] == app.path:
        return href
    rest = match["rest"] + (f"?{parts.query}" if parts.query else "")
    return urllib.parse.urlunsplit((app.scheme, app.netloc, app.path, "", "")) + rest


def _reason_text(exc: ucwa_async.InvitationFailedError) -> str:
    reason = exc.reason
    parts = [getattr(reason, "code", None), getattr(reason, "subcode", None)]
    code = "/".join(str(p) for p in parts if p)
    message = getattr(reason, "message", None)
    if code and message:
        return f"{code}: {message}"
    return code or str(exc)
