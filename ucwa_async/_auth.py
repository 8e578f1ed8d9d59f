"""Credentials: a password grant or a caller-supplied token.

Secrets never appear in ``repr`` or logs.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from ucwa_async._core.errors import (
    AuthenticationError,
    RequestTimeoutError,
    TransportError,
    UcwaError,
)

__all__ = ["Auth", "PasswordAuth", "TokenAuth", "TokenProvider", "checked_token"]

TokenProvider = Callable[[], Awaitable[str]]


class PasswordAuth:
    """Sign in with the MsRtcOAuth ``password`` grant (user name and password)."""

    __slots__ = ("_password", "username")

    def __init__(self, username: str, password: str) -> None:
        if not isinstance(username, str) or not username:
            raise ValueError("PasswordAuth needs a non-empty user name")
        if not isinstance(password, str):
            raise TypeError("PasswordAuth password must be a str")
        self.username = username
        self._password = password

    @property
    def password(self) -> str:
        return self._password

    def __repr__(self) -> str:
        return f"PasswordAuth(username={self.username!r}, password='***')"


class TokenAuth:
    """Use a bearer token you obtained yourself.

    ``token`` is either the token string (``"cwt=..."``, with or without the
    ``Bearer`` prefix) or an async callable returning a fresh one; the callable
    is awaited again when the server says the token expired (401).

    If the callable raises, the request that needed the token raises
    ``TransportError`` (``RequestTimeoutError`` for a ``TimeoutError``, or when it gives
    no token within the session's request timeout) naming the error, and the event
    channel retries later, as for an unreachable token endpoint; a ``UcwaError`` it
    raises (``AuthenticationError``: refused for good) is kept.
    """

    __slots__ = ("_provider", "_token")

    def __init__(self, token: str | TokenProvider) -> None:
        if isinstance(token, str):
            if not token.strip():
                raise ValueError("TokenAuth needs a non-empty token")
            self._token: str | None = token
            self._provider: TokenProvider | None = None
        elif callable(token):
            self._token = None
            self._provider = token
        else:
            raise TypeError("TokenAuth takes a token string or an async callable")

    @property
    def can_refresh(self) -> bool:
        return self._provider is not None

    async def get_token(self) -> str:
        """The token as an ``Authorization`` header value (``Bearer ...``)."""
        if self._provider is not None:
            failure: TransportError | None = None
            try:
                raw: object = await self._provider()
            except UcwaError:
                raise
            except Exception as exc:
                # The caller's code, its HTTP client's errors included: typed like an
                # unreachable token endpoint, and (as aiohttp errors are) not chained.
                kind = RequestTimeoutError if isinstance(exc, TimeoutError) else TransportError
                failure = kind(f"the TokenAuth provider failed: {type(exc).__name__}: {exc}")
            if failure is not None:
                raise failure
        else:
            raw = self._token
        if not isinstance(raw, str) or not raw.strip():
            raise AuthenticationError(
                status=401, message="TokenAuth provider returned an empty or non-str token"
            )
        raw = raw.strip()
        return checked_token(
            raw if raw.lower().startswith("bearer ") else f"Bearer {raw}", source="TokenAuth"
        )

    def __repr__(self) -> str:
        kind = "provider" if self._provider is not None else "static"
        return f"TokenAuth(<{kind} token ***>)"


Auth = PasswordAuth | TokenAuth

# C0 controls and DEL: CR/LF would split the header (request smuggling); the rest are
# refused by HTTP (RFC 9110 field-value) and by aiohttp with a bare ValueError.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def checked_token(value: str, *, source: str) -> str:
    """``value`` (an ``Authorization`` header value) if it is a legal header value.

    Control characters or text outside latin-1 raise :class:`AuthenticationError`;
    the message never quotes the token.
    """
    if _CONTROL.search(value):
        problem = "control characters (CR/LF...)"
    else:
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            problem = "characters outside latin-1"
        else:
            return value
    raise AuthenticationError(status=401, message=f"{source} gave a token with {problem}")
