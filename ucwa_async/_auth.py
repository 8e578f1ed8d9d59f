"""Credentials: a password grant or a caller-supplied token.

Secrets never appear in ``repr`` or logs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

__all__ = ["Auth", "PasswordAuth", "TokenAuth", "TokenProvider"]

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
            raw = await self._provider()
            if not isinstance(raw, str) or not raw.strip():
                raise ValueError("TokenAuth provider returned an empty or non-str token")
        else:
            assert self._token is not None
            raw = self._token
        raw = raw.strip()
        return raw if raw.lower().startswith("bearer ") else f"Bearer {raw}"

    def __repr__(self) -> str:
        kind = "provider" if self._provider is not None else "static"
        return f"TokenAuth(<{kind} token ***>)"


Auth = PasswordAuth | TokenAuth
