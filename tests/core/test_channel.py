"""ChannelState: every P-GET outcome maps to one action; the cursor is opaque."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from yarl import URL

from ucwa_async._core.backoff import Backoff
from ucwa_async._core.channel import (
    MAX_TIMEOUT,
    MIN_TIMEOUT,
    ChannelAction,
    ChannelState,
    Deliver,
    Empty,
    Fatal,
    Reauthenticate,
    RecreateApplication,
    Replaced,
    Resume,
    Resync,
    Retry,
)
from ucwa_async._core.errors import (
    ApplicationNotFoundError,
    AuthenticationError,
    BadRequestError,
    CallbackChannelError,
    DecodeError,
    ForbiddenError,
    InactiveApplicationExpiredError,
    InsecureTransportError,
    PGetReplacedError,
    ProxyResponseError,
    RequestTimeoutError,
    ResponseError,
    ServiceUnavailableError,
    TooManyRequestsError,
    TransportError,
    UnexpectedRedirectError,
    UnsafeHrefError,
)

ORIGIN = "https://fe1.contoso.com"
APP = "/ucwa/oauth/v1/applications/833"
EVENTS = f"{ORIGIN}{APP}/events?ack=1"
JSON = "application/json"
XML = "application/vnd.microsoft.com.ucwa+xml"
NS = "http://schemas.microsoft.com/rtc/2012/03/ucwa"


class _MaxRandom(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return b


def state(**kwargs: Any) -> ChannelState:
    kwargs.setdefault("backoff", Backoff(base=1.0, cap=8.0, rng=_MaxRandom()))
    return ChannelState(EVENTS, **kwargs)


def batch_json(links: dict[str, str], events: list[dict[str, Any]] | None = None) -> bytes:
    doc: dict[str, Any] = {"_links": {rel: {"href": href} for rel, href in links.items()}}
    if events is not None:
        doc["sender"] = [{"rel": "communication", "href": f"{APP}/communication", "events": events}]
    return json.dumps(doc).encode()


STARTED = {
    "type": "started",
    "link": {"rel": "messagingInvitation", "href": f"{APP}/communication/invitations/700"},
}


def error_json(code: str, subcode: str | None = None) -> bytes:
    doc = {"code": code}
    if subcode:
        doc["subcode"] = subcode
    return json.dumps(doc).encode()


# -- construction / query ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("given_timeout", "expected"),
    [
        (180.0, 180),
        (10, MIN_TIMEOUT),
        (-5, MIN_TIMEOUT),
        (900.4, 900),
        (10_000, MAX_TIMEOUT),
        (float("nan"), MIN_TIMEOUT),
        (float("inf"), MIN_TIMEOUT),
    ],
)
def test_timeout_is_clamped(given_timeout: float, expected: int) -> None:
    channel = ChannelState(EVENTS, timeout=given_timeout)
    assert channel.timeout == expected
    assert URL(channel.poll_url()).query["timeout"] == str(expected)


def test_poll_url_keeps_ack_and_cursor() -> None:
    channel = state()
    assert channel.current_url == EVENTS
    assert channel.poll_url() == EVENTS + "&timeout=180"
    assert channel.attempt == 0


def test_events_url_must_be_absolute_http() -> None:
    with pytest.raises(UnsafeHrefError):
        ChannelState("/ucwa/oauth/v1/applications/833/events?ack=1")
    with pytest.raises(UnsafeHrefError):
        ChannelState("ftp://h/events")


# -- 200 --------------------------------------------------------------------------------------


def test_deliver_advances_cursor_and_resets_attempts() -> None:
    channel = state()
    channel.on_transport_error(OSError("reset"))
    assert channel.attempt == 1
    action = channel.on_response(200, JSON, batch_json({"next": f"{APP}/events?ack=2"}, [STARTED]))
    assert isinstance(action, Deliver)
    assert action.next_url == f"{ORIGIN}{APP}/events?ack=2"
    assert [e.type for e in action.batch.events] == ["started"]
    assert channel.current_url == action.next_url
    assert channel.attempt == 0
    assert URL(channel.poll_url()).query.getall("ack") == ["2"]


def test_empty_timeout_page() -> None:
    channel = state()
    action = channel.on_response(200, JSON, batch_json({"next": "events?ack=2"}))
    assert action == Empty(f"{ORIGIN}{APP}/events?ack=2")
    # An empty sender list is empty too.
    action = channel.on_response(200, JSON, batch_json({"next": "events?ack=3"}, []))
    assert action == Empty(f"{ORIGIN}{APP}/events?ack=3")


def test_next_link_forms() -> None:
    channel = state()
    channel.on_response(200, JSON, batch_json({"next": "//v1/applications/833/events?ack=2"}))
    assert channel.current_url == f"{ORIGIN}{APP}/events?ack=2"
    channel.on_response(200, JSON, batch_json({"next": f"{ORIGIN}:443{APP}/events?ack=3"}))
    assert channel.current_url == f"{ORIGIN}{APP}/events?ack=3"


def test_xml_batch() -> None:
    xml = (
        f'<events xmlns="{NS}" href="{APP}/events?ack=1">'
        f'<link rel="next" href="{APP}/events?ack=2"/>'
        f'<sender rel="communication" href="{APP}/communication">'
        f'<started rel="messagingInvitation" href="{APP}/communication/invitations/700"/>'
        f"</sender></events>"
    ).encode()
    action = state().on_response(200, XML, xml)
    assert isinstance(action, Deliver)
    assert action.batch.events[0].link.href == f"{APP}/communication/invitations/700"
    assert action.next_url == f"{ORIGIN}{APP}/events?ack=2"


def test_resync_wins_and_moves_cursor() -> None:
    channel = state()
    action = channel.on_response(200, JSON, batch_json({"resync": "events?ack=1&resync=1"}))
    assert action == Resync(f"{ORIGIN}{APP}/events?ack=1&resync=1")
    assert channel.current_url == action.url
    both = channel.on_response(
        200, JSON, batch_json({"next": "events?ack=9", "resync": "events?ack=5"}, [STARTED])
    )
    assert both == Resync(f"{ORIGIN}{APP}/events?ack=5")


def test_resume() -> None:
    channel = state()
    action = channel.on_response(200, JSON, batch_json({"resume": "events?ack=4&resume=1"}))
    assert action == Resume(f"{ORIGIN}{APP}/events?ack=4&resume=1")
    assert URL(channel.poll_url()).query["timeout"] == "180"  # parameters re-sent
    assert URL(channel.poll_url()).query["ack"] == "4"


def test_resume_batch_delivers_its_events() -> None:
    # EventsInUCWA.md, Resume/resynchronize: the server returns "a 'resume' link as
    # opposed to a 'next' link in the first event response after a long period of
    # inactivity. This link has the same function as 'next'": following it acknowledges
    # the batch, so its events must be handed on, not dropped.
    channel = state()
    action = channel.on_response(200, JSON, batch_json({"resume": "events?ack=4"}, [STARTED]))
    assert isinstance(action, Resume)
    assert action.url == f"{ORIGIN}{APP}/events?ack=4"
    assert action.events is not None
    assert [e.type for e in action.events.read_all().events] == ["started"]
    # A resume answer with no event carries none.
    bare = channel.on_response(200, JSON, batch_json({"resume": "events?ack=5"}))
    assert isinstance(bare, Resume)
    assert bare.events is None


def test_an_xml_batch_with_one_malformed_event_is_delivered_and_acknowledged() -> None:
    # Refused whole, the batch would be fetched again forever: the malformed event is
    # rejected, the others delivered, and ``next`` followed.
    body = (
        f'<events xmlns="{NS}" href="{APP}/events?ack=1">'
        f'<link rel="next" href="{APP}/events?ack=2"/>'
        f'<sender rel="communication" href="{APP}/communication">'
        f'<started rel="messagingInvitation" href="{APP}/communication/invitations/1"/>'
        f'<updated rel="conversation" href="{APP}/communication/conversations/1">'
        "<resource><property>no name</property></resource></updated>"
        f'<completed rel="messagingInvitation" href="{APP}/communication/invitations/1">'
        "<status>Success</status></completed>"
        "</sender></events>"
    ).encode()
    action = state().on_response(200, XML, body)
    assert isinstance(action, Deliver)
    assert action.next_url == f"{ORIGIN}{APP}/events?ack=2"
    batch = action.events.read_all()
    assert [e.type for e in batch.events] == ["started", "completed"]
    assert batch.rejected_count == 1


@pytest.mark.parametrize(
    ("content_type", "payload"),
    [
        (JSON, b"{not json"),
        (JSON, b"[]"),
        (JSON, json.dumps({"_links": "nope"}).encode()),
        (JSON, json.dumps({"_links": {"next": {"nohref": 1}}}).encode()),
        (JSON, json.dumps({"sender": [{"events": [{"type": 5}]}]}).encode()),
        ("text/html", b"<html>proxy</html>"),
        (None, b"x"),
        (XML, b"<events"),
    ],
)
def test_bad_bodies_retry_same_url(content_type: str | None, payload: bytes) -> None:
    channel = state()
    action = channel.on_response(200, content_type, payload)
    assert isinstance(action, Retry)
    assert isinstance(action.error, DecodeError)
    assert channel.current_url == EVENTS
    assert channel.attempt == 1


@pytest.mark.parametrize("payload", [b"", json.dumps({"_links": {"self": {"href": "x"}}}).encode()])
def test_success_without_links_retries(payload: bytes) -> None:
    channel = state()
    action = channel.on_response(200, JSON, payload)
    assert isinstance(action, Retry)
    assert isinstance(action.error, DecodeError)
    assert "next" in str(action.error)
    assert channel.current_url == EVENTS


def test_unsafe_next_link_retries_same_url() -> None:
    channel = state()
    action = channel.on_response(200, JSON, batch_json({"next": "javascript:alert(1)"}))
    assert isinstance(action, Retry)
    assert isinstance(action.error, UnsafeHrefError)
    assert channel.current_url == EVENTS


def test_parser_bug_does_not_escape(monkeypatch: pytest.MonkeyPatch) -> None:
    from ucwa_async._core import channel as channel_module

    def broken(_: object) -> object:
        raise KeyError("bug")

    monkeypatch.setattr(channel_module._models, "read_event_batch", broken)
    action = state().on_response(200, JSON, batch_json({"next": "events?ack=2"}))
    assert isinstance(action, Retry)
    assert isinstance(action.error, DecodeError)


# -- error statuses ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "payload", "action_type", "error_type"),
    [
        (401, b"", Reauthenticate, AuthenticationError),
        (404, error_json("ApplicationNotFound"), RecreateApplication, ApplicationNotFoundError),
        (404, b"", RecreateApplication, ResponseError),
        (
            410,
            error_json("InactiveApplicationExpired"),
            RecreateApplication,
            InactiveApplicationExpiredError,
        ),
        (410, b"", RecreateApplication, ResponseError),
        (409, error_json("PGetReplaced"), Replaced, PGetReplacedError),
        (409, error_json("Conflict", "PGetReplaced"), Replaced, PGetReplacedError),
        (409, b"", Replaced, ResponseError),
        (400, error_json("BadRequest"), Fatal, BadRequestError),
        (403, error_json("Forbidden"), Fatal, ForbiddenError),
        (405, error_json("MethodNotAllowed"), Fatal, ResponseError),
        (415, error_json("UnsupportedMediaType"), Fatal, ResponseError),
        (412, b"", Fatal, ResponseError),
    ],
)
def test_error_statuses(
    status: int,
    payload: bytes,
    action_type: type[ChannelAction],
    error_type: type[ResponseError],
) -> None:
    channel = state()
    action = channel.on_response(status, JSON, payload)
    assert type(action) is action_type
    error = action.error  # type: ignore[union-attr]
    assert isinstance(error, error_type)
    assert error.status == status
    assert error.url == EVENTS
    assert channel.current_url == EVENTS


# ApplicationDashboard.md, Application lifetime: "410 Gone | TooManyApplications" and
# "410 Gone | UserAgentNotAllowed" ... "If 410 Gone is received it is best to display an
# error message to the user including the UCWA 2.0 error subcode, and then wait for the
# user to explicitly restart the client." A new application would be refused the same way.
@pytest.mark.parametrize("subcode", ["TooManyApplications", "UserAgentNotAllowed"])
@pytest.mark.parametrize("wire", ["json", "xml"])
def test_gone_for_a_reason_recreation_cannot_fix_is_fatal(subcode: str, wire: str) -> None:
    if wire == "json":
        ctype, payload = JSON, error_json("Gone", subcode)
    else:
        ctype = XML
        payload = (
            f'<?xml version="1.0" encoding="utf-8"?><reason xmlns="{NS}">'
            f"<code>Gone</code><subcode>{subcode}</subcode><message>gone</message></reason>"
        ).encode()
    action = state().on_response(410, ctype, payload)
    assert isinstance(action, Fatal)
    assert isinstance(action.error, ResponseError)
    assert action.error.subcode == subcode
    assert subcode in str(action.error)


def test_gone_inactive_application_expired_as_subcode_still_recreates() -> None:
    action = state().on_response(410, JSON, error_json("Gone", "InactiveApplicationExpired"))
    assert isinstance(action, RecreateApplication)
    assert isinstance(action.error, InactiveApplicationExpiredError)


@pytest.mark.parametrize(
    ("status", "payload", "error_type"),
    [
        (500, error_json("ServiceFailure", "CallbackChannelError"), CallbackChannelError),
        (502, b"<html>Bad gateway</html>", ProxyResponseError),
        (503, b"", ServiceUnavailableError),
        (504, b"", ResponseError),
        (408, b"", ResponseError),
        (429, b"", TooManyRequestsError),
    ],
)
def test_server_errors_retry_with_backoff(
    status: int, payload: bytes, error_type: type[ResponseError]
) -> None:
    channel = state()
    ctype = "text/html" if payload.startswith(b"<html") else JSON
    delays = []
    for _ in range(5):
        action = channel.on_response(status, ctype, payload)
        assert isinstance(action, Retry)
        assert isinstance(action.error, error_type)
        delays.append(action.after)
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0]  # base 1, cap 8, ceiling draws
    assert channel.attempt == 5
    assert channel.current_url == EVENTS


# "0" waits the floor (1 s): Retry-After: 0 on every poll was a hot loop (~1 000/s).
@pytest.mark.parametrize(("header", "expected"), [("7", 7.0), ("600", 60.0), ("0", 1.0)])
@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured_and_capped(status: int, header: str, expected: float) -> None:
    action = state().on_response(status, None, b"", retry_after=header)
    assert action == Retry(expected, action.error)  # type: ignore[union-attr]
    capped = state(retry_after_cap=5.0).on_response(status, None, b"", retry_after="600")
    assert isinstance(capped, Retry)
    assert capped.after == 5.0


def test_junk_retry_after_falls_back_to_backoff() -> None:
    action = state().on_response(503, None, b"", retry_after="whenever")
    assert isinstance(action, Retry)
    assert action.after == 1.0


def test_proxy_403_retries_a_few_times_then_is_fatal() -> None:
    channel = state(proxy_retry_limit=2)
    page = b"<html><title>Access is denied</title></html>"
    first = channel.on_response(403, "text/html", page)
    second = channel.on_response(403, "text/html", page)
    third = channel.on_response(403, "text/html", page)
    assert isinstance(first, Retry)
    assert isinstance(second, Retry)
    assert isinstance(third, Fatal)
    assert isinstance(third.error, ProxyResponseError)


@pytest.mark.parametrize("status", [302, 304])
def test_redirects_on_the_channel_are_fatal(status: int) -> None:
    # A 3xx is never followed: a P-GET redirected (to a login page) cannot recover.
    action = state().on_response(status, "text/html", b"<html>login</html>")
    assert isinstance(action, Fatal)
    assert isinstance(action.error, UnexpectedRedirectError)
    assert action.error.status == status


@pytest.mark.parametrize("status", [100, 204])
def test_unexpected_non_error_statuses_retry(status: int) -> None:
    channel = state()
    action = channel.on_response(status, None, b"")
    assert isinstance(action, Retry)
    if status == 204:
        assert isinstance(action.error, DecodeError)
    else:
        assert isinstance(action.error, ResponseError)
        assert action.error.status == status


# -- transport errors and counters -----------------------------------------------------------


def test_transport_errors_are_wrapped_and_retried() -> None:
    channel = state()
    cause = ConnectionResetError("peer reset")
    action = channel.on_transport_error(cause)
    assert isinstance(action, Retry)
    assert isinstance(action.error, TransportError)
    assert action.error.__cause__ is cause
    assert action.after == 1.0
    ours = RequestTimeoutError("read timeout")
    second = channel.on_transport_error(ours)
    assert isinstance(second, Retry)
    assert second.error is ours
    assert second.after == 2.0
    assert channel.current_url == EVENTS


def test_an_insecure_events_url_is_fatal_not_retried() -> None:
    channel = state()
    refused = InsecureTransportError("https -> http", url="http://x/events")
    action = channel.on_transport_error(refused)
    assert isinstance(action, Fatal)
    assert action.error is refused


def test_attempt_counts_consecutive_failures_only() -> None:
    channel = state()
    channel.on_response(500, None, b"")
    channel.on_response(401, None, b"")
    channel.on_response(409, None, b"")
    channel.on_response(404, None, b"")
    assert channel.attempt == 4
    channel.on_response(200, JSON, batch_json({"next": "events?ack=2"}))
    assert channel.attempt == 0
    channel.on_response(500, None, b"")
    channel.on_response(200, JSON, batch_json({"resync": "events?ack=2"}))
    assert channel.attempt == 0
    channel.on_response(500, None, b"")
    channel.on_response(200, JSON, batch_json({"resume": "events?ack=2"}))
    assert channel.attempt == 0


def test_reset_for_a_new_application() -> None:
    channel = state()
    channel.on_response(200, JSON, batch_json({"next": "events?ack=7"}))
    channel.on_transport_error(OSError())
    channel.reset(f"{ORIGIN}/ucwa/v1/applications/900/events?ack=1")
    assert channel.current_url == f"{ORIGIN}/ucwa/v1/applications/900/events?ack=1"
    assert channel.attempt == 0
    # The new application's base path now applies to //v1/ links.
    channel.on_response(200, JSON, batch_json({"next": "//v1/applications/900/events?ack=2"}))
    assert channel.current_url == f"{ORIGIN}/ucwa/v1/applications/900/events?ack=2"


def test_default_backoff() -> None:
    action = ChannelState(EVENTS).on_transport_error(OSError())
    assert isinstance(action, Retry)
    assert 0.0 <= action.after <= 0.5


# -- never raises -----------------------------------------------------------------------------

_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(["_links", "next", "href", "sender", "events", "type", "link", "x"]),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)


@given(
    status=st.integers(min_value=100, max_value=599),
    content_type=st.sampled_from([JSON, XML, "text/html", None]),
    payload=st.one_of(st.binary(max_size=100), _JSONISH.map(lambda d: json.dumps(d).encode())),
    retry_after=st.one_of(st.none(), st.text(max_size=10)),
)
def test_on_response_never_raises(
    status: int, content_type: str | None, payload: bytes, retry_after: str | None
) -> None:
    channel = state()
    action = channel.on_response(status, content_type, payload, retry_after=retry_after)
    assert isinstance(
        action,
        Deliver
        | Empty
        | Resync
        | Resume
        | RecreateApplication
        | Replaced
        | Reauthenticate
        | Retry
        | Fatal,
    )
    if isinstance(action, Retry):
        assert 0.0 <= action.after <= 60.0
        assert channel.current_url == EVENTS
    assert URL(channel.current_url).is_absolute()
