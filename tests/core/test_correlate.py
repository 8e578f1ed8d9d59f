"""Correlator: expect / bind / feed / finish / forget, orphans, exactly-once resolution."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ucwa_async._core.correlate import (
    Correlator,
    Failed,
    NeedsLookup,
    Progress,
    Resolution,
    Succeeded,
    state_of,
)
from ucwa_async._core.urls import make_normalizer

APP_SELF = "https://fe1.contoso.com/ucwa/oauth/v1/applications/833"
INV = "https://fe1.contoso.com/ucwa/oauth/v1/applications/833/communication/invitations/{}"


@attrs.frozen
class FakeLink:
    href: str
    rel: str = "messagingInvitation"


@attrs.frozen
class FakeResource:
    state: str | None = None


@attrs.frozen
class PropsResource:
    properties: dict[str, Any]


@attrs.frozen
class FakeEvent:
    type: str
    link: FakeLink
    operation_id: str | None = None
    status: str | None = None
    reason: Any = None
    resource: Any = None


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def ev(
    kind: str,
    n: int | None = 1,
    *,
    op: str | None = None,
    status: str | None = None,
    reason: Any = None,
    state: str | None = None,
    href: str | None = None,
) -> FakeEvent:
    link = FakeLink(href if href is not None else INV.format(n) if n is not None else "")
    resource = FakeResource(state) if state is not None else None
    return FakeEvent(kind, link, op, status, reason, resource)


def kinds(resolutions: list[Resolution]) -> list[str]:
    return [type(r).__name__ for r in resolutions]


# -- expect / bind --------------------------------------------------------------------


def test_expect_rejects_duplicates_and_empty() -> None:
    c = Correlator()
    c.expect("op1")
    with pytest.raises(ValueError, match="already pending"):
        c.expect("op1")
    with pytest.raises(ValueError, match="non-empty"):
        c.expect("")
    assert c.pending() == ["op1"]


def test_bind_unknown_operation_raises_key_error() -> None:
    with pytest.raises(KeyError):
        Correlator().bind("never", INV.format(1))


def test_bind_conflict_and_rebind() -> None:
    c = Correlator()
    c.expect("a")
    c.expect("b")
    assert c.bind("a", INV.format(1)) == []
    with pytest.raises(ValueError, match="already bound"):
        c.bind("b", INV.format(1))
    # Binding the same op again moves its key.
    c.bind("a", INV.format(2))
    assert c.bound() == {"a": INV.format(2)}
    assert c.feed(ev("started", 1)) == []  # old key no longer matches: orphaned
    assert c.orphan_count == 1
    assert kinds(c.feed(ev("started", 2))) == ["Progress"]


def test_constructor_validation() -> None:
    with pytest.raises(ValueError, match="limit"):
        Correlator(orphan_limit=-1)
    with pytest.raises(ValueError, match="ttl"):
        Correlator(orphan_ttl=-1.0)


# -- feed: matching -------------------------------------------------------------------


def test_match_by_operation_id_before_bind_then_bind_is_quiet() -> None:
    c = Correlator()
    c.expect("op1")
    started = ev("started", op="op1", state="Connecting")
    assert c.feed(started) == [Progress("op1", started, "Connecting")]
    done = ev("completed", op="op1", status="Success", state="Connected")
    assert c.feed(done) == [Succeeded("op1", done, done.resource)]
    assert c.is_finished("op1")
    # The 201 arrives late: nothing to resolve, and the href is now known as finished.
    assert c.bind("op1", INV.format(1)) == []
    assert c.feed(ev("completed", 1)) == []
    assert c.orphan_count == 0
    assert c.pending() == []


def test_match_by_href_after_bind_link_only() -> None:
    c = Correlator()
    c.expect("op1")
    c.bind("op1", INV.format(1))
    started = ev("started")
    assert c.feed(started) == [Progress("op1", started, None)]
    done = ev("completed", status="Failure", reason={"code": "RemoteFailure"})
    assert c.feed(done) == [Failed("op1", done, {"code": "RemoteFailure"})]
    # Duplicate completed: dropped, never orphaned.
    assert c.feed(done) == []
    assert c.orphan_count == 0


def test_early_link_only_events_replay_on_bind_in_order() -> None:
    c = Correlator()
    c.expect("op1")
    first = ev("started")
    second = ev("updated")
    third = ev("completed")
    duplicate = ev("completed", status="Success")
    for event in (first, second, third, duplicate):
        assert c.feed(event) == []
    assert c.orphan_count == 4
    resolutions = c.bind("op1", INV.format(1))
    assert resolutions == [
        Progress("op1", first, None),
        Progress("op1", second, None),
        NeedsLookup("op1", INV.format(1), third),
    ]
    assert c.orphan_count == 0  # the duplicate was consumed, not left behind


def test_bind_uses_injected_normalizer() -> None:
    c = Correlator(normalize=make_normalizer(base_url=APP_SELF, app_base_path="/ucwa/oauth"))
    c.expect("op1")
    c.bind("op1", "//v1/applications/833/communication/invitations/700")
    absolute = (
        "https://FE1.contoso.com:443/ucwa/oauth/v1/applications/833/communication/invitations/700"
    )
    assert kinds(c.feed(ev("completed", href=absolute))) == ["NeedsLookup"]
    relative = Correlator(normalize=make_normalizer(base_url=APP_SELF))
    relative.expect("x")
    relative.bind("x", INV.format(3))
    event = ev("started", href="/ucwa/oauth/v1/applications/833/communication/invitations/3")
    assert kinds(relative.feed(event)) == ["Progress"]


def test_unresolvable_event_href_is_ignored() -> None:
    c = Correlator(normalize=make_normalizer(base_url=APP_SELF))
    c.expect("op1")
    assert c.feed(ev("started", href="javascript:alert(1)")) == []
    assert c.feed(ev("started", href="")) == []
    assert c.feed(ev("started", None)) == []
    assert c.orphan_count == 0
    # ... but an operationId still matches.
    assert kinds(c.feed(ev("started", href="javascript:alert(1)", op="op1"))) == ["Progress"]


@pytest.mark.parametrize("kind", ["added", "deleted", "", "somethingNew"])
def test_non_operation_events_are_ignored(kind: str) -> None:
    c = Correlator()
    c.expect("op1")
    c.bind("op1", INV.format(1))
    assert c.feed(ev(kind, op="op1", status="Success")) == []
    assert c.pending() == ["op1"]
    assert c.orphan_count == 0


def test_event_type_is_case_insensitive() -> None:
    c = Correlator()
    c.expect("op1")
    assert kinds(c.feed(ev("Completed", op="op1", status="success"))) == ["Succeeded"]


def test_learnt_href_matches_link_only_events_before_bind() -> None:
    c = Correlator()
    c.expect("op1")
    assert kinds(c.feed(ev("started", op="op1", state="Connecting"))) == ["Progress"]
    done = ev("completed", status="Success")  # link-only, no 201 yet
    assert c.feed(done) == [Succeeded("op1", done, None)]
    assert c.bind("op1", INV.format(1)) == []


def test_learning_href_replays_earlier_orphans_first() -> None:
    c = Correlator()
    c.expect("op1")
    early = ev("started")
    assert c.feed(early) == []
    later = ev("updated", op="op1", state="Connecting")
    assert c.feed(later) == [Progress("op1", early, None), Progress("op1", later, "Connecting")]


def test_learning_href_where_an_orphan_already_finishes_the_op() -> None:
    c = Correlator()
    c.expect("op1")
    done = ev("completed", status="Failure", reason="r")
    assert c.feed(done) == []
    assert c.feed(ev("updated", op="op1")) == [Failed("op1", done, "r")]
    assert c.feed(ev("completed", op="op1", status="Success")) == []


def test_learning_does_not_steal_another_ops_href() -> None:
    c = Correlator()
    c.expect("a")
    c.expect("b")
    c.bind("a", INV.format(1))
    # An event for b that (oddly) links a's href: resolves b by id, a keeps its key.
    assert kinds(c.feed(ev("started", 1, op="b"))) == ["Progress"]
    assert [r.operation_id for r in c.feed(ev("started", 1))] == ["a"]


def test_unknown_operation_id_falls_back_to_href() -> None:
    c = Correlator()
    c.expect("op1")
    c.bind("op1", INV.format(1))
    assert [r.operation_id for r in c.feed(ev("started", op="someone-else"))] == ["op1"]


def test_finished_operation_id_events_are_dropped() -> None:
    c = Correlator()
    c.expect("op1")
    c.feed(ev("completed", None, op="op1", status="Success"))
    assert c.feed(ev("completed", 5, op="op1", status="Failure")) == []
    assert c.orphan_count == 0


def test_events_for_unknown_operations_do_not_resolve() -> None:
    c = Correlator()
    c.expect("op1")
    assert c.feed(ev("completed", 9, op="foreign", status="Success")) == []
    assert c.orphan_count == 1
    assert c.pending() == ["op1"]


# -- completed: outcome rules -----------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "state", "expected"),
    [
        ("Success", None, "Succeeded"),
        ("SUCCESS", "Connected", "Succeeded"),
        (" success ", None, "Succeeded"),
        ("Failure", None, "Failed"),
        ("failure", "Connected", "Failed"),  # status wins over the embedded state
        (None, "Connected", "Succeeded"),
        (None, "connected", "Succeeded"),
        (None, "Failed", "Failed"),
        (None, "Declined", "Failed"),
        (None, "Disconnected", "Failed"),
        (None, "Connecting", "NeedsLookup"),
        (None, "Alerting", "NeedsLookup"),  # InvitationState_ref: ringing, not ended
        (None, "TeamRing", "NeedsLookup"),
        (None, "", "NeedsLookup"),
        (None, None, "NeedsLookup"),
        ("SomethingNew", None, "NeedsLookup"),
        ("SomethingNew", "Connected", "Succeeded"),
    ],
)
def test_completed_outcomes(status: str | None, state: str | None, expected: str) -> None:
    c = Correlator()
    c.expect("op1")
    c.bind("op1", INV.format(1))
    reason = None if expected == "NeedsLookup" else "why"  # (a reason block: see below)
    event = ev("completed", status=status, state=state, reason=reason)
    [resolution] = c.feed(event)
    assert type(resolution).__name__ == expected
    assert resolution.operation_id == "op1"
    if isinstance(resolution, Failed):
        assert resolution.reason == "why"
    if isinstance(resolution, Succeeded):
        assert resolution.resource is event.resource
    if isinstance(resolution, NeedsLookup):
        assert resolution.href == INV.format(1)
    assert c.pending() == []


@pytest.mark.parametrize(("status", "state"), [(None, None), (None, "Connecting"), ("X", None)])
def test_completed_with_a_reason_block_failed(status: str | None, state: str | None) -> None:
    # EventChannelDetails.md, Processing events: "For failed operations or
    # server-initiated changes, a 'reason' block that describes the details of the
    # change": a completed event with one (and no Success) is the operation's failure,
    # and its reason is the one the user must get, not a GET of the invitation.
    c = Correlator()
    c.expect("op1")
    c.bind("op1", INV.format(1))
    reason = {"code": "RemoteFailure", "subcode": "Declined"}
    event = ev("completed", status=status, state=state, reason=reason)
    assert c.feed(event) == [Failed("op1", event, reason)]
    assert c.pending() == []


def test_needs_lookup_without_bind_uses_event_href() -> None:
    c = Correlator()
    c.expect("op1")
    event = ev("completed", 4, op="op1")
    assert c.feed(event) == [NeedsLookup("op1", INV.format(4), event)]
    c.expect("op2")
    no_link = ev("completed", None, op="op2")
    assert c.feed(no_link) == [NeedsLookup("op2", None, no_link)]


def test_failure_without_reason() -> None:
    c = Correlator()
    c.expect("op1")
    event = ev("completed", op="op1", status="Failure")
    assert c.feed(event) == [Failed("op1", event, None)]


def test_state_of_reads_attribute_properties_or_dict() -> None:
    assert state_of(None) is None
    assert state_of(FakeResource("Connected")) == "Connected"
    assert state_of(PropsResource({"state": "Declined"})) == "Declined"
    assert state_of({"state": "Connecting"}) == "Connecting"
    assert state_of(PropsResource({"state": 3})) is None
    assert state_of(object()) is None
    c = Correlator()
    c.expect("op1")
    assert kinds(
        c.feed(
            FakeEvent(
                "completed", FakeLink(""), "op1", None, None, PropsResource({"state": "Failed"})
            )
        )
    ) == ["Failed"]


# -- finish / forget / clear ------------------------------------------------------------


def test_finish_drops_later_events_and_orphans() -> None:
    c = Correlator()
    c.expect("op1")
    c.bind("op1", INV.format(1))
    c.finish("op1")
    assert c.is_finished("op1")
    assert c.feed(ev("completed", status="Success")) == []
    assert c.feed(ev("completed", op="op1", status="Success")) == []
    assert c.orphan_count == 0
    assert c.pending() == []


def test_finish_before_bind_then_late_bind_records_href() -> None:
    c = Correlator()
    c.expect("op1")
    assert c.feed(ev("started")) == []  # orphan
    c.finish("op1")  # e.g. the user's timeout fired before the 201
    assert c.bind("op1", INV.format(1)) == []
    assert c.orphan_count == 0  # the orphan belonged to the finished op
    assert c.feed(ev("completed", status="Success")) == []
    assert c.orphan_count == 0


def test_finish_unknown_operation_is_harmless() -> None:
    c = Correlator()
    c.finish("ghost")
    assert c.is_finished("ghost")
    assert c.bind("ghost", INV.format(1)) == []


def test_forget_then_events_are_orphans_and_bind_raises() -> None:
    c = Correlator()
    c.expect("op1")
    c.bind("op1", INV.format(1))
    c.forget("op1")
    c.forget("op1")  # idempotent
    assert c.pending() == []
    assert not c.is_finished("op1")
    assert c.feed(ev("started")) == []
    assert c.orphan_count == 1
    with pytest.raises(KeyError):
        c.bind("op1", INV.format(1))


def test_expect_again_after_finish() -> None:
    c = Correlator()
    c.expect("op1")
    c.finish("op1")
    c.expect("op1")
    assert not c.is_finished("op1")
    assert kinds(c.feed(ev("completed", op="op1", status="Success"))) == ["Succeeded"]


def test_pending_bound_and_clear() -> None:
    c = Correlator()
    for op in ("a", "b", "c"):
        c.expect(op)
    c.bind("b", INV.format(2))
    c.bind("c", INV.format(3))
    c.feed(ev("started", 7))
    assert c.pending() == ["a", "b", "c"]
    assert c.bound() == {"b": INV.format(2), "c": INV.format(3)}
    assert c.clear() == ["a", "b", "c"]
    assert c.pending() == []
    assert c.bound() == {}
    assert c.orphan_count == 0
    assert c.clear() == []


def test_finished_memory_is_bounded() -> None:
    c = Correlator(finished_limit=2)
    for op in ("a", "b", "c"):
        c.expect(op)
        c.feed(ev("completed", None, op=op, status="Success"))
    assert not c.is_finished("a")
    assert c.is_finished("b")
    assert c.is_finished("c")


# -- orphans: ttl and bound --------------------------------------------------------------


def test_orphans_expire_with_injected_clock() -> None:
    clock = FakeClock()
    c = Correlator(clock=clock, orphan_ttl=60.0)
    c.expect("op1")
    old = ev("started")
    c.feed(old)
    clock.now += 30.0
    newer = ev("updated")
    c.feed(newer)
    clock.now += 30.0  # old is exactly 60 s old: kept
    assert c.orphan_count == 2
    clock.now += 0.5  # old is now older than the ttl
    assert c.orphan_count == 1
    assert c.bind("op1", INV.format(1)) == [Progress("op1", newer, None)]


def test_expired_orphans_are_not_replayed_on_bind() -> None:
    clock = FakeClock()
    c = Correlator(clock=clock, orphan_ttl=5.0)
    c.expect("op1")
    c.feed(ev("completed", status="Success"))
    clock.now += 10.0
    assert c.bind("op1", INV.format(1)) == []
    assert c.pending() == ["op1"]


def test_orphan_buffer_drops_oldest() -> None:
    c = Correlator(orphan_limit=3)
    c.expect("op1")
    events = [ev("updated", 1, state=f"s{i}") for i in range(5)]
    for event in events:
        c.feed(event)
    assert c.orphan_count == 3
    assert [r.event for r in c.bind("op1", INV.format(1))] == events[2:]


def test_orphan_limit_zero_buffers_nothing() -> None:
    c = Correlator(orphan_limit=0)
    c.expect("op1")
    c.feed(ev("completed", status="Success"))
    assert c.orphan_count == 0
    assert c.bind("op1", INV.format(1)) == []


# -- property: exactly once ---------------------------------------------------------------

OUTCOMES = ["success", "failure", "connected", "declined", "lookup"]
EXPECTED_KIND = {
    "success": Succeeded,
    "failure": Failed,
    "connected": Succeeded,
    "declined": Failed,
    "lookup": NeedsLookup,
}
# The same invitation written three ways; the injected normalizer makes them meet.
HREF_FORMS = [
    "//v1/applications/833/communication/invitations/{}",
    "/ucwa/oauth/v1/applications/833/communication/invitations/{}",
    "https://FE1.contoso.com:443/ucwa/oauth/v1/applications/833/communication/invitations/{}",
]


@st.composite
def operation_script(draw: st.DrawFn, index: int) -> dict[str, Any]:
    op = f"op{index}"
    outcome = draw(st.sampled_from(OUTCOMES))
    bound = draw(st.booleans())
    n_progress = draw(st.integers(min_value=0, max_value=3))
    n_completed = draw(st.integers(min_value=0, max_value=3))

    def href() -> str:
        return draw(st.sampled_from(HREF_FORMS)).format(index)

    def carries_id() -> bool:
        return draw(st.booleans())

    events: list[FakeEvent] = []
    for i in range(n_progress):
        with_id = carries_id()
        kind = "started" if i == 0 else "updated"
        events.append(
            FakeEvent(
                kind,
                FakeLink(href()),
                op if with_id else None,
                None,
                None,
                FakeResource("Connecting") if with_id else None,
            )
        )
    # "lookup" and the state-based outcomes are decided by the resource, so every copy
    # of those completed events has the same shape; status outcomes may vary per copy.
    id_shape = carries_id()
    for _ in range(n_completed):
        with_id = carries_id() if outcome in ("success", "failure") else id_shape
        if outcome == "lookup":
            with_id = False
        status = {"success": "Success", "failure": "Failure"}.get(outcome)
        state = {"connected": "Connected", "declined": "Declined"}.get(outcome)
        if state is not None and not with_id:
            status = None  # link-only copy of a state outcome: make it a status one
            with_id = True
        resource = FakeResource(state or "Connected") if with_id else None
        if outcome == "failure" and resource is not None:
            resource = FakeResource("Failed")
        events.append(
            FakeEvent(
                "completed",
                FakeLink(href()),
                op if with_id else None,
                status,
                "reason" if outcome in ("failure", "declined") else None,
                resource,
            )
        )
    # Duplicates (a re-delivered batch) and late repeats.
    events += draw(st.lists(st.sampled_from(events), max_size=3)) if events else []
    return {
        "op": op,
        "outcome": outcome,
        "bound": bound,
        "bind_href": href(),
        "events": events,
    }


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_any_interleaving_resolves_each_operation_exactly_once(data: st.DataObject) -> None:
    n_ops = data.draw(st.integers(min_value=1, max_value=4))
    scripts = [data.draw(operation_script(i)) for i in range(1, n_ops + 1)]
    foreign = [
        FakeEvent("completed", FakeLink(HREF_FORMS[1].format(99)), "foreign", "Success", None, None)
    ]

    # Per op: expect first (it happens before the POST), then bind and events in any
    # order: events may beat the 201, and batches may be re-delivered.
    per_op: list[list[tuple[str, Any]]] = []
    for script in scripts:
        steps: list[tuple[str, Any]] = [("feed", e) for e in script["events"]]
        if script["bound"]:
            steps.append(("bind", script))
        steps = data.draw(st.permutations(steps))
        per_op.append([("expect", script), *steps])
    per_op.append([("feed", e) for e in foreign])

    # Interleave the per-op sequences, keeping each one's own order.
    cursors = [0] * len(per_op)
    timeline: list[tuple[str, Any]] = []
    while any(c < len(seq) for c, seq in zip(cursors, per_op, strict=True)):
        live = [i for i, seq in enumerate(per_op) if cursors[i] < len(seq)]
        pick = data.draw(st.sampled_from(live))
        timeline.append(per_op[pick][cursors[pick]])
        cursors[pick] += 1

    correlator = Correlator(
        normalize=make_normalizer(base_url=APP_SELF, app_base_path="/ucwa/oauth")
    )
    terminal: dict[str, list[Resolution]] = {s["op"]: [] for s in scripts}
    after_terminal_progress: list[str] = []
    for action, arg in timeline:
        if action == "expect":
            correlator.expect(arg["op"])
            continue
        if action == "bind":
            out = correlator.bind(arg["op"], arg["bind_href"])
        else:
            out = correlator.feed(arg)
        for resolution in out:
            assert resolution.operation_id in terminal, "a foreign event resolved something"
            if isinstance(resolution, Progress):
                if terminal[resolution.operation_id]:
                    after_terminal_progress.append(resolution.operation_id)
            else:
                terminal[resolution.operation_id].append(resolution)

    assert after_terminal_progress == []
    for script in scripts:
        got = terminal[script["op"]]
        events = script["events"]
        has_completed = any(e.type == "completed" for e in events)
        # Reachable: the op can be found by id, or by href through a bind or a learnt key.
        reachable = script["bound"] or any(e.operation_id == script["op"] for e in events)
        if has_completed and reachable:
            assert len(got) == 1, (script, got)
            assert isinstance(got[0], EXPECTED_KIND[script["outcome"]])
        else:
            assert got == []


# -- with the real models ------------------------------------------------------------------


def test_real_event_models_correlate() -> None:
    from ucwa_async._core.models import parse_event_batch

    app = "/ucwa/oauth/v1/applications/833"
    invitation = f"{app}/communication/invitations/700"
    batch = parse_event_batch(
        {
            "_links": {"next": {"href": f"{app}/events?ack=3"}},
            "sender": [
                {
                    "rel": "communication",
                    "href": f"{app}/communication",
                    "events": [
                        {
                            "type": "started",
                            "link": {"rel": "messagingInvitation", "href": invitation},
                            "_embedded": {
                                "messagingInvitation": {
                                    "_links": {"self": {"href": invitation}},
                                    "operationId": "op-real",
                                    "state": "Connecting",
                                }
                            },
                        },
                        {
                            "type": "completed",
                            "link": {
                                "rel": "messagingInvitation",
                                "href": "https://fe1.contoso.com:443" + invitation,
                            },
                            "status": "Failure",
                            "reason": {"code": "RemoteFailure", "subcode": "Declined"},
                        },
                    ],
                }
            ],
        }
    )
    c = Correlator(normalize=make_normalizer(base_url=APP_SELF, app_base_path="/ucwa/oauth"))
    c.expect("op-real")
    started, completed = batch.events
    assert c.feed(started) == [Progress("op-real", started, "Connecting")]
    [failed] = c.feed(completed)  # link-only: matched through the learnt href
    assert isinstance(failed, Failed)
    assert failed.reason is not None
    assert (failed.reason.code, failed.reason.subcode) == ("RemoteFailure", "Declined")
    assert c.bind("op-real", "//v1/applications/833/communication/invitations/700") == []


def test_orphan_events_gives_the_latest_event_of_each_href_oldest_first() -> None:
    clock = FakeClock()
    c = Correlator(clock=clock, orphan_ttl=10.0)
    c.feed(ev("started", 1))
    clock.now += 6
    c.feed(ev("started", 2))
    c.feed(ev("updated", 1))
    assert [(e.type, e.link.href) for e in c.orphan_events()] == [
        ("updated", INV.format(1)),
        ("started", INV.format(2)),
    ]
    clock.now += 5  # the first event of href 1 has expired, not its update
    assert [e.link.href for e in c.orphan_events()] == [INV.format(2), INV.format(1)]


def test_orphan_events_since_leaves_out_hrefs_whose_first_event_came_earlier() -> None:
    # A lost-answer call looks only among what came after its POST was made: an href
    # whose first event came before (someone else's invitation) is not its own, even
    # when a later event of that href came after.
    clock = FakeClock()
    c = Correlator(clock=clock, orphan_ttl=60.0)
    c.feed(ev("started", 1))
    clock.now += 1
    since = clock.now
    c.feed(ev("updated", 1))
    c.feed(ev("started", 2))
    assert [e.link.href for e in c.orphan_events(since)] == [INV.format(2)]
    assert [e.link.href for e in c.orphan_events(since + 1)] == []
    assert [e.link.href for e in c.orphan_events()] == [INV.format(1), INV.format(2)]


def test_orphans_give_each_href_the_time_its_first_waiting_event_came() -> None:
    # What a lost-answer call tells apart by: which unclaimed invitation came after its
    # own POST was made, when several POSTs made at different times are watched.
    clock = FakeClock()
    c = Correlator(clock=clock, orphan_ttl=60.0)
    start = clock.now
    c.feed(ev("started", 1))
    clock.now += 1
    c.feed(ev("started", 2))
    clock.now += 1
    c.feed(ev("updated", 1))
    assert [(at - start, e.type, e.link.href) for at, e in c.orphans()] == [
        (0, "updated", INV.format(1)),
        (1, "started", INV.format(2)),
    ]
    assert [(at - start, e.link.href) for at, e in c.orphans(start + 1)] == [(1, INV.format(2))]
