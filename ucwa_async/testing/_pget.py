"""The event channel endpoint: ``GET {app}/events?ack=N&timeout=S``.

Holds the request until events exist or ``min(timeout, pget_timeout_cap)`` passes,
answers with a batch (see :mod:`ucwa_async.testing._channel` for sequencing), and
applies the channel faults: drop mid-poll, resync, duplicate and reordered events,
and the pathological servers (instant empty polls, ``resume``-only answers, endless
resync, ``Retry-After: 0`` or in the past, 404 forever, one giant batch).
"""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from ucwa_async.testing._application import Endpoints
from ucwa_async.testing._channel import ChannelEvent, SimEvent, Wake
from ucwa_async.testing._faults import Armed
from ucwa_async.testing._http import Ctx, body, error
from ucwa_async.testing._invitations import event_view
from ucwa_async.testing._render import Ev, render_batch
from ucwa_async.testing._state import Application
from ucwa_async.testing._urls import styled
from ucwa_async.testing._xml import UCWA_NS, xml_attr

__all__ = ["events"]

_DEFAULT_TIMEOUT = 180.0
_DROP_HOLD = 0.2  # "mid-poll": long enough for events already due to be batched
_PAST_DATE = "Wed, 21 Oct 2015 07:28:00 GMT"
# An XML event element without a link, padded so that a big malformed batch has a
# realistic number of events per megabyte.
_XML_MALFORMED_EVENT = '<added note="{}"/>'.format("x" * 48)


def _resolve(fut: asyncio.Future[Wake], why: Wake) -> None:
    if not fut.done():
        fut.set_result(why)


async def _wait(app: Application, hold: float) -> Wake:
    channel = app.channel
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[Wake] = loop.create_future()
    channel.waiter = fut
    handle = loop.call_later(hold, _resolve, fut, "timeout")
    try:
        return await fut
    finally:
        handle.cancel()
        if channel.waiter is fut:
            channel.waiter = None
        app.last_activity = channel.last_pget_end = loop.time()


def _events_href(app: Application, ack: int) -> str:
    return f"{app.path}/events?ack={ack}"


async def events(ep: Endpoints, ctx: Ctx) -> web.Response:
    world, faults, cfg = ep.world, ep.faults, ep.world.config
    world.counters.pgets += 1
    if faults.has("not_found_forever") and faults.take("not_found_forever", ctx.tags):
        ctx.fault = "not_found_forever"
        return error(ctx, 404, "NotFound", "ApplicationNotFound", "The application does not exist.")
    app = ep.app(ctx)
    channel = app.channel
    query = ctx.request.query
    try:
        ack = int(query.get("ack", ""))
    except ValueError:
        ack = -1  # no usable ack: the client must resync
    try:
        hold = float(query.get("timeout", _DEFAULT_TIMEOUT))
    except ValueError:
        return error(ctx, 400, "ParameterValidationFailure", None, "timeout must be a number.")
    hold = max(0.0, min(hold, cfg.pget_timeout_cap))

    # At most one pending P-GET per application: the newer one wins.
    if channel.pget_pending:
        world.counters.pget_replaced += 1
        channel.wake("replaced")

    pathological = _pathological(ep, ctx, app, ack)
    if pathological is not None:
        return pathological
    if faults.has("resync"):
        armed = faults.take("resync", ctx.tags)
        if armed is not None:
            ctx.fault = "resync"
            if armed.discard:
                channel.reset()
            return _resync(ep, ctx, app)
    drop = faults.take("drop_pget", ctx.tags) if faults.has("drop_pget") else None
    if drop is not None:
        ctx.fault = "drop_pget"
        hold = min(hold, _DROP_HOLD)

    kind = channel.classify(ack)
    instant = (
        faults.take("instant_empty_polls", ctx.tags)
        if kind == "new" and not channel.pending and faults.has("instant_empty_polls")
        else None
    )
    if instant is not None:
        ctx.fault = "instant_empty_polls"  # answered below as a timeout page, at once
        app.last_activity = channel.last_pget_end = asyncio.get_running_loop().time()
    elif kind == "new" and not channel.pending:
        why = await _wait(app, hold)
        if why == "replaced":
            return error(
                ctx,
                409,
                "Conflict",
                "PGetReplaced",
                "Another P-GET with the same ack replaced this one.",
            )
        if why == "gone":
            status = world.gone.get(app.id, 404)
            # The reference's form: the HTTP class as code, the reason as subcode.
            code, subcode = (
                ("Gone", "InactiveApplicationExpired")
                if status == 410
                else ("NotFound", "ApplicationNotFound")
            )
            return error(ctx, status, code, subcode, "The application was deleted.")
        kind = channel.classify(ack)  # a discarding resync may have moved the window
    else:
        app.last_activity = channel.last_pget_end = asyncio.get_running_loop().time()

    if kind == "resync":
        return _resync(ep, ctx, app)
    if kind == "redeliver":
        world.counters.redeliveries += 1
        batch = channel.batches[ack]
    elif channel.pending:
        batch = channel.form(ack, cfg.max_events_per_batch)
        batch = _apply_batch_faults(ep, ctx, app, ack, batch)
    else:
        batch = []  # timeout (or shutdown): just the links, same ack next time

    if drop is not None:
        transport = ctx.request.transport
        if transport is not None:
            transport.abort()
        return web.Response(status=200)  # never reaches the client
    if batch:
        world.counters.batches_delivered += 1
    next_ack = ack + 1 if ack in channel.batches else ack
    return body(ctx, _render(ep, ctx, app, ack, next_ack, batch))


def _apply_batch_faults(
    ep: Endpoints, ctx: Ctx, app: Application, ack: int, batch: list[ChannelEvent]
) -> list[ChannelEvent]:
    faults = ep.faults
    changed = batch
    if faults.has("duplicate_events") and faults.take("duplicate_events", ctx.tags):
        ctx.fault = "duplicate_events"
        changed = [e for e in changed for _ in (0, 1)]
    if (
        len(changed) > 1
        and faults.has("reorder_events")
        and faults.take("reorder_events", ctx.tags)
    ):
        ctx.fault = "reorder_events"
        changed = changed[::-1]
    if changed is not batch:
        app.channel.replace_batch(ack, changed)  # a redelivery must repeat it exactly
    return changed


def _resync(ep: Endpoints, ctx: Ctx, app: Application) -> web.Response:
    ep.world.counters.resyncs += 1
    href = _events_href(app, app.channel.low)
    return body(
        ctx, render_batch(self_href=None, links=[("resync", href)], senders=[], wire=ctx.wire)
    )


def _render(
    ep: Endpoints,
    ctx: Ctx,
    app: Application,
    ack: int,
    next_ack: int,
    batch: list[ChannelEvent],
) -> bytes:
    cfg = ep.world.config
    style, embed = cfg.event_href_style, cfg.embed_resources
    origin = app.origin
    senders: list[tuple[str, str, list[Ev]]] = []
    communication = ("communication", styled(app.path + "/communication", style, origin))
    for e in batch:
        # Consecutive events of one sender share a block; a sender recurs when the
        # order requires it (UCWA preserves event order across senders).
        if isinstance(e, SimEvent):
            sender, ev = communication, event_view(e, style, origin, embed)
        else:
            sender, ev = e.sender, e.event
        if senders and (senders[-1][0], senders[-1][1]) == sender:
            senders[-1][2].append(ev)
        else:
            senders.append((sender[0], sender[1], [ev]))
    return render_batch(
        self_href=_events_href(app, ack),
        links=[("next", _events_href(app, next_ack))],
        senders=senders,
        wire=ctx.wire,
        status_as_attribute=cfg.xml_status_as_attribute,
    )


def _pathological(ep: Endpoints, ctx: Ctx, app: Application, ack: int) -> web.Response | None:
    """The pathological-server faults answered before any sequencing (at once)."""
    faults = ep.faults
    answer: web.Response | None = None
    for kind in ("retry_after_zero", "retry_after_past"):
        if faults.has(kind) and faults.take(kind, ctx.tags):
            ctx.fault = kind
            when = "0" if kind == "retry_after_zero" else _PAST_DATE
            answer = error(
                ctx,
                503,
                "ServiceFailure",
                "ServiceUnavailable",
                "Try again later (injected).",
                headers={"Retry-After": when},
            )
            break
    else:
        if faults.has("endless_resync") and faults.take("endless_resync", ctx.tags):
            ctx.fault = "endless_resync"
            answer = _resync(ep, ctx, app)
        elif faults.has("resume_only") and faults.take("resume_only", ctx.tags):
            ctx.fault = "resume_only"
            links = [("resume", _events_href(app, ack))]
            answer = body(ctx, render_batch(self_href=None, links=links, senders=[], wire=ctx.wire))
        elif faults.has("giant_batch"):
            armed = faults.take("giant_batch", ctx.tags)
            if armed is not None:
                ctx.fault = "giant_batch"
                answer = body(ctx, _giant_batch(ep, ctx, app, ack, armed))
    if answer is not None:
        # The client did poll: the channel counts as alive for the POSTs.
        app.last_activity = app.channel.last_pget_end = asyncio.get_running_loop().time()
    return answer


def _giant_batch(ep: Endpoints, ctx: Ctx, app: Application, ack: int, armed: Armed) -> bytes:
    """One batch of ``armed.size`` events (built by joining one rendered event: fast)."""
    cfg = ep.world.config
    count = armed.size or 1000  # random mode arms no size
    href = _events_href(app, ack)  # self, and next: the batch is not retained
    sender = styled(app.path + "/communication", cfg.event_href_style, app.origin)
    target = styled(
        app.path + "/communication/conversations/giant", cfg.event_href_style, app.origin
    )
    if ctx.wire == "json":
        if armed.malformed:
            item = "0"
        else:
            item = json.dumps({"type": "added", "link": {"rel": "conversation", "href": target}})
        links = json.dumps({"self": {"href": href}, "next": {"href": href}})
        head = json.dumps({"rel": "communication", "href": sender})[:-1]
        text = f'{{"_links":{links},"sender":[{head},"events":['
        # bytes repetition is one memcpy: the simulator shares the test's loop
        return text.encode() + item.encode() + (b"," + item.encode()) * (count - 1) + b"]}]}"
    if armed.malformed:
        item = _XML_MALFORMED_EVENT
    else:
        item = f'<added rel="conversation" href="{xml_attr(target)}"/>'
    head = (
        f'<?xml version="1.0" encoding="utf-8"?><events href="{xml_attr(href)}" '
        f'xmlns="{UCWA_NS}"><link rel="next" href="{xml_attr(href)}"/>'
        f'<sender rel="communication" href="{xml_attr(sender)}">'
    )
    return head.encode() + item.encode() * count + b"</sender></events>"
