"""ConversationBook with link-only events (events_ref / EventChannelDetails: a server may
embed nothing): what was announced is read (Fetch) and the reading counts as the event."""

from __future__ import annotations

from typing import Any

from conversation_batches import (
    APP,
    CONV,
    INV,
    LENE,
    RECEIVE_STEP_8,
    RECEIVE_STEP_9,
    RECEIVE_STEP_16,
    _conversation,
    _invitation,
    incoming_message,
    link_only,
)
from test_conversation_book import XML, feed, key, new_book, read_all

from ucwa_async._core import wire
from ucwa_async._core.chat import Participant, invitation_view, link_of
from ucwa_async._core.conversation import (
    Arrived,
    ConversationBook,
    ConversationEndReason,
    Effect,
    Ended,
    Fetch,
    InvitationEnded,
)
from ucwa_async._core.converter import CONVERTER
from ucwa_async._core.models import Link, parse_event_batch, parse_resource


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


# -- link titles: a participant's display name (participant_ref's web link) ----------

STEP_9_XML = f"""<?xml version="1.0" encoding="utf-8"?>
<events href="{APP}/events?ack=3" xmlns="http://schemas.microsoft.com/rtc/2012/03/ucwa">
  <sender rel="conversation" href="{CONV}">
    <added rel="participant" href="{CONV}/participants/adrianag@contoso.com"
        title="Adriana Giorgi">
      <in rel="participants" href="{CONV}/participants" title="Participants"/>
    </added>
  </sender>
</events>""".encode()


def test_link_titles_are_kept_in_both_wires() -> None:
    [event] = parse_event_batch(RECEIVE_STEP_9).events
    assert event.link.title == "Lene Aaling"
    assert event.link == Link("participant", event.link.href)  # the title is not identity
    [event] = parse_event_batch(wire.decode(STEP_9_XML, XML)).events
    assert event.link.title == "Adriana Giorgi"
    assert event.in_link is not None
    assert event.in_link.title == "Participants"
    [event] = parse_event_batch(RECEIVE_STEP_16).events
    assert event.resource is not None
    assert link_of(event.resource, "participant") == Link("participant", LENE)
    assert link_of(event.resource, "participant").title == "Lene Aaling"  # type: ignore[union-attr]
    assert link_of(event.resource, "nope") is None
    resource = wire.decode(
        f'<resource rel="message" href="/m" xmlns="http://schemas.microsoft.com/rtc/2012/03/ucwa">'
        f'<link rel="participant" href="{LENE}" title="Lene Aaling"/>'
        f'<link rel="contact" href="/c" title=""/></resource>'.encode(),
        XML,
    )
    parsed = parse_resource(resource)
    assert [link.title for link in parsed.links] == [None, "Lene Aaling", None]  # self first


def test_link_only_participant_is_named_by_its_title() -> None:
    book = new_book()
    feed(book, conversation_event("added"))
    effects = feed(book, RECEIVE_STEP_9)
    [fetch] = fetches(effects)  # the uri still needs a GET
    state = book.get(key(CONV))
    assert state is not None
    [participant] = state.participants.values()
    assert participant.name == "Lene Aaling"
    assert participant.uri is None
    book.fetched(fetch, parse_resource({"rel": "participant", "uri": "sip:lenea@metio.ms"}))
    assert state.participants[key(fetch.href)] == Participant("sip:lenea@metio.ms", "Lene Aaling")


def test_message_sender_named_by_the_participant_link_title() -> None:
    book = new_book()
    feed(book, conversation_event("added"))
    feed(book, RECEIVE_STEP_16)  # from a participant no event announced
    state = book.get(key(CONV))
    assert state is not None
    [message] = state.messages.read(state.messages.open_reader())
    assert message.sender is not None
    assert message.sender.name == "Lene Aaling"
    # a participant known without a name gets the link's title
    feed(book, link_only("participant", LENE, "added"))
    later = titled_message()
    feed(book, later)
    [message] = state.messages.read(state.messages.open_reader())[1:]
    assert message.sender == Participant(None, "Lene Aaling")


def titled_message() -> dict[str, Any]:
    batch = incoming_message(7, "data:,again")
    links = batch["sender"][0]["events"][0]["_embedded"]["message"]["_links"]
    links["participant"]["title"] = "Lene Aaling"
    return batch


# -- the accepted invitation's first message, repeated (ReceiveAnIM step 16) ----------


def accepted(book: ConversationBook, text: str | None = "Hi Tosh\r\n") -> Any:
    feed(book, conversation_event("added"))
    state = book.get(key(CONV))
    assert state is not None
    state.skip_text = text
    return state


def message_resource(n: int, text_uri: str, **extra: Any) -> Any:
    batch = incoming_message(n, text_uri)
    raw = batch["sender"][0]["events"][0]["_embedded"]["message"]
    raw.update(extra)
    return parse_resource(raw)


def test_repeat_is_skipped_whatever_body_is_read_first() -> None:
    book = new_book()
    state = accepted(book)
    repeat, new = (f"{CONV}/messaging/messages/{n}" for n in (2, 3))
    [first] = fetches(feed(book, link_only("message", repeat, "started")))
    [second] = fetches(feed(book, link_only("message", new, "started")))
    book.fetched(second, message_resource(3, "data:,Hi+Tosh%0d%0a"))  # same text, later
    book.fetched(first, message_resource(2, "data:,Hi+Tosh%0d%0a"))
    [message] = state.messages.read(state.messages.open_reader())
    assert message.href == new  # the later one, not the repeat
    assert state.skip_text is None


def test_repeat_after_an_outgoing_or_unreadable_link_only_message() -> None:
    for outcome in ("outgoing", "unreadable"):
        book = new_book()
        state = accepted(book)
        [first] = fetches(
            feed(book, link_only("message", f"{CONV}/messaging/messages/1", "started"))
        )
        if outcome == "outgoing":
            book.fetched(first, message_resource(1, "data:,mine", direction="Outgoing"))
        else:
            book.fetched(first, None)
        feed(book, incoming_message(2, "data:,Hi+Tosh%0d%0a"))  # the repeat: skipped
        feed(book, incoming_message(3, "data:,Hi+Tosh%0d%0a"))  # said again: kept
        assert read_all(book) == ["Hi Tosh\r\n"], outcome
        assert state.skip_text is None


def test_repeat_of_an_html_invitation_and_an_empty_one() -> None:
    book = new_book()
    accepted(book, "<b>Hi</b>")
    batch = incoming_message(2, "data:text/plain,Hi")
    links = batch["sender"][0]["events"][0]["_embedded"]["message"]["_links"]
    links["htmlMessage"] = {"href": "data:text/html,%3Cb%3EHi%3C%2Fb%3E"}
    feed(book, batch)
    assert read_all(book) == []
    book = new_book()
    accepted(book, " ")
    feed(book, incoming_message(2, "data:,Hi"))
    assert read_all(book) == ["Hi"]


# -- messagingInvitation_ref embeds both ``acceptedByParticipant`` and ``from`` ---------

REF_INVITATION: dict[str, Any] = {
    "rel": "messagingInvitation",
    "direction": "Incoming",
    "state": "Connecting",
    "subject": "Strategy for next quarter",
    "_links": {
        "self": {"href": INV},
        "message": {"href": "data:text/plain;base64,SGkgSm9l"},
        "from": {"href": LENE},
        "accept": {"href": f"{INV}/accept"},
        "decline": {"href": f"{INV}/decline"},
        "conversation": {"href": CONV},
    },
    "_embedded": {
        "acceptedByParticipant": [
            {
                "rel": "participant",
                "name": "Tosh Meston",
                "uri": "sip:toshm@contoso.com",
                "_links": {"self": {"href": f"{CONV}/participants/toshm@contoso.com"}},
            }
        ],
        "from": {
            "rel": "participant",
            "name": "Lene Aaling",
            "uri": "sip:lenea@contoso.com",
            "_links": {"self": {"href": LENE, "title": "Lene Aaling"}},
        },
    },
}

REF_INVITATION_XML = f"""<?xml version="1.0" encoding="utf-8"?>
<events href="{APP}/events?ack=2" xmlns="http://schemas.microsoft.com/rtc/2012/03/ucwa">
  <sender rel="communication" href="{APP}/communication">
    <started rel="messagingInvitation" href="{INV}">
      <resource rel="messagingInvitation" href="{INV}">
        <link rel="message" href="data:text/plain;base64,SGkgSm9l" />
        <link rel="from" href="{LENE}" />
        <link rel="accept" href="{INV}/accept" />
        <link rel="conversation" href="{CONV}" />
        <property name="rel">messagingInvitation</property>
        <property name="direction">Incoming</property>
        <property name="state">Connecting</property>
        <resource rel="acceptedByParticipant" href="{CONV}/participants/toshm@contoso.com">
          <property name="rel">participant</property>
          <property name="name">Tosh Meston</property>
          <property name="uri">sip:toshm@contoso.com</property>
        </resource>
        <resource rel="from" href="{LENE}">
          <property name="rel">participant</property>
          <property name="name">Lene Aaling</property>
          <property name="uri">sip:lenea@contoso.com</property>
        </resource>
      </resource>
    </started>
  </sender>
</events>""".encode()


def test_the_caller_is_from_not_accepted_by_participant_in_both_wires() -> None:
    json_batch = link_only("messagingInvitation", INV, "started", sender_rel="communication")
    json_batch["sender"][0]["events"][0]["_embedded"] = {"messagingInvitation": REF_INVITATION}
    for batch in (json_batch, REF_INVITATION_XML):
        book = new_book()
        [arrived] = [e for e in feed(book, batch) if isinstance(e, Arrived)]
        assert arrived.view.sender == Participant("sip:lenea@contoso.com", "Lene Aaling")
        assert arrived.view.message == "Hi Joe"
        state = book.get(key(CONV))
        assert state is not None
        # the local one (acceptedByParticipant of an incoming invitation) is not remote
        assert [p.uri for p in state.participants.values()] == ["sip:lenea@contoso.com"]


def test_embedded_name_and_link_title_round_trip() -> None:
    resource = parse_resource(REF_INVITATION)
    [accepted, caller] = resource.embedded
    assert (accepted.rel, accepted.embedded_as) == ("participant", "acceptedByParticipant")
    assert (caller.rel, caller.embedded_as) == ("participant", "from")
    assert resource.embedded_one("from") is caller
    assert resource.embedded_as is None
    out = CONVERTER.unstructure(resource)
    assert set(out["_embedded"]) == {"acceptedByParticipant", "from"}
    assert out["_embedded"]["from"]["_links"]["self"] == {"href": LENE, "title": "Lene Aaling"}
    assert parse_resource(out) == resource


def test_completed_without_status_is_judged_by_the_invitation_state() -> None:
    for state, accepted in (("Connected", True), ("Failed", False)):
        book = new_book()
        json_batch = link_only("messagingInvitation", INV, "started", sender_rel="communication")
        json_batch["sender"][0]["events"][0]["_embedded"] = {"messagingInvitation": REF_INVITATION}
        feed(book, json_batch)
        done = link_only("messagingInvitation", INV, "completed", sender_rel="communication")
        invitation = dict(REF_INVITATION, state=state)
        done["sender"][0]["events"][0]["_embedded"] = {"messagingInvitation": invitation}
        assert InvitationEnded(key(INV), accepted, None) in feed(book, done)


def test_caller_known_only_by_its_from_link() -> None:
    invitation = {k: v for k, v in REF_INVITATION.items() if k != "_embedded"}
    invitation["_links"] = dict(invitation["_links"], **{"from": {"href": LENE, "title": "Lene"}})
    view = invitation_view(parse_resource(invitation), INV)
    assert view is not None
    assert view.sender == Participant(None, "Lene")
    assert view.sender.href == LENE
    del invitation["_links"]["from"]
    view = invitation_view(parse_resource(invitation), INV)
    assert view is not None
    assert view.sender == Participant()


# -- one person under two participant hrefs (ReceiveAnIM: contoso.com and metio.ms) ----


def test_one_person_under_two_hrefs_is_one_participant() -> None:
    book = new_book()
    feed(book, RECEIVE_STEP_8)  # Lene from the invitation: .../participants/lenea@contoso.com
    state = book.get(key(CONV))
    assert state is not None
    [fetch] = fetches(feed(book, RECEIVE_STEP_9))  # .../participants/lenea@metio.ms, by link
    assert len(state.participants) == 2  # not known to be the same yet
    typing = link_only("participant", fetch.href, "added")
    typing["sender"][0]["events"][0]["in"] = {"rel": "typingParticipants", "href": "/t"}
    feed(book, typing)
    book.fetched(fetch, parse_resource({"rel": "participant", "uri": "sip:lenea@contoso.com"}))
    assert list(state.participants.values()) == [
        Participant("sip:lenea@contoso.com", "Lene Aaling")
    ]
    assert list(state.typing) == [key(LENE)]
    # events under the other href reach the same participant
    book.fetched(fetch, parse_resource({"rel": "participant", "uri": "sip:LeneA@contoso.com"}))
    assert len(state.participants) == 1
    effects = feed(book, link_only("participant", fetch.href, "deleted"))
    assert Ended(key(CONV), ConversationEndReason.REMOTE_LEFT) in effects


def test_participant_aliases_are_bounded() -> None:
    book = new_book()
    feed(book, RECEIVE_STEP_8)
    state = book.get(key(CONV))
    assert state is not None
    for n in range(70):
        state.add_participant(f"alias{n}", Participant("sip:lenea@contoso.com"))
    assert len(state.participants) == 1
    assert len(state._aliases) == 64


def _caller_by_link_only(title: str | None = None) -> dict[str, Any]:
    """ReceiveAnIM step 8's started invitation, its caller named by the ``from`` link only
    (messagingInvitation_ref: ``from`` is a link to the participant)."""
    invitation = _invitation("Connecting", answer_links=True)
    del invitation["_embedded"]
    invitation["_links"]["from"] = {"href": LENE, **({"title": title} if title else {})}
    batch = link_only("messagingInvitation", INV, "started", sender_rel="communication")
    batch["sender"][0]["events"][0]["_embedded"] = {"messagingInvitation": invitation}
    return batch


def test_a_caller_named_by_its_from_link_only_is_read_before_the_invitation_arrives() -> None:
    """ReceiveAnIM step 11: the participant is read (GET) to learn who sent the invitation.
    An incoming invitation that embeds no caller arrives once its ``from`` is read, with
    the caller's uri and name (and an absolute href, as every participant has)."""
    book = new_book(resolve=lambda href: key(href))
    effects = feed(book, _caller_by_link_only())
    assert not [e for e in effects if isinstance(e, Arrived)]
    [fetch] = fetches(effects)
    assert (fetch.kind, fetch.href, fetch.key) == ("from", LENE, key(INV))
    assert not book.is_incoming(INV)
    assert fetches(feed(book, _caller_by_link_only())) == []  # announced again: one GET
    lene = parse_resource(_invitation("Connecting", answer_links=True)["_embedded"]["from"])
    [arrived] = [e for e in book.fetched(fetch, lene) if isinstance(e, Arrived)]
    assert arrived.view.sender == Participant("sip:lenea@contoso.com", "Lene Aaling")
    assert arrived.view.sender.href == key(LENE)
    assert arrived.view.message == "Hi Tosh\r\n"
    assert book.is_incoming(INV)
    assert book.fetched(fetch, lene) == []  # read once only


def test_a_caller_that_cannot_be_read_or_an_invitation_over_meanwhile() -> None:
    book = new_book()
    [fetch] = fetches(feed(book, _caller_by_link_only(title="Lene")))
    [arrived] = book.fetched(fetch, None)  # unreadable: what the link says
    assert isinstance(arrived, Arrived)
    assert arrived.view.sender == Participant(None, "Lene")
    book = new_book()
    [fetch] = fetches(feed(book, _caller_by_link_only()))
    done = link_only("messagingInvitation", INV, "deleted", sender_rel="communication")
    feed(book, done)  # withdrawn while its caller was read: never offered
    assert book.fetched(fetch, None) == []
    assert not book.is_incoming(INV)
    # bounded: past max_conversations callers being read, the oldest is forgotten
    book = new_book(max_conversations=1)
    [first] = fetches(feed(book, _caller_by_link_only()))
    other = _caller_by_link_only()
    other["sender"][0]["events"][0]["link"]["href"] = f"{INV}9"
    [second] = fetches(feed(book, other))
    assert book.fetched(first, None) == []
    assert [type(e) for e in book.fetched(second, None)] == [Arrived]


def test_a_link_only_completed_without_status_is_judged_by_reading_the_invitation() -> None:
    """A ``completed`` that embeds nothing and gives no status does not say how the
    invitation ended (the event samples of messagingInvitation_ref are link-only): the
    invitation is read, as for the session's own invitations, and its state decides."""
    done = link_only("messagingInvitation", INV, "completed", sender_rel="communication")
    for state, accepted in (("Connected", True), ("Failed", False)):
        book = new_book()
        feed(book, RECEIVE_STEP_8)
        effects = feed(book, done)
        assert not [e for e in effects if isinstance(e, InvitationEnded)]
        [fetch] = fetches(effects)
        assert (fetch.href, fetch.key) == (INV, key(INV))
        assert book.is_incoming(INV)  # still to be judged
        read = parse_resource(_invitation(state, answer_links=False))
        assert book.fetched(fetch, read) == [InvitationEnded(key(INV), accepted, None)]
        assert not book.is_incoming(INV)
        assert book.fetched(fetch, read) == []  # judged once
    # unreadable (gone already): the conversation's messaging state decides
    for messaging, accepted in (("Connected", True), (None, False)):
        book = new_book()
        feed(book, RECEIVE_STEP_8)
        if messaging is not None:
            feed(book, link_only("messaging", f"{CONV}/messaging", "updated"))
            state = book.get(key(CONV))
            assert state is not None
            book.read_modality(state, "messaging", parse_resource({"state": messaging}))
        [fetch] = fetches(feed(book, done))
        assert book.fetched(fetch, None) == [InvitationEnded(key(INV), accepted, None)]


def test_a_link_only_completed_with_only_a_reason_block_ends_with_that_reason() -> None:
    """EventChannelDetails.md: "For failed operations ..., a 'reason' block that describes
    the details of the change". A completed with a reason and no status says how the
    invitation ended (as for the session's own invitations): no GET, and the server's
    reason is what accept() is told."""
    book = new_book()
    feed(book, RECEIVE_STEP_8)
    done = link_only("messagingInvitation", INV, "completed", sender_rel="communication")
    reason = {"code": "Gone", "subcode": "CallCancelled", "message": "The caller hung up."}
    done["sender"][0]["events"][0]["reason"] = reason
    [ended] = feed(book, done)
    assert isinstance(ended, InvitationEnded)
    assert (ended.key, ended.accepted) == (key(INV), False)
    assert ended.reason is not None
    assert (ended.reason.code, ended.reason.subcode) == ("Gone", "CallCancelled")
    assert not book.is_incoming(INV)
