"""Conformance matrix: every reference sample of the resources the client reads.

``tests/fixtures/reference/events/`` and ``resources/`` hold Microsoft's own samples
(OfficeDev/skype-docs, see the README there). Each one is

1. decoded and parsed (``wire.decode`` + ``parse_event_batch`` / ``parse_resource``):
   nothing rejected, the event types, links, in-links and embedded resources the sample
   shows, typed models where the client has them; the JSON and XML samples of one page
   parse the same where the page's two samples say the same thing;
2. fed to a real session's delivery path (``SessionChannelHost.deliver``, the session's
   parts built without I/O, GETs and POSTs answered in process from the reference's own
   samples), asserting what a user sees: invitations' outcomes, the inbox, the messages,
   nothing raised, nothing logged at ERROR.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import urllib.parse
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import pytest

import ucwa_async
from ucwa_async._channel import DELIVERY_SLICE, run_steps
from ucwa_async._channel_host import SessionChannelHost
from ucwa_async._core import models as _models
from ucwa_async._core import wire as _wire
from ucwa_async._core.channel import ChannelState, Deliver
from ucwa_async._core.errors import NotFoundError
from ucwa_async._core.urls import origin_of
from ucwa_async._http import HttpResponse
from ucwa_async._session import SessionState
from ucwa_async.testing._render import Ev, Res, render_batch

REF = Path(__file__).resolve().parent.parent / "fixtures" / "reference"
EVENTS = sorted(p.name for p in (REF / "events").iterdir())
RESOURCES = sorted(p.name for p in (REF / "resources").iterdir())
# The resources whose samples are in the top level (the simulator's fixtures):
# "ref GET" of <name>.json and <name>.xml.
TOP_LEVEL = (
    "communication",
    "conversation",
    "localParticipant",
    "message",
    "messaging",
    "messagingInvitation",
    "participant",
    "phoneAudio",
    "phoneAudioInvitation",
)
# SendAnIM step 4 ends with an empty event object (the page's elision): skipped.
REJECTED = {"SendAnIM-4.json": 1}
JSON_TYPE = "application/json"


def wire_of(name: str) -> str:
    return name.rsplit(".", 1)[1]


def content_type(name: str) -> str:
    return JSON_TYPE if wire_of(name) == "json" else _wire.UCWA_XML_MEDIA_TYPE


def load(path: Path) -> dict[str, Any]:
    return _wire.decode(path.read_bytes(), content_type(path.name))


def ref_get(name: str, wire: str) -> dict[str, Any]:
    """The ref page's GET sample of ``name``, from the top-level fixtures."""
    if wire == "json":
        sample: dict[str, Any] = json.loads((REF / f"{name}.json").read_text())["samples"]
        return sample["ref GET"]
    return load(REF / f"{name}.xml")


def _res(d: Mapping[str, Any], key: str) -> Res:
    links = [(rel, href) for rel, href in raw_links(d) if rel != "self"]
    props = {k: v for k, v in d.items() if k not in ("_links", "_embedded", "rel")}
    children = [
        _res(child, name)
        for name, value in (d.get("_embedded") or {}).items()
        for child in as_list(value)
    ]
    rel = d.get("rel", key)
    return Res(
        rel, d["_links"]["self"]["href"], links, props, children, None if key == rel else key
    )


def xml_twin(name: str, status_as_attribute: bool = False) -> bytes:
    """The JSON sample ``name`` as a UCWA server writes it in XML (EventChannelDetails.md's
    shape, by ``ucwa_async.testing``'s renderer): the ref pages have no XML event samples."""
    d = json.loads((REF / "events" / name).read_text())
    senders = []
    for sender in as_list(d["sender"]):
        events = []
        for e in as_list(sender["events"]):
            if "type" not in e:
                continue  # REJECTED: nothing to write
            embedded, in_ = e.get("_embedded"), e.get("in")
            key = next(iter(embedded)) if embedded else None
            events.append(
                Ev(
                    e["type"],
                    e["link"]["rel"],
                    e["link"]["href"],
                    (in_["rel"], in_["href"]) if in_ else None,
                    e.get("status"),
                    None,
                    _res(embedded[key], key) if embedded and key else None,
                    e["link"].get("title"),
                )
            )
        senders.append((sender["rel"], sender["href"], events))
    return render_batch(
        self_href=d["_links"]["self"]["href"],
        links=[(rel, link["href"]) for rel, link in d["_links"].items() if rel != "self"],
        senders=senders,
        wire="xml",
        status_as_attribute=status_as_attribute,
    )


def batch_of(name: str, wire: str) -> _models.EventBatch:
    if wire == "json":
        return _models.parse_event_batch(load(REF / "events" / name))
    return _models.parse_event_batch(_wire.decode(xml_twin(name), _wire.UCWA_XML_MEDIA_TYPE))


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


# ---------------------------------------------------------------- what a sample says
# Read straight from the decoded sample, independently of the parser under test.


@dataclass(frozen=True)
class Said:
    type: str
    rel: str
    href: str
    sender: str
    in_rel: str | None
    in_href: str | None
    status: str | None
    embedded: str | None  # the key of the event's embedded resource


def said(batch: Mapping[str, Any]) -> list[Said]:
    out = []
    for sender in as_list(batch.get("sender")):
        for event in as_list(sender.get("events")):
            if "type" not in event:
                continue  # REJECTED
            link, in_ = event["link"], event.get("in") or {}
            embedded = list(event.get("_embedded") or {})
            out.append(
                Said(
                    event["type"],
                    link["rel"],
                    link["href"],
                    sender["rel"],
                    in_.get("rel"),
                    in_.get("href"),
                    event.get("status"),
                    embedded[0] if embedded else None,
                )
            )
    return out


def raw_links(resource: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [
        (rel, link["href"])
        for rel, value in (resource.get("_links") or {}).items()
        for link in as_list(value)
    ]


def check_resource(parsed: _models.Resource, raw: Mapping[str, Any], key: str | None) -> None:
    """``parsed`` holds every link, property and embedded resource of ``raw``."""
    assert parsed.rel == raw.get("rel", key)
    links = raw_links(raw)
    assert [(link.rel, link.href) for link in parsed.links] == links
    assert parsed.href == dict(links).get("self")
    properties = {k: v for k, v in raw.items() if k not in ("_links", "_embedded")}
    assert dict(parsed.properties) == properties
    children = [
        (name, child)
        for name, value in (raw.get("_embedded") or {}).items()
        for child in as_list(value)
    ]
    assert len(parsed.embedded) == len(children)
    for got, (name, child) in zip(parsed.embedded, children, strict=True):
        assert name in (got.rel, got.embedded_as)
        check_resource(got, child, name)
    model = {
        "messagingInvitation": _models.MessagingInvitation,
        "phoneAudioInvitation": _models.PhoneAudioInvitation,
        "conversationLog": _models.ConversationLog,
    }.get(parsed.rel or "", _models.UnknownResource)
    assert type(parsed) is model
    if isinstance(parsed, _models.InvitationResource):
        assert parsed.state == raw.get("state")
        assert parsed.operation_id == raw.get("operationId")
        assert parsed.direction == raw.get("direction")
        assert parsed.thread_id == raw.get("threadId")


# ---------------------------------------------------------------- 1. parse


@pytest.mark.parametrize("name", EVENTS)
def test_event_sample_parses(name: str) -> None:
    raw = load(REF / "events" / name)
    batch = _models.parse_event_batch(raw)
    assert batch.rejected_count == REJECTED.get(name, 0), batch.rejected
    links = raw["_links"]
    assert batch.self_href == links["self"]["href"] if "self" in links else batch.self_href is None
    assert batch.next_href == links["next"]["href"]
    expected = said(raw)
    assert expected, "a sample with no event"
    got = [
        Said(
            e.type,
            e.link.rel,
            e.link.href,
            e.sender.rel if e.sender else "",
            e.in_link.rel if e.in_link else None,
            e.in_link.href if e.in_link else None,
            e.status,
            (e.resource.embedded_as or e.resource.rel) if e.resource else None,
        )
        for e in batch.events
    ]
    assert got == expected
    assert all(type(e) is _models.Event for e in batch.events)  # no type unknown
    events = [e for s in as_list(raw["sender"]) for e in as_list(s["events"]) if "type" in e]
    for event, raw_event in zip(batch.events, events, strict=True):
        if event.resource is not None:
            key = next(iter(raw_event["_embedded"]))
            check_resource(event.resource, raw_event["_embedded"][key], key)
        # Link titles are kept (a participant's display name).
        assert event.link.title == (raw_event["link"].get("title") or None)  # "": no title


RESOURCE_SAMPLES = [(n, "resources") for n in RESOURCES] + [
    (f"{n}.{w}", "top") for n in TOP_LEVEL for w in ("json", "xml")
]


@pytest.mark.parametrize(("name", "where"), RESOURCE_SAMPLES)
def test_resource_sample_parses(name: str, where: str) -> None:
    stem, wire = name.rsplit(".", 1)
    raw = load(REF / "resources" / name) if where == "resources" else ref_get(stem, wire)
    parsed = _models.parse_resource(raw)
    check_resource(parsed, raw, None)


@pytest.mark.parametrize("wire", ["json", "xml"])
def test_what_the_client_reads_of_the_reference_resources(wire: str) -> None:
    app = _models.parse_resource(load(REF / "resources" / f"application.{wire}"))
    # The page's events link is its placeholder (http://sample/.../appId), kept as given.
    assert app.link("events") == "http://sample/ucwa/v1/applications/appId/events"
    me = app.embedded_one("me")
    communication = app.embedded_one("communication")
    assert me is not None
    assert communication is not None
    # application_ref.md's me links makeMeAvailable (to a communication/ path), as
    # me_ref.md's does; the client reads me's, else communication's.
    assert me.link("makeMeAvailable") == "/ucwa/v1/applications/192/communication/makeMeAvailable"
    assert communication.link("makeMeAvailable") is None
    assert me.link("reportMyActivity") == "/ucwa/v1/applications/192/reportMyActivity"
    assert communication.link("startMessaging") is not None
    assert communication.link("conversationLogs") is not None
    fresh_me = _models.parse_resource(load(REF / "resources" / f"me.{wire}"), rel="me")
    assert fresh_me.link("makeMeAvailable") is not None
    assert fresh_me.link("reportMyActivity") is not None

    logs = _models.parse_resource(load(REF / "resources" / f"conversationLogs.{wire}"))
    assert logs.links_for("conversationLog")  # one link (the sample); a list works too
    log = _models.parse_resource(load(REF / "resources" / f"conversationLog.{wire}"))
    assert isinstance(log, _models.ConversationLog)
    assert log.link("continueMessaging") is not None
    assert log.created_at is not None  # /Date(ms)/ in JSON, ISO 8601 in XML
    assert [r.display_name for r in log.recipients] == ["samplevalue"]  # (sic)


def test_flow_application_sample() -> None:
    # ReceiveAnIM step 3: after makeMeAvailable (step 1), so no makeMeAvailable link.
    app = _models.parse_resource(load(REF / "resources" / "ReceiveAnIM-3-application.json"))
    assert app.link("events") == "/ucwa/oauth/v1/applications/104/events?ack=1"
    me = app.embedded_one("me")
    assert me is not None
    assert me.link("reportMyActivity") == "/ucwa/oauth/v1/applications/104/me/reportMyActivity"
    assert app.embedded_one("communication") is not None


# What the reference's JSON and XML samples of one page say differently (sample
# values, not shapes): left out of the comparison.
DIFFERENT_VALUES: dict[str, tuple[str, ...]] = {
    "conversationLog": ("totalRecipientsCount", "creationTime"),
    "conversations": ("conversation",),
    "messages": ("message",),
    "conversation": ("participantCount", "expirationTime", "created"),
    "message": ("failedDeliveryParticipant", "status", "timeStamp"),
    "messagingInvitation": ("state",),
}


def _without(resource: _models.Resource, names: tuple[str, ...]) -> tuple[Any, ...]:
    return (
        resource.rel,
        resource.href,
        [(link.rel, link.href) for link in resource.links if link.rel not in names],
        {k: v for k, v in resource.properties.items() if k not in names},
        [(c.rel, c.embedded_as, c.href, dict(c.properties)) for c in resource.embedded],
    )


@pytest.mark.parametrize(
    "name", sorted({n.rsplit(".", 1)[0] for n in RESOURCES if n.endswith(".xml")}) + list(TOP_LEVEL)
)
def test_json_and_xml_samples_parse_the_same(name: str) -> None:
    def parsed(wire: str) -> _models.Resource:
        if name in TOP_LEVEL:
            return _models.parse_resource(ref_get(name, wire))
        return _models.parse_resource(load(REF / "resources" / f"{name}.{wire}"))

    names = DIFFERENT_VALUES.get(name, ())
    assert _without(parsed("json"), names) == _without(parsed("xml"), names)


def test_json_and_xml_event_batches_parse_the_same() -> None:
    from_json = _models.parse_event_batch(load(REF / "events" / "EventChannelDetails.json"))
    from_xml = _models.parse_event_batch(load(REF / "events" / "EventChannelDetails.xml"))
    assert from_json == from_xml
    assert [e.resource for e in from_json.events] == [e.resource for e in from_xml.events]


def _ordered(resource: _models.Resource | None) -> Any:
    # XML puts a resource's self first (its href attribute), JSON where _links has it;
    # the renderer writes no titles on a resource's links (the events' links have theirs).
    if resource is None:
        return None
    return (
        type(resource),
        resource.rel,
        resource.href,
        sorted((link.rel, link.href) for link in resource.links),
        dict(resource.properties),
        [_ordered(child) for child in resource.embedded],
    )


@pytest.mark.parametrize("status_as_attribute", [False, True])
@pytest.mark.parametrize("name", [n for n in EVENTS if n.endswith(".json")])
def test_xml_twin_parses_as_the_json_sample(name: str, status_as_attribute: bool) -> None:
    from_json = _models.parse_event_batch(load(REF / "events" / name))
    body = xml_twin(name, status_as_attribute)
    from_xml = _models.parse_event_batch(_wire.decode(body, _wire.UCWA_XML_MEDIA_TYPE))
    assert from_xml.rejected_count == 0
    assert (from_xml.self_href, from_xml.next_href) == (from_json.self_href, from_json.next_href)
    assert [attrs.evolve(e, resource=None) for e in from_xml.events] == [
        attrs.evolve(e, resource=None) for e in from_json.events
    ]
    assert [_ordered(e.resource) for e in from_xml.events] == [
        _ordered(e.resource) for e in from_json.events
    ]


# ---------------------------------------------------------------- 2. delivery


@dataclass
class Server:
    """GETs answered from the reference's samples, POSTs recorded and answered 204."""

    gets: dict[str, dict[str, Any]] = field(default_factory=dict)
    got: list[str] = field(default_factory=list)
    posts: list[str] = field(default_factory=list)

    async def get_json(self, url: str, *, authorize: bool = True) -> dict[str, Any]:
        self.got.append(url)
        body = self.gets.get(url)
        if body is None:
            raise NotFoundError(status=404, code="NotFound")
        return body

    async def post(self, url: str, payload: bytes | None, ctype: str | None) -> HttpResponse:
        self.posts.append(url)
        return HttpResponse("POST", url, 204, None, b"")


@dataclass
class Parts:
    session: ucwa_async.Session
    host: SessionChannelHost
    server: Server
    app_url: str
    wire: str = "json"

    def url(self, href: str) -> str:
        return urllib.parse.urljoin(self.app_url, href)

    def deliver(self, name: str) -> _models.EventBatch:
        batch = batch_of(name, self.wire)
        self.host.deliver(batch)
        return batch

    async def start(self, rel: str, operation_id: str, href: str) -> ucwa_async.Invitation[Any]:
        """A pending invitation, as continueMessaging/continuePhoneAudio leave one (its
        POST answered 201 with ``href``)."""
        ops, app = self.session._operations, self.session._application

        async def answer_201(url: str, body: Mapping[str, Any]) -> tuple[HttpResponse, int]:
            return HttpResponse("POST", url, 201, None, b"", location=href), app.generation

        ops._post_continue = answer_201  # type: ignore[method-assign]
        model: Any = (
            _models.MessagingInvitation
            if rel == "messagingInvitation"
            else _models.PhoneAudioInvitation
        )
        body = {"operationId": operation_id}
        return await ops.start(rel, self.url("communication/x"), body, operation_id, 30.0, model)


def app_of(name: str) -> str:
    """The application URL the sample's hrefs live under (relative ones: on an origin
    of the flow pages' host)."""
    text = (REF / "events" / name).read_text()
    match = re.search(r'(https://[^/"]+)?(/ucwa/[a-z/]*?v1/applications/[^/"]+)/', text)
    assert match is not None
    return (match.group(1) or "https://lyncweb.contoso.com") + match.group(2) + "/"


@contextlib.asynccontextmanager
async def parts(app_url: str, wire: str = "json") -> AsyncIterator[Parts]:
    origin = app_url.split("/ucwa/", 1)[0]
    async with aiohttp.ClientSession() as http:
        session = ucwa_async.Session(
            origin + "/autodiscover", auth=ucwa_async.TokenAuth("t"), http_session=http
        )
        session._build_parts()
        session._state = SessionState.OPEN  # as open() leaves it, without its I/O
        session._application.url = app_url.rstrip("/")
        server = Server()
        session._client_transport.get_json = server.get_json  # type: ignore[method-assign]
        session._conversations._post_payload = server.post
        host = session._host
        assert host is not None
        try:
            yield Parts(session, host, server, app_url, wire)
        finally:
            session._operations.close_all()
            session._conversations.close()
            background = list(session._background)
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)


def no_errors(caplog: pytest.LogCaptureFixture) -> None:
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


@pytest.mark.parametrize("name", [n for n in EVENTS if n.endswith(".json")])
async def test_every_event_sample_is_delivered(name: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="ucwa_async")
    async with parts(app_of(name)) as p:
        batch = p.deliver(name)
        await settle()
        stats = p.session.stats
        assert stats.events_received == len(batch.events)
        assert stats.events_rejected == REJECTED.get(name, 0)
        no_errors(caplog)


@pytest.mark.parametrize("wire", ["json", "xml"])
async def test_event_channel_details_through_the_channel(
    wire: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The page's pair, decoded by the channel itself (relative hrefs: the cursor moves).
    caplog.set_level(logging.DEBUG, logger="ucwa_async")
    name = f"EventChannelDetails.{wire}"
    async with parts(app_of(name)) as p:
        state = ChannelState(p.url("events?ack=1"))
        body = (REF / "events" / name).read_bytes()
        action = await run_steps(state.on_response_steps(200, content_type(name), body))
        assert isinstance(action, Deliver)
        assert action.next_url == p.url("events?ack=2")
        while action.events.items:
            p.host.deliver(action.events.take(DELIVERY_SLICE))
        await settle()
        assert p.session.stats.events_received == 5
        assert p.session.stats.events_rejected == 0
        no_errors(caplog)


async def test_ref_pages_batch_links_name_a_placeholder_host() -> None:
    # Every *_ref.md event sample's self/next is http://sample:80/.../applications/appId,
    # while its events are on https://fe1.contoso.com:443/.../applications/192: no real
    # server answers so (the page contradicts itself). The events are delivered and the
    # cursor follows next as given; the HTTP layer never sends the token there (another
    # origin, and plain http).
    name = "message-started.json"
    async with parts(app_of(name)) as p:
        state = ChannelState(p.url("events?ack=1"))
        body = (REF / "events" / name).read_bytes()
        action = await run_steps(state.on_response_steps(200, JSON_TYPE, body))
        assert isinstance(action, Deliver)
        assert action.next_url == "http://sample/ucwa/v1/applications/appId/events?ack=2"
        assert origin_of(action.next_url) not in p.session._client_transport.trusted_origins
        assert len(action.batch.events) == 1


OP = "74cb7404e0a247d5a2d4eb0376a47dbf"  # the operationId of the ref pages' GET samples


@pytest.mark.parametrize(
    ("rel", "href"),
    [
        ("messagingInvitation", "communication/invitations/602"),
        ("phoneAudioInvitation", "communication/invitations/146"),
    ],
)
async def test_ref_invitation_events_reach_our_invitation(
    rel: str, href: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The ref pages' started/updated samples are link-only, on another spelling of our
    # origin (https://fe1.contoso.com:443). messagingInvitation_ref.md's "completed"
    # has no sample: the updated one with type completed and status Success stands for
    # it (link-only, as the wire fixture events_link_only.json has it). The client GETs
    # the invitation then: the page's GET sample, Connected, our operationId.
    caplog.set_level(logging.DEBUG, logger="ucwa_async")
    async with parts("https://fe1.contoso.com/ucwa/v1/applications/192/") as p:
        invitation = await p.start(rel, OP, p.url(href))
        p.server.gets[p.url(href)] = ref_get(rel, "json")
        p.deliver(f"{rel}-started.json")
        p.deliver(f"{rel}-updated.json")
        await settle()
        # Link-only: no state to show yet, nothing read, still pending.
        assert (invitation.done(), invitation.state, p.server.got) == (False, None, [])
        completed = load(REF / "events" / f"{rel}-updated.json")
        event = completed["sender"][0]["events"][0]
        event.update(type="completed", status="Success")
        p.host.deliver(_models.parse_event_batch(completed))
        async with asyncio.timeout(5):
            resource = await invitation
        assert p.server.got == [p.url(href)]
        assert resource.state == "Connected"
        assert resource.operation_id == OP
        assert invitation.state == "Connected"
        assert p.session.stats.events_rejected == 0
        no_errors(caplog)


@pytest.mark.parametrize("wire", ["json", "xml"])
async def test_send_an_im_flow(wire: str, caplog: pytest.LogCaptureFixture) -> None:
    # SendAnIM.md: the 201's Location (step 2), the started invitation with our
    # operationId (step 4), its completion (step 6), our message completed (step 12).
    caplog.set_level(logging.DEBUG, logger="ucwa_async")
    app = "https://lyncweb.contoso.com/ucwa/oauth/v1/applications/102/"
    operation_id = "5028e824-2268-4b14-9e59-1abad65ff393"
    location = "/ucwa/oauth/v1/applications/102/communication/messagingInvitations/60c"
    async with parts(app, wire) as p:
        invitation = await p.start("messagingInvitation", operation_id, p.url(location))
        p.deliver("SendAnIM-4.json")
        await settle()
        assert not invitation.done()
        assert invitation.state == "Connecting"
        p.deliver("SendAnIM-6.json")
        await settle()
        assert invitation.done()
        resource = invitation.result()
        assert isinstance(resource, _models.MessagingInvitation)
        assert resource.state == "Connected"
        assert resource.operation_id == operation_id
        conversation = await invitation.conversation(timeout=1)
        assert conversation.href == p.url("communication/conversations/21a1")
        assert conversation.subject == "Task Sample"
        assert [x.uri for x in conversation.participants] == ["sip:lenea@contoso.com"]
        p.deliver("SendAnIM-12.json")
        await settle()
        # Step 4 ends with an empty event object (JSON only: the XML twin has none).
        assert p.session.stats.events_rejected == (1 if wire == "json" else 0)
        no_errors(caplog)


@pytest.mark.parametrize("wire", ["json", "xml"])
async def test_receive_an_im_flow(wire: str, caplog: pytest.LogCaptureFixture) -> None:
    # ReceiveAnIM.md steps 7-16: the incoming invitation in the inbox (step 8), its
    # accept (13-14), the conversation connected (15), the message (16).
    caplog.set_level(logging.DEBUG, logger="ucwa_async")
    app = "https://lyncweb.contoso.com/ucwa/oauth/v1/applications/104/"
    async with parts(app, wire) as p:
        p.deliver("ReceiveAnIM-7.json")
        p.deliver("ReceiveAnIM-8.json")
        async with p.session.incoming() as inbox:
            async with asyncio.timeout(1):
                incoming = await anext(inbox)
        assert incoming.kind == "messaging"
        assert incoming.sender.uri == "sip:lenea@contoso.com"
        assert incoming.sender.name == "Lene Aaling"
        assert incoming.message == "Hi Tosh\r\n"  # data:...,Hi+Tosh%0d%0a
        assert incoming.subject is None  # "subject":""
        p.deliver("ReceiveAnIM-9.json")
        p.deliver("ReceiveAnIM-10.json")
        await settle()
        assert not incoming.withdrawn
        accepting = asyncio.create_task(incoming.accept(timeout=5))
        await settle()
        assert p.server.posts == [
            p.url("communication/messagingInvitations/6408/accept"),
        ]
        assert not accepting.done()
        p.deliver("ReceiveAnIM-15.json")
        async with asyncio.timeout(5):
            conversation = await accepting
        assert conversation.href == p.url("communication/conversations/eee0")
        assert conversation.state == "Connected"
        stream = conversation.messages()
        p.deliver("ReceiveAnIM-16.json")
        await settle()
        # Step 16's message is the invitation's own first message (already
        # IncomingInvitation.message): not handed out a second time.
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await anext(stream)
        assert p.session.stats.events_rejected == 0
        no_errors(caplog)


async def test_ref_message_started_is_read_and_shown(caplog: pytest.LogCaptureFixture) -> None:
    # message_ref.md: "started" for an incoming message, link-only, with an absolute
    # href (:443): the client GETs it (the page's GET sample) and shows its text.
    caplog.set_level(logging.DEBUG, logger="ucwa_async")
    async with parts("https://fe1.contoso.com/ucwa/v1/applications/192/") as p:
        conversation = p.session._conversations.conversation_for(
            p.url("communication/conversations/137"), "messaging"
        )
        stream = conversation.messages()
        message = p.url("communication/conversations/137/messaging/messages/165")
        p.server.gets[message] = ref_get("message", "json")
        p.deliver("message-started.json")
        async with asyncio.timeout(5):
            got = await anext(stream)
        assert p.server.got == [message]
        assert got.text == "URLEncodedMessageString"  # data:text/plain;charset=utf8,...
        assert got.direction == "Incoming"
        no_errors(caplog)
