"""Section 3: the client's cost per event of one 500-event batch, JSON and XML.

The batch is a real one: 250 invitations are created on a fresh simulator (each emits
``started`` + ``completed``), then the event channel is read once with
``Accept: application/json`` and the *same* batch (same ``ack``: the simulator re-sends
an unacknowledged batch unchanged) with the UCWA XML media type. Timed in this
process, no network:

- ``_wire.decode`` alone, ``_models.parse_event_batch`` alone (of the decoded dict),
  and both (bytes -> EventBatch);
- **decode + parse + dispatch**, what the event channel does with the body: the
  channel's own decoding (``ChannelState.on_response_steps``: a large body a step at a
  time), then its delivery (``EventReader.take`` slices handed to the session's
  ``SessionChannelHost.deliver``: events published, correlated by the operations table,
  fed to the conversations table), run with ``run_steps`` as ``ChannelRunner`` runs
  them. The session is a real one, built but not opened (no I/O); its 250 invitations
  are started through ``OperationTable.start`` with the continue POST answered 201 in
  process, so each of the batch's ``completed`` events resolves a real future;
- the floor's equivalent (``benchmarks.floor``'s event loop): ``json.loads``, then per
  event the ``operationId`` lookup in a dict of futures and ``set_result`` on
  ``completed``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import statistics
import time
import uuid
from collections.abc import Callable, Generator, Mapping
from typing import Any

import aiohttp

import ucwa_async
from benchmarks.floor import MESSAGE_HREF, PHONE_NUMBER, resolve_completed, sign_in
from benchmarks.sim import SimProcess
from ucwa_async._channel import DELIVERY_SLICE, run_steps
from ucwa_async._channel_host import SessionChannelHost
from ucwa_async._core import models as _models
from ucwa_async._core import wire as _wire
from ucwa_async._core.channel import ChannelState, Deliver
from ucwa_async._http import HttpResponse

EVENTS = 500
_ORIGIN = "http://127.0.0.1:9"  # never connected to: the harness does no I/O


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
            headers = {**ctx["auth"], "Accept": _wire.media_type(wire)}
            async with http.get(ctx["events"] + "&timeout=5", headers=headers) as resp:
                out[wire] = (await resp.read(), resp.headers["Content-Type"])
    return out


def capture() -> dict[str, tuple[bytes, str]]:
    """The same 500-event batch as (body, content type), per wire format."""
    with SimProcess(require_channel=False, max_events_per_batch=EVENTS) as sim:
        return asyncio.run(_capture(sim))


def _decode_parse(body: bytes, content_type: str) -> _models.EventBatch:
    return _models.parse_event_batch(_wire.decode(body, content_type))


def _time(fn: Callable[[], object], repeat: int, number: int) -> float:
    """Median seconds per call over ``repeat`` runs of ``number`` calls."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - start) / number)
    return statistics.median(samples)


# -- decode + parse + dispatch -------------------------------------------------------


def _invitations(batch: _models.EventBatch) -> list[tuple[str, str, str]]:
    """(operationId, rel, href) of each invitation the batch starts."""
    out = []
    for event in batch.events:
        if event.type == "started" and event.operation_id is not None:
            out.append((event.operation_id, event.link.rel, event.link.href))
    if len(out) != EVENTS // 2:
        raise RuntimeError(f"the batch starts {len(out)} invitations, not {EVENTS // 2}")
    return out


async def _session_with(
    http: aiohttp.ClientSession, app_url: str, invitations: list[tuple[str, str, str]]
) -> tuple[ucwa_async.Session, SessionChannelHost, list[ucwa_async.Invitation[Any]]]:
    """A session's parts (built, not opened) with ``invitations`` pending, each started
    through ``OperationTable.start`` with its continue POST answered 201 in process."""
    session = ucwa_async.Session(
        _ORIGIN + "/autodiscover", auth=ucwa_async.TokenAuth("benchmark"), http_session=http
    )
    session._build_parts()
    app, ops, host = session._application, session._operations, session._host
    assert host is not None
    app.url = app_url
    location = {op: href for op, _rel, href in invitations}

    async def answer_201(url: str, body: Mapping[str, Any]) -> tuple[HttpResponse, int]:
        response = HttpResponse("POST", url, 201, None, b"", location=location[body["operationId"]])
        return response, app.generation

    ops._post_continue = answer_201  # type: ignore[method-assign]
    started = []
    for op, rel, _href in invitations:
        model: Any = (
            _models.MessagingInvitation
            if rel == "messagingInvitation"
            else _models.PhoneAudioInvitation
        )
        body = {"operationId": op}
        started.append(await ops.start(rel, _ORIGIN + "/continue", body, op, 300.0, model))
    return session, host, started


def _deliver_steps(
    host: SessionChannelHost, reader: _models.EventReader
) -> Generator[None, None, None]:
    # ChannelRunner._deliver_steps, without its logging guard.
    while reader.items:
        host.deliver(reader.take(DELIVERY_SLICE))
        yield


async def _ours_round(
    http: aiohttp.ClientSession,
    body: bytes,
    content_type: str,
    events_url: str,
    invitations: list[tuple[str, str, str]],
) -> tuple[float, float]:
    """Seconds from the body to every invitation resolved, as the event channel does it,
    and of those the channel's decoding (the rest: parse + dispatch)."""
    session, host, started = await _session_with(
        http, events_url.split("/events", 1)[0], invitations
    )
    state = ChannelState(events_url)
    begin = time.perf_counter()
    action = await run_steps(state.on_response_steps(200, content_type, body))
    if not isinstance(action, Deliver):
        raise RuntimeError(f"the channel made {action!r} of the batch")
    decoded = time.perf_counter() - begin
    await run_steps(_deliver_steps(host, action.events))
    elapsed = time.perf_counter() - begin
    if not all(i.done() and i.state == "Connected" for i in started):
        raise RuntimeError("not every invitation was resolved Connected by the batch")
    session._operations.close_all()
    return elapsed, decoded


async def _floor_round(body: bytes, invitations: list[tuple[str, str, str]]) -> float:
    """The floor's dispatch (``benchmarks.floor.resolve_completed``) on the same body."""
    loop = asyncio.get_running_loop()
    waiting: dict[str, asyncio.Future[str]] = {op: loop.create_future() for op, _, _ in invitations}
    futures = list(waiting.values())
    begin = time.perf_counter()
    resolve_completed(json.loads(body), waiting)
    elapsed = time.perf_counter() - begin
    if not all(f.done() for f in futures):
        raise RuntimeError("the floor did not resolve every invitation")
    return elapsed


async def _dispatch_rounds(
    bodies: dict[str, tuple[bytes, str]], rounds: int
) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    async with aiohttp.ClientSession() as http:
        for wire, (body, content_type) in bodies.items():
            batch = _models.parse_event_batch(_wire.decode(body, content_type))
            invitations = _invitations(batch)
            assert batch.self_href is not None
            events_url = _ORIGIN + batch.self_href
            samples = [
                await _ours_round(http, body, content_type, events_url, invitations)
                for _ in range(rounds)
            ]
            out[wire] = {
                "decode_parse_dispatch_s": statistics.median(s[0] for s in samples),
                "channel_decode_s": statistics.median(s[1] for s in samples),
                "parse_dispatch_s": statistics.median(s[0] - s[1] for s in samples),
            }
        body = bodies["json"][0]
        floor = [await _floor_round(body, invitations) for _ in range(rounds)]
        loads = []
        for _ in range(rounds):
            begin = time.perf_counter()
            decoded = json.loads(body)
            loads.append(time.perf_counter() - begin)
            del decoded  # freed outside the timing, as in the rounds above
        out["floor"] = {
            "loads_dispatch_s": statistics.median(floor),
            "loads_s": statistics.median(loads),
        }
    return out


def measure(*, repeat: int, number: int) -> dict[str, Any]:
    bodies = capture()
    result: dict[str, Any] = {"events": EVENTS}
    for wire, (body, content_type) in bodies.items():
        decoded = _wire.decode(body, content_type)
        batch = _models.parse_event_batch(decoded)
        if len(batch.events) != EVENTS:
            raise RuntimeError(f"{wire}: captured {len(batch.events)} events, not {EVENTS}")
        result[wire] = {
            "bytes": len(body),
            "content_type": content_type,
            "decode_s": _time(functools.partial(_wire.decode, body, content_type), repeat, number),
            "parse_s": _time(functools.partial(_models.parse_event_batch, decoded), repeat, number),
            "decode_parse_s": _time(
                functools.partial(_decode_parse, body, content_type), repeat, number
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
    dispatch = asyncio.run(_dispatch_rounds(bodies, rounds=max(5, repeat * number // 4)))
    for wire in ("json", "xml"):
        result[wire].update(dispatch[wire])
    floor = result["floor"] = dispatch["floor"]
    per_event = {
        "ours_json_us": result["json"]["decode_parse_dispatch_s"] / EVENTS * 1e6,
        "ours_xml_us": result["xml"]["decode_parse_dispatch_s"] / EVENTS * 1e6,
        "floor_us": floor["loads_dispatch_s"] / EVENTS * 1e6,
    }
    result["per_event"] = per_event
    # The target: decode + parse + dispatch <= 2x the floor's, JSON.
    result["ratio_client_floor"] = per_event["ours_json_us"] / per_event["floor_us"]
    return result
