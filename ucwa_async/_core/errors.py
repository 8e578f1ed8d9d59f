"""The exception tree of ucwa_async.

Sans-IO: no asyncio, no aiohttp. Every error the library raises is a
:class:`UcwaError`; errors of the HTTP stack are wrapped at the boundary
(:class:`TransportError`) so users never need to import aiohttp to catch them.

::

    UcwaError
    ├── TransportError                 network failure (wraps aiohttp/OSError), .request_sent
    │   └── RequestTimeoutError        also a builtins.TimeoutError
    ├── DecodeError                    body is not valid JSON/XML (also a ValueError)
    │   └── BodyTooLargeError          body over the configured size cap
    ├── UnsafeHrefError                an href we refuse to follow (also a ValueError)
    ├── InsecureTransportError         credentials over plain http, an https -> http downgrade,
    │                                  or a plain-http discovery leading out of the domain
    ├── ResponseError                  non-2xx answer: .status .code .subcode .message ...
    │   ├── UnexpectedRedirectError    3xx: redirects are never followed (.location)
    │   ├── ProxyResponseError         4xx/5xx whose body is not a UCWA error (a proxy page)
    │   ├── BadRequestError            400
    │   │   └── ParameterValidationError   400 ParameterValidationFailure
    │   ├── AuthenticationError        401, or a refused OAuth grant
    │   ├── ForbiddenError             403
    │   ├── NotFoundError              404
    │   │   └── ApplicationNotFoundError   404 ApplicationNotFound / 410 InactiveApplicationExpired
    │   │                                  (as the code or, as the reference sends it, the subcode)
    │   │       └── InactiveApplicationExpiredError
    │   ├── ConflictError              409 (.subcode AlreadyExists | TooManyGroups | None | other)
    │   │   ├── AlreadyExistsError
    │   │   ├── TooManyGroupsError
    │   │   └── PGetReplacedError      409 PGetReplaced on the event channel
    │   ├── ServiceFailureError        500
    │   │   └── CallbackChannelError   500 ServiceFailure/CallbackChannelError: reconnect signal
    │   └── RetryLaterError            .retry_after (seconds or None)
    │       ├── ServiceUnavailableError    503
    │       └── TooManyRequestsError       429
    ├── ChannelFailedError             the event channel is down for good (.cause)
    ├── InvitationError                an invitation did not connect (.href .operation_id)
    │   ├── InvitationFailedError      completed with Failure (.reason)
    │   ├── InvitationTimeoutError     no outcome in time (also a builtins.TimeoutError)
    │   ├── InvitationLostError        its application vanished; outcome unknown
    │   └── InvitationWithdrawnError   an incoming invitation ended before accept (.reason)
    ├── UnsupportedModalityError       accepting a phone call: the API carries no audio;
    │                                  a conversationLog without that continue link
    ├── ConversationError              a conversation request could not be done (.href)
    │   └── ConversationEndedError     the conversation is over (.reason)
    ├── MessageError                   a sent message was not delivered (.href .operation_id)
    │   ├── MessageFailedError         completed with Failure (.reason)
    │   └── MessageTimeoutError        no outcome in time (also a builtins.TimeoutError)
    ├── InvalidPhoneNumberError        phone number not like tel:+14255551234 (also a ValueError)
    └── SessionClosedError             the session closed (or was never open)

``code`` and ``subcode`` are open strings: an unknown value maps to the nearest
parent class, never to a crash.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "AlreadyExistsError",
    "ApplicationNotFoundError",
    "AuthenticationError",
    "BadRequestError",
    "BodyTooLargeError",
    "CallbackChannelError",
    "ChannelFailedError",
    "ConflictError",
    "ConversationEndedError",
    "ConversationError",
    "DecodeError",
    "ForbiddenError",
    "InactiveApplicationExpiredError",
    "InsecureTransportError",
    "InvalidPhoneNumberError",
    "InvitationError",
    "InvitationFailedError",
    "InvitationLostError",
    "InvitationTimeoutError",
    "InvitationWithdrawnError",
    "MessageError",
    "MessageFailedError",
    "MessageTimeoutError",
    "NotFoundError",
    "PGetReplacedError",
    "ParameterValidationError",
    "ProxyResponseError",
    "RequestTimeoutError",
    "ResponseError",
    "RetryLaterError",
    "ServiceFailureError",
    "ServiceUnavailableError",
    "SessionClosedError",
    "TooManyGroupsError",
    "TooManyRequestsError",
    "TransportError",
    "UcwaError",
    "UnexpectedRedirectError",
    "UnsafeHrefError",
    "UnsupportedModalityError",
    "error_class_for",
    "refuses_every_application",
]


class UcwaError(Exception):
    """Base of every error raised by ucwa_async."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only constructor arguments (reason=, href=...) are not in ``args``:
        # rebuild from args and attributes without calling __init__, so every error
        # pickles (multiprocessing, logging handlers) whatever its signature.
        return (_rebuild_error, (type(self), self.args, self.__dict__.copy()))


def _rebuild_error(cls: type[UcwaError], args: tuple[Any, ...], state: dict[str, Any]) -> UcwaError:
    error = cls.__new__(cls, *args)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class TransportError(UcwaError):
    """The request never got an HTTP answer (connection refused, reset, DNS...).

    ``request_sent`` is False when the request cannot have reached the server (no
    connection could be made, the HTTP client was closed, or the token request it needed
    first, or after a 401, got no answer); None when it may have (the connection
    dropped, or the answer did not come in time)."""

    request_sent: bool | None = None


class RequestTimeoutError(TransportError, TimeoutError):
    """An HTTP request took longer than its timeout."""


class DecodeError(UcwaError, ValueError):
    """A body could not be decoded as the JSON or XML its content type declares."""

    def __init__(self, message: str, *, content_type: str | None = None) -> None:
        super().__init__(message)
        self.content_type = content_type


class BodyTooLargeError(DecodeError):
    """A response body exceeded the configured size cap."""


class UnsafeHrefError(UcwaError, ValueError):
    """An href we refuse to follow: not http(s), carries userinfo, or is malformed."""

    def __init__(self, message: str, *, href: str | None = None) -> None:
        super().__init__(message)
        self.href = href


class InsecureTransportError(UcwaError):
    """Refused: credentials over plain http, or a URL that leaves https for http.

    A password or bearer token goes over plain http only to a loopback host or with
    ``Session(allow_insecure_http=True)``; once the sign-in chain is on https, no
    link it hands out (``user``, ``redirect``, the token endpoint, events ``next``...)
    may lead back to http. An autodiscovery answer read over plain http (off loopback,
    without the opt-in) may not lead out of the sign-in domain (RootURL.md's security
    check).
    """

    def __init__(self, message: str, *, url: str | None = None) -> None:
        super().__init__(message)
        self.url = url


class ResponseError(UcwaError):
    """The server answered with an error status.

    ``code``/``subcode`` are the UCWA error body's values (open strings; ``None``
    when the body had none), ``message`` its human text, ``debug_info`` its
    ``debugInfo`` mapping, if any.
    """

    def __init__(
        self,
        *,
        status: int,
        code: str | None = None,
        subcode: str | None = None,
        message: str | None = None,
        debug_info: Mapping[str, Any] | None = None,
        method: str | None = None,
        url: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.subcode = subcode
        self.message = message
        self.debug_info = dict(debug_info) if debug_info else None
        self.method = method
        self.url = url
        self.retry_after = retry_after
        super().__init__(self._describe())

    def _describe(self) -> str:
        head = str(self.status)
        if self.code:
            head += f" {self.code}"
            if self.subcode:
                head += f"/{self.subcode}"
        if self.message:
            head += f": {self.message}"
        if self.method and self.url:
            head += f" ({self.method} {self.url})"
        return head

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, code={self.code!r}, "
            f"subcode={self.subcode!r}, message={self.message!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only constructor: keep exceptions picklable (multiprocessing, logging).
        return (_rebuild_response_error, (type(self), self.__dict__.copy()))


def _rebuild_response_error(cls: type[ResponseError], state: dict[str, Any]) -> ResponseError:
    error = cls.__new__(cls)
    error.__dict__.update(state)
    Exception.__init__(error, error._describe())
    return error


class UnexpectedRedirectError(ResponseError):
    """A 3xx answer. Redirects are not followed (UCWA redirects with ``redirect``
    links, not HTTP 3xx; only an autodiscovery GET, which carries no token, follows
    one within its domain); a 302 to a login page is a refusal, never a success.
    ``location`` is the ``Location`` header, if any."""

    def __init__(self, *, location: str | None = None, **fields: Any) -> None:
        self.location = location
        super().__init__(**fields)


class ProxyResponseError(ResponseError):
    """A 4xx/5xx whose body is not a UCWA error body (HTML from a proxy, plain text...)."""


class BadRequestError(ResponseError):
    """400."""


class ParameterValidationError(BadRequestError):
    """400 ParameterValidationFailure: the request body was refused."""


class AuthenticationError(ResponseError):
    """401, or the OAuth token grant was refused (wrong password, unsupported grant).

    Also raised, with no token requested, by a call to an endpoint on hold: one that
    refused the token granted for its own 401 ``Retries.reauthentications + 1`` times in
    a row gets none for ``Retries.reauthentication_window`` seconds, doubling up to a
    day (``retry_after``: what is left of the hold; any other answer from it clears it)."""


class ForbiddenError(ResponseError):
    """403."""


class NotFoundError(ResponseError):
    """404."""


class ApplicationNotFoundError(NotFoundError):
    """The UCWA application is gone (404 ApplicationNotFound, 410 InactiveApplicationExpired)."""


class InactiveApplicationExpiredError(ApplicationNotFoundError):
    """410 InactiveApplicationExpired: the server signed the idle application out."""


class ConflictError(ResponseError):
    """409 Conflict; ``subcode`` says which (AlreadyExists, TooManyGroups, None, ...)."""


class AlreadyExistsError(ConflictError):
    """409 Conflict/AlreadyExists."""


class TooManyGroupsError(ConflictError):
    """409 Conflict/TooManyGroups."""


class PGetReplacedError(ConflictError):
    """409 PGetReplaced: another event-channel GET with the same ack replaced this one."""


class ServiceFailureError(ResponseError):
    """500 ServiceFailure."""


class CallbackChannelError(ServiceFailureError):
    """500 ServiceFailure/CallbackChannelError: "the remote event channel is not reachable".

    The session treats it as a signal to re-establish its event channel and retry;
    a caller sees it only after the bounded retries are used up.
    """


class RetryLaterError(ResponseError):
    """The server asked us to come back later; ``retry_after`` is in seconds, if given."""


class ServiceUnavailableError(RetryLaterError):
    """503 Service Unavailable."""


class TooManyRequestsError(RetryLaterError):
    """429 Too Many Requests."""


class ChannelFailedError(UcwaError):
    """The event channel stopped for good; ``cause`` holds why.

    Every pending invitation and sent message waiting for its outcome ends with it,
    ``session.incoming()`` raises it, every conversation ends
    (``ConversationEndReason.CHANNEL_FAILED``), and every later call raises a fresh one."""

    def __init__(self, message: str, *, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.cause = cause

    def renewed(self) -> ChannelFailedError:
        """A new error saying the same, for one more raise: re-raising one stored
        instance would grow its traceback on every call, for as long as a bot runs."""
        return ChannelFailedError(str(self), cause=self.cause)


class InvitationError(UcwaError):
    """An invitation did not end connected."""

    def __init__(
        self, message: str, *, href: str | None = None, operation_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.href = href
        self.operation_id = operation_id


class InvitationFailedError(InvitationError):
    """The invitation completed with Failure; ``reason`` is the server's reason (or None)."""

    def __init__(
        self,
        message: str,
        *,
        reason: Any = None,
        href: str | None = None,
        operation_id: str | None = None,
    ) -> None:
        super().__init__(message, href=href, operation_id=operation_id)
        self.reason = reason


class InvitationTimeoutError(InvitationError, TimeoutError):
    """No outcome arrived within the invitation timeout."""


class InvitationLostError(InvitationError):
    """The invitation's application disappeared before its outcome could be read."""


class InvalidPhoneNumberError(UcwaError, ValueError):
    """A phone number to call that is not a global number such as ``tel:+14255551234``."""


class SessionClosedError(UcwaError):
    """The session is closed (or not open yet); pending invitations end with this."""


class InvitationWithdrawnError(InvitationError):
    """An incoming invitation ended before it could be accepted (the caller gave up,
    or it was answered elsewhere); ``reason`` is the server's reason, if it gave one."""

    def __init__(self, message: str, *, reason: Any = None, href: str | None = None) -> None:
        super().__init__(message, href=href)
        self.reason = reason


class UnsupportedModalityError(UcwaError):
    """The request needs a media path this library cannot carry (accepting an incoming
    phone call: UCWA's phoneAudio rings a phone, it carries no audio to the API), or a
    conversationLog offers no link to continue it in that modality (nothing is sent)."""


class ConversationError(UcwaError):
    """An operation on a conversation could not be done."""

    def __init__(self, message: str, *, href: str | None = None) -> None:
        super().__init__(message)
        self.href = href


class ConversationEndedError(ConversationError):
    """The conversation is over; ``reason`` says why (a ``ConversationEndReason`` value)."""

    def __init__(self, message: str, *, reason: str, href: str | None = None) -> None:
        super().__init__(message, href=href)
        self.reason = reason


class MessageError(UcwaError):
    """A sent message was not delivered."""

    def __init__(
        self, message: str, *, href: str | None = None, operation_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.href = href
        self.operation_id = operation_id


class MessageFailedError(MessageError):
    """The message completed with Failure; ``reason`` is the server's reason (or None)."""

    def __init__(
        self,
        message: str,
        *,
        reason: Any = None,
        href: str | None = None,
        operation_id: str | None = None,
    ) -> None:
        super().__init__(message, href=href, operation_id=operation_id)
        self.reason = reason


class MessageTimeoutError(MessageError, TimeoutError):
    """No delivery outcome arrived for the message within its timeout."""


# Most specific key first: (status, code, subcode), then (status, code), then (status,).
_BY_STATUS_CODE_SUBCODE: dict[tuple[int, str, str], type[ResponseError]] = {
    (500, "servicefailure", "callbackchannelerror"): CallbackChannelError,
    (409, "conflict", "alreadyexists"): AlreadyExistsError,
    (409, "conflict", "toomanygroups"): TooManyGroupsError,
}
_BY_STATUS_CODE: dict[tuple[int, str], type[ResponseError]] = {
    (400, "parametervalidationfailure"): ParameterValidationError,
    (404, "applicationnotfound"): ApplicationNotFoundError,
    (410, "applicationnotfound"): ApplicationNotFoundError,
    (410, "inactiveapplicationexpired"): InactiveApplicationExpiredError,
    (404, "inactiveapplicationexpired"): InactiveApplicationExpiredError,
    (409, "pgetreplaced"): PGetReplacedError,
}
# The reference's own form of the generic errors: the code is the HTTP class ("NotFound",
# "Gone", "BadRequest": ErrorCode_ref.md) and the name is the subcode (ErrorSubcode_ref.md;
# ApplicationDashboard.md: "404 NotFound | ApplicationNotFound").
_BY_STATUS_SUBCODE: dict[tuple[int, str], type[ResponseError]] = {
    (404, "applicationnotfound"): ApplicationNotFoundError,
    (410, "applicationnotfound"): ApplicationNotFoundError,
    (410, "inactiveapplicationexpired"): InactiveApplicationExpiredError,
    (404, "inactiveapplicationexpired"): InactiveApplicationExpiredError,
    (400, "parametervalidationfailure"): ParameterValidationError,
    (409, "pgetreplaced"): PGetReplacedError,
}
_BY_STATUS: dict[int, type[ResponseError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    500: ServiceFailureError,
    503: ServiceUnavailableError,
    429: TooManyRequestsError,
}


def error_class_for(status: int, code: str | None, subcode: str | None) -> type[ResponseError]:
    """The most specific error class for a status and UCWA code/subcode.

    Codes and subcodes are matched case-insensitively; unknown values fall back
    to the status's class, then to :class:`ResponseError`.
    """
    code_key = (code or "").strip().lower()
    subcode_key = (subcode or "").strip().lower()
    if code_key and subcode_key:
        found = _BY_STATUS_CODE_SUBCODE.get((status, code_key, subcode_key))
        if found is not None:
            return found
    if code_key:
        by_code = _BY_STATUS_CODE.get((status, code_key))
        if by_code is not None:
            return by_code
        by_subcode = _BY_STATUS_SUBCODE.get((status, subcode_key))
        if by_subcode is not None:
            return by_subcode
    return _BY_STATUS.get(status, ResponseError)


# ApplicationDashboard.md, Application lifetime: "410 Gone | TooManyApplications" and
# "410 Gone | UserAgentNotAllowed" refuse the user or the client, not this application;
# "display an error message to the user including the UCWA 2.0 error subcode, and then
# wait for the user to explicitly restart the client". A new application is refused alike.
_REFUSING_EVERY_APPLICATION = frozenset({"toomanyapplications", "useragentnotallowed"})


def refuses_every_application(error: UcwaError) -> bool:
    """True if ``error`` says no application can be had (re-creating one cannot help).

    The name is matched as the subcode (the reference's form) or as the code.
    """
    if not isinstance(error, ResponseError):
        return False
    return any(
        (name or "").strip().lower() in _REFUSING_EVERY_APPLICATION
        for name in (error.subcode, error.code)
    )
