"""Response classification, Retry-After, OAuth token errors, WWW-Authenticate."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ucwa_async._core.errors import (
    AlreadyExistsError,
    ApplicationNotFoundError,
    AuthenticationError,
    BadRequestError,
    CallbackChannelError,
    ConflictError,
    ForbiddenError,
    InactiveApplicationExpiredError,
    NotFoundError,
    ParameterValidationError,
    PGetReplacedError,
    ProxyResponseError,
    ResponseError,
    ServiceFailureError,
    ServiceUnavailableError,
    TooManyGroupsError,
    TooManyRequestsError,
    UnexpectedRedirectError,
)
from ucwa_async._core.responses import (
    classify,
    classify_token_error,
    parse_retry_after,
    parse_www_authenticate,
)

JSON = "application/json"
UCWA_JSON = "application/vnd.microsoft.com.ucwa+json; charset=utf-8"
UCWA_XML = "application/vnd.microsoft.com.ucwa+xml"
NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)

# The reference's XML error sample shape: schema declarations and empty elements.
XML_CALLBACK = b"""<?xml version="1.0" encoding="utf-8"?>
<reason xmlns:xsd="http://www.w3.org/2001/XMLSchema"
        xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
        xmlns="http://schemas.microsoft.com/rtc/2012/03/ucwa">
  <code>ServiceFailure</code>
  <subcode>CallbackChannelError</subcode>
  <message>The remote event channel is not reachable</message>
  <debugInfo/>
  <parameters/>
</reason>"""


def body(**fields: object) -> bytes:
    return json.dumps(fields).encode()


# -- success -------------------------------------------------------------------------


@pytest.mark.parametrize("status", [100, 200, 201, 204, 299])
def test_non_errors(status: int) -> None:
    assert classify(status, "text/html", b"<html>whatever</html>") is None
    assert classify_token_error(status, JSON, b"{}") is None


@pytest.mark.parametrize("status", [300, 301, 302, 303, 304, 307, 308, 399])
def test_redirects_are_errors(status: int) -> None:
    # Redirects are never followed: a 302 to a login page is a refusal, not a success.
    login = "https://login.contoso.com/adfs/ls/?wa=wsignin1.0"
    error = classify(
        status, "text/html", b"<html>Sign in</html>", method="POST", url="u", location=login
    )
    assert type(error) is UnexpectedRedirectError
    assert isinstance(error, ResponseError)
    assert error.status == status
    assert error.location == login
    assert login in str(error)
    assert (error.method, error.url) == ("POST", "u")
    token_error = classify_token_error(status, JSON, b"{}", location=None)
    assert type(token_error) is UnexpectedRedirectError
    assert token_error.location is None


def test_redirect_error_pickles_with_its_location() -> None:
    import pickle

    error = classify(302, None, b"", location="https://login/x")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is UnexpectedRedirectError
    assert copy.location == "https://login/x"
    assert str(copy) == str(error)


# -- UCWA error bodies -----------------------------------------------------------------


def test_callback_channel_error_json() -> None:
    error = classify(
        500,
        UCWA_JSON,
        body(
            code="ServiceFailure",
            subcode="CallbackChannelError",
            message="The remote event channel is not reachable",
            debugInfo={"diagnostics": "51004"},
        ),
        method="POST",
        url="https://h.example/x/continueMessaging",
    )
    assert type(error) is CallbackChannelError
    assert (error.status, error.code, error.subcode) == (
        500,
        "ServiceFailure",
        "CallbackChannelError",
    )
    assert error.message == "The remote event channel is not reachable"
    assert error.debug_info == {"diagnostics": "51004"}
    assert (error.method, error.url) == ("POST", "https://h.example/x/continueMessaging")


@pytest.mark.parametrize(
    "xml",
    [
        XML_CALLBACK,
        XML_CALLBACK.replace(b"http://schemas", b"https://schemas"),
    ],
)
def test_callback_channel_error_xml(xml: bytes) -> None:
    error = classify(500, UCWA_XML, xml)
    assert type(error) is CallbackChannelError
    assert error.message == "The remote event channel is not reachable"
    assert error.debug_info is None  # <debugInfo/> is empty


@pytest.mark.parametrize(
    ("status", "code", "subcode", "expected"),
    [
        (409, "Conflict", "AlreadyExists", AlreadyExistsError),
        (409, "Conflict", "TooManyGroups", TooManyGroupsError),
        (409, "Conflict", None, ConflictError),
        (409, "Conflict", "NewSubcodeFromTheFuture", ConflictError),
        (409, "PGetReplaced", None, PGetReplacedError),
        (404, "ApplicationNotFound", None, ApplicationNotFoundError),
        (410, "InactiveApplicationExpired", None, InactiveApplicationExpiredError),
        (404, "ResourceNotFound", None, NotFoundError),
        (400, "ParameterValidationFailure", "InvalidPhoneNumber", ParameterValidationError),
        (400, "BadRequest", None, BadRequestError),
        (401, "Unauthorized", None, AuthenticationError),
        (403, "Forbidden", None, ForbiddenError),
        (500, "ServiceFailure", None, ServiceFailureError),
        (503, "ServiceUnavailable", None, ServiceUnavailableError),
        (429, "TooManyRequests", None, TooManyRequestsError),
        (418, "Teapot", "Short", ResponseError),
        (504, "ServiceTimeout", None, ResponseError),
    ],
)
def test_ucwa_codes(
    status: int, code: str, subcode: str | None, expected: type[ResponseError]
) -> None:
    fields: dict[str, object] = {"code": code}
    if subcode is not None:
        fields["subcode"] = subcode
    error = classify(status, JSON, body(**fields))
    assert type(error) is expected
    assert (error.status, error.code, error.subcode) == (status, code, subcode)


# The reference's own 404 (ExtendAPresenceSubscription.md): ApplicationNotFound is the
# subcode, NotFound the code (ErrorCode_ref.md / ErrorSubcode_ref.md); ApplicationDashboard.md
# lists "410 Gone | InactiveApplicationExpired" the same way.
REFERENCE_APP_NOT_FOUND = b"""{
 "code":"NotFound",
 "subcode":"ApplicationNotFound",
 "message":"An error occurred. Please retry. If the problem persists, contact your support team."
}"""


def test_reference_application_not_found_by_subcode() -> None:
    error = classify(404, JSON, REFERENCE_APP_NOT_FOUND)
    assert type(error) is ApplicationNotFoundError
    assert (error.code, error.subcode) == ("NotFound", "ApplicationNotFound")


@pytest.mark.parametrize(
    ("status", "code", "subcode", "expected"),
    [
        (410, "Gone", "InactiveApplicationExpired", InactiveApplicationExpiredError),
        (404, "NotFound", "InactiveApplicationExpired", InactiveApplicationExpiredError),
        (410, "Gone", "ApplicationNotFound", ApplicationNotFoundError),
        (400, "BadRequest", "ParameterValidationFailure", ParameterValidationError),
    ],
)
def test_generic_errors_by_subcode(
    status: int, code: str, subcode: str, expected: type[ResponseError]
) -> None:
    xml = (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<reason xmlns="http://schemas.microsoft.com/rtc/2012/03/ucwa">'
        f"<code>{code}</code><subcode>{subcode}</subcode><debugInfo/><parameters/></reason>"
    ).encode()
    for content_type, payload in ((JSON, body(code=code, subcode=subcode)), (UCWA_XML, xml)):
        error = classify(status, content_type, payload)
        assert type(error) is expected
        assert (error.code, error.subcode) == (code, subcode)


def test_xml_conflict_without_subcode() -> None:
    xml = (
        b'<reason xmlns="http://schemas.microsoft.com/rtc/2012/03/ucwa">'
        b"<code>Conflict</code><message>Un-supported</message></reason>"
    )
    error = classify(409, "application/xml", xml)
    assert type(error) is ConflictError
    assert error.subcode is None


def test_odd_field_types_are_tolerated() -> None:
    error = classify(409, JSON, body(code="Conflict", subcode=17, message=["x"], debugInfo="d"))
    assert type(error) is ConflictError
    assert error.subcode == "17"
    assert error.message is None
    assert error.debug_info is None
    assert classify(400, JSON, body(code=400)).code == "400"  # type: ignore[union-attr]


# -- empty bodies: class by status ------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (401, AuthenticationError),  # a real UCWA 401 has no body
        (404, NotFoundError),
        (409, ConflictError),
        (500, ServiceFailureError),
        (503, ServiceUnavailableError),
        (410, ResponseError),
        (502, ResponseError),
    ],
)
@pytest.mark.parametrize("content_type", [None, "text/html", JSON])
@pytest.mark.parametrize("payload", [b"", b"  \r\n"])
def test_empty_body_uses_status(
    status: int, expected: type[ResponseError], content_type: str | None, payload: bytes
) -> None:
    error = classify(status, content_type, payload)
    assert type(error) is expected
    assert error.code is None


# -- proxy bodies ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "content_type", "payload"),
    [
        (403, "text/html", b"<html><head><title>Access is denied</title></head></html>"),
        (401, "text/html; charset=utf-8", b"<html><body>401 - Unauthorized</body></html>"),
        (502, "text/plain", b"Bad Gateway"),
        (500, None, b"Internal error"),
        (503, JSON, b"{not json"),
        (503, JSON, b"[1, 2]"),
        (500, JSON, body(error="oops")),
        (500, JSON, body(code=None, message="m")),
        (500, JSON, body(code=True)),
        (500, JSON, body(code="   ")),
        (500, UCWA_XML, b"<html><body>Server Error</body></html>"),
        (500, UCWA_XML, b"<reason><code>unterminated"),
        (500, "application/octet-stream", b"\x00\xff\xfe"),
    ],
)
def test_non_ucwa_bodies_are_proxy_errors(
    status: int, content_type: str | None, payload: bytes
) -> None:
    error = classify(status, content_type, payload, method="GET", url="https://h.example/u")
    assert type(error) is ProxyResponseError
    assert error.status == status
    assert error.code is None
    assert error.url == "https://h.example/u"


def test_proxy_error_message_without_text() -> None:
    error = classify(502, "text/html", b"<html><body></body></html>")
    assert error is not None
    assert error.message == "not a UCWA error body (text/html)"


def test_proxy_error_message_has_a_clean_short_snippet() -> None:
    page = b"<html><head><title>Access is denied</title></head><body>" + b"x" * 5000
    error = classify(403, "text/html", page)
    assert error is not None
    assert error.message is not None
    assert "Access is denied" in error.message
    assert "<title>" not in error.message
    assert "text/html" in error.message
    assert len(error.message) < 300


# -- Retry-After ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 5 ", 5.0),
        ("0", 0.0),
        (None, None),
        ("", None),
        ("-1", None),
        ("1.5", None),
        ("soon", None),
        ("\u0663", None),  # a non-ASCII digit is not delta-seconds
        ("99999999999999999999", 365 * 24 * 3600.0),
        (format_datetime(NOW + timedelta(seconds=30), usegmt=True), 30.0),
        (format_datetime(NOW - timedelta(hours=1), usegmt=True), 0.0),
        ("Wed, 01 May 2024 12:00:10 GMT", 10.0),
        ("Wed, 01 May 2024 12:00:10", 10.0),  # no zone: GMT
        ("Wed, 99 Foo 2024 12:00:10 GMT", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


def test_parse_retry_after_naive_now_and_default_now() -> None:
    assert parse_retry_after("Wed, 01 May 2024 12:01:00 GMT", now=NOW.replace(tzinfo=None)) == 60.0
    future = format_datetime(datetime.now(UTC) + timedelta(seconds=100), usegmt=True)
    result = parse_retry_after(future)
    assert result is not None
    assert 90.0 <= result <= 100.0


def test_retry_after_reaches_the_error() -> None:
    error = classify(503, None, b"", retry_after="7")
    assert isinstance(error, ServiceUnavailableError)
    assert error.retry_after == 7.0
    date = "Wed, 01 May 2024 12:00:42 GMT"
    error = classify(429, JSON, body(code="TooManyRequests"), retry_after=date, now=NOW)
    assert isinstance(error, TooManyRequestsError)
    assert error.retry_after == 42.0
    assert classify(503, None, b"", retry_after="junk").retry_after is None  # type: ignore[union-attr]
    proxy = classify(503, "text/html", b"<p>busy</p>", retry_after="3")
    assert type(proxy) is ProxyResponseError
    assert proxy.retry_after == 3.0


# -- token endpoint ---------------------------------------------------------------------------


@pytest.mark.parametrize("grant_error", ["invalid_grant", "unsupported_grant_type"])
def test_token_grant_refused(grant_error: str) -> None:
    error = classify_token_error(
        400,
        "application/json;charset=UTF-8",
        body(error=grant_error, error_description="The user name or password is incorrect."),
        method="POST",
        url="https://h.example/WebTicket/oauthtoken",
    )
    assert type(error) is AuthenticationError
    assert error.status == 400
    assert error.code == grant_error
    assert error.message == "The user name or password is incorrect."
    assert error.url == "https://h.example/WebTicket/oauthtoken"
    assert grant_error in str(error)


def test_token_error_other_statuses() -> None:
    assert type(classify_token_error(401, JSON, body(error="invalid_client"))) is (
        AuthenticationError
    )
    server = classify_token_error(503, JSON, body(error="temporarily_unavailable"), retry_after="9")
    assert type(server) is ServiceUnavailableError
    assert (server.code, server.retry_after) == ("temporarily_unavailable", 9.0)


@pytest.mark.parametrize(
    ("grant_error", "expected"),
    [("server_error", ServiceFailureError), ("temporarily_unavailable", ServiceUnavailableError)],
)
def test_token_endpoint_failing_in_a_400_is_no_refusal(
    grant_error: str, expected: type[ResponseError]
) -> None:
    # AuthenticationInUCWA.md, "Error conditions": a failed token request is "a 400
    # response and an error body", and server_error ("an unexpected error on the server
    # that prevented the request from being honored") is one of its values: the server
    # failed, the credentials were not refused. (temporarily_unavailable: RFC 6749's.)
    error = classify_token_error(400, "application/json;charset=UTF-8", body(error=grant_error))
    assert type(error) is expected
    assert not isinstance(error, AuthenticationError)
    assert (error.status, error.code) == (400, grant_error)


@pytest.mark.parametrize(
    ("status", "expected"), [(429, TooManyRequestsError), (408, ResponseError)]
)
def test_token_endpoint_throttled_with_an_oauth_body_is_no_refusal(
    status: int, expected: type[ResponseError]
) -> None:
    # A throttled (or timed-out) token request refused nothing: it is retried after its
    # Retry-After, not taken for a wrong password (which ends the event channel for good).
    error = classify_token_error(
        status, "application/json", body(error="invalid_request"), retry_after="7"
    )
    assert type(error) is expected
    assert not isinstance(error, AuthenticationError)
    assert (error.status, error.code, error.retry_after) == (status, "invalid_request", 7.0)


@pytest.mark.parametrize(
    ("status", "content_type", "payload", "expected"),
    [
        (400, "text/html", b"<html>denied</html>", ProxyResponseError),
        (400, JSON, b"{broken", ProxyResponseError),
        (400, JSON, body(something="else"), ProxyResponseError),
        (400, JSON, body(code="BadRequest"), BadRequestError),
        (400, JSON, b"", BadRequestError),
        (500, UCWA_XML, XML_CALLBACK, CallbackChannelError),
    ],
)
def test_token_error_falls_back_to_classify(
    status: int, content_type: str, payload: bytes, expected: type[ResponseError]
) -> None:
    assert type(classify_token_error(status, content_type, payload)) is expected


# -- never raises ------------------------------------------------------------------------------


@given(
    status=st.integers(min_value=100, max_value=599),
    content_type=st.one_of(
        st.none(),
        st.sampled_from([JSON, UCWA_JSON, UCWA_XML, "application/xml", "text/html", "x/y"]),
        st.text(max_size=30),
    ),
    payload=st.one_of(
        st.binary(max_size=200),
        st.builds(lambda d: json.dumps(d).encode(), st.dictionaries(st.text(), st.text())),
    ),
    retry_after=st.one_of(st.none(), st.text(max_size=40)),
)
def test_classify_never_raises(
    status: int, content_type: str | None, payload: bytes, retry_after: str | None
) -> None:
    for fn in (classify, classify_token_error):
        error = fn(status, content_type, payload, retry_after=retry_after, now=NOW)
        if status < 300:
            assert error is None
        else:
            assert isinstance(error, ResponseError)
            assert error.status == status
            assert error.retry_after is None or error.retry_after >= 0.0


# -- WWW-Authenticate ---------------------------------------------------------------------------

TOKEN_URL = "https://fe1.contoso.com/WebTicket/oauthtoken"
GRANTS = ["urn:microsoft.rtc:windows", "urn:microsoft.rtc:anonmeeting", "password"]


@pytest.mark.parametrize(
    "headers",
    [
        # Quoted (the protocol summary's form).
        [f'MsRtcOAuth href="{TOKEN_URL}",grant_type="{",".join(GRANTS)}"'],
        # Unquoted (the reference's authentication page).
        [f"MsRtcOAuth href={TOKEN_URL},grant_type={','.join(GRANTS)}"],
        # Bearer first in the same header.
        [
            'Bearer trusted_issuers="", client_id="00000004-0000-0ff1-ce00-000000000000", '
            f'MsRtcOAuth href="{TOKEN_URL}",grant_type="{",".join(GRANTS)}"'
        ],
        # Bearer in its own header, first.
        ['Bearer realm="contoso"', f"MsRtcOAuth href={TOKEN_URL}, grant_type={','.join(GRANTS)}"],
        # Schemes without params around it; case-insensitive scheme and names.
        [f"Negotiate, NTLM, msrtcoauth HREF = {TOKEN_URL},Grant_Type={','.join(GRANTS)}, Basic"],
    ],
)
def test_parse_www_authenticate(headers: list[str]) -> None:
    params = parse_www_authenticate(headers)
    assert params is not None
    assert params["href"] == TOKEN_URL
    assert params["grant_type"] == GRANTS


def test_parse_www_authenticate_other_params_and_escapes() -> None:
    params = parse_www_authenticate(
        [r'MsRtcOAuth href="https://h/t?a=1&b=2", realm="a\"b,c", grant_type="password"']
    )
    assert params == {"href": "https://h/t?a=1&b=2", "realm": 'a"b,c', "grant_type": ["password"]}


@pytest.mark.parametrize(
    "headers",
    [
        [],
        ["Bearer"],
        ['Bearer realm="x"', "Negotiate"],
        # A quoted value that merely mentions MsRtcOAuth is not a challenge.
        ['Bearer realm="a, MsRtcOAuth href=https://evil.example/t"'],
        ["href=https://h/t, grant_type=password"],
        ["=x, , ,"],
    ],
)
def test_parse_www_authenticate_without_msrtcoauth(headers: list[str]) -> None:
    assert parse_www_authenticate(headers) is None


def test_parse_www_authenticate_bare_and_token68() -> None:
    assert parse_www_authenticate(["MsRtcOAuth"]) == {}
    assert parse_www_authenticate(['MsRtcOAuth href="h", "stray", grant_type=a']) == {
        "href": "h",
        "grant_type": ["a"],
    }
    assert parse_www_authenticate(["Bearer abc123, MsRtcOAuth href=h"]) == {"href": "h"}


@given(st.lists(st.text(max_size=80), max_size=3))
def test_parse_www_authenticate_never_raises(headers: list[str]) -> None:
    result = parse_www_authenticate(headers)
    assert result is None or isinstance(result, dict)
