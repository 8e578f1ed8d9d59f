"""Credentials never show in reprs; TokenAuth normalises the header value."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from ucwa_async import AuthenticationError, PasswordAuth, TokenAuth, TransportError


def test_password_auth_repr_hides_password() -> None:
    auth = PasswordAuth("alice@contoso.com", "s3cret-pw")
    assert "s3cret-pw" not in repr(auth)
    assert "alice@contoso.com" in repr(auth)
    assert auth.password == "s3cret-pw"


@pytest.mark.parametrize(("user", "password"), [("", "x"), (None, "x")])
def test_password_auth_rejects_bad_user(user: object, password: str) -> None:
    with pytest.raises((ValueError, TypeError)):
        PasswordAuth(user, password)  # type: ignore[arg-type]


def test_password_auth_rejects_non_str_password() -> None:
    with pytest.raises(TypeError):
        PasswordAuth("u", 123)  # type: ignore[arg-type]


async def test_token_auth_static_adds_bearer() -> None:
    auth = TokenAuth("cwt=abc")
    assert await auth.get_token() == "Bearer cwt=abc"
    assert not auth.can_refresh
    assert "cwt=abc" not in repr(auth)


async def test_token_auth_keeps_existing_bearer_prefix() -> None:
    assert await TokenAuth("Bearer cwt=x").get_token() == "Bearer cwt=x"


async def test_token_auth_provider_is_called_each_time() -> None:
    calls = 0

    async def provider() -> str:
        nonlocal calls
        calls += 1
        return f"cwt={calls}"

    auth = TokenAuth(provider)
    assert auth.can_refresh
    assert await auth.get_token() == "Bearer cwt=1"
    assert await auth.get_token() == "Bearer cwt=2"


async def test_token_auth_provider_returning_junk_is_refused() -> None:
    async def provider() -> str:
        return ""

    with pytest.raises(AuthenticationError, match="empty"):
        await TokenAuth(provider).get_token()


@pytest.mark.parametrize(
    "token",
    ["cwt=abc\r\nX-Injected: 1", "cwt=abc\ndef", "cwt=\x00", "cwt=\x7f", "cwt=\u20ac", "a\tb"],
)
async def test_token_auth_with_illegal_header_characters_is_typed(token: str) -> None:
    async def provider() -> str:
        return token

    for auth in (TokenAuth(token), TokenAuth(provider)):
        with pytest.raises(AuthenticationError) as caught:
            await auth.get_token()
        assert not isinstance(caught.value, ValueError)
        assert token.strip() not in str(caught.value)
        assert token.strip() not in repr(caught.value)


@pytest.mark.parametrize("bad", ["", "   ", 42])
def test_token_auth_rejects_bad_input(bad: object) -> None:
    with pytest.raises((ValueError, TypeError)):
        TokenAuth(bad)  # type: ignore[arg-type]


class _IdentityProviderDown(Exception):
    """What a user's own token fetch may raise (its HTTP client's error, say)."""


@pytest.mark.parametrize(
    "error",
    [
        aiohttp.ClientConnectionError("idp.contoso.com unreachable"),
        OSError(111, "Connection refused"),
        TimeoutError(),
        _IdentityProviderDown("idp said no"),
    ],
    ids=["aiohttp", "oserror", "timeout", "own"],
)
async def test_token_auth_provider_failure_is_a_transport_error(error: Exception) -> None:
    # It reached the caller as it was (an aiohttp error from a user's token fetch), and
    # killed the event channel for good ("event channel crashed") when the channel's
    # re-authentication met it: a TransportError is retried there, as an unreachable
    # token endpoint is.
    async def provider() -> str:
        raise error

    with pytest.raises(TransportError) as caught:
        await TokenAuth(provider).get_token()
    assert type(error).__name__ in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None
    assert isinstance(caught.value, TimeoutError) == isinstance(error, TimeoutError)


async def test_token_auth_provider_ucwa_errors_and_cancellation_pass_through() -> None:
    refused = AuthenticationError(status=401, message="refused by the provider")

    async def refusing() -> str:
        raise refused

    async def cancelled() -> str:
        raise asyncio.CancelledError

    with pytest.raises(AuthenticationError) as caught:
        await TokenAuth(refusing).get_token()
    assert caught.value is refused
    with pytest.raises(asyncio.CancelledError):
        await TokenAuth(cancelled).get_token()
