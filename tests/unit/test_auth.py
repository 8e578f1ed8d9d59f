"""Credentials never show in reprs; TokenAuth normalises the header value."""

from __future__ import annotations

import pytest

from ucwa_async import AuthenticationError, PasswordAuth, TokenAuth


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
