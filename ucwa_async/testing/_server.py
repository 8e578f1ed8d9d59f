"""The aiohttp.web application: route table and the per-request pipeline.

Every route goes through one closure (no middleware chain, to keep the hot path
short) that: rolls random faults, applies latency, 503/429 faults, the token
check with its ``WWW-Authenticate`` challenge, runs the handler, cuts the body for
``malformed_body``, and appends a :class:`RequestRecord` (never the token).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable

from aiohttp import web
from multidict import CIMultiDict

from ucwa_async.testing import _pget, _signin
from ucwa_async.testing._application import Endpoints
from ucwa_async.testing._conv_endpoints import ConversationEndpoints
from ucwa_async.testing._faults import FaultInjector
from ucwa_async.testing._http import Ctx, Reply, error, error_reason
from ucwa_async.testing._records import RequestRecord
from ucwa_async.testing._render import response_wire
from ucwa_async.testing._state import World
from ucwa_async.testing._urls import (
    APPLICATIONS_PATH,
    DISCOVERY_PATH,
    TOKEN_PATH,
    USER_PATH,
    pool_prefix,
)
from ucwa_async.testing._validate import BodyError

__all__ = ["build_app"]

_log = logging.getLogger("ucwa_async.testing")

Handler = Callable[[Ctx], Awaitable[web.StreamResponse]]
_RETRY_FAULTS = (
    ("service_unavailable", 503, "ServiceFailure", "ServiceUnavailable"),
    ("too_many_requests", 429, "TooManyRequests", None),
)


_LOGIN_PATH = "/adfs/ls/"
_LOGIN_PAGE = b"<html><head><title>Sign In</title></head><body><form>...</form></body></html>"


_ACCESS_DENIED_PAGE = (
    b"<html><head><title>401 - Unauthorized: Access is denied</title></head>"
    b"<body><h2>401 - Unauthorized: Access is denied due to invalid credentials.</h2></body></html>"
)


def _format_retry_after(seconds: float) -> str:
    # RFC 9110: delay-seconds is a non-negative whole number; round up so a
    # client never comes back earlier than asked.
    return str(max(0, math.ceil(seconds)))


class _Pipeline:
    def __init__(self, world: World, faults: FaultInjector, log: deque[RequestRecord]) -> None:
        self.world = world
        self.faults = faults
        self.log = log

    def wrap(
        self, method: str, kind: str, handler: Handler, *, auth: bool, hop: int
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        tags = frozenset({"any", method.lower(), kind})
        pool = pool_prefix(hop)

        async def route(request: web.Request) -> web.StreamResponse:
            host_header = request.host
            host = host_header.rsplit(":", 1)[0] if ":" in host_header else host_header
            wire, content_type = response_wire(request.headers.get("Accept"))
            ctx = Ctx(
                request, kind, tags, wire, content_type, host, "http://" + host_header, pool, hop
            )
            status = 499  # client went away before an answer
            try:
                response = await self._handle(ctx, handler, auth)
                status = response.status
                return response
            finally:
                self.log.append(
                    RequestRecord(
                        request.method,
                        request.path,
                        request.query_string,
                        host,
                        "Authorization" in request.headers,
                        status,
                        kind,
                        ctx.fault,
                    )
                )

        return route

    async def _handle(self, ctx: Ctx, handler: Handler, auth: bool) -> web.StreamResponse:
        world, faults = self.world, self.faults
        world.counters.requests += 1
        faults.roll()
        delay = world.config.latency
        extra = faults.latency_for(ctx.tags)
        if extra:
            world.counters.faults_injected["latency"] += 1
            delay += extra
        once = faults.take("latency_once", ctx.tags) if faults.has("latency_once") else None
        if once is not None:
            ctx.fault = "latency"
            delay += once.retry_after or 0.0
        if delay > 0:
            await asyncio.sleep(delay)
        for kind, status, code, subcode in _RETRY_FAULTS:
            armed = faults.take(kind, ctx.tags) if faults.has(kind) else None
            if armed is not None:
                ctx.fault = kind
                headers = {}
                if armed.retry_after is not None:
                    headers["Retry-After"] = _format_retry_after(armed.retry_after)
                return error(
                    ctx, status, code, subcode, "Try again later (injected).", headers=headers
                )
        hostile = self._hostile(ctx, auth)
        if hostile is not None:
            return hostile
        if auth:
            ctx.user = world.token_user(ctx.request.headers.get("Authorization"), ctx.host)
            if ctx.user is None:
                return self._unauthorized(ctx)
        try:
            response = await handler(ctx)
        except Reply as reply:
            return reply.response
        except BodyError as exc:
            return error_reason(ctx, exc.status, exc.reason)
        except Exception:  # a simulator bug must still answer, and be visible in the log
            _log.exception("simulator handler failed: %s %s", ctx.request.method, ctx.kind)
            return error(ctx, 500, "ServiceFailure", None, "Simulator internal error.")
        late = faults.take("late_answer", ctx.tags) if faults.has("late_answer") else None
        if late is not None:  # the handler ran: the server acted, the answer comes later
            ctx.fault = "late_answer"
            await asyncio.sleep(late.retry_after or 0.0)
            if late.discard:  # the answer is lost: the connection closes without one
                transport = ctx.request.transport
                if transport is not None:
                    transport.abort()
                raise web.HTTPException()  # nothing is written to a closed connection
        if (
            faults.has("malformed_body")
            and isinstance(response, web.Response)
            and response.status < 300
            and response.body
        ):
            armed = faults.take("malformed_body", ctx.tags)
            if armed is not None:
                ctx.fault = "malformed_body"
                raw = response.body
                assert isinstance(raw, bytes)
                response.body = raw[: max(len(raw) // 2, 1)] + b"\x00"
        return response

    def _hostile(self, ctx: Ctx, auth: bool) -> web.Response | None:
        """The answers of ``redirect_3xx`` and ``unauthorized_forever`` (on routes that
        take a token: the token endpoint keeps granting), if armed."""
        faults = self.faults
        if faults.has("redirect_3xx"):
            armed = faults.take("redirect_3xx", ctx.tags)
            if armed is not None:
                ctx.fault = "redirect_3xx"
                status = armed.status if 300 <= armed.status < 400 else 302
                login = ctx.origin + _LOGIN_PATH + "?ReturnUrl=" + ctx.request.path
                return web.Response(
                    status=status,
                    body=_LOGIN_PAGE,
                    headers={"Location": login, "Content-Type": "text/html; charset=utf-8"},
                )
        if auth and faults.has("unauthorized_forever"):
            armed = faults.take("unauthorized_forever", ctx.tags)
            if armed is not None:
                if armed.subcode == "html":
                    self.world.counters.token_rejections += 1
                    response = web.Response(
                        status=401,
                        body=_ACCESS_DENIED_PAGE,
                        headers={"Content-Type": "text/html; charset=utf-8"},
                    )
                else:
                    response = self._unauthorized(ctx)
                ctx.fault = "unauthorized_forever"
                return response
        return None

    def _unauthorized(self, ctx: Ctx) -> web.Response:
        world = self.world
        world.counters.token_rejections += 1
        header = ctx.request.headers.get("Authorization", "")
        if header.startswith("Bearer ") and header[7:].strip() in world.revoked:
            ctx.fault = "expire_tokens"
        headers: CIMultiDict[str] = CIMultiDict(_signin.challenge_headers(world, ctx))
        # CreateAnApplication.md, step 4: UCWA's own 401 carries IIS's HTML page as well.
        headers["Content-Type"] = "text/html"
        return web.Response(status=401, body=_ACCESS_DENIED_PAGE, headers=headers)


def build_app(world: World, faults: FaultInjector, log: deque[RequestRecord]) -> web.Application:
    """The aiohttp application serving the URL layout of :mod:`ucwa_async.testing._urls`."""
    pipe = _Pipeline(world, faults, log)
    ep = Endpoints(world, faults)
    cv = ConversationEndpoints(ep)
    app = web.Application(handler_args={"max_field_size": 16384})
    router = app.router

    def add(method: str, path: str, kind: str, handler: Handler, *, auth: bool, hop: int) -> None:
        router.add_route(method, path, pipe.wrap(method, kind, handler, auth=auth, hop=hop))

    def signin(fn: Callable[[World, Ctx], Awaitable[web.StreamResponse]]) -> Handler:
        return lambda ctx: fn(world, ctx)

    add("POST", TOKEN_PATH, "token", signin(_signin.token), auth=False, hop=0)
    for hop in range(world.config.redirect_hops + 1):
        pool = pool_prefix(hop)
        a = pool + APPLICATIONS_PATH + "/{app}"
        comm = a + "/communication"
        logs = comm + "/conversationLogs"
        # aiohttp tries routes sharing a prefix in order: the hot ones go first.
        routes: list[tuple[str, str, str, Handler, bool]] = [
            ("GET", a + "/events", "pget", lambda ctx: _pget.events(ep, ctx), True),
            ("POST", logs + "/{log}/continueMessaging", "continue", ep.continue_messaging, True),
            ("POST", logs + "/{log}/continuePhoneAudio", "continue", ep.continue_phone_audio, True),
            ("GET", pool + DISCOVERY_PATH, "discovery", signin(_signin.discovery), False),
            ("GET", pool + USER_PATH, "user", signin(_signin.user), True),
            ("POST", pool + APPLICATIONS_PATH, "applications", ep.create_application, True),
            ("GET", a, "application", ep.get_application, True),
            ("DELETE", a, "application", ep.delete_application, True),
            ("GET", a + "/me", "me", ep.get_me, True),
            ("POST", a + "/me/reportMyActivity", "reportMyActivity", ep.report_my_activity, True),
            ("POST", a + "/me/makeMeAvailable", "makeMeAvailable", ep.make_me_available, True),
            ("GET", a + "/people", "people", ep.get_people, True),
            ("GET", a + "/onlineMeetings", "onlineMeetings", ep.get_online_meetings, True),
            ("GET", comm, "communication", ep.get_communication, True),
            ("POST", comm + "/makeMeAvailable", "makeMeAvailable", ep.make_me_available, True),
            ("GET", logs, "conversationLogs", ep.get_conversation_logs, True),
            ("GET", logs + "/{log}", "conversationLog", ep.get_conversation_log, True),
            ("POST", logs + "/{log}/{action}", "logAction", ep.log_action, True),
            ("GET", comm + "/invitations/{inv}", "invitation", ep.get_invitation, True),
            ("POST", comm + "/invitations/{inv}/cancel", "cancel", ep.cancel_invitation, True),
        ]
        conv = comm + "/conversations/{conv}"
        msg = conv + "/messaging"
        audio = conv + "/phoneAudio"
        invs = comm + "/{kind:messagingInvitations|phoneAudioInvitations}"
        res = "conversationResource"
        routes += [
            ("POST", msg + "/messages", "sendMessage", cv.send_message, True),
            ("POST", comm + "/messagingInvitations", "startMessaging", cv.start_messaging, True),
            (
                "POST",
                comm + "/phoneAudioInvitations",
                "startPhoneAudio",
                cv.start_phone_audio,
                True,
            ),
            ("GET", invs + "/{inv}", "invitation", cv.get_invitation, True),
            ("POST", invs + "/{inv}/accept", "accept", cv.accept, True),
            ("POST", invs + "/{inv}/decline", "decline", cv.decline, True),
            ("POST", invs + "/{inv}/cancel", "cancel", cv.cancel, True),
            ("GET", comm + "/conversations", "conversations", cv.get_conversations, True),
            ("GET", conv, "conversation", cv.get_conversation, True),
            ("DELETE", conv, "conversation", cv.delete_conversation, True),
            ("GET", conv + "/participants", res, cv.get_participants, True),
            ("GET", conv + "/participants/{who}", res, cv.get_participant, True),
            ("GET", msg, res, cv.get_messaging, True),
            ("GET", msg + "/messages/{msg}", res, cv.get_message, True),
            ("GET", msg + "/typingParticipants", res, cv.get_typing_participants, True),
            ("POST", msg + "/typing", "setIsTyping", cv.set_is_typing, True),
            ("POST", msg + "/terminate", "stopMessaging", cv.stop_messaging, True),
            ("GET", audio, res, cv.get_phone_audio, True),
            ("POST", audio + "/terminate", "stopPhoneAudio", cv.stop_phone_audio, True),
        ]
        for method, path, kind, handler, auth in routes:
            add(method, path, kind, handler, auth=auth, hop=hop)

    async def not_found(ctx: Ctx) -> web.Response:
        return error(ctx, 404, "ResourceNotFound", None, "No such resource.")

    router.add_route("*", "/{tail:.*}", pipe.wrap("*", "unknown", not_found, auth=False, hop=0))
    return app
