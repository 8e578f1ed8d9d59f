"""Section: conversations, messages/s of ucwa_async vs a raw-aiohttp floor.

N conversations at once (default 200), each started with startMessaging to a person
who echoes (the simulator's Lene Aaling: ``"echo: <text>"`` per message), then M
messages sent (each POST awaited to its 201, as the integration test
``test_200_conversations_exchange_10_messages_each_way`` does), every delivery
awaited, the M echoes read, and the conversation left (stopMessaging). A message
counts when its delivery completed (outgoing) and when its echo was read (incoming):
2 x N x M messages over the wall time from the first startMessaging to the last
leave. Both contenders check that every echo arrived exactly once and in order, and
raise otherwise. The floor is :mod:`benchmarks.convfloor`.

Each contender runs against its own fresh simulator process; rounds are interleaved
(ours, floor, ours, floor, ...) and each figure is the median of its rounds, as in
:mod:`benchmarks.throughput`.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from benchmarks import convfloor
from benchmarks.convfloor import PERSON, WARM_UP, check, figures, texts_of
from benchmarks.ours import open_session
from benchmarks.rounds import rate_summary
from benchmarks.sim import SimProcess

Probe = Callable[[], Awaitable[dict[str, Any]]]


async def run(
    discovery: str,
    user: str,
    password: str,
    *,
    conversations: int,
    messages: int,
    probe: Probe | None = None,
) -> dict[str, Any]:
    """``conversations`` at once through ``ucwa_async.Session``, ``messages`` each way."""
    async with open_session(
        discovery, user, password, invitation_timeout=300.0, request_timeout=120.0
    ) as session:

        async def one(index: int) -> tuple[list[str], list[str]]:
            inv = await session.start_messaging(PERSON, subject=f"bench {index}")
            conversation = await inv.conversation()
            texts = texts_of(index, messages)
            async with conversation.messages() as stream:
                sent = [await conversation.send(text) for text in texts]
                await asyncio.gather(*sent)  # each delivered (OutgoingMessage is a Future)
                received: list[str] = []
                async for message in stream:
                    received.append(message.text)
                    if len(received) == messages:
                        break
                await conversation.leave()
                # The stream ends with the conversation: anything more is a duplicate.
                received += [message.text async for message in stream]
            return texts, received

        check(list(await asyncio.gather(*(one(-1 - i) for i in range(WARM_UP)))), "ucwa_async")
        before = await probe() if probe else {}
        started, cpu0 = time.perf_counter(), time.process_time()
        results = await asyncio.gather(*(one(i) for i in range(conversations)))
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu0
        after = await probe() if probe else {}
        delivered = session.stats.messages_delivered
    check(list(results), "ucwa_async")
    expected = (conversations + WARM_UP) * messages
    if delivered != expected:
        raise RuntimeError(f"ucwa_async: {delivered} of {expected} messages delivered")
    return figures(conversations, messages, elapsed, cpu, before, after)


Runner = Callable[[SimProcess, int, int], dict[str, Any]]


def _contender(run: Callable[..., Coroutine[Any, Any, dict[str, Any]]]) -> Runner:
    """A round of ``run`` (ours or the floor's) against ``sim``, with its counters probed."""

    def runner(sim: SimProcess, conversations: int, messages: int) -> dict[str, Any]:
        return asyncio.run(
            run(
                sim.discovery_url,
                sim.username,
                sim.password,
                conversations=conversations,
                messages=messages,
                probe=lambda: _counters(sim),
            )
        )

    return runner


async def _counters(sim: SimProcess) -> dict[str, Any]:
    return await asyncio.to_thread(sim.counters)


CONTENDERS: dict[str, Runner] = {"ours": _contender(run), "floor": _contender(convfloor.run)}


def measure(
    *,
    conversations: int,
    messages: int,
    rounds: int,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Per contender the median messages/s (and its spread), the median client CPU per
    message, and every round; ours / floor."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in CONTENDERS}
    for round_no in range(rounds):
        for name, runner in CONTENDERS.items():
            with SimProcess() as sim:
                result = runner(sim, conversations, messages)
            runs[name].append(result)
            wire = (
                f", {result['requests']} requests, {result['pgets']} P-GETs"
                if "requests" in result
                else ""
            )
            log(
                f"  round {round_no + 1}/{rounds}: {name:5s} {result['per_second']:8.1f}"
                f" messages/s ({result['messages']} in {result['seconds']:.2f} s,"
                f" {result['cpu_us_per_message']:.0f} us CPU/message{wire})"
            )
    cpu = {
        name: statistics.median(r["cpu_us_per_message"] for r in rs) for name, rs in runs.items()
    }
    return {
        "conversations": conversations,
        "messages_each_way": messages,
        "rounds": rounds,
        **rate_summary(runs),
        "cpu_us_per_message": cpu,
        "cpu_ratio_ours_floor": cpu["ours"] / cpu["floor"],
        "runs": runs,
    }
