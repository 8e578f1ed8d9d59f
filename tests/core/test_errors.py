"""The exception tree: mapping, attributes, pickling, and the documented tree."""

from __future__ import annotations

import pickle
import re

import pytest

from ucwa_async._core import errors
from ucwa_async._core.errors import (
    AlreadyExistsError,
    ApplicationNotFoundError,
    AuthenticationError,
    BadRequestError,
    BodyTooLargeError,
    CallbackChannelError,
    ChannelFailedError,
    ConflictError,
    DecodeError,
    ForbiddenError,
    InactiveApplicationExpiredError,
    InvitationError,
    InvitationFailedError,
    InvitationTimeoutError,
    NotFoundError,
    ParameterValidationError,
    PGetReplacedError,
    RequestTimeoutError,
    ResponseError,
    RetryLaterError,
    ServiceFailureError,
    ServiceUnavailableError,
    TooManyGroupsError,
    TooManyRequestsError,
    UcwaError,
    UnsafeHrefError,
    error_class_for,
)


@pytest.mark.parametrize(
    ("status", "code", "subcode", "expected"),
    [
        (500, "ServiceFailure", "CallbackChannelError", CallbackChannelError),
        (500, "servicefailure", "callbackchannelerror", CallbackChannelError),
        (500, " ServiceFailure ", " CallbackChannelError ", CallbackChannelError),
        (500, "ServiceFailure", None, ServiceFailureError),
        (500, "ServiceFailure", "SomethingNew", ServiceFailureError),
        (409, "Conflict", "AlreadyExists", AlreadyExistsError),
        (409, "Conflict", "TooManyGroups", TooManyGroupsError),
        (409, "Conflict", None, ConflictError),
        (409, "Conflict", "BrandNewSubcode", ConflictError),
        (409, "PGetReplaced", None, PGetReplacedError),
        (409, "Conflict", "PGetReplaced", PGetReplacedError),
        (404, "ApplicationNotFound", None, ApplicationNotFoundError),
        (410, "ApplicationNotFound", None, ApplicationNotFoundError),
        (410, "InactiveApplicationExpired", None, InactiveApplicationExpiredError),
        (404, "InactiveApplicationExpired", None, InactiveApplicationExpiredError),
        (404, "ResourceNotFound", None, NotFoundError),
        (400, "ParameterValidationFailure", None, ParameterValidationError),
        (400, "BadRequest", "Whatever", BadRequestError),
        (401, None, None, AuthenticationError),
        (403, "Forbidden", None, ForbiddenError),
        (503, "ServiceUnavailable", None, ServiceUnavailableError),
        (429, None, None, TooManyRequestsError),
        (410, None, None, ResponseError),
        (418, "Teapot", "Short", ResponseError),
        (504, "ServiceTimeout", None, ResponseError),
        (500, None, "CallbackChannelError", ServiceFailureError),
    ],
)
def test_error_class_for(
    status: int, code: str | None, subcode: str | None, expected: type[ResponseError]
) -> None:
    assert error_class_for(status, code, subcode) is expected


def test_response_error_attributes_and_message() -> None:
    error = CallbackChannelError(
        status=500,
        code="ServiceFailure",
        subcode="CallbackChannelError",
        message="The remote event channel is not reachable",
        debug_info={"diagnostics": "x"},
        method="POST",
        url="https://h.example/x",
    )
    assert str(error) == (
        "500 ServiceFailure/CallbackChannelError: The remote event channel is not reachable"
        " (POST https://h.example/x)"
    )
    assert error.debug_info == {"diagnostics": "x"}
    assert repr(error).startswith("CallbackChannelError(status=500, code='ServiceFailure'")
    assert str(ResponseError(status=502)) == "502"
    assert ResponseError(status=502, debug_info={}).debug_info is None


def test_retry_later_carries_retry_after() -> None:
    error = ServiceUnavailableError(status=503, retry_after=7.0)
    assert isinstance(error, RetryLaterError)
    assert error.retry_after == 7.0


@pytest.mark.parametrize(
    "error",
    [
        CallbackChannelError(status=500, code="ServiceFailure", subcode="CallbackChannelError"),
        TooManyRequestsError(status=429, retry_after=3.0, method="GET", url="https://h/x"),
    ],
)
def test_response_errors_pickle(error: ResponseError) -> None:
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is type(error)
    assert clone.__dict__ == error.__dict__
    assert str(clone) == str(error)


def test_dual_bases() -> None:
    assert issubclass(RequestTimeoutError, TimeoutError)
    assert issubclass(InvitationTimeoutError, TimeoutError)
    assert issubclass(DecodeError, ValueError)
    assert issubclass(UnsafeHrefError, ValueError)
    assert issubclass(UnsafeHrefError, UcwaError)


def test_other_error_attributes() -> None:
    assert DecodeError("bad", content_type="application/json").content_type == "application/json"
    assert isinstance(BodyTooLargeError("big"), DecodeError)
    cause = OSError("reset")
    assert ChannelFailedError("down", cause=cause).cause is cause
    failed = InvitationFailedError("no", reason="Declined", href="/i/1", operation_id="op")
    assert (failed.reason, failed.href, failed.operation_id) == ("Declined", "/i/1", "op")
    assert isinstance(failed, InvitationError)
    unsafe = UnsafeHrefError("no", href="javascript:x")
    assert unsafe.href == "javascript:x"


def _documented_tree() -> dict[str, str]:
    """``{class name: parent name}`` from the module docstring's drawn tree."""
    doc = errors.__doc__ or ""
    parents: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in doc.splitlines():
        match = re.match(r"^[\s│├└─]*([A-Z]\w+Error)\b", line)
        if not match or not line.startswith("    "):
            continue
        depth = match.start(1)  # the column of the name is its depth in the drawing
        name = match.group(1)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        if stack:
            parents[name] = stack[-1][1]
        stack.append((depth, name))
    return parents


def test_docstring_tree_matches_the_classes() -> None:
    parents = _documented_tree()
    exported = {name for name in errors.__all__ if name.endswith("Error")}
    assert set(parents) | {"UcwaError"} == exported
    for name, parent in parents.items():
        cls = getattr(errors, name)
        assert cls.__bases__[0] is getattr(errors, parent), name


def test_all_is_sorted() -> None:
    assert errors.__all__ == sorted(errors.__all__)


def test_conversation_errors_carry_their_context() -> None:
    withdrawn = errors.InvitationWithdrawnError("gone", reason="Gone", href="/inv/1")
    assert (withdrawn.reason, withdrawn.href, withdrawn.operation_id) == ("Gone", "/inv/1", None)
    assert isinstance(withdrawn, errors.InvitationError)
    ended = errors.ConversationEndedError("over", reason="left", href="/c/1")
    assert (ended.reason, ended.href) == ("left", "/c/1")
    assert isinstance(ended, errors.ConversationError)
    failed = errors.MessageFailedError("no", reason="R", href="/m/1", operation_id="op")
    assert (failed.reason, failed.href, failed.operation_id) == ("R", "/m/1", "op")
    timed_out = errors.MessageTimeoutError("late", operation_id="op")
    assert isinstance(timed_out, TimeoutError)
    assert isinstance(timed_out, errors.MessageError)
    assert timed_out.href is None
    channel = errors.ChannelFailedError("down", cause=ValueError("x"))
    again = channel.renewed()
    assert again is not channel
    assert (str(again), again.cause) == ("down", channel.cause)
