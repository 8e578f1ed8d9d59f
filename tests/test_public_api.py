"""The public surface: every name in ``__all__`` exists, is sorted, and nothing private leaks."""

from __future__ import annotations

import logging
import pickle
import subprocess
import sys
import typing

import attrs

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


# --- issue 14: a deliberate public surface ----------------------------------------------


def _public_classes() -> list[type]:
    return [obj for n in ucwa_async.__all__ if isinstance(obj := getattr(ucwa_async, n), type)]


def test_public_classes_report_the_package_as_their_module() -> None:
    # Tracebacks and reprs say ucwa_async.AuthenticationError, not ucwa_async._core.errors.
    wrong = [c.__qualname__ for c in _public_classes() if c.__module__ != "ucwa_async"]
    assert wrong == []
    assert repr(ucwa_async.AuthenticationError) == "<class 'ucwa_async.AuthenticationError'>"


def test_public_annotations_still_resolve() -> None:
    # typing.get_type_hints (cattrs, pydantic, IDEs...) resolves a class's annotations in
    # the namespace of its __module__, now ucwa_async: they must not break.
    for cls in _public_classes():
        typing.get_type_hints(cls)
    log = ucwa_async.ConversationLog(href="https://x.example/log/1", subject="s")
    assert typing.get_type_hints(ucwa_async.ConversationLog)["href"] is str
    assert attrs.evolve(log, subject="t").href == log.href


def _example(cls: type[BaseException]) -> BaseException:
    if issubclass(cls, ucwa_async.UnexpectedRedirectError):
        return cls(status=302, location="https://elsewhere.example/")  # type: ignore[call-arg]
    if issubclass(cls, ucwa_async.ResponseError):
        return cls(status=500, code="ServiceFailure", message="boom")  # type: ignore[call-arg]
    if issubclass(cls, ucwa_async.ConversationEndedError):
        return cls("boom", reason="remote_left", href="https://x.example/c/1")
    return cls("boom")


def test_every_public_error_pickles_under_its_public_name() -> None:
    errors = [c for c in _public_classes() if issubclass(c, BaseException)]
    assert len(errors) > 25
    for cls in errors:
        error = _example(cls)
        clone = pickle.loads(pickle.dumps(error))
        assert type(clone) is cls
        assert str(clone) == str(error)
        assert repr(clone) == repr(error)
        assert vars(clone) == vars(error)


def test_public_values_pickle() -> None:
    for value in (
        ucwa_async.SessionState.OPEN,
        ucwa_async.ChannelStatus.CONNECTED,
        ucwa_async.Timeouts(),
        ucwa_async.ChannelReconnecting("dropped"),
        ucwa_async.Link("self", "https://x.example/a"),
    ):
        assert pickle.loads(pickle.dumps(value)) == value


def test_session_has_no_public_host_callbacks() -> None:
    # The channel talks to the session through a private host object (_channel_host).
    public = {n for n in dir(ucwa_async.Session) if not n.startswith("_")}
    internal = {
        "deliver",
        "emit",
        "poll",
        "reauthenticate",
        "recreate_application",
        "resynced",
        "channel_failed",
    }
    assert public & internal == set()
    assert public >= _SESSION_BASE
    for name in public:
        assert getattr(ucwa_async.Session, name).__doc__, f"Session.{name} has no docstring"


# Methods other branches may add (conversations): documented, but not listed here.
_SESSION_BASE = {
    "aclose",
    "application_url",
    "channel_state",
    "closed",
    "continue_messaging",
    "continue_phone_audio",
    "conversation_log",
    "conversation_logs",
    "events",
    "invitation",
    "open",
    "pending_invitations",
    "state",
    "wait_connected",
}


def test_internals_are_out_of_all_but_still_importable() -> None:
    assert "EventBatch" not in ucwa_async.__all__
    from ucwa_async import EventBatch  # noqa: F401  (kept for compatibility)
    from ucwa_async._core.models import EventBatch as FromItsModule

    assert FromItsModule is ucwa_async.EventBatch


def test_auth_and_resource_types_are_public() -> None:
    for name in (
        "Auth",
        "TokenProvider",
        "InvitationResource",
        "Resource",
        "ChannelSignal",
        "InvalidPhoneNumberError",
    ):
        assert name in ucwa_async.__all__, name
    assert issubclass(ucwa_async.MessagingInvitation, ucwa_async.InvitationResource)
    assert issubclass(ucwa_async.PhoneAudioInvitation, ucwa_async.InvitationResource)


def test_package_logger_has_a_null_handler() -> None:
    handlers = logging.getLogger("ucwa_async").handlers
    assert any(isinstance(h, logging.NullHandler) for h in handlers)


def test_library_warnings_stay_off_stderr_of_a_program_without_logging() -> None:
    program = (
        "import logging, ucwa_async\n"
        "logging.getLogger('ucwa_async.session').warning('library warning')\n"
        "print('done')\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True
    )
    assert completed.stdout == "done\n"
    assert "library warning" not in completed.stderr


def test_the_simulators_reason_has_its_own_name() -> None:
    # ucwa_async.testing.Reason (what the simulator sends) is not ucwa_async.Reason (what
    # the client parsed): SimulatorReason names it apart; the old name stays.
    from ucwa_async import testing

    assert testing.SimulatorReason is testing.Reason
    assert testing.SimulatorReason is not ucwa_async.Reason
    assert {"Reason", "SimulatorReason"} <= set(testing.__all__)
    assert isinstance(testing.DECLINED, testing.SimulatorReason)
    # Both print alike: code/subcode: message.
    assert (
        str(testing.DECLINED) == "RemoteFailure/Declined: The remote party declined the invitation."
    )
    parsed = ucwa_async.Reason(
        code=testing.DECLINED.code,
        subcode=testing.DECLINED.subcode,
        message=testing.DECLINED.message,
    )
    assert str(parsed) == str(testing.DECLINED)
    assert str(testing.SimulatorReason("Gone")) == "Gone"
