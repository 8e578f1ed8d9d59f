"""End to end with a plain aiohttp client: the seeds' bodies and the full sequence."""

from __future__ import annotations

import base64
import json

import pytest

from ucwa_async.testing import DECLINED, SimulatorConfig

from ._support import JSON, XML, MakeClient, events_of, next_href

# The seeds' request bodies, byte for byte as the reference shows them.
SEED_MESSAGING_JSON = b"""{
"operationId" : "74cb7404e0a247d5a2d4eb0376a47dbf",
"_links" : {
"message" : {
"href" : "data:text/plain;base64,somebase64encodedmessage"
}
}
}"""
SEED_MESSAGING_XML = b"""<?xml version="1.0" encoding="utf-8"?>
<input xmlns="http://schemas.microsoft.com/rtc/2012/03/ucwa">
<property name="operationId">74cb7404e0a247d5a2d4eb0376a47dbf</property>
</input>"""
SEED_PHONE_JSON = b"""{
"operationId" : "74cb7404e0a247d5a2d4eb0376a47dbf",
"phoneNumber" : "tel:+14255551234"
}"""
SEED_PHONE_XML = b"""<?xml version="1.0" encoding="utf-8"?>
<input xmlns="http://schemas.microsoft.com/rtc/2012/03/ucwa">
<property name="operationId">74cb7404e0a247d5a2d4eb0376a47dbf</property>
<property name="phoneNumber">tel:+14255551234</property>
</input>"""


@pytest.mark.parametrize(
    ("rel", "body", "content_type"),
    [
        ("continueMessaging", SEED_MESSAGING_JSON, "application/json"),
        ("continueMessaging", SEED_MESSAGING_XML, "application/xml"),
        ("continuePhoneAudio", SEED_PHONE_JSON, "application/json"),
        ("continuePhoneAudio", SEED_PHONE_XML, "application/xml"),
    ],
)
async def test_seed_bodies_answer_201_with_location(
    make_client: MakeClient, rel: str, body: bytes, content_type: str
) -> None:
    client = await make_client()
    pget = await client.start_pget()
    target = await client.continue_link(rel)
    reply = await client.request("POST", target, body=body, content_type=content_type)
    assert reply.status == 201
    assert reply.body == b""
    assert reply.headers["Location"].startswith(client.app_href + "/communication/invitations/")
    await pget


@pytest.mark.parametrize(
    ("style", "prefix"),
    [
        ("relative", "/ucwa/oauth/v1/applications/833/communication/invitations/"),
        ("absolute", "{base}/ucwa/oauth/v1/applications/833/communication/invitations/"),
        ("v1", "//v1/applications/833/communication/invitations/"),
    ],
)
async def test_location_styles(make_client: MakeClient, style: str, prefix: str) -> None:
    client = await make_client(SimulatorConfig(location_style=style, pget_timeout_cap=0.3))  # type: ignore[arg-type]
    pget = await client.start_pget()
    reply = await client.request(
        "POST", await client.continue_link(), body=SEED_MESSAGING_JSON, content_type=JSON
    )
    location = reply.headers["Location"]
    assert location.startswith(prefix.format(base=client.sim.base_url))
    # Whatever the style, the Location resolves to the invitation.
    got = await client.request("GET", location, accept=JSON)
    assert got.json()["operationId"] == "74cb7404e0a247d5a2d4eb0376a47dbf"
    await pget


async def test_full_sequence_json(make_client: MakeClient) -> None:
    client = await make_client()
    assert client.app["_links"]["events"]["href"].endswith("/events?ack=1")
    embedded = client.app["_embedded"]
    me = embedded["me"]["_links"]
    assert me["reportMyActivity"]["href"].endswith("/me/reportMyActivity")
    # makeMeAvailable is a link of me (me_ref), its href under /communication/ as in the samples
    assert me["makeMeAvailable"]["href"].endswith("/communication/makeMeAvailable")
    comm = embedded["communication"]["_links"]
    assert comm["conversationLogs"]["href"].endswith("/communication/conversationLogs")
    assert "makeMeAvailable" not in comm
    assert {"people", "onlineMeetings"} <= set(embedded)

    pget = await client.start_pget()
    made = await client.post_json(
        me["makeMeAvailable"]["href"],
        {"supportedModalities": ["Messaging", "PhoneAudio"], "supportedMessageFormats": ["Plain"]},
    )
    assert made.status == 204
    message = "data:text/plain;base64," + base64.b64encode(b"Following up").decode()
    posted = await client.post_json(
        await client.continue_link(),
        {"operationId": "op-json-1", "_links": {"message": {"href": message}}},
    )
    assert posted.status == 201
    location = posted.headers["Location"]
    batch = await pget
    assert batch.status == 200
    assert batch.content_type.startswith("application/json")
    body = batch.json()
    assert body["_links"]["self"]["href"].endswith("events?ack=1")
    assert next_href(batch).endswith("events?ack=2")
    assert body["sender"][0]["rel"] == "communication"
    started, completed = events_of(batch)
    assert started["type"] == "started"
    assert started["link"] == {"rel": "messagingInvitation", "href": location}
    resource = started["_embedded"]["messagingInvitation"]
    assert resource["state"] == "Connecting"
    assert resource["operationId"] == "op-json-1"
    assert completed["type"] == "completed"
    assert completed["status"] == "Success"
    assert completed["_embedded"]["messagingInvitation"]["state"] == "Connected"
    # Following next acknowledges; an idle poll answers just the links.
    empty = await client.request("GET", next_href(batch))
    assert set(empty.json()) == {"_links"}
    assert client.sim.counters.invitations_by_state == {"Connected": 1}


async def test_full_sequence_xml(make_client: MakeClient) -> None:
    client = await make_client(wire="xml")
    app = await client.request("GET", client.app_href)
    assert app.content_type.startswith(XML)
    root = app.xml()["resource"]
    assert root["@rel"] == "application"
    assert root["@xmlns"] == "http://schemas.microsoft.com/rtc/2012/03/ucwa"
    assert {n["@rel"] for n in root["resource"]} >= {"me", "communication", "people"}

    log_xml = (await client.request("GET", (await client.log_hrefs())[1])).xml()["resource"]
    plist = {p["@name"]: p["item"] for p in _as_list(log_xml["propertyList"])}
    # ConversationModalityType_ref.md (conversationLog_ref.md's sample): "Audio", not the
    # ModalityType "PhoneAudio" a client continues it by.
    assert plist["modalities"] == ["Messaging", "Audio"]
    props = {p["@name"]: p.get("#text") for p in log_xml["property"]}
    assert props["type"] == "AudioLog"
    assert props["rel"] == "conversationLog"
    assert props["totalRecipientsCount"].isdigit()

    pget = await client.start_pget()
    posted = await client.request(
        "POST",
        await client.continue_link("continuePhoneAudio"),
        body=SEED_PHONE_XML,
        content_type="application/vnd.microsoft.com.ucwa+xml",
    )
    assert posted.status == 201
    batch = await pget
    assert batch.content_type.startswith(XML)
    events = batch.xml()["events"]
    assert events["link"]["@rel"] == "next"
    sender = events["sender"]
    assert sender["@rel"] == "communication"
    assert sender["started"]["@rel"] == "phoneAudioInvitation"
    assert sender["started"]["@href"] == posted.headers["Location"]
    inner = sender["started"]["resource"]
    inner_props = {p["@name"]: p.get("#text") for p in inner["property"]}
    assert inner_props["state"] == "Connecting"
    assert inner_props["phoneNumber"] == "tel:+14255551234"
    assert sender["completed"]["status"] == "Success"


async def test_failure_carries_reason_in_both_wires(make_client: MakeClient) -> None:
    client = await make_client(SimulatorConfig(fail_rate=1.0, pget_timeout_cap=0.3))
    pget = await client.start_pget()
    await client.post_json(await client.continue_link(), {"operationId": "op-f"})
    completed = events_of(await pget)[-1]
    assert completed["status"] == "Failure"
    assert completed["reason"] == {
        "code": DECLINED.code,
        "subcode": DECLINED.subcode,
        "message": DECLINED.message,
    }
    assert completed["_embedded"]["messagingInvitation"]["state"] == "Declined"

    client.wire = "xml"
    batch = await client.request("GET", client.events_href)  # unacked: same batch, as XML
    xml_completed = batch.xml()["events"]["sender"]["completed"]
    assert xml_completed["status"] == "Failure"
    assert xml_completed["reason"]["code"] == "RemoteFailure"
    assert xml_completed["reason"]["subcode"] == "Declined"


async def test_delay_updated_and_link_only_absolute_events(make_client: MakeClient) -> None:
    config = SimulatorConfig(
        completion_delay=0.1,
        send_updated=True,
        embed_resources=False,
        event_href_style="absolute",
        pget_timeout_cap=2.0,
    )
    client = await make_client(config)
    pget = await client.start_pget()
    posted = await client.post_json(await client.continue_link(), {"operationId": "op-d"})
    first = await pget
    types = [e["type"] for e in events_of(first)]
    assert types == ["started"]
    event = events_of(first)[0]
    assert "_embedded" not in event
    assert event["link"]["href"] == client.sim.base_url + posted.headers["Location"]
    seen = types
    href = next_href(first)
    for _ in range(5):
        if "completed" in seen:
            break
        reply = await client.request("GET", href)
        seen += [e["type"] for e in events_of(reply)]
        href = next_href(reply)
    assert seen == ["started", "updated", "completed"]
    state = await client.request("GET", posted.headers["Location"])
    assert state.json()["state"] == "Connected"


async def test_invitation_get_and_cancel(make_client: MakeClient) -> None:
    config = SimulatorConfig(completion_delay=30.0, pget_timeout_cap=0.3)
    client = await make_client(config)
    pget = await client.start_pget()
    posted = await client.post_json(await client.continue_link(), {"operationId": "op-c"})
    location = posted.headers["Location"]
    inv = (await client.request("GET", location)).json()
    assert inv["rel"] == "messagingInvitation"
    assert inv["state"] == "Connecting"
    assert {"cancel", "conversation", "messaging"} <= set(inv["_links"])
    cancelled = await client.request("POST", inv["_links"]["cancel"]["href"])
    assert cancelled.status == 204
    first = await pget
    events = events_of(first)
    if len(events) == 1:  # started may have left alone before the cancel
        events += events_of(await client.request("GET", next_href(first)))
    assert events[-1]["status"] == "Failure"
    assert events[-1]["reason"]["code"] == "Cancelled"
    assert (await client.request("GET", location)).json()["state"] == "Failed"


async def test_continue_200_variant_and_log_query(make_client: MakeClient) -> None:
    config = SimulatorConfig(
        continue_status=200,
        location_on_200=False,
        log_href_query="source=sim",
        conversation_logs=1,
        pget_timeout_cap=0.3,
    )
    client = await make_client(config)
    logs = (
        await client.request(
            "GET", client.app_href + "/communication/conversationLogs", accept=JSON
        )
    ).json()
    assert isinstance(logs["_links"]["conversationLog"], dict)  # one: an object, not a list
    assert logs["_links"]["conversationLog"]["href"].endswith("?source=sim")
    target = await client.continue_link()
    assert target.endswith("/continueMessaging?source=sim")
    pget = await client.start_pget()
    reply = await client.post_json(target, {"operationId": "op-200"})
    assert reply.status == 200
    assert "Location" not in reply.headers
    stripped = await client.post_json(target.split("?")[0], {"operationId": "op-201"})
    assert stripped.status == 404
    await pget


async def test_conversation_logs_limit(make_client: MakeClient) -> None:
    client = await make_client(SimulatorConfig(conversation_logs=5))
    reply = await client.request(
        "GET", client.app_href + "/communication/conversationLogs?limit=2", accept=JSON
    )
    assert len(reply.json()["_links"]["conversationLog"]) == 2
    log = (await client.request("GET", (await client.log_hrefs())[0], accept=JSON)).json()
    for key in (
        "creationTime",
        "direction",
        "importance",
        "modalities",
        "previewMessage",
        "status",
        "subject",
        "threadId",
        "totalRecipientsCount",
        "type",
    ):
        assert key in log
    assert {"continueMessaging", "continuePhoneAudio", "markAsRead"} <= set(log["_links"])
    # ConversationLogStatus_ref.md's and ConversationLogType_ref.md's values;
    # conversationLogRecipient_ref.md's properties.
    assert log["status"] in {"Archived", "Missed"}
    assert log["type"] in {"AppSharingLog", "AudioLog", "ConferenceLog", "MessageLog", "VideoLog"}
    recipients = log["_embedded"]["conversationLogRecipient"]
    recipients = recipients if isinstance(recipients, list) else [recipients]
    assert recipients
    for recipient in recipients:
        assert recipient["displayName"]
        assert recipient["sipUri"].startswith("sip:")


async def test_application_get_delete_and_activity(make_client: MakeClient) -> None:
    client = await make_client()
    assert (await client.request("GET", client.app_href)).json()["rel"] == "application"
    me = client.app["_embedded"]["me"]["_links"]["reportMyActivity"]["href"]
    assert (await client.request("POST", me)).status == 204
    assert (await client.request("DELETE", client.app_href)).status == 204
    gone = await client.request("GET", client.app_href)
    assert gone.status == 404
    assert (gone.json()["code"], gone.json()["subcode"]) == ("NotFound", "ApplicationNotFound")


def _as_list(value: object) -> list[dict[str, object]]:
    return value if isinstance(value, list) else [value]  # type: ignore[list-item,return-value]


def test_seed_json_is_the_reference_shape() -> None:
    assert json.loads(SEED_MESSAGING_JSON)["_links"]["message"]["href"].startswith("data:")
