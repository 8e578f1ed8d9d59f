"""The fault soak: continue-messaging and continue-phone-audio under every fault at ~10 %.

CI runs the bounded version (200 operations per case, a few seconds each). ``pytest
tests/soak --soak-full`` runs 1 500 operations per case; with ``UCWA_SOAK_REPORT=path``
set, every case appends its report (JSON lines) there: the README's figures come
from that. See ``_engine.py`` for what "ended", "lost" and "resolved twice" mean.
"""

from __future__ import annotations

import json
import os

import pytest

from ucwa_async.testing import ALL_FAULT_KINDS, HOSTILE_FAULT_KINDS

from ._engine import FINAL_MESSAGE, SoakConfig, SoakReport, run_soak

pytestmark = pytest.mark.soak

CI_OPERATIONS = 200
FULL_OPERATIONS = 1500
# A typed refusal of the POST itself that the injected faults can cause: 409 Conflict
# (injected), and ApplicationNotFound when the application is deleted again and again
# while the POST is retried (bounded by max_callback_retries).
# AuthenticationError: an injected expiry can revoke the token a POST was just granted,
# before its repeat; that is indistinguishable from a server refusing fresh tokens, and
# one 401 gets one re-authentication, so that call fails typed.
ALLOWED_REJECTIONS = frozenset(
    {
        "rejected:AlreadyExistsError",
        "rejected:ApplicationNotFoundError",
        "rejected:AuthenticationError",
    }
)
ENDED = frozenset({"connected", "failed", "lost"}) | ALLOWED_REJECTIONS


@pytest.fixture
def operations(request: pytest.FixtureRequest) -> int:
    return FULL_OPERATIONS if request.config.getoption("--soak-full") else CI_OPERATIONS


def _publish(report: SoakReport) -> None:
    path = os.environ.get("UCWA_SOAK_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(report.as_dict(), default=str) + "\n")


@pytest.mark.parametrize(
    ("wire", "link_only", "seed"),
    [
        pytest.param("json", False, 20240601, id="json-embedded"),
        pytest.param("xml", False, 20240602, id="xml-embedded"),
        pytest.param("json", True, 20240603, id="json-link-only"),
        pytest.param("xml", True, 20240604, id="xml-link-only"),
    ],
)
async def test_fault_soak(wire: str, link_only: bool, seed: int, operations: int) -> None:
    config = SoakConfig(
        operations=operations, wire=wire, seed=seed, rate=0.1, link_only_events=link_only
    )
    report = await run_soak(config)
    _publish(report)
    summary = json.dumps(report.as_dict(), default=str)[:3000]

    # Every operation ended, each exactly once, with a typed outcome.
    assert report.never_ended == [], summary
    assert report.untyped == [], summary
    assert report.resolved_twice == [], summary
    assert set(report.outcomes) <= ENDED, summary
    assert sum(report.outcomes.values()) == report.operations >= operations
    # Most connect (each application deletion loses every invitation bound to it).
    assert report.outcomes["connected"] > operations // 4, summary
    assert report.outcomes["failed"] > 0, summary
    # The session's own counters agree with what the callers saw (the +1 is the final one).
    stats = report.stats
    started = (
        report.operations
        + 1
        - sum(n for k, n in report.outcomes.items() if k.startswith("rejected:"))
    )
    assert stats["invitations_started"] == started, summary
    assert stats["invitations_connected"] == report.outcomes["connected"] + 1, summary
    assert stats["invitations_failed"] == report.outcomes["failed"], summary
    assert stats["invitations_lost"] == report.outcomes["lost"], summary
    assert stats["invitations_timed_out"] == 0, summary
    assert stats["invitations_closed"] == 0, summary

    # Every fault kind the simulator has actually fired, and the channel reconnected.
    expected_kinds = set(ALL_FAULT_KINDS) - HOSTILE_FAULT_KINDS
    assert set(config.kinds) == expected_kinds
    assert {k for k, n in report.faults_injected.items() if n > 0} == expected_kinds, summary
    assert report.channel_reconnects > 0
    assert report.applications_created > 1

    # The event channel is alive at the end: an invitation after the faults connects.
    assert report.final_outcome == "connected", summary

    # Nothing leaks: tasks, HTTP sessions/connectors, secrets in logs or exception texts.
    assert report.tasks_left == [], summary
    assert report.unclosed_http == [], summary
    assert report.secret_leaks == [], summary
    assert report.log_records > 100  # the DEBUG capture really saw the run
    assert report.exception_texts > 0


async def test_soak_engine_detects_leaks_and_double_resolution() -> None:
    """The soak's detectors can fail: a leaked task, a secret in a log, a double resolution."""
    import asyncio
    import logging

    from ucwa_async._invitation import Invitation

    from ._engine import capture_all_logs, count_resolutions, secrets_in

    with capture_all_logs() as recorder:
        logging.getLogger("ucwa_async.session").debug("token is %s", "cwt=SECRET")
    assert secrets_in("\n".join(recorder.texts), {"cwt=SECRET"}) == ["cwt=SECRET"]

    with count_resolutions() as seen:
        loop = asyncio.get_running_loop()

        async def canceller(_: Invitation[object]) -> None:
            return None

        invitation: Invitation[str] = Invitation(
            operation_id="op", kind="messagingInvitation", loop=loop, canceller=canceller
        )
        assert invitation._succeed("first", "Connected")
        assert not invitation._fail(RuntimeError("late"))
    assert seen["op"] == ["_succeed:changed:first", "_fail:noop:after"]
    assert await invitation == "first"
    assert FINAL_MESSAGE  # the final invitation is recognisable to the outcome rule
