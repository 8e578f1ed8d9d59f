"""The pathological-server fault kinds of the event channel, seen by a plain client:
what each answers, that it answers at once, and that it is counted."""

from __future__ import annotations

import asyncio
import email.utils
import time
from datetime import UTC, datetime

import pytest

from ucwa_async._core import wire
from ucwa_async._core.models import Event, EventBatch, parse_event_batch
from ucwa_async.testing import ALL_FAULT_KINDS, SimulatorConfig

from ._support import Client, MakeClient, Reply

NEW_KINDS = (
    "instant_empty_polls",
    "resume_only",
    "endless_resync",
    "retry_after_zero",
    "retry_after_past",
    "not_found_forever",
    "giant_batch",
)
# The P-GET would otherwise be held this long: "at once" is well under it.
HOLD = 2.0


@pytest.fixture(params=["json", "xml"])
def wire_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _batch(reply: Reply) -> EventBatch:
    return parse_event_batch(wire.decode(reply.body, reply.content_type))


async def _timed_get(client: Client, href: str) -> tuple[Reply, float]:
    started = time.monotonic()
    reply = await client.request("GET", href)
    return reply, time.monotonic() - started


def test_new_kinds_are_listed() -> None:
    assert set(NEW_KINDS) <= set(ALL_FAULT_KINDS)


async def test_instant_empty_polls(make_client: MakeClient, wire_name: str) -> None:
    client = await make_client(SimulatorConfig(pget_timeout_cap=HOLD), wire=wire_name)
    client.sim.faults.instant_empty_polls(next_n=3)
    for _ in range(3):
        reply, took = await _timed_get(client, client.events_href)
        assert reply.status == 200
        assert took < HOLD / 2
        batch = _batch(reply)
        assert batch.events == ()
        assert batch.next_href is not None
        assert batch.next_href.endswith("ack=1")
    assert client.sim.counters.faults_injected["instant_empty_polls"] == 3
    # disarmed after N: held again
    reply, took = await _timed_get(client, client.events_href)
    assert took >= HOLD * 0.9


async def test_instant_empty_polls_still_deliver_pending_events(make_client: MakeClient) -> None:
    client = await make_client(SimulatorConfig(pget_timeout_cap=HOLD, completion_delay=0.0))
    client.sim.faults.instant_empty_polls(next_n=None)
    link = await client.continue_link()
    await client.request("GET", client.events_href)  # an (instant) poll: the channel is up
    reply = await client.post_json(link, {"operationId": "x"})
    assert reply.status == 201
    await asyncio.sleep(0.05)
    events: list[Event] = []
    for _ in range(5):  # bounded
        got = _batch(await client.request("GET", client.events_href))
        events.extend(got.events)
        if events:
            break
    assert [e.type for e in events][:1] == ["started"]
    client.sim.faults.clear()
    assert client.sim.faults.armed == {}


async def test_resume_only(make_client: MakeClient, wire_name: str) -> None:
    client = await make_client(SimulatorConfig(pget_timeout_cap=HOLD), wire=wire_name)
    client.sim.faults.resume_only(next_n=2)
    reply, took = await _timed_get(client, client.events_href)
    assert took < HOLD / 2
    batch = _batch(reply)
    assert batch.resume_href is not None
    assert batch.resume_href.endswith("ack=1")
    assert batch.next_href is None
    assert client.sim.counters.faults_injected["resume_only"] == 1


async def test_endless_resync(make_client: MakeClient, wire_name: str) -> None:
    client = await make_client(SimulatorConfig(pget_timeout_cap=HOLD), wire=wire_name)
    client.sim.faults.endless_resync(next_n=None)
    href = client.events_href
    for _ in range(4):
        reply, took = await _timed_get(client, href)
        assert took < HOLD / 2
        batch = _batch(reply)
        assert batch.resync_href is not None
        href = batch.resync_href
    assert client.sim.counters.faults_injected["endless_resync"] == 4


@pytest.mark.parametrize("kind", ["retry_after_zero", "retry_after_past"])
async def test_retry_after_zero_or_past(make_client: MakeClient, wire_name: str, kind: str) -> None:
    client = await make_client(SimulatorConfig(pget_timeout_cap=HOLD), wire=wire_name)
    getattr(client.sim.faults, kind)(next_n=1)
    reply, took = await _timed_get(client, client.events_href)
    assert took < HOLD / 2
    assert reply.status == 503
    header = reply.headers["Retry-After"]
    if kind == "retry_after_zero":
        assert header == "0"
    else:
        assert email.utils.parsedate_to_datetime(header) < datetime.now(UTC)
    assert client.sim.counters.faults_injected[kind] == 1


async def test_not_found_forever(make_client: MakeClient, wire_name: str) -> None:
    client = await make_client(SimulatorConfig(pget_timeout_cap=HOLD), wire=wire_name)
    client.sim.faults.not_found_forever(next_n=None)
    for _ in range(3):
        reply, took = await _timed_get(client, client.events_href)
        assert reply.status == 404
        assert took < HOLD / 2
        body = wire.decode(reply.body, reply.content_type)
        assert (body["code"], body["subcode"]) == ("NotFound", "ApplicationNotFound")
    assert client.sim.counters.faults_injected["not_found_forever"] == 3
    # the application itself is still there (a DELETE works)
    deleted = await client.request("DELETE", client.app_href)
    assert deleted.status == 204


@pytest.mark.parametrize("malformed", [False, True])
async def test_giant_batch(make_client: MakeClient, wire_name: str, malformed: bool) -> None:
    client = await make_client(SimulatorConfig(pget_timeout_cap=HOLD), wire=wire_name)
    client.sim.faults.giant_batch(5_000, malformed=malformed)
    reply, took = await _timed_get(client, client.events_href)
    assert took < HOLD / 2
    batch = _batch(reply)
    if malformed:
        assert batch.events == ()
        assert batch.rejected_count == 5_000
    else:
        assert len(batch.events) == 5_000
        assert {e.type for e in batch.events} == {"added"}
        assert batch.rejected_count == 0
    assert batch.next_href is not None
    assert batch.next_href.endswith("ack=1")
    assert client.sim.counters.faults_injected["giant_batch"] == 1
    with pytest.raises(ValueError, match="events"):
        client.sim.faults.giant_batch(0)


@pytest.mark.parametrize(
    "kind",
    [
        "instant_empty_polls",
        "resume_only",
        "endless_resync",
        "retry_after_zero",
        "retry_after_past",
        "not_found_forever",
    ],
)
async def test_one_shot_by_default(make_client: MakeClient, kind: str) -> None:
    # Like every other kind (the soak arms each once); next_n=None is the endless server.
    client = await make_client(SimulatorConfig(pget_timeout_cap=0.4))
    getattr(client.sim.faults, kind)()
    first, took = await _timed_get(client, client.events_href)
    assert took < 0.3
    assert first.status in (200, 404, 503)
    assert client.sim.counters.faults_injected[kind] == 1
    assert client.sim.faults.armed == {}
    second, took = await _timed_get(client, client.events_href)
    assert second.status == 200
    assert took >= 0.3  # held as usual
    assert client.sim.counters.faults_injected[kind] == 1
