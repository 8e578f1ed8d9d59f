"""HTTP endpoints of conversations: startMessaging/startPhoneAudio, incoming
invitations (accept/decline), conversation resources, sendMessage, setIsTyping,
stopMessaging/stopPhoneAudio and DELETE of a conversation.

Synchronous errors follow the reference tables: 404 NotFound for a resource that
is gone (a withdrawn invitation, an ended conversation), 409 Conflict for an action
the resource's state does not allow, 500 ServiceFailure/CallbackChannelError without
an event channel (or injected with ``target=`` the route kind, e.g. ``sendMessage``).
"""

from __future__ import annotations

from typing import Literal

from aiohttp import web

from ucwa_async.testing import _conversations, _invitations
from ucwa_async.testing._application import Endpoints
from ucwa_async.testing._config import Reason
from ucwa_async.testing._conv_model import Conversation, ConvInvitation, Modality
from ucwa_async.testing._conv_render import (
    conversation_res,
    idle_modality_res,
    invitation_res,
    local_participant_res,
    message_res,
    modality_res,
    participant_res,
)
from ucwa_async.testing._conv_validate import read_message_body, validate_start
from ucwa_async.testing._http import Ctx, Reply, error, no_content, resource
from ucwa_async.testing._people import Person, person_key
from ucwa_async.testing._render import Res
from ucwa_async.testing._urls import styled
from ucwa_async.testing._validate import decode_body

__all__ = ["ConversationEndpoints"]


def _relative(path: str) -> str:
    return path


class ConversationEndpoints:
    def __init__(self, ep: Endpoints) -> None:
        self.ep = ep
        self.world = ep.world

    # --- lookups ----------------------------------------------------------------------

    def _conversation(self, ctx: Ctx, *, live: bool = True) -> Conversation:
        app = self.ep.app(ctx)
        conv = app.conversations.get(ctx.request.match_info["conv"])
        if conv is None or (live and conv.deleted):
            raise Reply(error(ctx, 404, "NotFound", None, "No such conversation."))
        return conv

    def _invitation(self, ctx: Ctx) -> ConvInvitation:
        app = self.ep.app(ctx)
        inv = app.conv_invitations.get(ctx.request.match_info["inv"])
        if inv is None or inv.rel != ctx.request.match_info["kind"][:-1]:
            raise Reply(error(ctx, 404, "NotFound", None, "No such invitation."))
        return inv

    def _incoming(self, ctx: Ctx) -> ConvInvitation:
        inv = self._invitation(ctx)
        if inv.direction != "Incoming" or inv.state != "Connecting":
            raise Reply(
                error(ctx, 409, "Conflict", None, "The invitation is not waiting for an answer.")
            )
        return inv

    # --- outgoing invitations ---------------------------------------------------------

    async def start_messaging(self, ctx: Ctx) -> web.Response:
        return await self._start(ctx, "Messaging")

    async def start_phone_audio(self, ctx: Ctx) -> web.Response:
        return await self._start(ctx, "PhoneAudio")

    async def _start(self, ctx: Ctx, modality: Modality) -> web.Response:
        world, ep = self.world, self.ep
        app = ep.app(ctx)
        body = validate_start(
            decode_body(ctx.request.content_type, await ctx.request.read()),
            ctx.request.query.get("to"),
            phone=modality == "PhoneAudio",
        )
        ep.require_channel(ctx, app)
        known = world.person(body.to)
        person = known or Person(body.to, "")
        conv = _conversations.create(
            world,
            app,
            person,
            modality,
            direction="Outgoing",
            subject=body.subject,
            importance=body.importance,
            operation_id=body.operation_id,
            text=body.message,
            phone_number=body.phone_number,
        )
        if conv is None:
            return error(ctx, 409, "Conflict", None, "Too many conversations.")
        conv.reply_first_message = True
        formed = ep.events_first(ctx, app)
        if known is None:
            _conversations.fail_unknown(world, conv)
        else:
            _conversations.start_outgoing(world, conv)
        await ep.hold_201(formed)
        assert conv.invitation is not None
        location = styled(conv.invitation.path, world.config.location_style, ctx.origin)
        return web.Response(status=201, headers={"Location": location})

    async def cancel(self, ctx: Ctx) -> web.Response:
        # Like continue invitations: cancelling a finished one is a no-op 204.
        _conversations.cancel(self.world, self._invitation(ctx))
        return no_content()

    # --- incoming invitations ---------------------------------------------------------

    async def get_invitation(self, ctx: Ctx) -> web.Response:
        return resource(ctx, invitation_res(self._invitation(ctx), _relative))

    async def accept(self, ctx: Ctx) -> web.Response:
        inv = self._incoming(ctx)
        self.ep.require_channel(ctx, inv.conversation.app)
        _conversations.accept(self.world, inv.conversation)
        return no_content()

    async def decline(self, ctx: Ctx) -> web.Response:
        inv = self._incoming(ctx)
        data = decode_body(ctx.request.content_type, await ctx.request.read())
        fields = {k.lower(): v for k, v in data.items()}
        reason = fields.get("reason", "Local")
        if not isinstance(reason, str) or not reason:
            return error(ctx, 400, "ParameterValidationFailure", None, "reason must be a string.")
        _conversations.decline(self.world, inv.conversation, reason)
        return no_content()

    # --- conversation resources -------------------------------------------------------

    async def get_conversations(self, ctx: Ctx) -> web.Response:
        app = self.ep.app(ctx)
        links = [("conversation", c.path) for c in app.conversations.values() if not c.deleted]
        return resource(ctx, Res("conversations", app.path + "/communication/conversations", links))

    async def get_conversation(self, ctx: Ctx) -> web.Response:
        return resource(ctx, conversation_res(self._conversation(ctx), _relative))

    async def delete_conversation(self, ctx: Ctx) -> web.Response:
        self._end(self._conversation(ctx, live=False))
        return no_content()

    def _end(self, conv: Conversation) -> None:
        """End a conversation; one still ringing as a continue invitation is cancelled
        (SendAnIM's invitation ``cancel`` is the messaging ``terminate``)."""
        continued = conv.app.invitations.get(conv.id) if conv.invitation is None else None
        if continued is not None and continued.state == "Connecting":
            _invitations.cancel(self.world, continued)
        _conversations.end(self.world, conv)  # idempotent: an ended one stays ended

    async def get_participants(self, ctx: Ctx) -> web.Response:
        conv = self._conversation(ctx)
        links = [("localParticipant", conv.local_path)]
        if conv.remote_present:
            links.append(("participant", conv.remote_path))
        return resource(ctx, Res("participants", conv.path + "/participants", links))

    async def get_participant(self, ctx: Ctx) -> web.Response:
        conv = self._conversation(ctx)
        who = ctx.request.match_info["who"].lower()
        if who == person_key(conv.app.user):
            return resource(ctx, local_participant_res(conv, _relative))
        if conv.remote_present and who == person_key(conv.person.uri):
            return resource(ctx, participant_res(conv, conv.person, _relative))
        return error(ctx, 404, "NotFound", None, "No such participant.")

    async def get_messaging(self, ctx: Ctx) -> web.Response:
        return self._modality(ctx, "Messaging")

    async def get_phone_audio(self, ctx: Ctx) -> web.Response:
        return self._modality(ctx, "PhoneAudio")

    def _modality(self, ctx: Ctx, modality: Modality) -> web.Response:
        conv = self._conversation(ctx)
        if conv.modality == modality:
            return resource(ctx, modality_res(conv, _relative))
        rel = "messaging" if modality == "Messaging" else "phoneAudio"
        return resource(ctx, idle_modality_res(conv, rel, _relative))

    async def get_typing_participants(self, ctx: Ctx) -> web.Response:
        conv = self._conversation(ctx)
        return resource(ctx, Res("typingParticipants", conv.messaging_path + "/typingParticipants"))

    async def get_message(self, ctx: Ctx) -> web.Response:
        conv = self._conversation(ctx, live=False)
        try:
            msg = conv.messages.get(int(ctx.request.match_info["msg"]))
        except ValueError:
            msg = None
        if msg is None:
            return error(ctx, 404, "NotFound", None, "No such message.")
        return resource(
            ctx, message_res(conv, msg, _relative, self.world.config.message_operation_id)
        )

    # --- messaging actions ------------------------------------------------------------

    def _connected_messaging(self, ctx: Ctx) -> Conversation:
        conv = self._conversation(ctx)
        if conv.modality != "Messaging" or conv.modality_state != "Connected":
            raise Reply(error(ctx, 409, "Conflict", None, "Messaging is not connected."))
        return conv

    async def send_message(self, ctx: Ctx) -> web.Response:
        world, faults = self.world, self.ep.faults
        conv = self._connected_messaging(ctx)
        query = ctx.request.query
        operation_id = query.get("operationId") or query.get("OperationContext")
        # The header itself: request.content_type drops the charset parameter.
        content_type = ctx.request.headers.get("Content-Type")
        text, html = read_message_body(content_type, await ctx.request.read())
        self.ep.require_channel(ctx, conv.app)
        failure: Reason | None = None
        if faults.has("message_delivery_failed"):
            armed = faults.take("message_delivery_failed", ctx.tags)
            if armed is not None:
                ctx.fault = "message_delivery_failed"
                failure = armed.reason
        formed = self.ep.events_first(ctx, conv.app)
        msg = _conversations.send(world, conv, text, html, operation_id, failure)
        await self.ep.hold_201(formed)
        world.counters.messages_received += 1
        path = f"{conv.messaging_path}/messages/{msg.number}"
        location = styled(path, world.config.location_style, ctx.origin)
        return web.Response(status=201, headers={"Location": location})

    async def set_is_typing(self, ctx: Ctx) -> web.Response:
        self._connected_messaging(ctx)
        return no_content()

    async def stop_messaging(self, ctx: Ctx) -> web.Response:
        return self._stop(ctx, "Messaging")

    async def stop_phone_audio(self, ctx: Ctx) -> web.Response:
        return self._stop(ctx, "PhoneAudio")

    def _stop(self, ctx: Ctx, modality: Literal["Messaging", "PhoneAudio"]) -> web.Response:
        conv = self._conversation(ctx, live=False)
        if conv.modality == modality:
            self._end(conv)
        return no_content()
