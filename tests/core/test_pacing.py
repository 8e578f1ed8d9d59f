"""Pacing of the event channel (sans-IO): the poll floor, the Retry-After floor, the
application re-creation budget, bounded reject reports and interruptible decoding."""

from __future__ import annotations

import json
import random
from typing import Any

import attrs
import pytest
from step_runner import run_counting

from ucwa_async._core import wire
from ucwa_async._core.backoff import Backoff
from ucwa_async._core.budget import RecreationBudget
from ucwa_async._core.channel import (
    LARGE_BODY,
    ChannelState,
    Deliver,
    Empty,
    RecreateApplication,
    Resume,
    Resync,
    Retry,
)
from ucwa_async._core.models import MAX_REJECTED_REPORTS, EventBatch, parse_event_batch
from ucwa_async._core.pacing import PollPacer

ORIGIN = "https://fe1.contoso.com"
APP = "/ucwa/oauth/v1/applications/833"
EVENTS = f"{ORIGIN}{APP}/events?ack=1"
JSON = "application/json"
XML = "application/vnd.microsoft.com.ucwa+xml"
EVENT = {"type": "added", "link": {"rel": "conversation", "href": f"{APP}/conversations/1"}}


class _MaxRandom(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return b


def state(**kwargs: Any) -> ChannelState:
    kwargs.setdefault("backoff", Backoff(base=0.01, cap=0.08, rng=_MaxRandom()))
    return ChannelState(EVENTS, **kwargs)


def batch(links: dict[str, str], events: list[Any] | None = None) -> bytes:
    doc: dict[str, Any] = {"_links": {rel: {"href": href} for rel, href in links.items()}}
    if events is not None:
        doc["sender"] = [{"rel": "communication", "href": f"{APP}/communication", "events": events}]
    return json.dumps(doc).encode()


# -- PollPacer ------------------------------------------------------------------------------


def test_pacer_grows_for_instant_answers_and_caps() -> None:
    pacer = PollPacer(floor=0.5, cap=4.0, held=0.1)
    waits = [pacer.after_answer(0.0, delivered=False) for _ in range(6)]
    assert waits == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert pacer.streak == 6


def test_pacer_counts_from_the_start_of_the_poll() -> None:
    # A minimum interval between P-GETs: what the answer already took is deducted.
    pacer = PollPacer(floor=0.5, cap=4.0, held=0.1)
    assert pacer.after_answer(0.05, delivered=False) == pytest.approx(0.45)


@pytest.mark.parametrize(("elapsed", "delivered"), [(0.0, True), (0.1, False), (180.0, False)])
def test_pacer_held_or_delivering_answers_cost_nothing_and_reset(
    elapsed: float, delivered: bool
) -> None:
    pacer = PollPacer(floor=0.5, cap=4.0, held=0.1)
    pacer.after_answer(0.0, delivered=False)
    pacer.after_answer(0.0, delivered=False)
    assert pacer.after_answer(elapsed, delivered=delivered) == 0.0
    assert pacer.streak == 0
    assert pacer.after_answer(0.0, delivered=False) == 0.5


def test_pacer_reset() -> None:
    pacer = PollPacer()
    pacer.after_answer(0.0, delivered=False)
    pacer.reset()
    assert pacer.streak == 0


@pytest.mark.parametrize("elapsed", [None, float("nan"), float("inf")])
def test_pacer_unknown_elapsed_is_not_paced(elapsed: float | None) -> None:
    assert PollPacer().after_answer(elapsed, delivered=False) == 0.0


def test_pacer_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="floor"):
        PollPacer(floor=-1)
    with pytest.raises(ValueError, match="held"):
        PollPacer(held=float("nan"))


def test_pacer_bounds_the_rate_of_a_server_answering_at_once() -> None:
    # 10 s of a server answering every P-GET at once: a handful of polls, not 7 000
    # (0.5 s, 1 s, then one every 2 s).
    pacer = PollPacer()
    clock, polls = 0.0, 0
    while clock < 10.0:
        polls += 1
        clock += 0.001 + pacer.after_answer(0.001, delivered=False)
    assert polls <= 7


# -- ChannelState: pacing of its actions -----------------------------------------------------


@pytest.mark.parametrize(
    ("links", "action_type"),
    [
        ({"next": "events?ack=2"}, Empty),
        ({"resume": "events?ack=1"}, Resume),
        ({"resync": "events?ack=1"}, Resync),
    ],
)
def test_unheld_answers_without_events_wait(links: dict[str, str], action_type: type) -> None:
    channel = state()
    first = channel.on_response(200, JSON, batch(links), elapsed=0.002)
    second = channel.on_response(200, JSON, batch(links), elapsed=0.002)
    assert type(first) is action_type
    assert first.wait == pytest.approx(0.498)  # type: ignore[union-attr]
    assert second.wait == pytest.approx(0.998)  # type: ignore[union-attr]
    # held for a while: normal, no wait, and the streak starts over
    held = channel.on_response(200, JSON, batch(links), elapsed=180.0)
    assert held.wait == 0.0  # type: ignore[union-attr]
    assert channel.pacer.streak == 0


def test_events_are_never_delayed() -> None:
    channel = state()
    for _ in range(3):
        channel.on_response(200, JSON, batch({"next": "events?ack=2"}), elapsed=0.0)
    action = channel.on_response(200, JSON, batch({"next": "events?ack=3"}, [EVENT]), elapsed=0.0)
    assert isinstance(action, Deliver)
    assert action.wait == 0.0
    assert channel.pacer.streak == 0


@pytest.mark.parametrize("next_href", ["events?ack=1", f"{ORIGIN}{APP}/events?ack=1&timeout=180"])
def test_a_batch_that_does_not_move_the_cursor_is_paced(next_href: str) -> None:
    # EventsInUCWA.md: "The URL changes with each request". A server answering at once with
    # events and a ``next`` that is the URL just polled re-delivers them forever: measured
    # ~3 000 P-GETs/s. Its events are handed on, but the next P-GET waits the poll floor.
    channel = state()
    assert channel.poll_url() == f"{EVENTS}&timeout=180"  # as the shell polls
    first = channel.on_response(200, JSON, batch({"next": next_href}, [EVENT]), elapsed=0.001)
    channel.poll_url()
    second = channel.on_response(200, JSON, batch({"next": next_href}, [EVENT]), elapsed=0.001)
    assert isinstance(first, Deliver)
    assert isinstance(second, Deliver)
    assert len(first.batch.events) == 1
    assert first.wait == pytest.approx(0.499)
    assert second.wait == pytest.approx(0.999)
    # the cursor moves on with the next batch: events are not delayed again
    moved = channel.on_response(200, JSON, batch({"next": "events?ack=2"}, [EVENT]), elapsed=0.0)
    assert isinstance(moved, Deliver)
    assert moved.wait == 0.0
    assert channel.pacer.streak == 0


def test_a_resume_with_events_that_does_not_move_the_cursor_is_paced() -> None:
    channel = state()
    action = channel.on_response(200, JSON, batch({"resume": "events?ack=1"}, [EVENT]), elapsed=0.0)
    assert isinstance(action, Resume)
    assert action.events is not None
    assert action.wait == 0.5


def test_only_malformed_events_are_delivered_for_counting_and_paced() -> None:
    channel = state()
    action = channel.on_response(200, JSON, batch({"next": "events?ack=2"}, [0, 1]), elapsed=0.0)
    assert isinstance(action, Deliver)  # not Empty: the host counts the rejected events
    assert action.batch.events == ()
    assert action.batch.rejected_count == 2
    assert action.wait == 0.5


def test_retry_waits_at_least_the_pacing_floor() -> None:
    channel = state()
    action = channel.on_response(500, None, b"", elapsed=0.0)
    assert isinstance(action, Retry)
    assert action.after == 0.5  # backoff would say 0.01
    transport = channel.on_transport_error(OSError("refused"), elapsed=0.0)
    assert isinstance(transport, Retry)
    assert transport.after == 1.0
    # a dropped connection after a long hold: the backoff alone decides
    later = channel.on_transport_error(OSError("reset"), elapsed=30.0)
    assert isinstance(later, Retry)
    assert later.after == 0.04  # third attempt: 0.01 * 2**2


def test_recreate_is_not_paced_here() -> None:
    # Its own budget (RecreationBudget) applies; the poll streak is left alone.
    channel = state()
    action = channel.on_response(404, JSON, b'{"code":"ApplicationNotFound"}', elapsed=0.0)
    assert isinstance(action, RecreateApplication)
    assert channel.pacer.streak == 0


@pytest.mark.parametrize(
    "header", ["0", "Wed, 21 Oct 2015 07:28:00 GMT", "Thu, 01 Jan 1970 00:00:00 GMT"]
)
@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_zero_or_past_waits_the_floor(status: int, header: str) -> None:
    action = state().on_response(status, None, b"", retry_after=header)
    assert isinstance(action, Retry)
    assert action.after == 1.0
    custom = state(retry_after_floor=2.5).on_response(status, None, b"", retry_after=header)
    assert isinstance(custom, Retry)
    assert custom.after == 2.5


def test_a_cap_below_the_floor_wins() -> None:
    action = state(retry_after_cap=0.2).on_response(503, None, b"", retry_after="0")
    assert isinstance(action, Retry)
    assert action.after == 0.2


def test_retry_after_bounds_the_rate_of_a_server_saying_zero() -> None:
    channel = state()
    clock, polls = 0.0, 0
    while clock < 10.0:
        polls += 1
        action = channel.on_response(503, None, b"", retry_after="0", elapsed=0.001)
        assert isinstance(action, Retry)
        clock += 0.001 + action.after
    assert polls <= 10


# -- RecreationBudget -----------------------------------------------------------------------


def test_recreation_pauses_grow_until_a_channel_proves_itself() -> None:
    budget = RecreationBudget(limit=10, window=600.0, base=2.0, cap=8.0)
    pauses = []
    now = 0.0
    for _ in range(5):
        pause = budget.next_delay(now)
        assert pause is not None
        pauses.append(pause)
        now += pause
        budget.created(now)  # a successful re-creation does not reset the pause
    assert pauses == [0.0, 2.0, 4.0, 8.0, 8.0]
    budget.proven()
    assert budget.streak == 0
    assert budget.next_delay(now + 5.0) == 0.0


def test_recreations_keep_a_minimum_interval_even_when_proven() -> None:
    budget = RecreationBudget(min_interval=1.0)
    budget.created(10.0)
    budget.proven()
    assert budget.next_delay(10.25) == pytest.approx(0.75)
    assert budget.next_delay(11.5) == 0.0


def test_unproven_recreations_spend_the_budget() -> None:
    budget = RecreationBudget(limit=3, window=600.0, base=0.0, min_interval=0.0)
    for t in (0.0, 1.0, 2.0):
        assert budget.next_delay(t) == 0.0
        budget.created(t)
    assert budget.used(3.0) == (3, 3)
    assert budget.next_delay(3.0) is None
    assert budget.next_delay(599.0) is None
    assert budget.next_delay(600.5) == 0.0  # the first one left the window
    assert budget.used(600.5) == (2, 2)


def test_proven_recreations_are_refunded_up_to_the_hard_limit() -> None:
    # A server that loses the application now and then, each new one working: fine...
    budget = RecreationBudget(limit=2, hard_limit=6, window=600.0, min_interval=0.0)
    for t in range(6):
        assert budget.next_delay(float(t)) == 0.0
        budget.created(float(t))
        budget.proven()
        budget.proven()  # proving twice refunds once
    assert budget.used(6.0) == (0, 6)
    # ...but not without end: one that lets each work for an instant is cut off too
    assert budget.next_delay(6.0) is None


def test_recreation_budget_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="limit"):
        RecreationBudget(limit=0)
    with pytest.raises(ValueError, match="limit"):
        RecreationBudget(hard_limit=0)
    with pytest.raises(ValueError, match="window"):
        RecreationBudget(window=-1.0)
    with pytest.raises(ValueError, match="min_interval"):
        RecreationBudget(min_interval=float("inf"))


# -- reject reports and large bodies ------------------------------------------------------------


def test_reject_reports_are_bounded_but_every_reject_is_counted() -> None:
    raw = [0] * 10_000 + [{"type": "added"}] * 10 + [EVENT]
    parsed = parse_event_batch(
        {"_links": {"next": {"href": "events?ack=2"}}, "sender": [{"events": raw}, 7]}
    )
    assert parsed.rejected_count == 10_011
    assert len(parsed.rejected) == MAX_REJECTED_REPORTS
    assert parsed.rejected[0] == "an event is a int, not an object"
    assert len(parsed.events) == 1


def test_rejected_count_defaults_to_the_reports() -> None:
    assert EventBatch(rejected=("a", "b")).rejected_count == 2
    assert attrs.evolve(EventBatch(rejected=("a",)), rejected=(), rejected_count=0) == EventBatch()


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": [1, 2.5, "\\u00e9", true, null, {"b": []}]}',
        '\ufeff{"a": 1}'.encode(),
        '{"a": "\u00e9"}'.encode("utf-16"),
    ],
)
def test_interruptible_json_decoding_is_the_same(body: bytes) -> None:
    assert wire.decode(body, JSON, interruptible=True) == wire.decode(body, JSON)


def test_interruptible_json_decoding_honours_a_declared_charset() -> None:
    body = '{"a": "\u00e9"}'.encode("latin-1")
    ctype = "application/json; charset=latin-1"
    assert wire.decode(body, ctype, interruptible=True) == wire.decode(body, ctype) == {"a": "é"}


def test_proving_with_nothing_to_refund() -> None:
    budget = RecreationBudget(window=1.0, min_interval=0.0)
    budget.created(0.0)
    assert budget.used(5.0) == (0, 0)  # the stamp left the window
    budget.proven()
    assert budget.streak == 0


@pytest.mark.parametrize("body", [b'{"a": NaN}', b"[1]", b'{"a": ', b"[" * 100_000])
def test_interruptible_json_decoding_refuses_the_same(body: bytes) -> None:
    with pytest.raises(wire.DecodeError):
        wire.decode(body, JSON)
    with pytest.raises(wire.DecodeError):
        wire.decode(body, JSON, interruptible=True)


def test_large_batches_decode_in_steps() -> None:
    small = batch({"next": "events?ack=2"}, [EVENT])
    large = batch({"next": "events?ack=3"}, [EVENT] * (LARGE_BODY // 80))
    assert len(large) > LARGE_BODY
    channel = state()
    assert list(channel.on_response_steps(200, JSON, small)) == []  # at once
    taken, action = run_counting(channel.on_response_steps(200, JSON, large))
    assert taken >= LARGE_BODY // 80 // 8  # a step per 8 events at least
    assert isinstance(action, Deliver)
    assert len(action.batch.events) == LARGE_BODY // 80
    assert action.events.items == LARGE_BODY // 80  # .batch does not take them
    first = action.events.take(10)
    assert len(first.events) == 10
    assert first.next_href == "events?ack=3"
    assert action.events.items == LARGE_BODY // 80 - 10
