"""ConversationBook with link-only events (events_ref / EventChannelDetails: a server may
embed nothing): what was announced is read (Fetch) and the reading counts as the event."""

from __future__ import annotations

from typing import Any

from conversation_batches import APP, CONV, INV, LENE, _conversation, _invitation, link_only
from test_conversation_book import feed, key, new_book

from ucwa_async._core.chat import Participant
from ucwa_async._core.conversation import (
    Arrived,
    ConversationBook,
    ConversationEndReason,
    Effect,
    Ended,
    Fetch,
    InvitationEnded,
)
from ucwa_async._core.models import parse_resource


def invitation_started(book: ConversationBook) -> Fetch:
    effects = feed(
        book, link_only("messagingInvitation", INV, "started", sender_rel="communication")
    )
    [fetch] = effects
    assert isinstance(fetch, Fetch)
    assert (fetch.kind, fetch.href, fetch.key) == ("messagingInvitation", INV, key(INV))
    return fetch


def fetches(effects: list[Effect]) -> list[Fetch]:
    return [e for e in effects if isinstance(e, Fetch)]


def test_link_only_incoming_invitation_is_read_then_arrives() -> None:
    book = new_book()
    fetch = invitation_started(book)
    # announced again while being read: one GET
    again = link_only("messagingInvitation", INV, "started", sender_rel="communication")
    assert feed(book, again) == []
    invitation = _invitation("Connecting", answer_links=True)
    del invitation["rel"]  # a GET answer may name no rel: the event's link does
    effects = book.fetched(fetch, parse_resource(invitation))
    [arrived] = [e for e in effects if isinstance(e, Arrived)]
    assert arrived.view.sender == Participant(uri="sip:lenea@contoso.com", name="Lene Aaling")
    assert arrived.view.message == "Hi Tosh\r\n"
    assert arrived.view.accept_href == f"{INV}/accept"
    assert book.is_incoming(INV)
    assert book.fetched(fetch, parse_resource(invitation)) == []  # read once only
    # its link-only completion ends it as usual
    done = link_only("messagingInvitation", INV, "completed", sender_rel="communication")
    done["sender"][0]["events"][0]["status"] = "Success"
    assert InvitationEnded(key(INV), True, None) in feed(book, done)


def test_link_only_invitation_not_offered_when_over_or_not_incoming() -> None:
    book = new_book()
    fetch = invitation_started(book)
    # withdrawn while it was being read
    feed(book, link_only("messagingInvitation", INV, "deleted", sender_rel="communication"))
    assert book.fetched(fetch, parse_resource(_invitation("Connecting", answer_links=True))) == []
    # unreadable (404: gone)
    assert book.fetched(invitation_started(book), None) == []
    # no longer waiting for an answer
    answered = _invitation("Connected", answer_links=False)
    assert book.fetched(invitation_started(book), parse_resource(answered)) == []
    # an outgoing one (ours: the operations table resolves it)
    outgoing = _invitation("Connecting", answer_links=False)
    outgoing["direction"] = "Outgoing"
    effects = book.fetched(invitation_started(book), parse_resource(outgoing))
    assert not any(isinstance(e, Arrived) for e in effects)
    assert not book.is_incoming(INV)
    # the sessions' end forgets what was being read
    fetch = invitation_started(book)
    book.end_all(ConversationEndReason.SESSION_CLOSED)
    assert book.fetched(fetch, parse_resource(_invitation("Connecting", answer_links=True))) == []


def test_invitations_being_read_are_bounded() -> None:
    book = new_book(max_conversations=2)
    hrefs = [f"{APP}/communication/messagingInvitations/{n}" for n in range(3)]
    reads = [
        fetches(
            feed(book, link_only("messagingInvitation", h, "started", sender_rel="communication"))
        )
        for h in hrefs
    ]
    assert [len(r) for r in reads] == [1, 1, 1]
    # the oldest was forgotten: its answer is not offered
    invitation = _invitation("Connecting", answer_links=True, self_href=hrefs[0])
    assert book.fetched(reads[0][0], parse_resource(invitation)) == []


def conversation_event(kind: str) -> dict[str, Any]:
    return link_only("conversation", CONV, kind, sender_rel="communication")


def test_link_only_conversation_is_read() -> None:
    book = new_book()
    [fetch] = fetches(feed(book, conversation_event("added")))
    assert (fetch.kind, fetch.key) == ("conversation", key(CONV))
    book.fetched(fetch, parse_resource(_conversation("Connected")))
    state = book.get(key(CONV))
    assert state is not None
    assert state.state == "Connected"
    [fetch] = fetches(feed(book, conversation_event("updated")))
    effects = book.fetched(fetch, parse_resource(_conversation("Disconnected")))
    assert Ended(key(CONV), ConversationEndReason.DISCONNECTED) in effects


def test_link_only_modality_is_read() -> None:
    book = new_book()
    feed(book, conversation_event("added"))
    messaging = f"{CONV}/messaging"
    [fetch] = fetches(feed(book, link_only("messaging", messaging, "updated")))
    assert (fetch.kind, fetch.href) == ("messaging", messaging)
    resource = parse_resource(
        {
            "rel": "messaging",
            "state": "Connected",
            "_links": {"sendMessage": {"href": f"{messaging}/messages"}},
        }
    )
    book.fetched(fetch, resource)
    state = book.get(key(CONV))
    assert state is not None
    assert state.links["sendMessage"] == f"{messaging}/messages"
    assert book.fetched(fetch, None) == []  # unreadable: nothing changes
    assert fetches(feed(book, link_only("messaging", messaging, "deleted"))) == []
    # a participant announced by link only, as ReceiveAnIM step 9
    assert fetches(feed(book, link_only("participant", LENE, "added")))
