"""Arguments of the public API a demanding asyncio user gets wrong: a typed ValueError /
TypeError at the call (errors.md: "Invalid arguments ... raise plain ValueError /
TypeError at the call"), and nothing sent to the server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ucwa_async.testing import UcwaSimulator

from ._support import SessionFactory


@pytest.mark.parametrize("limit", [True, False])
async def test_conversation_logs_refuses_a_bool_limit(
    simulator: UcwaSimulator, make_session: SessionFactory, limit: bool
) -> None:
    # A bool is an int to isinstance: it went out as "?limit=True" (the server's 400).
    async with make_session(simulator) as session:
        before = len(simulator.request_log)
        with pytest.raises(ValueError, match="limit"):
            await session.conversation_logs(limit=limit)
        assert len(simulator.request_log) == before


@pytest.mark.parametrize("maxsize", [0, 2.5, "3", True, -1])
async def test_events_refuses_a_bad_maxsize(
    simulator: UcwaSimulator, make_session: SessionFactory, maxsize: Any
) -> None:
    # 0 silently became the default bound; 2.5 was taken; "3" gave an operator TypeError.
    async with make_session(simulator) as session:
        with pytest.raises((ValueError, TypeError), match="maxsize"):
            session.events(maxsize=maxsize)
        assert len(session._streams) == 0


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), "5", True])
async def test_send_refuses_a_bad_timeout_before_posting(
    simulator: UcwaSimulator, make_session: SessionFactory, timeout: Any
) -> None:
    # 0 silently meant invitation_timeout, -1 timed the message out at once, "5" raised
    # a TypeError after the message had been POSTed (sent, yet the caller saw an error).
    async with make_session(simulator) as session:
        invitation = await session.start_messaging("sip:lenea@contoso.com")
        conversation = await invitation.conversation(timeout=5)
        with pytest.raises(ValueError, match="timeout"):
            await conversation.send("not sent", timeout=timeout)
        assert "not sent" not in simulator.messages_from_client(conversation.href)
        assert session.stats.messages_sent == 0
        await (await conversation.send("sent", timeout=5)).wait(5)
        assert simulator.messages_from_client(conversation.href) == ["sent"]


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), "5", True])
async def test_accept_refuses_a_bad_timeout_before_posting(
    simulator: UcwaSimulator, make_session: SessionFactory, timeout: Any
) -> None:
    async with make_session(simulator) as session:
        await simulator.incoming_message("sip:lenea@contoso.com", "hello")
        async with session.incoming() as invitations:
            invite = await asyncio.wait_for(anext(invitations), 5)
        with pytest.raises(ValueError, match="timeout"):
            await invite.accept(timeout=timeout)
        assert session.stats.incoming_accepted == 0
        assert not [r for r in simulator.request_log if r.path.endswith("/accept")]
        conversation = await invite.accept(timeout=5)  # still answerable
        assert conversation.state == "Connected"


@pytest.mark.parametrize("body", [5, "text", b"raw", [("a", 1)]])
async def test_request_refuses_a_body_that_is_not_a_mapping(
    simulator: UcwaSimulator, make_session: SessionFactory, body: Any
) -> None:
    # The JSON wire POSTed it as it was; the XML wire raised an AttributeError.
    async with make_session(simulator) as session:
        href = (await session.conversation_logs())[0].href
        before = len(simulator.request_log)
        with pytest.raises(TypeError, match="body"):
            await session.request("POST", href, body=body)
        assert len(simulator.request_log) == before


@pytest.mark.parametrize("href", [5, None, b"/x"])
async def test_conversation_log_refuses_a_href_that_is_not_a_str(
    simulator: UcwaSimulator, make_session: SessionFactory, href: Any
) -> None:
    # It raised the regex engine's "expected string or bytes-like object" TypeError.
    async with make_session(simulator) as session:
        with pytest.raises(TypeError, match="href must be a conversationLog href"):
            await session.conversation_log(href)


@pytest.mark.parametrize("timeout", ["5", b"1", True, [1]])
async def test_waits_refuse_a_timeout_that_is_not_a_number(
    simulator: UcwaSimulator, make_session: SessionFactory, timeout: Any
) -> None:
    # They failed inside asyncio: "unsupported operand type(s) for +: 'float' and 'str'".
    async with make_session(simulator) as session:
        invitation = await session.start_messaging("sip:lenea@contoso.com")
        with pytest.raises(TypeError, match="timeout must be a number"):
            await invitation.wait(timeout)
        with pytest.raises(TypeError, match="timeout must be a number"):
            await invitation.result(timeout)
        with pytest.raises(TypeError, match="timeout must be a number"):
            await session.wait_connected(timeout)
        conversation = await invitation.conversation(timeout=5)
        with pytest.raises(TypeError, match="timeout must be a number"):
            await conversation.wait_ended(timeout)
        sent = await conversation.send("hi")
        with pytest.raises(TypeError, match="timeout must be a number"):
            await sent.wait(timeout)
        await sent.wait(5)
        # After the outcome too: the argument is wrong whether or not it is needed.
        with pytest.raises(TypeError, match="timeout must be a number"):
            await sent.wait(timeout)


@pytest.mark.parametrize("kind", ["messaging", "phone_audio"])
async def test_continue_by_href_with_a_bad_timeout_sends_nothing(
    simulator: UcwaSimulator, make_session: SessionFactory, kind: str
) -> None:
    # The timeout was checked after the log's GET (a log given by its href).
    async with make_session(simulator) as session:
        href = (await session.conversation_logs())[0].href
        assert href is not None
        before = len(simulator.request_log)
        call = (
            session.continue_messaging(href, message="hi", timeout=-1)
            if kind == "messaging"
            else session.continue_phone_audio(href, phone_number="tel:+14255551234", timeout=0)
        )
        with pytest.raises(ValueError, match="timeout"):
            await call
        assert len(simulator.request_log) == before
