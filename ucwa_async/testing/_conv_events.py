"""One push of conversation events, rendered when emitted: hrefs in
``config.event_href_style``, resources embedded per ``config.embed_resources`` and
frozen at the state they have now, senders as the reference flows name them."""

from __future__ import annotations

from typing import Literal

from ucwa_async.testing._channel import Emitted
from ucwa_async.testing._config import Reason
from ucwa_async.testing._conv_model import Conversation, Message
from ucwa_async.testing._conv_render import (
    Href,
    conversation_res,
    invitation_res,
    local_participant_res,
    message_res,
    modality_res,
    participant_res,
)
from ucwa_async.testing._render import Ev, Res
from ucwa_async.testing._state import World
from ucwa_async.testing._urls import styled

__all__ = ["EventBatch"]


class EventBatch:
    """Collects one push: events rendered now (href style, embedding per config)."""

    def __init__(self, world: World, conv: Conversation) -> None:
        self.world = world
        self.conv = conv
        cfg = world.config
        style, origin = cfg.event_href_style, conv.app.origin
        self.h: Href = lambda path: styled(path, style, origin)
        self.embed = cfg.embed_resources
        self.titles = cfg.link_titles
        self.items: list[Emitted] = []
        self._communication = ("communication", self.h(conv.app.path + "/communication"))
        self._conversation = ("conversation", self.h(conv.path))

    def add(
        self,
        sender: Literal["communication", "conversation"],
        type_: str,
        rel: str,
        path: str,
        resource: Res | None = None,
        *,
        in_link: tuple[str, str] | None = None,
        status: str | None = None,
        reason: Reason | None = None,
        title: str | None = None,
    ) -> None:
        ev = Ev(
            type=type_,
            rel=rel,
            href=self.h(path),
            in_link=(in_link[0], self.h(in_link[1])) if in_link else None,
            status=status,
            reason=reason,
            resource=resource if self.embed else None,
            title=title if self.titles else None,
        )
        src = self._communication if sender == "communication" else self._conversation
        self.items.append(Emitted(src, ev))

    # --- the recurring events -------------------------------------------------------

    def conversation(self, type_: str) -> None:
        conv = self.conv
        res = conversation_res(conv, self.h) if type_ != "deleted" else None
        self.add("communication", type_, "conversation", conv.path, res)

    def modality(self) -> None:
        conv = self.conv
        self.add(
            "conversation",
            "updated",
            conv.modality_rel,
            conv.modality_path,
            modality_res(conv, self.h),
        )

    def local_participant(self, type_: str = "added") -> None:
        conv = self.conv
        res = local_participant_res(conv, self.h) if type_ != "deleted" else None
        name = res.props["name"] if res is not None else None
        self.add("conversation", type_, "localParticipant", conv.local_path, res, title=name)

    def participant(self, type_: str) -> None:
        conv = self.conv
        res = participant_res(conv, conv.person, self.h) if type_ != "deleted" else None
        self.add(
            "conversation",
            type_,
            "participant",
            conv.remote_path,
            res,
            in_link=("participants", conv.path + "/participants"),
            title=conv.person.name,
        )

    def typing(self, type_: str) -> None:
        """typingParticipants_ref: the remote participant starts/stops typing."""
        conv = self.conv
        self.add(
            "conversation",
            type_,
            "participant",
            conv.remote_path,
            in_link=("typingParticipants", conv.messaging_path + "/typingParticipants"),
        )

    def invitation(self, type_: str, status: str | None = None) -> None:
        inv = self.conv.invitation
        assert inv is not None
        self.add(
            "communication",
            type_,
            inv.rel,
            inv.path,
            invitation_res(inv, self.h),
            status=status,
            reason=inv.reason if status == "Failure" else None,
        )

    def message(self, msg: Message, type_: str, status: str | None = None) -> None:
        conv = self.conv
        cfg = self.world.config
        res = message_res(conv, msg, self.h, cfg.message_operation_id)
        self.add(
            "conversation",
            type_,
            "message",
            f"{conv.messaging_path}/messages/{msg.number}",
            res,
            status=status,
            reason=msg.reason if status == "Failure" else None,
        )

    def incoming_message(self, msg: Message) -> None:
        for type_ in self.world.config.incoming_message_events:
            self.message(msg, type_, "Success" if type_ == "completed" else None)

    def push(self) -> None:
        app = self.conv.app
        if not self.items or self.world.apps.get(app.id) is not app:
            return
        self.world.counters.events_emitted += len(self.items)
        app.channel.push(list(self.items))
        self.items.clear()
