"""What ``UcwaSimulator`` lets a test do to conversations: inject incoming IMs and
calls, speak or leave as the remote person, withdraw an invitation, end a
conversation, and look at what the client sent."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from ucwa_async.testing import _conversations
from ucwa_async.testing._conv_model import Conversation, ConvInvitation, Modality
from ucwa_async.testing._people import Person, person_key
from ucwa_async.testing._state import Application, World
from ucwa_async.testing._urls import styled

__all__ = ["ConversationControl"]

_CONV = re.compile(r"/applications/([^/?#]+)/communication/conversations/([^/?#]+)")
_INV = re.compile(
    r"/applications/([^/?#]+)/communication/(?:messagingInvitations|phoneAudioInvitations)/([^/?#]+)"
)


class ConversationControl:
    def __init__(self, world: World, username: str) -> None:
        self.world = world
        self.username = username

    # --- lookups ----------------------------------------------------------------------

    def _app(self, app_id: str | None) -> Application:
        apps = self.world.apps
        if app_id is not None:
            app = apps.get(app_id)
            if app is None:
                raise LookupError(f"no live application {app_id!r}")
            return app
        for app in reversed(list(apps.values())):  # the newest live one of the user
            if app.user == self.username:
                return app
        raise LookupError(f"{self.username} has no live application")

    def _person(self, uri: str) -> Person:
        person = self.world.person(uri)
        if person is None:
            raise LookupError(f"{uri} is not in the directory (sim.add_person first)")
        return person

    def find(self, url: str) -> Conversation | None:
        match = _CONV.search(urlsplit(url).path if "://" in url else url)
        if match is None:
            return None
        app = self.world.apps.get(match.group(1))
        return app.conversations.get(match.group(2)) if app is not None else None

    def _live(self, url: str) -> Conversation:
        conv = self.find(url)
        if conv is None or conv.deleted:
            raise LookupError(f"no live conversation at {url}")
        return conv

    def _url(self, app: Application, path: str) -> str:
        return styled(path, "absolute", app.origin)

    # --- incoming ---------------------------------------------------------------------

    def incoming(
        self,
        uri: str,
        modality: Modality,
        text: str | None,
        html: str | None,
        subject: str | None,
        app_id: str | None,
    ) -> str:
        app = self._app(app_id)
        if modality not in app.available_for:
            raise LookupError(
                f"application {app.id} is not available for {modality} (makeMeAvailable)"
            )
        conv = _conversations.create(
            self.world,
            app,
            self._person(uri),
            modality,
            direction="Incoming",
            subject=subject or "",
            text=text,
            html=html,
        )
        if conv is None or conv.invitation is None:
            raise LookupError(f"application {app.id} holds too many conversations")
        _conversations.start_incoming(self.world, conv)
        return self._url(app, conv.invitation.path)

    def withdraw(self, url: str) -> None:
        inv = self._invitation(url)
        if inv.direction != "Incoming" or inv.state != "Connecting":
            raise LookupError(f"the invitation at {url} is not waiting for an answer")
        _conversations.withdraw(self.world, inv.conversation)

    def _invitation(self, url: str) -> ConvInvitation:
        match = _INV.search(urlsplit(url).path if "://" in url else url)
        app = self.world.apps.get(match.group(1)) if match else None
        inv = app.conv_invitations.get(match.group(2)) if app and match else None
        if inv is None:
            raise LookupError(f"no invitation at {url}")
        return inv

    # --- in a conversation ------------------------------------------------------------

    def say(self, url: str, uri: str, text: str, html: str | None) -> None:
        conv = self._live(url)
        if person_key(uri) != person_key(conv.person.uri) or not conv.remote_present:
            raise LookupError(f"{uri} is not a participant of {url}")
        if conv.modality != "Messaging" or conv.modality_state != "Connected":
            raise LookupError(f"messaging is not connected in {url}")
        _conversations.say(self.world, conv, conv.person, text, html)

    def leave(self, url: str, uri: str) -> None:
        conv = self._live(url)
        if person_key(uri) != person_key(conv.person.uri) or not conv.remote_present:
            raise LookupError(f"{uri} is not a participant of {url}")
        _conversations.remote_leave(self.world, conv)

    def end(self, url: str) -> None:
        _conversations.end(self.world, self._live(url))

    # --- inspection -------------------------------------------------------------------

    def urls(self) -> list[str]:
        convs = [c for app in self.world.apps.values() for c in app.conversations.values()]
        convs.sort(key=lambda c: int(c.id))  # ids come from one counter: creation order
        return [self._url(c.app, c.path) for c in convs]

    def client_texts(self, url: str) -> list[str]:
        conv = self.find(url)
        if conv is None:
            raise LookupError(f"no conversation at {url}")
        return list(conv.client_texts)

    def state(self, url: str) -> str | None:
        conv = self.find(url)
        return None if conv is None else conv.state

    def peer(self, url: str) -> str | None:
        conv = self.find(url)
        if conv is None or conv.deleted or not conv.remote_present:
            return None
        return conv.person.uri
