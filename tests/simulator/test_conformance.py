"""Conformance of the simulator's conversation resources to Microsoft's reference.

``tests/fixtures/reference/<resource>.json`` holds trimmed copies of the reference
samples of a resource (its ``*_ref.md`` GET sample and the ReceiveAnIM/SendAnIM flow
samples, each with its source) and ``<resource>.xml`` the ref page's XML sample.
For every resource the simulator serves, in both wires:

- every link rel, property name and embedded name it writes is one a reference sample
  has (no invented names);
- every name all the samples have is there, except the ``not_modelled`` ones the
  fixture lists (features the simulator deliberately does not serve).

Resources reached through events are held to the same inventory (names only).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ._conv_support import Driver, Event, Resource, is_, resource_from_json, resource_from_xml
from ._support import MakeClient
from .test_conversations import LENE, config

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "reference"
RESOURCES = (
    "communication",
    "conversation",
    "participant",
    "localParticipant",
    "messaging",
    "message",
    "messagingInvitation",
    "phoneAudioInvitation",
    "phoneAudio",
)
EVENT_RESOURCE = {  # an event's link rel -> the fixture of its embedded resource
    "conversation": "conversation",
    "participant": "participant",
    "localParticipant": "localParticipant",
    "messaging": "messaging",
    "message": "message",
    "messagingInvitation": "messagingInvitation",
    "phoneAudioInvitation": "phoneAudioInvitation",
    "phoneAudio": "phoneAudio",
}


@dataclass(frozen=True)
class Names:
    links: frozenset[str]
    props: frozenset[str]
    embedded: frozenset[str]
    rels: frozenset[str]


def _names(res: Resource) -> Names:
    return Names(
        frozenset(res.links) | {"self"},
        frozenset(res.props),
        frozenset(res.embedded),
        frozenset({res.rel}),
    )


@dataclass(frozen=True)
class Reference:
    allowed: Names
    always: Names
    nested: dict[str, frozenset[str]]
    """Embedded name -> the names its resources may have (links and properties)."""


def _load(name: str) -> Reference:
    doc = json.loads((FIXTURES / f"{name}.json").read_text())
    assert doc["_source"].keys() == doc["samples"].keys()  # every sample says where from
    samples = [resource_from_json(s) for s in doc["samples"].values()]
    xml_sample = resource_from_xml(ET.fromstring((FIXTURES / f"{name}.xml").read_bytes()))
    every = [_names(s) for s in samples]
    union = [*every, _names(xml_sample)]
    allowed = Names(
        frozenset().union(*(n.links for n in union)),
        frozenset().union(*(n.props for n in union)),
        frozenset().union(*(n.embedded for n in union)),
        frozenset().union(*(n.rels for n in union)),
    )
    skipped = doc["not_modelled"]
    # not_modelled names must be real reference names, not a way to hide typos
    assert set(skipped["links"]) <= allowed.links
    assert set(skipped["properties"]) <= allowed.props
    always = Names(
        frozenset.intersection(*(n.links for n in every)) - set(skipped["links"]),
        frozenset.intersection(*(n.props for n in every)) - set(skipped["properties"]),
        frozenset(),
        frozenset(),
    )
    nested: dict[str, set[str]] = {}
    for sample in [*samples, xml_sample]:
        for key, children in sample.embedded.items():
            for child in children:
                nested.setdefault(key, set()).update(child.links, child.props, {"self"})
    return Reference(allowed, always, {k: frozenset(v) for k, v in nested.items()})


REFERENCE = {name: _load(name) for name in RESOURCES}


def _check(name: str, res: Resource, *, complete: bool = True) -> None:
    ref = REFERENCE[name]
    got = _names(res)
    assert got.rels <= ref.allowed.rels, (name, got.rels)
    assert got.links <= ref.allowed.links, (name, sorted(got.links - ref.allowed.links))
    assert got.props <= ref.allowed.props, (name, sorted(got.props - ref.allowed.props))
    assert got.embedded <= ref.allowed.embedded, (name, sorted(got.embedded))
    for key, children in res.embedded.items():
        for child in children:
            extra = (set(child.links) | set(child.props)) - ref.nested[key]
            assert not extra, (name, key, sorted(extra))
    if complete:
        assert ref.always.links <= got.links, (name, sorted(ref.always.links - got.links))
        assert ref.always.props <= got.props, (name, sorted(ref.always.props - got.props))


def test_fixtures_are_reference_copies() -> None:
    for name in RESOURCES:
        doc: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
        assert any(src.startswith("Skype/UCWA/") for src in doc["_source"].values())
        assert "Skype/UCWA/" in (FIXTURES / f"{name}.xml").read_text()
    # The check can fail: an invented name is caught.
    bogus = Resource("message", "/m/1", {"plainText": ["data:,x"]}, {"direction": "Incoming"})
    with pytest.raises(AssertionError):
        _check("message", bogus, complete=False)


@pytest.mark.parametrize("wire", ["json", "xml"])
async def test_resources_match_the_reference(make_client: MakeClient, wire: str) -> None:
    d = Driver(await make_client(config(), wire=wire))
    await d.make_available("Messaging", "PhoneAudio")

    _check("communication", await d.get(d.comm.href))

    # an outgoing messaging conversation, connected, with messages both ways
    started = await d.post(
        d.comm.link("startMessaging"), {"to": LENE, "operationId": "op-1", "subject": "s"}
    )
    assert started.status == 201
    invitation_href = started.headers["Location"]
    done = await d.until(is_("completed", "messagingInvitation"))
    _check("messagingInvitation", await d.get(invitation_href))
    conv_href = (await d.get(invitation_href)).link("conversation")
    conversation = await d.get(conv_href)
    _check("conversation", conversation)
    _check("localParticipant", await d.get(conversation.link("localParticipant")))
    participants = await d.get(conversation.link("participants"))
    _check("participant", await d.get(participants.link("participant")))
    messaging = await d.get(conversation.link("messaging"))
    _check("messaging", messaging)
    sent = await d.send(messaging, "hello")
    assert sent.status == 201
    _check("message", await d.get(sent.headers["Location"]))
    echo = await d.until(
        lambda e: (
            e.rel == "message"
            and e.href != sent.headers["Location"]
            and "/messages/" in e.href
            and e.type == "completed"
            and e.resource is not None
            and e.resource.props.get("direction") == "Incoming"
        )
    )
    _check("message", await d.get(echo.href))
    d.sim.faults.message_delivery_failed()
    failed = await d.send(messaging, "lost")
    _check("message", await d.get(failed.headers["Location"]))
    assert done.status == "Success"

    # an incoming messaging invitation, waiting for an answer
    url = await d.sim.incoming_message(LENE, "hi")
    _check("messagingInvitation", await d.get(url))

    # phone audio: outgoing (connected) and incoming (waiting)
    call = await d.post(
        d.comm.link("startPhoneAudio"),
        {"to": LENE, "operationId": "op-2", "phoneNumber": "tel:+14255551234"},
    )
    assert call.status == 201
    await d.until(is_("completed", "phoneAudioInvitation"))
    _check("phoneAudioInvitation", await d.get(call.headers["Location"]))
    audio_conv = await d.get((await d.get(call.headers["Location"])).link("conversation"))
    _check("conversation", audio_conv)
    _check("phoneAudio", await d.get(audio_conv.link("phoneAudio")))
    ring = await d.sim.incoming_call(LENE)
    _check("phoneAudioInvitation", await d.get(ring))

    # every resource embedded in an event, in any state: names only
    await d.poll()
    embedded = [e for e in d.seen if e.resource is not None]
    assert {e.rel for e in embedded} >= {"conversation", "messaging", "message", "participant"}
    for event in embedded:
        _check_event(event)


def _check_event(event: Event) -> None:
    assert event.resource is not None
    _check(EVENT_RESOURCE[event.rel], event.resource, complete=False)
