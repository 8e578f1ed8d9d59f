"""The https -> http downgrade rule is about the session's own sign-in chain: one request to
an https URL elsewhere must not turn the session's own plain-http origin into a
"downgrade" (it did: every later request, the event channel's too, was refused)."""

from __future__ import annotations

import pytest

import ucwa_async
from ucwa_async.testing import UcwaSimulator

from ._support import SessionFactory


async def test_a_foreign_https_request_does_not_brick_an_http_session(
    simulator: UcwaSimulator, make_session: SessionFactory
) -> None:
    async with make_session(simulator) as session:
        # Nothing listens there: the point is what follows.
        with pytest.raises(ucwa_async.TransportError):
            await session.request("GET", "https://127.0.0.1:1/elsewhere")
        assert await session.conversation_logs()
        invitation = await session.start_messaging("sip:lenea@contoso.com")
        await invitation.wait(5)
        await session.wait_connected(timeout=5)
        assert session.channel_state is ucwa_async.ChannelStatus.CONNECTED
