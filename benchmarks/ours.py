"""Throughput through ``ucwa_async.Session``: the same work as :mod:`benchmarks.floor`."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import ucwa_async
from benchmarks.floor import PHONE_NUMBER


async def pick_logs(session: ucwa_async.Session) -> tuple[Any, Any]:
    """A conversationLog offering continueMessaging, and one offering continuePhoneAudio."""
    logs = await session.conversation_logs()
    im = next(log for log in logs if log.link("continueMessaging"))
    phone = next(log for log in logs if log.link("continuePhoneAudio"))
    return im, phone


def open_session(discovery: str, user: str, password: str, **options: Any) -> ucwa_async.Session:
    return ucwa_async.Session(discovery, auth=ucwa_async.PasswordAuth(user, password), **options)


async def run(
    discovery: str,
    user: str,
    password: str,
    *,
    total: int,
    concurrency: int,
    wire_format: str = "json",
) -> dict[str, float]:
    """``total`` invitations (even: IM, odd: phone audio) at ``concurrency``; timed."""
    async with open_session(
        discovery, user, password, wire_format=wire_format, invitation_timeout=300.0
    ) as session:
        im_log, phone_log = await pick_logs(session)

        async def one(n: int) -> str:
            done: ucwa_async.MessagingInvitation | ucwa_async.PhoneAudioInvitation
            if n % 2 == 0:
                done = await (await session.continue_messaging(im_log, message="benchmark"))
            else:
                done = await (await session.continue_phone_audio(phone_log, PHONE_NUMBER))
            return str(done.state)

        counter = iter(range(total))
        outcomes: list[str] = []

        async def worker() -> None:
            for n in counter:
                outcomes.append(await one(n))

        for _ in range(min(20, total)):  # warm-up, as the floor does
            await one(0)
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    if len(outcomes) != total or any(o != "Connected" for o in outcomes):
        raise RuntimeError(f"ucwa_async: {len(outcomes)} of {total} completed, not all Connected")
    return {"invitations": total, "seconds": elapsed, "per_second": total / elapsed}
