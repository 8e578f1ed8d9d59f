"""Application endpoints: create/GET/DELETE, me, communication, conversation logs,
the continue POSTs and invitations."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Literal
from urllib.parse import parse_qsl

from aiohttp import web

from ucwa_async.testing import _conversations, _invitations
from ucwa_async.testing._config import InvitationRequest
from ucwa_async.testing._faults import FaultInjector
from ucwa_async.testing._http import Ctx, Reply, error, error_reason, no_content, resource
from ucwa_async.testing._people import Person
from ucwa_async.testing._render import Res
from ucwa_async.testing._state import Application, ConversationLog, Invitation, World
from ucwa_async.testing._urls import styled
from ucwa_async.testing._validate import decode_body, validate_continue

__all__ = ["Endpoints"]

_ACCESS_DENIED_HTML = (
    b"<!DOCTYPE html><html><head><title>Access is denied.</title></head><body>"
    b"<h1>Server Error</h1><h2>401 - Unauthorized: Access is denied due to invalid"
    b" credentials.</h2></body></html>"
)
_MODALITIES = frozenset({"Messaging", "PhoneAudio"})
_EVENTS_BEFORE_201_WAIT = 1.0  # bound on holding a 201 for a P-GET that may never come
_FLUSH_PAUSE = 0.02  # lets the P-GET response reach the socket before the 201 is written


class Endpoints:
    def __init__(self, world: World, faults: FaultInjector) -> None:
        self.world = world
        self.faults = faults
        cfg = world.config
        self._log_query = f"?{cfg.log_href_query}" if cfg.log_href_query else ""
        self._log_query_pairs = parse_qsl(cfg.log_href_query or "", keep_blank_values=True)
        self._by_endpoint: dict[tuple[str, str, str], Application] = {}

    # --- lookups ----------------------------------------------------------------------

    def app(self, ctx: Ctx) -> Application:
        """The request's application, or a :class:`Reply` with 404/410."""
        world = self.world
        app_id = ctx.request.match_info["app"]
        app = world.apps.get(app_id)
        now = asyncio.get_running_loop().time()
        if app is not None and (app.user != ctx.user or world.expired(app, now)):
            app = None  # another user's application is as good as absent
        if app is None:
            if world.gone.get(app_id) == 410:
                raise Reply(
                    error(
                        ctx,
                        410,
                        "Gone",
                        "InactiveApplicationExpired",
                        "The application expired for inactivity.",
                    )
                )
            raise Reply(
                # The reference's form (ApplicationDashboard.md): NotFound/ApplicationNotFound.
                error(
                    ctx, 404, "NotFound", "ApplicationNotFound", "The application does not exist."
                )
            )
        app.last_activity = now
        return app

    def _log(self, ctx: Ctx) -> ConversationLog:
        log = self.world.logs_by_id.get(ctx.request.match_info["log"])
        if log is None:
            raise Reply(error(ctx, 404, "ResourceNotFound", None, "No such conversationLog."))
        return log

    # --- resources --------------------------------------------------------------------

    def _make_me_available_path(self, app: Application) -> str:
        under = "/me" if self.world.config.make_me_available_path == "me" else "/communication"
        return app.path + under + "/makeMeAvailable"

    def _me(self, app: Application) -> Res:
        me = app.path + "/me"
        name = app.user.split("@", 1)[0].title()
        links = [("reportMyActivity", me + "/reportMyActivity"), ("photo", me + "/photo")]
        if self.world.config.make_me_available_link == "me":
            # A link of me (me_ref), although its href may point under /communication/.
            links.insert(0, ("makeMeAvailable", self._make_me_available_path(app)))
        return Res(
            "me",
            me,
            links,
            {"name": name, "uri": f"sip:{app.user}", "emailAddresses": [app.user]},
        )

    def _communication(self, app: Application) -> Res:
        comm = app.path + "/communication"
        links = [
            ("conversationLogs", comm + "/conversationLogs"),
            ("conversations", comm + "/conversations"),
            ("startMessaging", comm + "/messagingInvitations"),
            ("startPhoneAudio", comm + "/phoneAudioInvitations"),
        ]
        if self.world.config.make_me_available_link == "communication":
            links.insert(1, ("makeMeAvailable", self._make_me_available_path(app)))
        return Res(
            "communication",
            comm,
            links,
            {
                "conversationHistory": "Enabled",
                "supportedModalities": ["Messaging", "PhoneAudio"] if app.available else [],
                "supportedMessageFormats": ["Plain"] if app.available else [],
            },
        )

    def _application(self, app: Application) -> Res:
        return Res(
            "application",
            app.path,
            [
                ("events", f"{app.path}/events?ack={app.channel.low}"),
                ("batch", app.path + "/batch"),
                ("policies", app.path + "/policies"),
            ],
            {
                "culture": app.culture,
                "userAgent": app.user_agent,
                "type": "Application",
                "endpointId": app.endpoint_id,
            },
            [
                self._me(app),
                Res("people", app.path + "/people", [("search", app.path + "/people/search")]),
                Res(
                    "onlineMeetings",
                    app.path + "/onlineMeetings",
                    [("myOnlineMeetings", app.path + "/onlineMeetings/myOnlineMeetings")],
                ),
                self._communication(app),
            ],
        )

    def _log_res(self, app: Application, log: ConversationLog) -> Res:
        base = f"{app.path}/communication/conversationLogs/{log.id}"
        q = self._log_query
        links = [
            (rel, f"{base}/{rel}{q}")
            for rel in (
                "continueMessaging",
                "continuePhoneAudio",
                "continueAudio",
                "continueVideo",
                "markAsRead",
                "conversationLogTranscripts",
            )
        ]
        recipients = [
            Res(
                "conversationLogRecipient",
                f"{base}/recipients/{i}",
                [],
                {"displayName": name, "sipUri": uri},  # conversationLogRecipient_ref.md
            )
            for i, (name, uri) in enumerate(log.recipients, 1)
        ]
        return Res(
            "conversationLog",
            base + q,
            links,
            {
                "creationTime": log.creation_time,
                "direction": log.direction,
                "importance": "Normal",
                "modalities": list(log.modalities),
                "previewMessage": log.preview,
                "status": log.status,
                "subject": log.subject,
                "threadId": log.thread_id,
                "totalRecipientsCount": len(log.recipients),
                # ConversationLogType_ref.md: AudioLog, MessageLog, ConferenceLog...
                "type": "AudioLog" if "Audio" in log.modalities else "MessageLog",
            },
            recipients,
        )

    # --- handlers ---------------------------------------------------------------------

    async def create_application(self, ctx: Ctx) -> web.Response:
        world = self.world
        armed = self.faults.take("html_access_denied", ctx.tags)
        if armed is not None or world.access_denied_left > 0:
            status = armed.status if armed is not None else world.config.html_access_denied_status
            if armed is None:
                world.access_denied_left -= 1
                world.counters.faults_injected["html_access_denied"] += 1
            ctx.fault = "html_access_denied"
            return web.Response(status=status, body=_ACCESS_DENIED_HTML, content_type="text/html")
        data = decode_body(ctx.request.content_type, await ctx.request.read())
        fields = {k.lower(): v for k, v in data.items()}
        user_agent, endpoint = fields.get("useragent"), fields.get("endpointid")
        if not isinstance(user_agent, str) or not isinstance(endpoint, str) or not endpoint:
            return error(
                ctx,
                400,
                "ParameterValidationFailure",
                None,
                "UserAgent and EndpointId are required.",
            )
        culture = fields.get("culture")
        assert ctx.user is not None
        key = (ctx.user, ctx.pool, endpoint)
        existing = self._by_endpoint.get(key)
        if existing is not None and existing.id in world.apps:
            # Same endpoint again: the server hands back the live application.
            return resource(ctx, self._application(existing), 201)
        now = asyncio.get_running_loop().time()
        app = Application(
            id=world.new_app_id(),
            user=ctx.user,
            pool=ctx.pool,
            origin=ctx.origin,
            endpoint_id=endpoint,
            user_agent=user_agent,
            culture=culture if isinstance(culture, str) else "en-US",
            created_at=now,
            last_activity=now,
            last_report=now,
        )
        world.apps[app.id] = app
        self._by_endpoint[key] = app
        world.counters.applications_created += 1
        return resource(ctx, self._application(app), 201)

    async def get_application(self, ctx: Ctx) -> web.Response:
        return resource(ctx, self._application(self.app(ctx)))

    async def delete_application(self, ctx: Ctx) -> web.Response:
        self.world.delete_app(self.app(ctx))
        return no_content()

    async def get_me(self, ctx: Ctx) -> web.Response:
        return resource(ctx, self._me(self.app(ctx)))

    async def report_my_activity(self, ctx: Ctx) -> web.Response:
        app = self.app(ctx)
        app.last_report = asyncio.get_running_loop().time()
        return no_content()

    async def get_people(self, ctx: Ctx) -> web.Response:
        app = self.app(ctx)
        return resource(ctx, Res("people", app.path + "/people"))

    async def get_online_meetings(self, ctx: Ctx) -> web.Response:
        app = self.app(ctx)
        return resource(ctx, Res("onlineMeetings", app.path + "/onlineMeetings"))

    async def get_communication(self, ctx: Ctx) -> web.Response:
        return resource(ctx, self._communication(self.app(ctx)))

    def require_channel(self, ctx: Ctx, app: Application) -> None:
        world = self.world
        injected = self.faults.take("callback_channel_error", ctx.tags) is not None
        if injected:
            ctx.fault = "callback_channel_error"
        now = asyncio.get_running_loop().time()
        if injected or (
            world.config.require_channel and not app.channel.alive(now, world.config.channel_grace)
        ):
            world.counters.callback_channel_errors += 1
            raise Reply(
                error(
                    ctx,
                    500,
                    "ServiceFailure",
                    "CallbackChannelError",
                    "The remote event channel is not reachable.",
                )
            )

    def events_first(self, ctx: Ctx, app: Application) -> asyncio.Future[None] | None:
        """With ``events_before_201`` armed for this request: a future resolved when the
        next batch forms (call before emitting the events, then :meth:`hold_201`)."""
        faults = self.faults
        armed = (
            faults.take("events_before_201", ctx.tags) if faults.has("events_before_201") else None
        )
        if armed is None:
            return None
        ctx.fault = "events_before_201"
        return app.channel.formed_future()

    async def hold_201(self, formed: asyncio.Future[None] | None) -> None:
        """Hold the answer until a P-GET carried the events (bounded), then let it flush."""
        if formed is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(formed, _EVENTS_BEFORE_201_WAIT)
        await asyncio.sleep(_FLUSH_PAUSE)

    async def make_me_available(self, ctx: Ctx) -> web.Response:
        app = self.app(ctx)
        if ctx.request.path != self._make_me_available_path(app):
            # Served only where the configured link points: a client must follow it.
            return error(ctx, 404, "ResourceNotFound", None, "No such resource.")
        data = decode_body(ctx.request.content_type, await ctx.request.read())
        self.require_channel(ctx, app)
        # ReceiveAnIM writes "SupportedModalities": property names are case-insensitive.
        fields = {k.lower(): v for k, v in data.items()}
        modalities = fields.get("supportedmodalities", ["Messaging"])
        if isinstance(modalities, str):
            modalities = [modalities]
        if not isinstance(modalities, list) or not set(modalities) <= _MODALITIES:
            return error(
                ctx,
                403,
                "Forbidden",
                None,
                "Only the Messaging and PhoneAudio modalities are supported.",
            )
        if app.available and self.world.config.make_me_available_conflict:
            return error(ctx, 409, "Conflict", "AlreadyExists", "Already available.")
        app.available = True
        app.available_for = app.available_for | frozenset(modalities)
        return no_content()

    async def get_conversation_logs(self, ctx: Ctx) -> web.Response:
        app = self.app(ctx)
        logs = self.world.logs
        raw = ctx.request.query.get("limit")
        if raw is not None:
            try:
                logs = logs[: max(int(raw), 0)]
            except ValueError:
                return error(
                    ctx, 400, "ParameterValidationFailure", None, "limit must be an integer."
                )
        base = f"{app.path}/communication/conversationLogs"
        links = [("conversationLog", f"{base}/{log.id}{self._log_query}") for log in logs]
        return resource(ctx, Res("conversationLogs", base, links))

    def _check_log_query(self, ctx: Ctx) -> None:
        query = ctx.request.query
        for key, value in self._log_query_pairs:
            if query.get(key) != value:
                raise Reply(
                    error(
                        ctx,
                        404,
                        "ResourceNotFound",
                        None,
                        "The conversationLog href's query string is missing.",
                    )
                )

    async def get_conversation_log(self, ctx: Ctx) -> web.Response:
        app = self.app(ctx)
        self._check_log_query(ctx)
        return resource(ctx, self._log_res(app, self._log(ctx)))

    async def continue_messaging(self, ctx: Ctx) -> web.Response:
        return await self._continue(ctx, "Messaging")

    async def continue_phone_audio(self, ctx: Ctx) -> web.Response:
        return await self._continue(ctx, "PhoneAudio")

    async def log_action(self, ctx: Ctx) -> web.Response:
        action = ctx.request.match_info["action"]
        self.app(ctx)
        self._check_log_query(ctx)
        self._log(ctx)
        if action == "markAsRead":
            return no_content()
        if action in ("continueAudio", "continueVideo"):
            return error(ctx, 403, "Forbidden", None, "Only messaging and phone audio here.")
        return error(ctx, 405, "MethodNotAllowed", None, f"POST {action} is not supported.")

    async def _continue(
        self, ctx: Ctx, modality: Literal["Messaging", "PhoneAudio"]
    ) -> web.Response:
        world, faults, cfg = self.world, self.faults, self.world.config
        app = self.app(ctx)
        self._check_log_query(ctx)
        log = self._log(ctx)
        body = validate_continue(
            decode_body(ctx.request.content_type, await ctx.request.read()),
            phone=modality == "PhoneAudio",
        )
        number = world.next_invitation + 1
        request = InvitationRequest(
            application_id=app.id,
            log_id=log.id,
            modality=modality,
            operation_id=body.operation_id,
            message=body.message,
            phone_number=body.phone_number,
            number=number,
        )
        if faults.has("conflict"):
            armed = faults.take("conflict", ctx.tags)
            if armed is not None:
                ctx.fault = "conflict"
                return error(ctx, 409, "Conflict", armed.subcode, "Conflict (injected).")
        if cfg.conflict_rule is not None:
            reason = cfg.conflict_rule(request)
            if reason is not None:
                return error_reason(ctx, 409, reason)
        previous = app.by_operation.get(body.operation_id)
        if (
            cfg.reject_duplicate_operation_id
            and previous is not None
            and previous.state == "Connecting"
        ):
            return error(
                ctx,
                409,
                "Conflict",
                "AlreadyExists",
                "An invitation with this operationId is in progress.",
            )
        self.require_channel(ctx, app)

        world.next_invitation = number
        rel = "messagingInvitation" if modality == "Messaging" else "phoneAudioInvitation"
        inv = Invitation(
            number, app, f"{app.path}/communication/invitations/{number}", rel, request, log
        )
        app.invitations[str(number)] = inv
        app.by_operation[body.operation_id] = inv
        world.counters.invitations_created += 1
        world.counters.invitations_by_state["Connecting"] += 1
        name, uri = log.recipients[0] if log.recipients else ("Bob Kelly", "sip:bob@contoso.com")
        _conversations.continued(
            world,
            app,
            number,
            world.person(uri) or Person(uri, name),
            modality,
            log.subject,
            log.thread_id,
        )

        formed = self.events_first(ctx, app)
        _invitations.start(world, inv, _invitations.decide(cfg, request, world))
        await self.hold_201(formed)

        headers: dict[str, str] = {}
        if cfg.continue_status == 201 or cfg.location_on_200:
            headers["Location"] = styled(inv.path, cfg.location_style, ctx.origin)
        return web.Response(status=cfg.continue_status, headers=headers)

    def _invitation(self, ctx: Ctx) -> Invitation:
        app = self.app(ctx)
        inv = app.invitations.get(ctx.request.match_info["inv"])
        if inv is None:
            raise Reply(error(ctx, 404, "ResourceNotFound", None, "No such invitation."))
        return inv

    async def get_invitation(self, ctx: Ctx) -> web.Response:
        inv = self._invitation(ctx)
        return resource(ctx, _invitations.invitation_res(inv, inv.state, "relative", ctx.origin))

    async def cancel_invitation(self, ctx: Ctx) -> web.Response:
        # [our rule] cancelling a finished invitation is a no-op 204.
        _invitations.cancel(self.world, self._invitation(ctx))
        return no_content()
