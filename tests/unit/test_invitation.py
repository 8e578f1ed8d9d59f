"""The Invitation handle: resolves once, awaits are shielded, timeouts are per-wait."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ucwa_async import InvitationFailedError, InvitationTimeoutError
from ucwa_async._invitation import Invitation


def make(canceller: Any = None) -> Invitation[str]:
    async def no_cancel(_: Invitation[Any]) -> None:
        return None

    return Invitation(
        operation_id="op1",
        kind="messagingInvitation",
        loop=asyncio.get_running_loop(),
        canceller=canceller or no_cancel,
    )


async def test_await_returns_success_value() -> None:
    inv = make()
    assert not inv.done()
    assert inv._succeed("resource", "Connected") is True
    assert await inv == "resource"
    assert inv.state == "Connected"
    assert inv.done()


async def test_resolves_only_once() -> None:
    inv = make()
    assert inv._fail(InvitationFailedError("no")) is True
    assert inv._succeed("late", "Connected") is False
    assert inv._fail(InvitationFailedError("again")) is False
    assert inv._cancel_local() is False
    with pytest.raises(InvitationFailedError, match="no"):
        await inv


async def test_result_timeout_leaves_invitation_pending() -> None:
    inv = make()
    with pytest.raises(InvitationTimeoutError):
        await inv.result(timeout=0.01)
    assert not inv.done()
    inv._succeed("ok", None)
    assert await inv.result(timeout=1) == "ok"


async def test_cancelling_the_awaiting_task_does_not_cancel_the_invitation() -> None:
    inv = make()
    waiter = asyncio.create_task(inv.result())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert not inv.done()
    inv._succeed("still", "Connected")
    assert await inv == "still"


async def test_cancel_calls_canceller_then_raises_cancelled_on_await() -> None:
    calls: list[str] = []

    async def canceller(invitation: Invitation[Any]) -> None:
        calls.append(invitation.operation_id)

    inv = make(canceller)
    assert await inv.cancel() is True
    assert calls == ["op1"]
    assert inv.cancelled()
    with pytest.raises(asyncio.CancelledError):
        await inv
    assert await inv.cancel() is False


async def test_progress_keeps_state_and_cancel_link_not_the_resource() -> None:
    inv = make()
    inv._progress("Connecting", "/inv/1/cancel")
    assert inv.state == "Connecting"
    assert inv._cancel_href == "/inv/1/cancel"
    assert inv.resource is None  # only the final resource is kept
    inv._succeed("r", "Connected")
    inv._progress("Connecting", "/other")
    assert inv.state == "Connected"
    assert inv.resource == "r"
    assert inv._cancel_href == "/inv/1/cancel"


async def test_unawaited_failure_does_not_warn() -> None:
    inv = make()
    inv._fail(InvitationFailedError("ignored"))
    del inv  # no "exception was never retrieved" (warnings are errors in this suite)


async def test_repr_names_operation() -> None:
    inv = make()
    assert "op1" in repr(inv)
    assert "done=False" in repr(inv)
