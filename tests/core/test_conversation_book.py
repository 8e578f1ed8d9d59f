"""ConversationBook fed with the reference's event batches (ReceiveAnIM, SendAnIM), both wires."""

from __future__ import annotations

import copy
from typing import Any

import attrs
import pytest
from conversation_batches import (
    APP,
    CONV,
    INV,
    LENE,
    RECEIVE_STEP_8,
    RECEIVE_STEP_8_XML,
    RECEIVE_STEP_9,
    RECEIVE_STEP_10,
    RECEIVE_STEP_15,
    RECEIVE_STEP_16,
    RECEIVE_STEP_16_XML,
    TOSH,
    incoming_message,
    link_only,
)

from ucwa_async._core import wire
from ucwa_async._core.chat import Participant
from ucwa_async._core.conversation import (
    Arrived,
    ConversationBook,
    ConversationEndReason,
    Effect,
    Ended,
    Fetch,
    InvitationEnded,
    Updated,
)
from ucwa_async._core.models import Event, Link, parse_event_batch, parse_resource
from ucwa_async._core.urls import normalize, resolve_href

BASE = "https://lyncweb.contoso.com" + APP
XML = "application/vnd.microsoft.com.ucwa+xml"


def key(href: str) -> str:
    return normalize(resolve_href(href, base_url=BASE))


def new_book(**kwargs: Any) -> ConversationBook:
    return ConversationBook(normalize=key, **kwargs)


def feed(book: ConversationBook, batch: dict[str, Any] | bytes) -> list[Effect]:
    if isinstance(batch, bytes):
        batch = wire.decode(batch, XML)
    effects: list[Effect] = []
    for event in parse_event_batch(batch).events:
        effects.extend(book.feed(event))
    return effects


def read_all(book: ConversationBook) -> list[str]:
    state = book.get(key(CONV))
    assert state is not None
    return [m.text for m in state.messages.read(state.messages.open_reader())]


def test_receive_an_im_whole_flow() -> None:
    book = new_book()
    effects = feed(book, RECEIVE_STEP_8)
    arrived = [e for e in effects if isinstance(e, Arrived)]
    assert len(arrived) == 1
    view = arrived[0].view
    assert view.kind == "messaging"
    assert view.message == "Hi Tosh\r\n"
    assert view.sender == Participant(uri="sip:lenea@contoso.com", name="Lene Aaling")
    assert book.is_incoming(INV)
    assert not book.is_incoming(CONV)
    state = book.get(key(CONV))
    assert state is not None
    assert state.state == "Incoming"
    assert state.local_participant == key(f"{CONV}/participants/toshm@contoso.com")
    assert list(state.participants) == [key(LENE)]  # the caller, from the invitation
    # Step 9: link-only participant (its uri unknown: fetch it).
    fetches = [e for e in feed(book, RECEIVE_STEP_9) if isinstance(e, Fetch)]
    assert [(f.kind, f.href) for f in fetches] == [
        ("participant", f"{CONV}/participants/lenea@metio.ms")
    ]
    assert feed(book, RECEIVE_STEP_10) == [Updated(key(CONV))]  # no second Arrived
    # The session accepts: the first message must not be repeated.
    state.skip_text = view.message
    effects = feed(book, RECEIVE_STEP_15)
    assert InvitationEnded(key(INV), True, None) in effects
    assert not book.is_incoming(INV)
    assert state.state == "Connected"
    assert state.messaging_state == "Connected"
    assert state.links["sendMessage"] == f"{CONV}/messaging/messages"
    assert state.links["stopMessaging"].endswith("/terminate")
    assert state.links["setIsTyping"].endswith("/typing")
    feed(book, RECEIVE_STEP_16)
    assert read_all(book) == []  # the invitation's message, not a new one
    feed(book, incoming_message(3, "data:text/plain;charset=utf-8,How+are+you%3F"))
    feed(book, incoming_message(3, "data:text/plain;charset=utf-8,How+are+you%3F"))
    messages = state.messages.read(state.messages.open_reader())
    assert [m.text for m in messages] == ["How are you?"]
    assert messages[0].sender == Participant(uri="sip:lenea@contoso.com", name="Lene Aaling")
    assert messages[0].time is not None


def test_first_message_skip_only_when_it_matches() -> None:
    book = new_book()
    feed(book, RECEIVE_STEP_8)
    state = book.get(key(CONV))
    assert state is not None
    state.skip_text = "something else"
    feed(book, RECEIVE_STEP_16)
    assert read_all(book) == ["Hi Tosh\r\n"]


def test_xml_wire_gives_the_same() -> None:
    book = new_book()
    arrived = [e for e in feed(book, RECEIVE_STEP_8_XML) if isinstance(e, Arrived)]
    assert arrived[0].view.message == "Hi Tosh"
    assert arrived[0].view.subject == "Build"
    assert arrived[0].view.sender.uri == "sip:lenea@contoso.com"
    feed(book, RECEIVE_STEP_16_XML)
    assert read_all(book) == ["How are you?"]


def test_withdrawn_before_accept() -> None:
    book = new_book()
    feed(book, RECEIVE_STEP_8)
    failed = link_only("messagingInvitation", INV, "completed", sender_rel="communication")
    failed["sender"][0]["events"][0]["status"] = "Failure"
    failed["sender"][0]["events"][0]["reason"] = {"code": "Gone", "subcode": "CallerGaveUp"}
    effects = feed(book, failed)
    [ended] = [e for e in effects if isinstance(e, InvitationEnded)]
    assert not ended.accepted
    assert ended.reason is not None
    assert ended.reason.code == "Gone"
    # a later deleted event is about an invitation no longer tracked
    assert (
        feed(book, link_only("messagingInvitation", INV, "deleted", sender_rel="communication"))
        == []
    )


def test_deleted_incoming_invitation_is_withdrawn() -> None:
    book = new_book()
    feed(book, RECEIVE_STEP_8)
    effects = feed(
        book, link_only("messagingInvitation", INV, "deleted", sender_rel="communication")
    )
    assert effects == [InvitationEnded(key(INV), False, None)]


def test_remote_participant_leaves() -> None:
    book = new_book()
    feed(book, RECEIVE_STEP_8)
    effects = feed(book, link_only("participant", LENE, "deleted"))
    assert Ended(key(CONV), ConversationEndReason.REMOTE_LEFT) in effects
    state = book.get(key(CONV))
    assert state is not None
    assert state.ended is ConversationEndReason.REMOTE_LEFT
    assert feed(book, incoming_message(3, "data:,late")) == []  # ended: ignored


def test_local_participant_deleted_ends_the_conversation_for_us() -> None:
    # localParticipant_ref.md, Deleted: "Indicates that the user has left a conversation";
    # its lifetime "starts when the user joins a conversation. It is removed when the
    # participant leaves the conversation." (link-only, as the reference's event samples)
    book = new_book()
    feed(book, RECEIVE_STEP_8)
    feed(book, RECEIVE_STEP_9)
    effects = feed(book, link_only("localParticipant", TOSH, "deleted"))
    assert Ended(key(CONV), ConversationEndReason.DISCONNECTED) in effects
    state = book.get(key(CONV))
    assert state is not None
    assert state.ended is ConversationEndReason.DISCONNECTED
    assert feed(book, incoming_message(3, "data:,late")) == []  # ended: ignored


def test_local_participant_updated_or_no_longer_typing_does_not_end_it() -> None:
    book = new_book()
    feed(book, RECEIVE_STEP_8)
    feed(book, RECEIVE_STEP_9)
    assert not any(
        isinstance(e, Ended) for e in feed(book, link_only("localParticipant", TOSH, "updated"))
    )
    typing = link_only("localParticipant", TOSH, "deleted")
    typing["sender"][0]["events"][0]["in"] = {
        "rel": "typingParticipants",
        "href": f"{CONV}/participants/typingParticipants",
    }
    assert not any(isinstance(e, Ended) for e in feed(book, typing))
    state = book.get(key(CONV))
    assert state is not None
    assert state.ended is None


def test_conversation_deleted_by_the_server() -> None:
    book = new_book()
    feed(book, RECEIVE_STEP_8)
    effects = feed(book, link_only("conversation", CONV, "deleted", sender_rel="communication"))
    assert Ended(key(CONV), ConversationEndReason.DELETED) in effects
    # a deleted event of a conversation never seen creates nothing
    other = f"{APP}/communication/conversations/zzz"
    assert feed(book, link_only("conversation", other, "deleted", sender_rel="communication")) == []
    assert book.get(key(other)) is None


def test_conversation_disconnected() -> None:
    book = new_book()
    feed(book, RECEIVE_STEP_8)
    batch = link_only("conversation", CONV, "updated", sender_rel="communication")
    batch["sender"][0]["events"][0]["_embedded"] = {
        "conversation": {"rel": "conversation", "state": "Disconnected", "subject": "S"}
    }
    effects = feed(book, batch)
    assert Ended(key(CONV), ConversationEndReason.DISCONNECTED) in effects
    state = book.get(key(CONV))
    assert state is not None
    assert state.subject == "S"


@pytest.mark.parametrize("said", ["disconnected", "deleted", "deleted (read)", "remote left"])
def test_an_end_said_while_this_session_leaves_is_left(said: str) -> None:
    """stopMessaging_ref.md / stopPhoneAudio_ref.md: the stop ends the modality; the
    events that say so may come before the stop's 204, or instead of it (the answer
    lost): while a stop POST is under way (``leaving``), the end is LEFT, not the
    server's word for it. A loss (application, session) stays what it is."""
    book = new_book()
    feed(book, RECEIVE_STEP_8)
    state = book.get(key(CONV))
    assert state is not None
    state.leaving += 1
    if said == "disconnected":
        batch = link_only("conversation", CONV, "updated", sender_rel="communication")
        batch["sender"][0]["events"][0]["_embedded"] = {
            "conversation": {"rel": "conversation", "state": "Disconnected"}
        }
        effects = feed(book, batch)
    elif said == "deleted":
        effects = feed(book, link_only("conversation", CONV, "deleted", sender_rel="communication"))
    elif said == "deleted (read)":
        effects = book.gone(Fetch(key(CONV), "conversation", CONV))
    else:
        effects = feed(book, link_only("participant", LENE, "deleted"))
    assert Ended(key(CONV), ConversationEndReason.LEFT) in effects
    assert state.ended is ConversationEndReason.LEFT
    assert state.end_said  # the server's word (a stop whose answer was lost learns it)
    other = book.track(f"{APP}/communication/conversations/other")
    assert other is not None
    other.leaving += 1
    assert book.end_all(ConversationEndReason.APPLICATION_LOST)
    assert other.ended is ConversationEndReason.APPLICATION_LOST
    assert not other.end_said


def test_only_the_servers_word_is_an_end_said() -> None:
    """``end_said``: the server said the conversation ended, even after it had ended here
    (a cancelled leave() ends it LEFT at once; its stop POST still runs); not this
    session's own end."""
    book = new_book()
    feed(book, RECEIVE_STEP_8)
    state = book.get(key(CONV))
    assert state is not None
    assert state.end(ConversationEndReason.LEFT)
    assert not state.end_said
    assert not state.end(ConversationEndReason.DELETED)
    assert state.end_said
    assert state.ended is ConversationEndReason.LEFT


def messaging_update(
    state: str, rel: str = "messaging", links: dict[str, Any] | None = None
) -> dict[str, Any]:
    batch = link_only(rel, f"{CONV}/{rel}", "updated")
    batch["sender"][0]["events"][0]["_embedded"] = {
        rel: {"rel": rel, "state": state, "_links": links or {}}
    }
    return batch


def test_modalities_disconnected_end_the_conversation_when_none_is_left() -> None:
    book = new_book()
    feed(book, RECEIVE_STEP_8)
    feed(book, messaging_update("Connected", "phoneAudio", {"stopPhoneAudio": {"href": "/x/stop"}}))
    state = book.get(key(CONV))
    assert state is not None
    assert state.links["stopPhoneAudio"] == "/x/stop"
    # messaging was never live: its Disconnected says nothing
    assert not any(isinstance(e, Ended) for e in feed(book, messaging_update("Disconnected")))
    feed(book, messaging_update("Connected"))
    assert not any(isinstance(e, Ended) for e in feed(book, messaging_update("Disconnected")))
    stateless = parse_resource({"rel": "phoneAudio", "_links": {"stopPhoneAudio": {"href": "/s"}}})
    book.read_modality(state, "phoneAudio", stateless)  # no state: nothing decided
    assert state.ended is None
    effects = feed(book, messaging_update("Disconnected", "phoneAudio"))
    assert "stopPhoneAudio" not in state.links
    assert Ended(key(CONV), ConversationEndReason.DISCONNECTED) in effects
    assert book.read_modality(state, "messaging", parse_resource({"rel": "messaging"})) == []


def test_read_modality() -> None:
    book = new_book()
    state = book.track(CONV)
    assert state is not None
    resource = parse_resource(
        {"rel": "messaging", "state": "Connected", "_links": {"sendMessage": {"href": "/m"}}}
    )
    assert book.read_modality(state, "messaging", resource) == [Updated(state.key)]
    assert state.links["sendMessage"] == "/m"
    gone = parse_resource({"rel": "messaging", "state": "Disconnected"})
    assert Ended(state.key, ConversationEndReason.DISCONNECTED) in book.read_modality(
        state, "messaging", gone
    )


def test_link_only_message_is_fetched_and_keeps_its_place() -> None:
    book = new_book()
    feed(book, RECEIVE_STEP_8)
    href = f"{CONV}/messaging/messages/7"
    [fetch] = [e for e in feed(book, link_only("message", href, "started")) if isinstance(e, Fetch)]
    assert feed(book, link_only("message", href, "started")) == [Updated(key(CONV))]  # once
    feed(book, incoming_message(8, "data:,second"))
    assert read_all(book) == []  # waits for message 7
    resource = parse_resource(
        {
            "rel": "message",
            "direction": "Incoming",
            "_links": {"self": {"href": href}, "plainMessage": {"href": "data:,first"}},
        }
    )
    assert book.fetched(fetch, resource) == [Updated(key(CONV))]
    assert read_all(book) == ["first", "second"]


def test_fetch_outcomes() -> None:
    book = new_book()
    feed(book, RECEIVE_STEP_8)
    state = book.get(key(CONV))
    assert state is not None
    hrefs = [f"{CONV}/messaging/messages/{n}" for n in (20, 21)]
    fetches = []
    for href in hrefs:
        fetches += [
            e for e in feed(book, link_only("message", href, "started")) if isinstance(e, Fetch)
        ]
    # one could not be read: given up, counted; one was ours: ignored
    book.fetched(fetches[0], None)
    outgoing = parse_resource(
        {"rel": "message", "direction": "Outgoing", "_links": {"plainMessage": {"href": "data:,x"}}}
    )
    book.fetched(fetches[1], outgoing)
    assert state.messages.dropped == 1
    assert read_all(book) == []
    # a participant fetched: its uri and name are learnt
    [pfetch] = [e for e in feed(book, RECEIVE_STEP_9) if isinstance(e, Fetch)]
    book.fetched(
        pfetch,
        parse_resource({"rel": "participant", "uri": "sip:lenea@metio.ms", "name": "Lene"}),
    )
    assert state.participants[key(pfetch.href)] == Participant(
        uri="sip:lenea@metio.ms", name="Lene"
    )
    book.fetched(pfetch, None)  # an unreadable participant changes nothing
    assert book.fetched(Fetch("nope", "message", "/x"), None) == []


def test_message_events_without_body_outgoing_and_deleted() -> None:
    book = new_book()
    feed(book, RECEIVE_STEP_8)
    outgoing = incoming_message(30, "data:,mine", direction="Outgoing")
    assert feed(book, outgoing) == [Updated(key(CONV))]
    bodiless = incoming_message(31, "data:,x")
    del bodiless["sender"][0]["events"][0]["_embedded"]["message"]["_links"]["plainMessage"]
    assert any(isinstance(e, Fetch) for e in feed(book, bodiless))
    assert not any(isinstance(e, Fetch) for e in feed(book, bodiless))
    feed(book, link_only("message", f"{CONV}/messaging/messages/32", "deleted"))
    assert read_all(book) == []


def test_participant_events() -> None:
    book = new_book()
    feed(book, RECEIVE_STEP_8)
    state = book.get(key(CONV))
    assert state is not None
    adrian = f"{CONV}/participants/adrianag@contoso.com"
    batch = link_only("participant", adrian, "added")
    batch["sender"][0]["events"][0]["_embedded"] = {
        "participant": {"rel": "participant", "uri": "sip:adrianag@contoso.com", "name": "Adriana"}
    }
    assert not any(isinstance(e, Fetch) for e in feed(book, batch))
    assert state.participants[key(adrian)].uri == "sip:adrianag@contoso.com"
    # known with a uri: a link-only update needs no fetch
    assert not any(
        isinstance(e, Fetch) for e in feed(book, link_only("participant", adrian, "updated"))
    )
    # our own participant is never a remote one
    feed(book, link_only("participant", f"{CONV}/participants/toshm@contoso.com", "added"))
    assert key(f"{CONV}/participants/toshm@contoso.com") not in state.participants
    # one of two leaves: not over
    assert not any(
        isinstance(e, Ended) for e in feed(book, link_only("participant", adrian, "deleted"))
    )
    # a participant never seen leaves: nothing
    feed(book, link_only("participant", f"{CONV}/participants/ghost", "deleted"))
    assert state.ended is None


def test_routing_by_resource_link_and_by_prefix() -> None:
    book = new_book()
    feed(book, RECEIVE_STEP_8)
    state = book.get(key(CONV))
    assert state is not None
    # sender communication, target under the conversation: by href prefix
    batch = link_only("phoneAudio", f"{CONV}/phoneAudio", "updated", sender_rel="communication")
    feed(book, batch)
    assert state.links["phoneAudio"] == f"{CONV}/phoneAudio"
    # sender "me", the embedded resource names its conversation
    event = Event(
        "updated",
        Link("messaging", "/elsewhere/messaging"),
        Link("me", f"{APP}/me"),
        resource=parse_resource(
            {"rel": "messaging", "_links": {"conversation": {"href": CONV}}, "state": "Connecting"}
        ),
    )
    book.feed(event)
    assert state.messaging_state == "Connecting"
    # nothing to route by
    assert book.feed(Event("updated", Link("me", f"{APP}/me"), Link("me", f"{APP}/me"))) == []
    assert book.feed(Event("updated", Link("note", "javascript:x"))) == []
    # a localParticipant event learns our participant
    book.feed(
        Event(
            "added",
            Link("localParticipant", f"{CONV}/participants/me2"),
            Link("conversation", CONV),
        )
    )
    assert state.local_participant == key(f"{CONV}/participants/me2")
    # an unknown conversation's event sent by that conversation makes its state (a
    # continued one announced by no embedded invitation), its participant read
    assert book.feed(
        Event("added", Link("participant", "/c/9/participants/x"), Link("conversation", "/c/9"))
    ) == [Updated(key("/c/9")), Fetch(key("/c/9"), "participant", "/c/9/participants/x")]
    # one found by nothing but its href's prefix is not
    assert book.feed(Event("added", Link("participant", "/c/8/participants/x"))) == []
    assert book.get(key("/c/8")) is None


def test_outgoing_invitation_teaches_its_conversation() -> None:
    book = new_book()
    conv = f"{APP}/communication/conversations/21a1"
    completed = {
        "rel": "messagingInvitation",
        "direction": "Outgoing",
        "state": "Connected",
        "operationId": "5028e824",
        "subject": "Task Sample",
        "_links": {
            "self": {"href": f"{APP}/communication/messagingInvitations/60c"},
            "from": {"href": f"{conv}/participants/toshm@contoso.com"},
            "conversation": {"href": conv},
            "messaging": {"href": f"{conv}/messaging"},
        },
        "_embedded": {
            "acceptedByParticipant": [
                {
                    "rel": "participant",
                    "name": "",
                    "uri": "sip:lenea@contoso.com",
                    "_links": {"self": {"href": f"{conv}/participants/lenea@contoso.com"}},
                }
            ]
        },
    }
    event = Event(
        "completed",
        Link("messagingInvitation", f"{APP}/communication/messagingInvitations/60c"),
        Link("communication", f"{APP}/communication"),
        status="Success",
        resource=parse_resource(completed),
    )
    # Our own invitation: its conversation is only noted (no state for every outgoing
    # invitation); Invitation.conversation() claims it and learns the final resource.
    assert book.feed(event) == []
    assert book.get(key(conv)) is None
    state = book.claim(conv)
    assert state is not None
    assert state.subject is None
    assert book.learn_invitation(state, parse_resource(completed)) == [Updated(state.key)]
    assert state.subject == "Task Sample"
    assert state.links["messaging"] == f"{conv}/messaging"
    assert [p.uri for p in state.participants.values()] == ["sip:lenea@contoso.com"]
    assert book.feed(event) == [Updated(state.key)]  # its state exists now: learnt
    state.end(ConversationEndReason.LEFT)
    assert book.learn_invitation(state, parse_resource(completed)) == []
    assert book.feed(event) == []  # ended: nothing learnt
    # an invitation event without a resource, or with a bad href
    assert book.feed(Event("updated", Link("messagingInvitation", f"{APP}/x"))) == []
    assert book.feed(Event("updated", Link("messagingInvitation", "javascript:x"))) == []


def _outgoing_started(conv: str, n: int) -> Event:
    return Event(
        "started",
        Link("messagingInvitation", f"{APP}/communication/messagingInvitations/{n}"),
        Link("communication", f"{APP}/communication"),
        resource=parse_resource(
            {
                "rel": "messagingInvitation",
                "direction": "Outgoing",
                "state": "Connecting",
                "_links": {"conversation": {"href": conv}, "messaging": {"href": f"{conv}/m"}},
            }
        ),
    )


def test_outgoing_invitations_conversation_made_by_its_first_event() -> None:
    book = new_book()
    conv = f"{APP}/communication/conversations/7"
    assert book.feed(_outgoing_started(conv, 1)) == []
    assert book.get(key(conv)) is None  # noted only
    # a modality event of that conversation (sender: the conversation) makes its state
    messaging = Event(
        "updated",
        Link("messaging", f"{conv}/messaging"),
        Link("conversation", conv),
        resource=parse_resource({"rel": "messaging", "state": "Connected"}),
    )
    assert book.feed(messaging) == [Updated(key(conv))]
    state = book.get(key(conv))
    assert state is not None
    assert state.href == conv
    assert state.messaging_state == "Connected"
    # an event found by its href's prefix (no conversation sender) makes one too
    other = f"{APP}/communication/conversations/8"
    book.feed(_outgoing_started(other, 2))
    message = Event("added", Link("participant", f"{other}/participants/x"))
    assert book.feed(message)[0] == Updated(key(other))  # then a Fetch of the participant
    made = book.get(key(other))
    assert made is not None
    assert made.href == key(other)
    # an invitation naming a conversation href that is not usable: nothing noted
    assert book.feed(_outgoing_started("javascript:alert(1)", 3)) == []
    # a conversation nobody announced: its deletion is ignored, its own events are not
    stray = f"{APP}/communication/conversations/9"
    assert book.feed(Event("deleted", Link("conversation", stray))) == []
    assert book.get(key(stray)) is None
    assert (
        book.feed(Event("added", Link("participant", f"{stray}/p"), Link("conversation", stray)))
        != []
    )
    assert book.get(key(stray)) is not None


def test_a_message_of_a_conversation_nobody_announced_is_kept_for_its_claim() -> None:
    """A continued conversation whose invitation events were link-only was never
    announced: its reply (ReceiveAnIM step 16's event, or message_ref's link-only Started)
    still makes its state, so the Conversation claimed after the completed event has it."""
    book = new_book()
    assert feed(book, incoming_message(2, "data:text/plain;charset=utf-8,Yes")) == [
        Updated(key(CONV))
    ]
    state = book.get(key(CONV))
    assert state is not None
    assert not state.claimed
    assert book.claim(CONV) is state
    assert read_all(book) == ["Yes"]
    other = f"{APP}/communication/conversations/9"
    started = Event(
        "started", Link("message", f"{other}/messaging/messages/1"), Link("conversation", other)
    )
    assert book.feed(started) == [
        Updated(key(other)),
        Fetch(key(other), "message", f"{other}/messaging/messages/1"),
    ]
    # a deleted message says nothing worth a state
    stray = f"{APP}/communication/conversations/10"
    gone = Event(
        "deleted", Link("message", f"{stray}/messaging/messages/1"), Link("conversation", stray)
    )
    assert book.feed(gone) == []
    assert book.get(key(stray)) is None


def test_outgoing_invitations_conversation_deleted_before_claimed() -> None:
    book = new_book()
    conv = f"{APP}/communication/conversations/7"
    book.feed(_outgoing_started(conv, 1))
    deleted = Event("deleted", Link("conversation", conv), Link("communication", f"{APP}/c"))
    assert book.feed(deleted) == [
        Updated(key(conv)),
        Ended(key(conv), ConversationEndReason.DELETED),
    ]
    state = book.claim(conv)
    assert state is not None
    assert state.ended is ConversationEndReason.DELETED
    # unannounced: a deleted conversation is not tracked
    other = f"{APP}/communication/conversations/8"
    assert book.feed(Event("deleted", Link("conversation", other))) == []
    assert book.get(key(other)) is None


def test_outgoing_invitations_notes_are_bounded() -> None:
    book = new_book(max_conversations=2)
    convs = [f"{APP}/communication/conversations/{n}" for n in range(3)]
    for n, conv in enumerate(convs):
        book.feed(_outgoing_started(conv, n))
    # the oldest note was dropped: its conversation's events found by their href's
    # prefix only (no conversation sender) are ignored
    first = Event("updated", Link("messaging", f"{convs[0]}/messaging"))
    assert book.feed(first) == []
    last = Event("updated", Link("messaging", f"{convs[2]}/messaging"))
    assert book.feed(last) != []


def test_end_all_claim_forget_and_eviction() -> None:
    book = new_book(max_conversations=2)
    first = book.claim(f"{APP}/communication/conversations/1")
    assert first is not None
    assert first.claimed
    book.track(f"{APP}/communication/conversations/2")
    book.track(f"{APP}/communication/conversations/3")  # evicts 2, never the claimed 1
    assert book.evicted == 1
    assert book.get(key(f"{APP}/communication/conversations/2")) is None
    assert book.get(first.key) is first
    assert book.track("javascript:alert(1)") is None
    assert book.claim("javascript:alert(1)") is None
    feed(book, RECEIVE_STEP_8)  # one more: evicts 3
    effects = book.end_all(ConversationEndReason.SESSION_CLOSED)
    assert Ended(first.key, ConversationEndReason.SESSION_CLOSED) in effects
    assert book.end_all(ConversationEndReason.SESSION_CLOSED) == []
    assert not first.end(ConversationEndReason.LEFT)
    book.forget(first.key)
    assert book.get(first.key) is None
    full = new_book(max_conversations=1)
    full.claim("/a")
    full.claim("/b")  # all claimed: nothing to evict
    assert full.evicted == 0
    with pytest.raises(ValueError, match="max_conversations"):
        new_book(max_conversations=0)


def test_odd_shapes() -> None:
    book = new_book()
    # a conversation announced first by its added event (link only), then updated bare
    other = f"{APP}/communication/conversations/new1"
    feed(book, link_only("conversation", other, "added", sender_rel="communication"))
    state = book.get(key(other))
    assert state is not None
    assert state.state is None
    feed(book, link_only("conversation", other, "updated", sender_rel="communication"))
    batch = link_only("conversation", other, "updated", sender_rel="communication")
    batch["sender"][0]["events"][0]["_embedded"] = {
        "conversation": {"rel": "conversation", "state": 3}
    }
    feed(book, batch)
    assert state.state is None
    # an event routed by prefix whose embedded resource has no conversation link
    event = Event(
        "updated",
        Link("messaging", f"{other}/messaging"),
        Link("communication", f"{APP}/communication"),
        resource=parse_resource({"rel": "messaging", "state": "Connected"}),
    )
    book.feed(event)
    assert state.messaging_state == "Connected"
    # an incoming "invitation" whose embedded resource is something else
    odd = Event(
        "started",
        Link("messagingInvitation", f"{APP}/communication/messagingInvitations/9"),
        Link("communication", f"{APP}/communication"),
        resource=parse_resource({"rel": "weird", "direction": "Incoming"}),
    )
    assert book.feed(odd) == []
    # embedded children of an invitation that are not participants, or are us, or lack hrefs
    invitation = parse_resource(
        {
            "rel": "messagingInvitation",
            "direction": "Incoming",
            "_embedded": {
                "note": {"rel": "note", "_links": {"self": {"href": "/n"}}},
                "participant": [
                    {"rel": "participant", "uri": "sip:nohref@x"},
                    {"rel": "participant", "_links": {"self": {"href": "javascript:x"}}},
                ],
            },
        }
    )
    book.learn_invitation(state, invitation)
    assert state.participants == {}


def test_message_log_refuses_a_filled_placeholder_twice() -> None:
    from ucwa_async._core.message_log import MessageLog

    log: MessageLog[str] = MessageLog()
    log.reserve("a")
    log.reserve("b")
    assert log.add("b", "B")
    assert not log.add("b", "B again")


def test_claiming_a_tracked_conversation() -> None:
    book = new_book()
    state = book.track(CONV)
    assert state is not None
    assert not state.claimed
    assert book.claim(CONV) is state
    assert state.claimed


def test_incoming_invitations_never_ended_are_bounded() -> None:
    book = new_book(max_conversations=1)
    feed(book, RECEIVE_STEP_8)
    other = parse_resource(
        {
            "rel": "messagingInvitation",
            "direction": "Incoming",
            "_links": {"self": {"href": f"{APP}/communication/messagingInvitations/2"}},
        }
    )
    event = Event(
        "started",
        Link("messagingInvitation", f"{APP}/communication/messagingInvitations/2"),
        Link("communication", f"{APP}/communication"),
        resource=other,
    )
    assert any(isinstance(e, Arrived) for e in book.feed(event))
    assert not book.is_incoming(INV)
    assert book.is_incoming(f"{APP}/communication/messagingInvitations/2")


def test_absolute_hrefs() -> None:
    book = ConversationBook(normalize=key, resolve=lambda h: resolve_href(h, base_url=BASE))
    assert book.absolute("/x") == "https://lyncweb.contoso.com/x"
    assert book.absolute("javascript:x") == "javascript:x"  # unresolvable: as given
    state = book.track(CONV)
    assert state is not None
    assert state.href == "https://lyncweb.contoso.com" + CONV


def test_typing_participants_are_not_membership() -> None:
    book = new_book()
    feed(book, RECEIVE_STEP_8)
    state = book.get(key(CONV))
    assert state is not None
    typing_in = {"rel": "typingParticipants", "href": f"{CONV}/participants/typingParticipants"}
    for kind in ("added", "deleted"):
        batch = link_only("participant", LENE, kind)
        batch["sender"][0]["events"][0]["in"] = typing_in
        effects = feed(book, batch)
        assert not any(isinstance(e, Ended) for e in effects)
        assert state.typing == ({key(LENE)} if kind == "added" else set())
    batch = link_only("participant", LENE, "updated")
    batch["sender"][0]["events"][0]["in"] = typing_in
    feed(book, batch)
    assert state.typing == set()
    # another collection: ignored
    batch = link_only("participant", LENE, "deleted")
    batch["sender"][0]["events"][0]["in"] = {"rel": "audioParticipants", "href": "/a"}
    feed(book, batch)
    assert key(LENE) in state.participants
    assert state.ended is None
    # typing, then leaving: no longer typing
    batch = link_only("participant", LENE, "added")
    batch["sender"][0]["events"][0]["in"] = typing_in
    feed(book, batch)
    feed(book, link_only("participant", LENE, "deleted"))
    assert state.typing == set()
    assert state.ended is ConversationEndReason.REMOTE_LEFT


def test_resync_rereads_claimed_live_conversations() -> None:
    book = new_book()
    live = book.claim(CONV)
    other = book.claim(f"{APP}/communication/conversations/2")
    book.track(f"{APP}/communication/conversations/3")  # unclaimed: nobody listens
    assert live is not None
    assert other is not None
    other.end(ConversationEndReason.LEFT)
    [fetch] = book.resynced()
    assert (fetch.kind, fetch.key) == ("conversation", live.key)
    # read back still connected: nothing ends
    connected = parse_resource({"rel": "conversation", "state": "Connected"})
    assert book.fetched(fetch, connected) == [Updated(live.key)]
    assert book.fetched(fetch, None) == []
    # read back disconnected: ended
    disconnected = parse_resource({"rel": "conversation", "state": "Disconnected"})
    assert Ended(live.key, ConversationEndReason.DISCONNECTED) in book.fetched(fetch, disconnected)
    assert book.fetched(fetch, connected) == []  # over: nothing more


def test_gone_after_resync() -> None:
    book = new_book()
    state = book.claim(CONV)
    assert state is not None
    [fetch] = book.resynced()
    assert book.gone(Fetch(state.key, "message", f"{CONV}/messaging/messages/1")) == []
    assert book.gone(Fetch("unknown", "conversation", "/x")) == []
    assert Ended(state.key, ConversationEndReason.DELETED) in book.gone(fetch)
    assert book.gone(fetch) == [Updated(state.key)]  # already over: no second Ended


def test_xml_typing_and_participant_events() -> None:
    book = new_book()
    feed(book, RECEIVE_STEP_8_XML)
    state = book.get(key(CONV))
    assert state is not None
    typing = f"""<?xml version="1.0" encoding="utf-8"?>
<events href="{APP}/events?ack=9" xmlns="http://schemas.microsoft.com/rtc/2012/03/ucwa">
  <link rel="next" href="{APP}/events?ack=10" />
  <sender rel="conversation" href="{CONV}">
    <added rel="participant" href="{LENE}">
      <in rel="typingParticipants" href="{CONV}/participants/typingParticipants" />
    </added>
    <deleted rel="participant" href="{LENE}">
      <in rel="typingParticipants" href="{CONV}/participants/typingParticipants" />
    </deleted>
  </sender>
</events>""".encode()
    feed(book, typing)
    assert state.ended is None
    assert key(LENE) in state.participants
    left = f"""<?xml version="1.0" encoding="utf-8"?>
<events href="{APP}/events?ack=10" xmlns="http://schemas.microsoft.com/rtc/2012/03/ucwa">
  <link rel="next" href="{APP}/events?ack=11" />
  <sender rel="conversation" href="{CONV}">
    <deleted rel="participant" href="{LENE}" />
  </sender>
</events>""".encode()
    assert Ended(key(CONV), ConversationEndReason.REMOTE_LEFT) in feed(book, left)


def test_a_noted_conversation_ends_with_the_application() -> None:
    # Our invitation connected and no event made its conversation's state yet: when the
    # application is lost, a later Invitation.conversation() must get it ended.
    book = new_book()
    conv = f"{APP}/communication/conversations/7"
    book.feed(_outgoing_started(conv, 1))
    assert book.end_all(ConversationEndReason.APPLICATION_LOST) == []
    state = book.claim(conv)
    assert state is not None
    assert state.ended is ConversationEndReason.APPLICATION_LOST
    # its late events change nothing
    late = Event("updated", Link("messaging", f"{conv}/messaging"), Link("conversation", conv))
    assert book.feed(late) == []
    # a conversation noted after the loss is live
    fresh = f"{APP}/communication/conversations/8"
    book.feed(_outgoing_started(fresh, 2))
    later = book.claim(fresh)
    assert later is not None
    assert later.ended is None


def test_ended_notes_are_bounded_too() -> None:
    book = new_book(max_conversations=4)
    for round_ in range(3):
        for n in range(4):
            book.feed(_outgoing_started(f"{APP}/communication/conversations/{round_}-{n}", n))
        book.end_all(ConversationEndReason.APPLICATION_LOST)
    assert len(book._ended_notes) <= 4
    newest = book.claim(f"{APP}/communication/conversations/2-3")
    assert newest is not None
    assert newest.ended is ConversationEndReason.APPLICATION_LOST


def test_an_invitation_into_a_conversation_that_ended_here_opens_it_again() -> None:
    """messagingInvitation_ref: an incoming invitation may "add the messaging modality to
    an existing conversation". One whose messaging had disconnected (so it ended here)
    and that is invited into again is a live conversation again, with its new messages;
    what ended stays ended (a new state, so a new Conversation)."""
    book = new_book()
    feed(book, RECEIVE_STEP_8)
    feed(book, RECEIVE_STEP_15)
    old = book.get(key(CONV))
    assert old is not None
    effects = feed(book, messaging_update("Disconnected"))
    assert Ended(key(CONV), ConversationEndReason.DISCONNECTED) in effects
    again = copy.deepcopy(RECEIVE_STEP_8)
    event = again["sender"][0]["events"][0]
    event["link"]["href"] = f"{INV}2"
    event["_embedded"]["messagingInvitation"]["_links"]["self"] = {"href": f"{INV}2"}
    [arrived] = [e for e in feed(book, again) if isinstance(e, Arrived)]
    assert arrived.view.conversation_href == CONV
    state = book.get(key(CONV))
    assert state is not None
    assert state is not old
    assert old.ended is ConversationEndReason.DISCONNECTED
    assert state.ended is None
    assert state.state == "Incoming"
    feed(book, RECEIVE_STEP_15)
    feed(book, incoming_message(7, "data:,back again"))
    assert read_all(book) == ["back again"]
    # an invitation's later events (not a new one) do not reopen an ended conversation
    feed(book, messaging_update("Disconnected"))
    assert feed(book, RECEIVE_STEP_10) == []
    assert state.ended is ConversationEndReason.DISCONNECTED


# -- the messages of ended conversations nobody claims: one total bound -----------------


def _conv(n: int) -> str:
    return f"{APP}/communication/conversations/{n}"


def _say(book: ConversationBook, conv: str, first: int, count: int) -> None:
    """``count`` incoming messages (with their bodies) in ``conv``, numbered from ``first``."""
    for n in range(first, first + count):
        href = f"{conv}/messaging/messages/{n}"
        resource = parse_resource(
            {
                "rel": "message",
                "direction": "Incoming",
                "_links": {"self": {"href": href}, "plainMessage": {"href": f"data:,m{n}"}},
            }
        )
        event = Event("completed", Link("message", href), Link("conversation", conv))
        book.feed(attrs.evolve(event, resource=resource))


def _delete(book: ConversationBook, conv: str) -> list[Effect]:
    return book.feed(Event("deleted", Link("conversation", conv), Link("communication", APP)))


def _held(book: ConversationBook) -> int:
    """Messages the book holds for ended conversations nobody claims."""
    return sum(
        len(s.messages)
        for s in book._states.values()
        if s.ended is not None and not s.claimed and s._messages is not None
    )


def test_messages_of_ended_unclaimed_conversations_have_one_total_bound() -> None:
    """Each of max_conversations ended states could keep max_messages messages (10 000 x
    1 000 by default): the messages of ended conversations nobody claims are bounded in
    total; past the bound the conversations that ended first lose theirs (counted as
    dropped for whoever claims one later). The conversation stays known as ended: a late
    event for it is still ignored."""
    book = new_book(max_messages=10, max_ended_messages=25)
    for n in range(5):
        _say(book, _conv(n), 0, 10)
        if n == 1:  # read before it ended: nothing unread is lost
            log = book.get(key(_conv(n))).messages  # type: ignore[union-attr]
            reader = log.open_reader()
            assert len(log.read(reader)) == 10
            log.close_reader(reader)
        assert Ended(key(_conv(n)), ConversationEndReason.DELETED) in _delete(book, _conv(n))
        assert _held(book) <= 25
    read = book.get(key(_conv(1)))
    assert read is not None
    assert read._messages is None  # nothing lost: no log
    kept = [len(book.get(key(_conv(n))).messages) for n in range(5)]  # type: ignore[union-attr]
    assert kept == [0, 0, 0, 10, 10]
    emptied = book.get(key(_conv(0)))
    assert emptied is not None
    assert emptied.ended is ConversationEndReason.DELETED
    assert emptied.messages.dropped == 10  # unread, lost to the bound
    _say(book, _conv(0), 10, 1)  # late: still ended, still ignored
    assert len(emptied.messages) == 0
    assert book.get(key(_conv(0))) is emptied
    claimed = book.claim(_conv(0))
    assert claimed is emptied
    assert claimed.ended is ConversationEndReason.DELETED


def test_the_bound_never_takes_live_claimed_or_awaited_messages() -> None:
    book = new_book(max_messages=10, max_ended_messages=5)
    live = _conv(1)
    _say(book, live, 0, 10)  # live, nobody claims it yet: kept whole
    ours = book.claim(_conv(2))
    assert ours is not None
    _say(book, ours.href, 0, 10)
    assert ours.end(ConversationEndReason.LEFT)  # ended, still claimed (its streams)
    held_by_a_user = book.claim(_conv(3))
    assert held_by_a_user is not None
    _say(book, held_by_a_user.href, 0, 10)
    book.unclaim(held_by_a_user)  # still live: unclaimed, kept whole
    waiting = _conv(4)
    _say(book, waiting, 0, 3)
    started = Event("started", Link("message", f"{waiting}/messaging/messages/9"))
    [fetch] = [
        e
        for e in book.feed(attrs.evolve(started, sender=Link("conversation", waiting)))
        if isinstance(e, Fetch)
    ]
    _delete(book, waiting)  # ended, a message still being read: kept until it lands
    for n in (1, 2, 3, 4):
        state = book.get(key(_conv(n)))
        assert state is not None
        assert len(state.messages) in (3, 10), n
    # over: the one read lands, the one claimed is let go; both count now
    resource = parse_resource(
        {
            "rel": "message",
            "direction": "Incoming",
            "_links": {"self": {"href": fetch.href}, "plainMessage": {"href": "data:,late"}},
        }
    )
    book.fetched(fetch, resource)
    book.unclaim(ours)
    assert _held(book) <= 5
    # a state somebody holds (a Conversation) keeps its messages: the book's copy went
    assert len(ours.messages) == 10
    tombstone = book.get(ours.key)
    assert tombstone is not None
    assert tombstone is not ours
    assert tombstone.ended is ConversationEndReason.LEFT
    assert len(tombstone.messages) == 0
    assert len(book.get(key(live)).messages) == 10  # type: ignore[union-attr]
    assert len(held_by_a_user.messages) == 10
    assert book.get(held_by_a_user.key) is held_by_a_user


def test_the_bound_of_ended_messages_defaults_to_ten_conversations() -> None:
    book = new_book(max_messages=3)
    for n in range(12):
        _say(book, _conv(n), 0, 3)
        _delete(book, _conv(n))
    assert _held(book) == 30  # 10 x max_messages
    assert [len(book.get(key(_conv(n))).messages) for n in (0, 1, 2, 11)] == [0, 0, 3, 3]  # type: ignore[union-attr]
    again = book.claim(_conv(11))  # claimed again: not counted while claimed
    assert again is not None
    assert book._retired_messages == 27
    book.unclaim(again)
    assert book._retired_messages == 30
    book.forget(again.key)
    assert book._retired_messages == 27
    with pytest.raises(ValueError, match="max_ended_messages"):
        new_book(max_ended_messages=-1)
