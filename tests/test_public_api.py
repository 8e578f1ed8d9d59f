"""The public surface: every name in ``__all__`` exists, is sorted, and nothing private leaks."""

from __future__ import annotations

import ucwa_async


def test_all_names_exist() -> None:
    missing = [name for name in ucwa_async.__all__ if not hasattr(ucwa_async, name)]
    assert missing == []


def test_all_is_sorted_and_unique() -> None:
    names = [n for n in ucwa_async.__all__ if n != "__version__"]
    assert names == sorted(names)
    assert len(set(ucwa_async.__all__)) == len(ucwa_async.__all__)


def test_public_names_do_not_start_with_underscore() -> None:
    assert all(not n.startswith("_") or n == "__version__" for n in ucwa_async.__all__)


def test_issue_contract_names_are_public() -> None:
    # The names the issues give are the contract of the acceptance suite.
    for name in (
        "Session",
        "PasswordAuth",
        "TokenAuth",
        "Invitation",
        "InvitationFailedError",
        "InvitationTimeoutError",
        "SessionClosedError",
        "CallbackChannelError",
        "ChannelReconnecting",
        "ChannelReconnected",
        "ConversationLog",
        "MessagingInvitation",
        "PhoneAudioInvitation",
        "UcwaError",
    ):
        assert name in ucwa_async.__all__, name


def test_every_error_is_a_ucwa_error() -> None:
    for name in ucwa_async.__all__:
        obj = getattr(ucwa_async, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, ucwa_async.UcwaError), name


def test_hardening_errors_are_public() -> None:
    # Issue 11: cleartext/downgrade refusals and 3xx answers are typed and catchable.
    assert issubclass(ucwa_async.InsecureTransportError, ucwa_async.UcwaError)
    assert issubclass(ucwa_async.UnexpectedRedirectError, ucwa_async.ResponseError)
    for name in ("InsecureTransportError", "UnexpectedRedirectError"):
        assert name in ucwa_async.__all__, name
