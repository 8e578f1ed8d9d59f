"""Section 3: decoding the same 500-event batch in JSON and in XML.

The batch is a real one: 250 invitations are created on a fresh simulator (each emits
``started`` + ``completed``), then the event channel is read once with
``Accept: application/json`` and the *same* batch (same ``ack``: the simulator re-sends
an unacknowledged batch unchanged) with the UCWA XML media type. Timed in this
process, no network: ``_wire.decode`` alone, and ``_wire.decode`` +
``_models.parse_event_batch`` (bytes -> EventBatch, what the event channel does).
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp

from benchmarks.floor import MESSAGE_HREF, PHONE_NUMBER, sign_in
from benchmarks.sim import SimProcess
from ucwa_async._core import models as _models
from ucwa_async._core import wire as _wire

EVENTS = 500


async def _capture(sim: SimProcess) -> dict[str, tuple[bytes, str]]:
    async with aiohttp.ClientSession() as http:
        ctx = await sign_in(http, sim.discovery_url, sim.username, sim.password, "x")
        targets = ctx["targets"]
        for n in range(EVENTS // 2):
            op = uuid.uuid4().hex
            if n % 2 == 0:
                body: dict[str, Any] = {
                    "operationId": op,
                    "_links": {"message": {"href": MESSAGE_HREF}},
                }
                target = targets["continueMessaging"]
            else:
                body = {"operationId": op, "phoneNumber": PHONE_NUMBER}
                target = targets["continuePhoneAudio"]
            async with http.post(target, json=body, headers=ctx["auth"]) as resp:
                assert resp.status == 201, resp.status
        out: dict[str, tuple[bytes, str]] = {}
        for wire in ("json", "xml"):
            headers = {**ctx["auth"], "Accept": _wire.media_type(wire)}  # type: ignore[arg-type]
            async with http.get(ctx["events"] + "&timeout=5", headers=headers) as resp:
                out[wire] = (await resp.read(), resp.headers["Content-Type"])
    return out


def capture() -> dict[str, tuple[bytes, str]]:
    """The same 500-event batch as (body, content type), per wire format."""
    with SimProcess(require_channel=False, max_events_per_batch=EVENTS) as sim:
        return asyncio.run(_capture(sim))


def _time(fn: Callable[[], object], repeat: int, number: int) -> float:
    """Median seconds per call over ``repeat`` runs of ``number`` calls."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - start) / number)
    return statistics.median(samples)


def measure(*, repeat: int, number: int) -> dict[str, Any]:
    bodies = capture()
    result: dict[str, Any] = {"events": EVENTS}
    for wire, (body, content_type) in bodies.items():
        batch = _models.parse_event_batch(_wire.decode(body, content_type))
        if len(batch.events) != EVENTS:
            raise RuntimeError(f"{wire}: captured {len(batch.events)} events, not {EVENTS}")
        result[wire] = {
            "bytes": len(body),
            "content_type": content_type,
            "decode_s": _time(lambda b=body, c=content_type: _wire.decode(b, c), repeat, number),
            "decode_parse_s": _time(
                lambda b=body, c=content_type: _models.parse_event_batch(_wire.decode(b, c)),
                repeat,
                number,
            ),
        }
    same = _models.parse_event_batch(_wire.decode(*bodies["json"])) == _models.parse_event_batch(
        _wire.decode(*bodies["xml"])
    )
    result["same_batch"] = same
    result["ratio_decode_parse"] = (
        result["xml"]["decode_parse_s"] / result["json"]["decode_parse_s"]
    )
    result["ratio_decode"] = result["xml"]["decode_s"] / result["json"]["decode_s"]
    return result
