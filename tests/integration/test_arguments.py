"""Wrong arguments give clear, typed errors - and send nothing."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

import ucwa_async
from ucwa_async.testing import UcwaSimulator

SessionFactory = Callable[..., ucwa_async.Session]
AUTH = ucwa_async.PasswordAuth("alice@contoso.com", "pw")


def _session(url: str, wire_format: str, **options: Any) -> ucwa_async.Session:
    options.setdefault("auth", AUTH)
    return ucwa_async.Session(url, wire_format=wire_format, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("ftp://lyncdiscover.contoso.com/", "http"),
        ("file:///etc/passwd", "http"),
        ("javascript:alert(1)", "http"),
        ("lyncdiscover.contoso.com", "http"),
        ("https://", "http"),
        ("https:///autodiscover", "http"),
        ("", "http"),
        ("https://alice:secret@lyncdiscover.contoso.com/", "credentials"),
        ("https://alice@lyncdiscover.contoso.com/", "credentials"),
        # Accepted, and then open() raised urllib's bare "Port out of range" ValueError.
        ("https://lyncdiscover.contoso.com:99999/", "(?i)port"),
        ("https://lyncdiscover.contoso.com:-1/", "(?i)port"),
        ("https://alice:secret@lyncdiscover.contoso.com:99999/", "credentials"),
    ],
)
def test_bad_discovery_url(wire_format: str, url: str, match: str) -> None:
    with pytest.raises(ValueError, match=match) as caught:
        _session(url, wire_format)
    assert "secret" not in str(caught.value)


@pytest.mark.parametrize("url", [None, 42, b"https://lyncdiscover.contoso.com"])
def test_discovery_url_of_wrong_type(wire_format: str, url: Any) -> None:
    with pytest.raises((TypeError, ValueError), match="URL"):
        _session(url, wire_format)


@pytest.mark.parametrize("wire", ["yaml", "JSON", "", None, "application/json"])
def test_bad_wire_format(wire: Any) -> None:
    with pytest.raises(ValueError, match="wire_format"):
        _session("https://lyncdiscover.contoso.com", wire)


@pytest.mark.parametrize(
    "auth",
    [None, ("alice@contoso.com", "pw"), "cwt=token", {"username": "a", "password": "b"}, 42],
)
def test_auth_of_wrong_type(wire_format: str, auth: Any) -> None:
    with pytest.raises(TypeError, match="PasswordAuth or a TokenAuth"):
        _session("https://lyncdiscover.contoso.com", wire_format, auth=auth)


def test_auth_objects_validate_their_input() -> None:
    with pytest.raises(ValueError, match="user name"):
        ucwa_async.PasswordAuth("", "pw")
    with pytest.raises(TypeError):
        ucwa_async.PasswordAuth("alice@contoso.com", None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-empty token"):
        ucwa_async.TokenAuth("   ")
    with pytest.raises(TypeError):
        ucwa_async.TokenAuth(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "name",
    [
        "invitation_timeout",
        "request_timeout",
        "connect_timeout",
        "keepalive_interval",
        "pget_timeout",
        "close_timeout",
    ],
)
@pytest.mark.parametrize("value", [0, -1, -0.5, float("nan"), True, "30"])
def test_non_positive_timeouts(wire_format: str, name: str, value: Any) -> None:
    with pytest.raises(ValueError, match=name):
        _session("https://lyncdiscover.contoso.com", wire_format, **{name: value})


@pytest.mark.parametrize(
    "name", ["max_callback_retries", "max_redirects", "app_create_retries", "event_queue_size"]
)
def test_negative_counts(wire_format: str, name: str) -> None:
    with pytest.raises(ValueError, match=r"must not be negative|at least 1"):
        _session("https://lyncdiscover.contoso.com", wire_format, **{name: -1})


def test_good_arguments_are_accepted(wire_format: str) -> None:
    session = _session(
        "https://lyncdiscover.contoso.com",
        wire_format,
        auth=ucwa_async.TokenAuth("cwt=abc"),
        invitation_timeout=0.5,
        request_timeout=1,
        keepalive_interval=None,
        pget_timeout=60,  # clamped to 180
    )
    assert session.wire_format == wire_format
    assert session._pget_timeout == 180.0
    assert not session.closed


async def test_method_arguments(simulator: UcwaSimulator, make_session: SessionFactory) -> None:
    async with make_session(simulator) as session:
        logs = await session.conversation_logs()
        log = logs[0]
        before = len(simulator.request_log)

        # continue_phone_audio: the phone number.
        for number in ("", "   "):
            with pytest.raises(ValueError, match="phone_number"):
                await session.continue_phone_audio(log, phone_number=number)
        for number in (14255551234, b"tel:+1"):
            with pytest.raises((TypeError, ValueError), match="phone_number"):
                await session.continue_phone_audio(log, phone_number=number)  # type: ignore[arg-type]

        # continue_*: the log.
        for bad_log in (None, 42, object(), ["/x"], b"/x"):
            with pytest.raises(TypeError, match="ConversationLog"):
                await session.continue_messaging(bad_log, message="hi")  # type: ignore[arg-type]
            with pytest.raises(TypeError, match="ConversationLog"):
                await session.continue_phone_audio(bad_log, phone_number="tel:+1")  # type: ignore[arg-type]

        # continue_messaging: message and content type.
        with pytest.raises(TypeError, match="message"):
            await session.continue_messaging(log, message=42)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="content_type"):
            await session.continue_messaging(log, message="hi", content_type="text/rtf")  # type: ignore[arg-type]

        # Per-invitation timeouts.
        for timeout in (0, -1):
            with pytest.raises(ValueError, match="timeout"):
                await session.continue_messaging(log, message="hi", timeout=timeout)

        # conversation_logs: the limit.
        for limit in (0, -1, 1.5, "5"):
            with pytest.raises(ValueError, match="limit"):
                await session.conversation_logs(limit=limit)  # type: ignore[arg-type]

        # events(): the queue bound.
        with pytest.raises(ValueError, match="maxsize"):
            session.events(maxsize=-1)

        # Nothing above reached the server; no invitation is left registered.
        assert len(simulator.request_log) == before
        assert session.pending_invitations == 0
        assert session.stats.invitations_started == 0

        # The session is still fine after all that.
        invitation = await session.continue_messaging(log, message="still here")
        final = await invitation.result(timeout=5)
        assert final.state == "Connected"
        # Another resource model is not a conversation log either.
        with pytest.raises(TypeError, match="ConversationLog"):
            await session.continue_messaging(final, message="hi")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("option", "value", "error"),
    [
        ("http_session", "not a session", TypeError),
        ("http_session", object(), TypeError),
        ("user_agent", 5, TypeError),
        ("user_agent", None, TypeError),
        ("user_agent", "", ValueError),
        ("user_agent", "bot\r\nX-Injected: 1", ValueError),
        ("culture", None, TypeError),
        ("culture", "", ValueError),
    ],
)
def test_session_options_checked_at_the_call(
    wire_format: str, option: str, value: Any, error: type[Exception]
) -> None:
    # They used to fail only inside open(): AttributeError for a non-session, aiohttp's
    # TypeError/ValueError for a bad user agent; a None culture was sent as null.
    with pytest.raises(error, match=option):
        _session("https://lyncdiscover.contoso.com", wire_format, **{option: value})


@pytest.mark.parametrize(
    "host",
    ["a" * 64 + ".contoso.com", "lyncdiscover..contoso.com"],
    ids=["label-too-long", "empty-label"],
)
async def test_a_host_name_dns_cannot_encode_is_a_transport_error(host: str) -> None:
    # getaddrinfo refuses such a name with a bare UnicodeError (the idna codec), which
    # aiohttp does not wrap: it reached the caller of open() as it was. Nothing is sent.
    session = ucwa_async.Session(f"https://{host}/autodiscover", auth=AUTH, connect_timeout=10)
    with pytest.raises(ucwa_async.TransportError) as caught:
        await session.open()
    assert host.split(".")[0][:20] in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None
    assert session.closed


def _borrowed(**options: Any) -> aiohttp.ClientSession:
    with warnings.catch_warnings():  # auth= is deprecated in aiohttp 3.14, still accepted
        warnings.simplefilter("ignore", DeprecationWarning)
        return aiohttp.ClientSession(**options)


@pytest.mark.parametrize(
    "options",
    [
        {"headers": {"Authorization": "Bearer other-api"}},
        {"headers": {"authorization": "Basic eDp5"}},
        {"auth": ("other", "pw")},
    ],
    ids=["authorization-header", "lowercase-header", "basic-auth"],
)
async def test_a_borrowed_http_session_with_its_own_credentials_is_refused(
    wire_format: str, options: dict[str, Any]
) -> None:
    # Its default Authorization went with every request the session sent without one (the
    # discovery GET, an href to another host: "the Authorization header is sent only to the
    # hosts of the sign-in chain"); with auth=, aiohttp raised a bare ValueError at the first
    # request that carried our token.
    if "auth" in options:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            options = {"auth": aiohttp.BasicAuth(*options["auth"])}
    async with _borrowed(**options) as http:
        with pytest.raises(ValueError, match="http_session") as caught:
            _session("https://lyncdiscover.contoso.com", wire_format, http_session=http)
        assert "other-api" not in str(caught.value)
        assert "eDp5" not in str(caught.value)
