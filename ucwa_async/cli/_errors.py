"""Turning exceptions into messages and exit codes (never a traceback for users).

The codes are documented in :mod:`ucwa_async.cli`.
"""

from __future__ import annotations

import ucwa_async

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_UNREACHABLE = 4
EXIT_PROTOCOL = 5


class CliError(Exception):
    """A user-facing failure with its exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def exit_code_for(exc: BaseException) -> tuple[int, str]:
    """The exit code and the one-line message for an exception nobody handled."""
    if isinstance(exc, ucwa_async.AuthenticationError):
        return EXIT_AUTH, f"authentication failed (check --user and the password): {exc}"
    if isinstance(exc, ucwa_async.InvitationError):
        return EXIT_FAILED, f"{type(exc).__name__}: {exc}"
    if isinstance(exc, ucwa_async.TransportError | TimeoutError):
        return EXIT_UNREACHABLE, f"cannot reach the server: {exc}"
    if isinstance(exc, ucwa_async.UcwaError):
        return EXIT_PROTOCOL, f"the server answered unexpectedly: {type(exc).__name__}: {exc}"
    if isinstance(exc, ValueError | TypeError):
        return EXIT_USAGE, str(exc)
    if isinstance(exc, OSError):
        return EXIT_UNREACHABLE, f"{type(exc).__name__}: {exc}"
    return EXIT_FAILED, f"unexpected error: {type(exc).__name__}: {exc}"
