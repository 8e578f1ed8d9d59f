"""A chat-ops daemon's day, many times over, against the simulator: incoming IMs accepted
(one message at a time, no ``async with``), withdrawn by their caller, declined; IMs it
starts and leaves; an ``incoming()`` polled with a timeout. After N cycles every
per-session container is back to its baseline: nothing grows with traffic."""

from __future__ import annotations

import asyncio
import random

import pytest

import ucwa_async
from ucwa_async._core.backoff import Backoff
from ucwa_async.testing import Behaviour, Person, SimulatorConfig, UcwaSimulator

pytestmark = pytest.mark.soak

LENE = "sip:lenea@contoso.com"  # calls in, never replies by herself
BOB = "sip:bob@contoso.com"  # echoes what the daemon starts
CYCLES = 15


def _session(sim: UcwaSimulator, wire: str) -> ucwa_async.Session:
    return ucwa_async.Session(
        sim.discovery_url,
        auth=ucwa_async.PasswordAuth(sim.username, sim.password),
        wire_format=wire,  # type: ignore[arg-type]
        invitation_timeout=10.0,
        request_timeout=5.0,
        keepalive_interval=None,
        backoff=Backoff(base=0.01, cap=0.1, rng=random.Random(0)),
    )


def _sizes(session: ucwa_async.Session) -> dict[str, int]:
    table = session._conversation_table
    book = table.book
    return {
        "conversations": len(table._conversations),
        "draining": len(table._draining),
        "invitations": len(table._invitations),
        "invitations_of": len(table._invitations_of),
        "accepting": len(table._accepting),
        "inbox": len(table.inbox),
        "inbox_getters": len(table.inbox._getters),
        "fetch_queue": len(table._fetch_queue),
        "queued": len(table._queued),
        "reads": len(table._reads),
        "reads_waiters": len(table._reads_waiters),
        "claimed_states": sum(1 for s in book._states.values() if s.claimed),
        "message_readers": sum(
            len(c._state.messages._readers) for c in table._conversations.values()
        )
        + sum(len(s.messages._readers) for s in book._states.values() if s._messages),
        "book_incoming": len(book._incoming),
        "book_reading": len(book._reading_invitations) + len(book._reading_callers),
        "sent_pending": len(table.sent),
        "sent_by_conversation": len(table.sent._by_conversation),
        "operations": len(session._operations),
        "background_tasks": len(session._background),
        "event_streams": len(session._streams),
    }


async def _next_invite(invitations: ucwa_async.InvitationStream) -> ucwa_async.IncomingInvitation:
    async with asyncio.timeout(10):
        return await anext(invitations)


@pytest.mark.parametrize("wire", ["json", "xml"])
async def test_a_daemon_cycle_leaves_every_container_at_its_baseline(wire: str) -> None:
    people = (
        Person(LENE, "Lene Aaling", behaviour=Behaviour.silent()),
        Person(BOB, "Bob Kelly", behaviour=Behaviour.echo()),
    )
    config = SimulatorConfig(completion_delay=0.01, people=people)
    async with UcwaSimulator(config=config, seed=7) as sim, _session(sim, wire) as session:
        await session.wait_connected(10)
        baseline = _sizes(session)
        invitations = session.incoming()
        for n in range(CYCLES):
            # Accepted, answered one message at a time, then the caller leaves.
            await sim.incoming_message(LENE, f"hello {n}")
            invite = await _next_invite(invitations)
            conversation = await invite.accept()
            await sim.say(conversation.href, LENE, f"question {n}")
            async with asyncio.timeout(10):
                question = await anext(conversation.messages())
            assert question.text == f"question {n}"
            await (await conversation.send(f"answer {n}")).result(10)
            await sim.leave(conversation.href, LENE)
            assert await conversation.wait_ended(10) is not None
            # Withdrawn by its caller before the daemon answers.
            url = await sim.incoming_message(LENE, f"never mind {n}")
            invite = await _next_invite(invitations)
            await sim.withdraw(url)
            with pytest.raises(ucwa_async.InvitationWithdrawnError):
                await invite.accept()
            # Declined.
            await sim.incoming_message(LENE, f"spam {n}")
            await (await _next_invite(invitations)).decline()
            # Started by the daemon, then left.
            started = await session.start_messaging(BOB, f"report {n}")
            ours = await started.conversation(10)
            await (await ours.send(f"report {n}")).result(10)
            await ours.leave()
            # Polled with a timeout while nothing comes.
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.01):
                    await anext(invitations)
        invitations.close()
        # Late events (the declined invitation's completed, the echo) come in.
        for _ in range(100):  # bounded: 5 s
            if _sizes(session) == baseline:
                break
            await asyncio.sleep(0.05)
        assert _sizes(session) == baseline
