"""``IncomingInvitation.accept()`` given up after the server accepted it (the caller's
task cancelled, or ``accept(timeout=...)`` passed): a second ``accept()`` waits for that
accept's outcome; it used to POST accept again and raise the server's 409 Conflict for
a conversation that was connected."""

from __future__ import annotations

import asyncio

import pytest

import ucwa_async
from ucwa_async.testing import UcwaSimulator

from ._support import SessionFactory


async def _invite(
    simulator: UcwaSimulator, session: ucwa_async.Session
) -> ucwa_async.IncomingInvitation:
    await simulator.incoming_message("sip:lenea@contoso.com", "hello")
    async with session.incoming() as invitations:
        return await asyncio.wait_for(anext(invitations), 5)


def _accept_posts(simulator: UcwaSimulator) -> list[int]:
    return [r.status for r in simulator.request_log if r.path.endswith("/accept")]


@pytest.mark.parametrize("give_up", ["cancel", "timeout"])
async def test_accept_again_after_giving_up_waits_for_the_first_one(
    simulator: UcwaSimulator, make_session: SessionFactory, give_up: str
) -> None:
    async with make_session(simulator) as session:
        invite = await _invite(simulator, session)
        simulator.faults.latency(0.6, target="pget")  # the Connected events come late
        await asyncio.sleep(0.2)  # the poll under way now is a slow one
        if give_up == "cancel":
            first = asyncio.create_task(invite.accept())
            for _ in range(200):
                if _accept_posts(simulator):
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)  # its 2xx is in
            first.cancel()
            with pytest.raises(asyncio.CancelledError):
                await first
        else:
            with pytest.raises(ucwa_async.InvitationTimeoutError):
                await invite.accept(timeout=0.1)
        simulator.faults.latency(0, target="pget")
        conversation = await invite.accept(timeout=5)
        assert conversation.state == "Connected"
        assert _accept_posts(simulator) == [204]
        assert session.stats.incoming_accepted == 1
