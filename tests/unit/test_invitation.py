"""The Invitation handle: resolves once, awaits are shielded, timeouts are per-wait, and
it is an asyncio future look-alike that the asyncio helpers accept."""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import pytest

from ucwa_async import InvitationFailedError, InvitationTimeoutError, UcwaError
from ucwa_async._invitation import Invitation
from ucwa_async._outcome import shielded


class FakeServer:
    """A canceller that answers the cancel after ``delay`` (or fails it with ``error``)."""

    def __init__(self, delay: float = 0.01, error: BaseException | None = None) -> None:
        self.delay = delay
        self.error = error
        self.calls: list[tuple[str, str | None]] = []
        self.requests: dict[str, asyncio.Future[None]] = {}

    def __call__(self, invitation: Invitation[Any], msg: str | None) -> asyncio.Future[None]:
        self.calls.append((invitation.operation_id, msg))
        request = self.requests.get(invitation.operation_id)
        if request is not None:
            return request
        loop = invitation.get_loop()
        request = self.requests[invitation.operation_id] = loop.create_future()

        def answer() -> None:
            if self.error is not None:
                request.set_exception(self.error)
            else:
                invitation._cancel_local(msg)
                request.set_result(None)

        loop.call_later(self.delay, answer)
        return request


def make(canceller: Any = None, operation_id: str = "op1") -> Invitation[str]:
    return Invitation(
        operation_id=operation_id,
        kind="messagingInvitation",
        loop=asyncio.get_running_loop(),
        canceller=canceller or FakeServer(),
    )


def resolve_soon(inv: Invitation[str], value: str, delay: float = 0.01) -> None:
    asyncio.get_running_loop().call_later(delay, inv._succeed, value, "Connected")


async def test_await_returns_success_value() -> None:
    inv = make()
    assert not inv.done()
    assert inv._succeed("resource", "Connected") is True
    assert await inv == "resource"
    assert inv.result() == "resource"
    assert inv.exception() is None
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
    with pytest.raises(InvitationFailedError, match="no"):
        inv.result()
    assert isinstance(inv.exception(), InvitationFailedError)


async def test_result_and_exception_are_synchronous_like_a_future() -> None:
    inv = make()
    with pytest.raises(asyncio.InvalidStateError):
        inv.result()
    with pytest.raises(asyncio.InvalidStateError):
        inv.exception()


async def test_result_with_a_timeout_is_the_compatible_awaitable() -> None:
    inv = make()
    with pytest.raises(InvitationTimeoutError):
        await inv.result(timeout=0.01)
    resolve_soon(inv, "ok")
    assert await inv.result(timeout=2) == "ok"


async def test_wait_timeout_leaves_invitation_pending() -> None:
    inv = make()
    with pytest.raises(InvitationTimeoutError):
        await inv.wait(timeout=0.01)
    assert not inv.done()
    inv._succeed("ok", None)
    assert await inv.wait(timeout=1) == "ok"


async def test_wait_timeout_says_the_invitation_is_still_pending() -> None:
    # The message of a wait's timeout told no more than "no outcome within 0.01 s": a
    # first-time reader could not tell it from the invitation's own timeout (which ends it).
    inv = make()
    with pytest.raises(InvitationTimeoutError, match=r"within this wait's 0\.01 s") as info:
        await inv.wait(timeout=0.01)
    assert "still pending (wait again, or cancel() it)" in str(info.value)
    assert not inv.done()


async def test_cancelling_the_awaiting_task_does_not_cancel_the_invitation() -> None:
    inv = make()
    waiter = asyncio.create_task(inv.wait())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert not inv.done()
    inv._succeed("still", "Connected")
    assert await inv == "still"


async def test_cancel_is_synchronous_and_ends_when_the_server_answers() -> None:
    server = FakeServer()
    inv = make(server)
    assert inv.cancel("bored") is True
    assert server.calls == [("op1", "bored")]
    assert not inv.cancelled()  # requested, not yet answered (as Task.cancel())
    assert inv.cancel() is True  # a second call joins the request
    assert await inv.cancel_outcome() is True
    assert inv.cancelled()
    assert inv.state == "Cancelled"
    with pytest.raises(asyncio.CancelledError, match="bored"):
        await inv
    with pytest.raises(asyncio.CancelledError):
        inv.result()
    assert inv.cancel() is False
    assert await inv.cancel_outcome() is True


async def test_cancel_refused_by_the_session_returns_false() -> None:
    inv = make(lambda invitation, msg: None)
    assert inv.cancel() is False
    assert await inv.cancel_outcome() is False
    assert not inv.done()


async def test_failed_cancel_request_is_reported_and_the_invitation_stays_pending() -> None:
    inv = make(FakeServer(error=UcwaError("503")))
    assert inv.cancel() is True
    with pytest.raises(UcwaError, match="503"):
        await inv.cancel_outcome()
    assert not inv.done()
    inv._succeed("connected anyway", "Connected")
    assert await inv.cancel_outcome() is False  # it ended: the outcome is what counts


async def test_an_outcome_before_the_cancel_answer_is_kept() -> None:
    inv = make(FakeServer(delay=0.05))
    assert inv.cancel() is True
    inv._fail(InvitationFailedError("Declined"), state="Declined")
    assert await inv.cancel_outcome() is False
    assert not inv.cancelled()


async def test_done_callbacks_run_through_the_loop_with_the_invitation() -> None:
    inv = make()
    seen: list[tuple[str, Invitation[str]]] = []
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="outer")

    def first(i: Invitation[str]) -> None:
        seen.append(("first", i))

    def removed(i: Invitation[str]) -> None:
        seen.append(("removed", i))

    def in_context(i: Invitation[str]) -> None:
        seen.append((var.get(), i))

    inv.add_done_callback(first)
    inv.add_done_callback(removed)
    inv.add_done_callback(removed)
    ctx = contextvars.copy_context()
    ctx.run(var.set, "inner")
    inv.add_done_callback(in_context, context=ctx)
    assert inv.remove_done_callback(removed) == 2
    assert inv.remove_done_callback(removed) == 0
    inv._succeed("r", "Connected")
    assert seen == []  # scheduled, as a Future does, not called inline
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert seen == [("first", inv), ("inner", inv)]
    late: list[Invitation[str]] = []
    inv.add_done_callback(late.append)  # already done: scheduled at once
    await asyncio.sleep(0)
    assert late == [inv]


async def test_isfuture_and_get_loop() -> None:
    inv = make()
    assert asyncio.isfuture(inv)
    assert isinstance(inv, asyncio.Future)
    assert inv.get_loop() is asyncio.get_running_loop()
    assert asyncio.ensure_future(inv) is inv


async def test_asyncio_wait() -> None:
    first, second = make(operation_id="a"), make(operation_id="b")
    resolve_soon(first, "one")
    done, pending = await asyncio.wait({first, second}, timeout=1)
    assert done == {first}
    assert pending == {second}
    done, pending = await asyncio.wait(
        {first, second}, timeout=0.01, return_when=asyncio.ALL_COMPLETED
    )
    assert pending == {second}  # nothing cancelled by a wait that timed out
    assert not second.done()


async def test_asyncio_as_completed() -> None:
    invitations = [make(operation_id=f"op{i}") for i in range(3)]
    for i, inv in enumerate(invitations):
        resolve_soon(inv, f"r{i}", delay=0.01 * (3 - i))
    results = [await next_done for next_done in asyncio.as_completed(invitations, timeout=2)]
    assert results == ["r2", "r1", "r0"]


async def test_asyncio_gather() -> None:
    ok, failed = make(operation_id="ok"), make(operation_id="failed")
    resolve_soon(ok, "yes")
    failed._fail(InvitationFailedError("Declined"))
    results = await asyncio.gather(ok, failed, return_exceptions=True)
    assert results[0] == "yes"
    assert isinstance(results[1], InvitationFailedError)
    cancelled = make(operation_id="cancelled")
    cancelled.cancel()
    alone = await asyncio.gather(cancelled, return_exceptions=True)
    assert isinstance(alone[0], asyncio.CancelledError)
    with pytest.raises(asyncio.CancelledError):
        await asyncio.gather(cancelled)


async def test_asyncio_gather_cancelled_cancels_its_invitations() -> None:
    # gather's documented contract: cancelling it cancels the futures it was given.
    inv = make()
    gathering = asyncio.gather(inv)
    await asyncio.sleep(0)
    assert gathering.cancel() is True
    with pytest.raises(asyncio.CancelledError):
        await gathering
    assert inv.cancelled()


async def test_asyncio_timeout_around_await_leaves_it_pending() -> None:
    inv = make()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await inv
    assert not inv.done()
    resolve_soon(inv, "later")
    async with asyncio.timeout(2):
        assert await inv == "later"


async def test_asyncio_shield() -> None:
    inv = make()

    async def shielded() -> str:
        return await asyncio.shield(inv)

    waiter = asyncio.create_task(shielded())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert not inv.done()
    resolve_soon(inv, "shielded")
    assert await asyncio.shield(inv) == "shielded"


async def test_asyncio_wait_for() -> None:
    inv = make()
    resolve_soon(inv, "in time")
    assert await asyncio.wait_for(inv, 2) == "in time"
    late = make(operation_id="late")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(late, 0.01)
    # wait_for cancels what it was given at its timeout (Python 3.11), or leaves an
    # awaitable pending (3.12+): either way it ends cleanly and nothing else leaks.
    assert late.cancelled() or not late.done()


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


async def test_only_the_session_sets_the_outcome() -> None:
    inv = make()
    with pytest.raises(RuntimeError):
        inv.set_result("forged")
    with pytest.raises(RuntimeError):
        inv.set_exception(ValueError("forged"))
    assert not inv.done()


async def test_repr_names_operation() -> None:
    inv = make()
    assert "op1" in repr(inv)
    assert "done=False" in repr(inv)


async def test_a_cancelled_waiter_leaves_no_callback_behind() -> None:
    inv = make()
    before = len(inv._callbacks or [])
    waiters = [asyncio.create_task(_await(inv)) for _ in range(3)]
    await asyncio.sleep(0)
    assert len(inv._callbacks or []) == before + 3  # one per awaiting task
    for task in waiters:
        task.cancel()
    await asyncio.gather(*waiters, return_exceptions=True)
    assert len(inv._callbacks or []) == before  # 10 000 abandoned awaits would pile up
    assert not inv.done()


async def test_shielded_is_asyncio_shield_for_a_plain_future() -> None:
    loop = asyncio.get_running_loop()
    ok: asyncio.Future[int] = loop.create_future()
    loop.call_soon(ok.set_result, 7)
    assert await shielded(ok) == 7
    failed: asyncio.Future[int] = loop.create_future()
    loop.call_soon(failed.set_exception, ValueError("no"))
    with pytest.raises(ValueError, match="no"):
        await shielded(failed)
    pending: asyncio.Future[int] = loop.create_future()
    task = asyncio.create_task(_await_plain(pending))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not pending.cancelled()  # the waiter was cancelled, not the future
    pending.set_result(1)


async def _await(inv: Invitation[Any]) -> Any:
    return await inv


async def _await_plain(future: asyncio.Future[int]) -> int:
    return await shielded(future)


@pytest.mark.parametrize(
    ("state", "verdict"),
    [
        ("Connecting", "pending"),
        ("Alerting", "pending"),  # InvitationState_ref: the call is ringing
        ("TeamRing", "pending"),
        ("Connected", "connected"),
        ("Declined", "failed"),
        ("Cancelled", "failed"),
        ("Failed", "failed"),
    ],
)
def test_an_invitation_read_back_while_ringing_is_still_pending(state: str, verdict: str) -> None:
    # A resync re-read of a phone call that is ringing must not end it as failed.
    from ucwa_async._core.models import parse_resource
    from ucwa_async._operations import _verdict

    resource = parse_resource(
        {
            "rel": "phoneAudioInvitation",
            "_links": {"self": {"href": "/ucwa/v1/applications/1/communication/invitations/7"}},
            "operationId": "op7",
            "state": state,
        }
    )
    assert _verdict(resource) == verdict
