"""The mission, black-box: many continues at once against the reference-sample server, with faults.

Only the public API is driven. The server is the ``Replay`` harness (Microsoft's bodies:
conversationLogs_ref, conversationLog_ref, continueMessaging_ref, continuePhoneAudio_ref,
messagingInvitation_ref, phoneAudioInvitation_ref, EventChannelDetails.md), in both wires,
with an event channel that keeps its batches by ``ack`` as EventChannelDetails.md describes
(a P-GET of the same ``ack`` is answered the same batch), and faults: continue POSTs answered
``500 ServiceFailure/CallbackChannelError`` (once, twice in a row), P-GETs answered 500, 503
with Retry-After, or dropped; events before the 201; link-only and embedded events; relative
and absolute hrefs; a listing with one log link, then a list. Each invitation's outcome is
asserted exactly.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web

import ucwa_async

from ._replay import Replay, created, ok
from ._server import HostileServer
from .test_reference_flows import LOG, LOGS, V, _body, _invitation_resource, _log, _session
from .test_reference_logs import LOG2, _replay, _second_log

pytestmark = pytest.mark.parametrize("wire", ["json", "xml"])

LOG3 = LOGS + "/conversationLog3"
REASON = {"code": "Timeout", "subcode": "Unanswered", "message": "Nobody answered the call."}
CCE = {
    "code": "ServiceFailure",
    "subcode": "CallbackChannelError",
    "message": "The remote event channel is not reachable",
}


@dataclass
class Plan:
    n: int
    log: str
    rel: str  # continueMessaging / continuePhoneAudio
    outcome: str  # connected, failed, timeout, unread-connected, unread-failed
    embedded: bool
    absolute: bool
    callback_errors: int  # 500 CallbackChannelError answers before the 201

    @property
    def kind(self) -> str:
        return "messagingInvitation" if self.rel == "continueMessaging" else "phoneAudioInvitation"

    @property
    def operation_id(self) -> str:
        return f"mission-{self.n}"


def _plans() -> list[Plan]:
    outcomes = ["connected", "failed", "timeout", "unread-connected", "connected", "failed"]
    plans = []
    for i in range(36):
        plans.append(
            Plan(
                n=900 + i,
                log=(LOG, LOG2, LOG3)[i % 3],
                rel=("continueMessaging", "continuePhoneAudio")[(i // 3) % 2],
                outcome=outcomes[i % len(outcomes)],
                embedded=(i // 2) % 2 == 0,
                absolute=(i // 4) % 2 == 0,
                callback_errors=(0, 0, 1, 0, 2)[i % 5],
            )
        )
    plans[7].outcome = "unread-failed"  # link-only: the GET says Failed
    plans[13].outcome = "unread-failed"  # embedded: the resource says Failed
    return plans


class Channel:
    """EventChannelDetails.md's channel: batch N is the answer to ``ack=N`` (re-served if
    asked again), with injected P-GET faults."""

    def __init__(self, replay: Replay, faults: dict[int, str]) -> None:
        self.replay = replay
        self.log: list[dict[str, Any]] = []
        self.pending: list[dict[str, Any]] = []
        self.changed = asyncio.Event()
        self.faults = faults  # P-GET number -> fault
        self.count = 0
        self.served: list[str] = []
        self.dropped: list[dict[str, Any]] = []
        self.held: dict[int, asyncio.Future[None]] = {}
        self.replaced = 0

    def release(self, batch: dict[str, Any]) -> None:
        self.pending.append(batch)
        self.changed.set()

    async def pget(self, request: web.Request) -> web.StreamResponse:
        self.count += 1
        fault = self.faults.pop(self.count, None)
        self.served.append(fault or "ok")
        if fault == "500":
            return self.replay._answer(500, {"code": "ServiceFailure", "message": "x"}, {})
        if fault == "503":
            body = {"code": "ServiceUnavailable", "message": "Busy"}
            return self.replay._answer(503, body, {"Retry-After": "1"})
        ack = int(request.query.get("ack") or 1)
        # EventChannelDetails.md: "If the client sends another P-GET with the same ack ID,
        # the previous P-GET will be released with a failure response (409 / Conflict) with
        # UCWA error subcode PGetReplaced."
        previous = self.held.pop(ack, None)
        if previous is not None and not previous.done():
            previous.set_result(None)
        replaced: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.held[ack] = replaced
        deadline = time.monotonic() + 0.25
        while len(self.log) < ack:
            if replaced.done():
                self.replaced += 1
                body = {"code": "Conflict", "subcode": "PGetReplaced", "message": "Replaced"}
                return self.replay._answer(409, body, {})
            if self.pending:
                # What has queued up goes in one batch, one sender entry per event source.
                senders = [sender for batch in self.pending for sender in batch["sender"]]
                self.pending.clear()
                self.log.append({"sender": senders})
                continue
            self.changed.clear()
            changed: asyncio.Future[Any] = asyncio.ensure_future(self.changed.wait())
            waits: set[asyncio.Future[Any]] = {changed, replaced}
            done, _ = await asyncio.wait(waits, timeout=max(0.0, deadline - time.monotonic()))
            changed.cancel()
            if not done:
                while len(self.log) < ack:
                    self.log.append({})
        if fault == "drop":
            # The batch is taken (it stays batch ``ack``) and lost on the way: the client
            # must ask for the same ack again (EventChannelDetails.md).
            self.dropped.append(self.log[ack - 1])
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        batch = self.log[ack - 1]
        links = {
            "self": {"href": f"{V}/events?ack={ack}"},
            "next": {"href": f"{V}/events?ack={ack + 1}"},
        }
        return self.replay._answer(200, {"_links": links, **batch}, {})


def _event(plan: Plan, origin: str, kind: str, state: str) -> dict[str, Any]:
    href = f"{V}/communication/invitations/{plan.n}"
    sender = V + "/communication"
    if plan.absolute:
        href, sender = origin + href, origin + sender
    event: dict[str, Any] = {"link": {"rel": plan.kind, "href": href}, "type": kind}
    if kind == "completed" and not plan.outcome.startswith("unread"):
        event["status"] = "Success" if state == "Connected" else "Failure"
        if state == "Failed":
            event["reason"] = dict(REASON)
    if plan.embedded:
        resource = _invitation_resource(plan.kind, plan.n, plan.operation_id, state)
        event["_embedded"] = {plan.kind: resource}
    return {"sender": [{"rel": "communication", "href": sender, "events": [event]}]}


async def test_many_continues_with_faults(
    server: HostileServer, wire: str, caplog: pytest.LogCaptureFixture
) -> None:
    replay = _replay(server, wire)
    origin = server.origin
    channel = Channel(replay, {3: "500", 5: "drop", 8: "503", 12: "drop", 13: "500"})
    harness = server.hooks["any"]

    async def any_route(request: web.Request) -> web.StreamResponse | None:
        if request.method == "GET" and request.path == V + "/events":
            replay.pgets.append(request.query.get("ack", ""))
            return await channel.pget(request)
        return await harness(request)

    server.hooks["any"] = any_route
    # conversationLogs_ref.md: first one log link (one <link> in XML), then a list.
    replay.route(
        "GET",
        LOGS,
        ok(
            {
                "rel": "conversationLogs",
                "_links": {"self": {"href": LOGS}, "conversationLog": {"href": LOG}},
            }
        ),
    )
    log3 = _log()
    for link in log3["_links"].values():
        link["href"] = link["href"].replace(LOG, LOG3)
    replay.route("GET", LOG2, ok(_second_log(origin)))  # absolute links
    replay.route("GET", LOG3, ok(log3))
    replay.delays[LOG3 + "/continueMessaging"] = 0.3  # its events come before its 201
    plans = {p.operation_id: p for p in _plans()}
    callback_left = {p.operation_id: p.callback_errors for p in plans.values()}
    posts: dict[str, int] = {}

    def post(request: Any) -> Any:
        operation_id = _body(request, wire)["operationId"]
        plan = plans[operation_id]
        posts[operation_id] = posts.get(operation_id, 0) + 1
        if callback_left[operation_id]:
            callback_left[operation_id] -= 1
            return 500, dict(CCE), {}
        href = f"{V}/communication/invitations/{plan.n}"
        final = {"timeout": None, "failed": "Failed", "unread-failed": "Failed"}.get(
            plan.outcome, "Connected"
        )
        replay.route(
            "GET",
            href,
            ok(_invitation_resource(plan.kind, plan.n, operation_id, final or "Connecting")),
        )
        batches = [_event(plan, origin, "started", "Connecting")]
        if final is not None:
            batches.append(_event(plan, origin, "completed", final))
            if plan.n % 4 == 0:  # told again (never resolved twice)
                batches.append(_event(plan, origin, "completed", final))
        if plan.n % 3 == 0:  # EventChannelDetails.md: one sender, several events
            sender = batches[0]["sender"][0]
            for batch in batches[1:]:
                sender["events"].extend(batch["sender"][0]["events"])
            batches = batches[:1]
        for batch in batches:
            channel.release(batch)
        # Absolute, relative, and the seeds' own ``//v1/...`` form.
        location = (
            origin + href,
            href,
            f"//v1/applications/833/communication/invitations/{plan.n}",
        )[plan.n % 3]
        return created(location)

    for log in (LOG, LOG2, LOG3):
        for rel in ("continueMessaging", "continuePhoneAudio"):
            replay.route("POST", log + "/" + rel, post)

    signals: list[Any] = []

    async def watch(stream: Any) -> None:
        async for event in stream:
            if isinstance(event, ucwa_async.ChannelReconnecting | ucwa_async.ChannelReconnected):
                signals.append(event)

    async with _session(
        server,
        wire,
        available_for=(),
        invitation_timeout=4.0,
        backoff=ucwa_async.Backoff(base=0.05, cap=0.2),
        retry_after_cap=1.0,
    ) as session:
        async with session.events() as stream:
            watcher = asyncio.create_task(watch(stream))
            async with asyncio.timeout(9):
                (only,) = await session.conversation_logs()
                assert only.href == origin + LOG
                replay.route(
                    "GET",
                    LOGS,
                    ok(
                        {
                            "rel": "conversationLogs",
                            "_links": {
                                "self": {"href": LOGS},
                                "conversationLog": [
                                    {"href": LOG},
                                    {"href": origin + LOG2},
                                    {"href": LOG3},
                                ],
                            },
                        }
                    ),
                )
                logs = {log.href: log for log in await session.conversation_logs()}
                assert list(logs) == [origin + LOG, origin + LOG2, origin + LOG3]

                async def start(plan: Plan) -> ucwa_async.Invitation[Any]:
                    log: ucwa_async.ConversationLog | str = logs[origin + plan.log]
                    if plan.n % 5 == 0:  # the log by its href (read again first)
                        log = origin + plan.log
                    timeout = 1.5 if plan.outcome == "timeout" else None
                    if plan.rel == "continueMessaging":
                        return await session.continue_messaging(
                            log, "Following up", operation_id=plan.operation_id, timeout=timeout
                        )
                    return await session.continue_phone_audio(
                        log, "tel:+14255551234", operation_id=plan.operation_id, timeout=timeout
                    )

                invitations = await asyncio.gather(*(start(p) for p in plans.values()))
                results = await asyncio.gather(*invitations, return_exceptions=True)
                assert session.pending_invitations == 0
                # Alone now: one continue answered CallbackChannelError twice in a row is
                # two reconnects, each announced once, then its 201 and its outcome.
                await asyncio.sleep(0.3)
                before = len(signals)
                last = Plan(999, LOG2, "continuePhoneAudio", "connected", False, True, 2)
                plans[last.operation_id] = last
                callback_left[last.operation_id] = 2
                alone = await start(last)
                assert (await alone).state == "Connected"
                await asyncio.sleep(0.3)  # let the last signals reach the stream
                tail = signals[before:]
                assert [type(s).__name__ for s in tail] == [
                    "ChannelReconnecting",
                    "ChannelReconnected",
                ] * 2, tail
                for signal in tail[::2]:
                    assert isinstance(signal.error, ucwa_async.CallbackChannelError), signal
                assert posts[last.operation_id] == 3
            watcher.cancel()
        # README: channel_state "goes `reconnecting` -> `connected`", the session's state
        # "new -> opening -> open -> closing -> closed": the enums read as those words.
        words: dict[str, str] = {"connected": "connected", "open": "open", "closed": "closed"}
        assert session.channel_state == ucwa_async.ChannelStatus.CONNECTED
        assert session.channel_state == words["connected"]
        assert session.state == words["open"]
    assert session.pending_invitations == 0
    assert session.state == ucwa_async.SessionState.CLOSED
    assert session.state == words["closed"]
    assert session.channel_state == words["closed"]

    for invitation, result in zip(invitations, results, strict=True):
        plan = plans[invitation.operation_id]
        assert invitation.href == f"{origin}{V}/communication/invitations/{plan.n}"
        assert posts[plan.operation_id] == plan.callback_errors + 1
        if plan.outcome in ("connected", "unread-connected"):
            assert not isinstance(result, BaseException), (plan, result)
            assert result.state == "Connected"
            assert result.operation_id == plan.operation_id
        elif plan.outcome == "timeout":
            assert isinstance(result, ucwa_async.InvitationTimeoutError), (plan, result)
            assert isinstance(result, TimeoutError)
            assert (result.href, result.operation_id) == (invitation.href, plan.operation_id)
        else:
            assert isinstance(result, ucwa_async.InvitationFailedError), (plan, result)
            assert (result.href, result.operation_id) == (invitation.href, plan.operation_id)
            if plan.outcome == "failed":
                assert result.reason is not None
                assert (result.reason.code, result.reason.subcode, result.reason.message) == (
                    REASON["code"],
                    REASON["subcode"],
                    REASON["message"],
                )
    assert len(invitations) == 36
    # Every reconnect announced once, in order: Reconnecting, then its Reconnected.
    kinds = [type(s).__name__ for s in signals]
    assert kinds, channel.served
    assert kinds == ["ChannelReconnecting", "ChannelReconnected"] * (len(kinds) // 2), kinds
    for signal in signals:
        if isinstance(signal, ucwa_async.ChannelReconnected):
            assert signal.attempts >= 1
            assert signal.downtime >= 0
        else:
            assert signal.reason
    assert "drop" in channel.served
    assert any(batch.get("sender") for batch in channel.dropped), channel.dropped
    assert "503" in channel.served
    assert replay.unexpected == []
    # Closed clean: nothing the library logged as an error (a task's lost exception, a
    # double resolution) along the way.
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []
