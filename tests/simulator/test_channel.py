"""Event channel semantics: ack/next, retention, resync, PGetReplaced, application end."""

from __future__ import annotations

import asyncio
from typing import Literal

import pytest

from ucwa_async.testing import SimulatorConfig

from ._support import MakeClient, events_of, next_href


async def test_ack_next_and_retention_until_acked(make_client: MakeClient) -> None:
    client = await make_client()
    target = await client.continue_link()
    pget = await client.start_pget()
    await client.post_json(target, {"operationId": "a"})
    first = await pget
    again = await client.request("GET", client.events_href)  # not acked: delivered again
    assert again.body == first.body
    assert client.sim.counters.redeliveries == 1

    pget2 = await client.start_pget(next_href(first))  # acks batch 1
    await client.post_json(target, {"operationId": "b"})
    second = await pget2
    assert second.json()["_links"]["self"]["href"].endswith("ack=2")
    assert next_href(second).endswith("ack=3")
    assert events_of(second)[0]["_embedded"]["messagingInvitation"]["operationId"] == "b"
    # Batch 1 is gone once batch 2 was asked for: its ack is out of range now.
    stale = await client.request("GET", client.events_href)
    assert set(stale.json()["_links"]) == {"resync"}


async def test_timeout_answers_links_only_and_honours_query(make_client: MakeClient) -> None:
    client = await make_client(SimulatorConfig(pget_timeout_cap=5.0))
    loop = asyncio.get_running_loop()
    started = loop.time()
    reply = await client.request("GET", client.events_href + "&timeout=0.2")
    elapsed = loop.time() - started
    assert 0.15 < elapsed < 2.0
    assert reply.json() == {
        "_links": {
            "self": {"href": client.events_href},
            "next": {"href": client.events_href},
        }
    }


async def test_out_of_range_ack_answers_resync(make_client: MakeClient) -> None:
    client = await make_client(wire="xml")
    reply = await client.request("GET", client.app_href + "/events?ack=99")
    events = reply.xml()["events"]
    assert events["link"]["@rel"] == "resync"
    resync = events["link"]["@href"]
    assert client.sim.counters.resyncs == 1
    follow = await client.request("GET", resync)  # a resync href is a valid P-GET
    assert follow.status == 200


async def test_second_pget_replaces_the_first(make_client: MakeClient) -> None:
    client = await make_client(SimulatorConfig(pget_timeout_cap=2.0))
    older = await client.start_pget()
    newer = await client.start_pget()
    replaced = await older
    assert replaced.status == 409
    assert replaced.json()["subcode"] == "PGetReplaced"
    assert client.sim.counters.pget_replaced == 1
    await client.post_json(await client.continue_link(), {"operationId": "r"})
    assert (await newer).status == 200


async def test_deleted_application_answers_404_to_pending_and_later(
    make_client: MakeClient,
) -> None:
    client = await make_client(SimulatorConfig(pget_timeout_cap=2.0))
    pget = await client.start_pget()
    assert (await client.request("DELETE", client.app_href)).status == 204
    gone = await pget
    assert gone.status == 404
    assert (gone.json()["code"], gone.json()["subcode"]) == ("NotFound", "ApplicationNotFound")
    later = await client.request("GET", client.events_href)
    assert later.status == 404


async def test_idle_expiry_without_pget(make_client: MakeClient) -> None:
    client = await make_client(SimulatorConfig(idle_expiry=0.1, expiry_status=410))
    await asyncio.sleep(0.2)
    expired = await client.request("GET", client.events_href)
    assert expired.status == 410
    assert (expired.json()["code"], expired.json()["subcode"]) == (
        "Gone",
        "InactiveApplicationExpired",
    )
    assert client.sim.counters.applications_expired == 1


async def test_pending_pget_keeps_application_alive(make_client: MakeClient) -> None:
    client = await make_client(SimulatorConfig(idle_expiry=0.15, pget_timeout_cap=0.3))
    reply = await client.request("GET", client.events_href)  # held 0.3 s > idle_expiry
    assert reply.status == 200
    assert (await client.request("GET", client.app_href)).status == 200


async def test_activity_expiry_and_report_my_activity(make_client: MakeClient) -> None:
    client = await make_client(SimulatorConfig(activity_expiry=0.3))
    report = client.app["_embedded"]["me"]["_links"]["reportMyActivity"]["href"]
    for _ in range(3):
        await asyncio.sleep(0.15)
        assert (await client.request("POST", report)).status == 204
    await asyncio.sleep(0.4)
    assert (await client.request("GET", client.app_href)).status == 404


async def test_callback_channel_error_without_pget(make_client: MakeClient) -> None:
    client = await make_client()
    reply = await client.post_json(await client.continue_link(), {"operationId": "x"})
    assert reply.status == 500
    assert reply.json() == {
        "code": "ServiceFailure",
        "subcode": "CallbackChannelError",
        "message": "The remote event channel is not reachable.",
    }
    assert client.sim.counters.callback_channel_errors == 1


async def test_make_me_available_rules(make_client: MakeClient) -> None:
    client = await make_client()
    href = client.app["_embedded"]["me"]["_links"]["makeMeAvailable"]["href"]
    body = {"supportedModalities": ["Messaging"], "supportedMessageFormats": ["Plain"]}
    assert (await client.post_json(href, body)).status == 500  # no channel yet
    pget = await client.start_pget()
    assert (await client.post_json(href, {"supportedModalities": ["Video"]})).status == 403
    assert (await client.post_json(href, body)).status == 204
    again = await client.post_json(href, body)
    assert again.status == 409
    assert again.json()["subcode"] == "AlreadyExists"
    await pget


@pytest.mark.parametrize(
    ("link", "path", "linked_from", "suffix"),
    [
        ("me", "communication", "me", "/communication/makeMeAvailable"),
        ("me", "me", "me", "/me/makeMeAvailable"),
        ("communication", "communication", "communication", "/communication/makeMeAvailable"),
        ("none", "communication", None, None),
    ],
)
async def test_make_me_available_link_and_path_are_configurable(
    make_client: MakeClient,
    link: Literal["me", "communication", "none"],
    path: Literal["communication", "me"],
    linked_from: str | None,
    suffix: str | None,
) -> None:
    config = SimulatorConfig(
        pget_timeout_cap=0.3, make_me_available_link=link, make_me_available_path=path
    )
    client = await make_client(config)
    embedded = client.app["_embedded"]
    holders = [r for r in ("me", "communication") if "makeMeAvailable" in embedded[r]["_links"]]
    assert holders == ([linked_from] if linked_from else [])
    pget = await client.start_pget()
    body = {"supportedModalities": ["Messaging"], "supportedMessageFormats": ["Plain"]}
    other = "/me/makeMeAvailable" if path == "communication" else "/communication/makeMeAvailable"
    # Served only where the link points: a client that builds the URL gets 404.
    assert (await client.post_json(client.app_href + other, body)).status == 404
    if suffix is not None:
        assert linked_from is not None
        href = embedded[linked_from]["_links"]["makeMeAvailable"]["href"]
        assert href.endswith(suffix)
        assert (await client.post_json(href, body)).status == 204
    await pget


async def test_channel_grace_after_a_pget_answer(make_client: MakeClient) -> None:
    client = await make_client(SimulatorConfig(pget_timeout_cap=0.05, channel_grace=5.0))
    await client.request("GET", client.events_href)
    # No P-GET pending now, but one just ended: the gap between polls is tolerated.
    reply = await client.post_json(await client.continue_link(), {"operationId": "g"})
    assert reply.status == 201


async def test_stop_answers_pending_pget_and_cancels_timers(make_client: MakeClient) -> None:
    client = await make_client(SimulatorConfig(pget_timeout_cap=30.0, completion_delay=30.0))
    sim = client.sim
    target = await client.continue_link()
    pget = await client.start_pget()
    assert sim.pending_pget(sim.application_ids[0])
    posted = await client.post_json(target, {"operationId": "slow"})
    assert sim.invitation_state(posted.headers["Location"]) == "Connecting"
    first = await pget  # carries "started"; completion is 30 s away
    held = await client.start_pget(next_href(first))
    loop = asyncio.get_running_loop()
    began = loop.time()
    await sim.stop()
    reply = await held
    assert reply.status == 200
    assert "sender" not in reply.json()
    assert loop.time() - began < 2.0
    await sim.stop()  # idempotent
