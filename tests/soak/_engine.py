"""The fault soak: many continue operations under random faults, measured.

Used by ``tests/soak/test_soak.py`` (a bounded run in CI, ``--soak-full`` for 1 000+
operations) and by ``python -m tests.soak`` (prints the report as JSON).

What counts as *ended* for one operation (the promise "never lost"):

- ``continue_*`` raised a typed :class:`ucwa_async.UcwaError` (the POST was refused, e.g.
  an injected ``409 Conflict``): no invitation exists, the caller knows it synchronously;
- or the returned ``Invitation`` resolved: connected (the final resource), or
  ``InvitationFailedError`` (the server's reason), ``InvitationLostError`` (its application
  was deleted), ``InvitationTimeoutError``, ``SessionClosedError``, or another
  ``UcwaError``.

An operation is *lost* when its ``continue_*`` or its ``await`` is still pending after a
bound well above every timeout the session has, or when anything but a ``UcwaError``
comes out of either. *Resolved twice*: the invitation's future is resolved (or its
done-callbacks run) more than once, or a resolution is attempted after the outcome was
fixed in a way that changes what the caller saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import random
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import aiohttp

import ucwa_async
from ucwa_async._core.backoff import Backoff
from ucwa_async._invitation import Invitation
from ucwa_async.testing import (
    ALL_FAULT_KINDS,
    DECLINED,
    HOSTILE_FAULT_KINDS,
    InvitationRequest,
    Outcome,
    SimulatorConfig,
    UcwaSimulator,
)

FINAL_MESSAGE = "soak: the final invitation"


@dataclass(frozen=True)
class SoakConfig:
    operations: int = 200
    wire: str = "json"
    seed: int = 0
    rate: float = 0.1
    # Every kind a session is expected to survive (hostile ones end it, by design).
    kinds: tuple[str, ...] = tuple(k for k in ALL_FAULT_KINDS if k not in HOSTILE_FAULT_KINDS)
    concurrency: int = 16
    # Longer than the worst recovery the fault plan can chain (an application deleted or
    # 404 forever, then re-creations at 1, 2, 4 s of backoff): an invitation of a lost
    # application must end as lost, not race its own timeout (at 8 s, 16 invitations
    # sometimes timed out first, in runs that went faster; every outcome stays typed
    # either way, and a stuck invitation still shows up as timed out).
    invitation_timeout: float = 30.0
    fail_share: float = 0.2
    """Share of invitations the simulator declines (RemoteFailure/Declined)."""
    link_only_events: bool = False
    """Events without the embedded resource: the session must GET each invitation."""


@dataclass
class SoakReport:
    config: dict[str, Any]
    operations: int = 0
    sweep_operations: int = 0
    """Operations run after the random phase to meet any kind it had not picked."""
    duration: float = 0.0
    outcomes: Counter[str] = field(default_factory=Counter)
    faults_injected: dict[str, int] = field(default_factory=dict)
    never_ended: list[str] = field(default_factory=list)
    untyped: list[str] = field(default_factory=list)
    rejections: dict[str, str] = field(default_factory=dict)
    """A sample message per rejection type (continue_* raised a typed error)."""
    resolved_twice: list[str] = field(default_factory=list)
    late_resolutions: int = 0
    """Resolution attempts on an already-ended invitation (no-ops; informational)."""
    stats: dict[str, int] = field(default_factory=dict)
    final_outcome: str = ""
    channel_reconnects: int = 0
    applications_created: int = 0
    requests: int = 0
    tasks_left: list[str] = field(default_factory=list)
    unclosed_http: list[str] = field(default_factory=list)
    secret_leaks: list[str] = field(default_factory=list)
    log_records: int = 0
    exception_texts: int = 0

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["outcomes"] = dict(sorted(self.outcomes.items()))
        return data


class _Recorder(logging.Handler):
    """Every record of every logger, formatted with its traceback, at DEBUG."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.texts: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(self.format(record))


@contextlib.contextmanager
def capture_all_logs() -> Iterator[_Recorder]:
    recorder = _Recorder()
    root = logging.getLogger()
    library = logging.getLogger("ucwa_async")
    saved = root.level, library.level
    root.addHandler(recorder)
    root.setLevel(logging.DEBUG)
    library.setLevel(logging.DEBUG)
    try:
        yield recorder
    finally:
        root.removeHandler(recorder)
        root.setLevel(saved[0])
        library.setLevel(saved[1])


@contextlib.contextmanager
def count_resolutions() -> Iterator[dict[str, list[str]]]:
    """Record every state-changing resolution of every Invitation, by operation id.

    Wraps the three private resolvers: each returns True only when it fixed the
    outcome; a second True for one invitation is a double resolution.
    """
    seen: dict[str, list[str]] = {}
    originals = {name: getattr(Invitation, name) for name in ("_succeed", "_fail", "_cancel_local")}

    def wrap(name: str) -> Any:
        original = originals[name]

        def resolver(self: Invitation[Any], *args: Any, **kwargs: Any) -> bool:
            was_done = self.done()
            changed = bool(original(self, *args, **kwargs))
            seen.setdefault(self.operation_id, []).append(
                f"{name}:{'changed' if changed else 'noop'}:{'after' if was_done else 'first'}"
            )
            return changed

        return resolver

    for name in originals:
        setattr(Invitation, name, wrap(name))
    try:
        yield seen
    finally:
        for name, original in originals.items():
            setattr(Invitation, name, original)


def _outcome_rule(share: float) -> Any:
    def rule(request: InvitationRequest, rng: random.Random) -> Outcome:
        delay = rng.uniform(0.0, 0.05)
        if request.message == FINAL_MESSAGE:
            return Outcome(success=True, delay=delay)
        if rng.random() < share:
            return Outcome(success=False, reason=DECLINED, delay=delay, updated=rng.random() < 0.3)
        return Outcome(success=True, delay=delay, updated=rng.random() < 0.3)

    return rule


def _texts_of(exc: BaseException) -> list[str]:
    """str and repr of an exception and of everything chained to it."""
    texts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        texts += [str(current), repr(current)]
        current = current.__cause__ or current.__context__
    return texts


def secrets_in(text: str, secrets: set[str]) -> list[str]:
    return [s for s in secrets if s and s in text]


def unclosed_http_objects() -> list[str]:
    gc.collect()
    found: list[str] = []
    for obj in gc.get_objects():
        try:
            if isinstance(obj, aiohttp.ClientSession) and not obj.closed:
                found.append(f"ClientSession {id(obj):#x}")
            elif isinstance(obj, aiohttp.BaseConnector) and not obj.closed:
                found.append(f"{type(obj).__name__} {id(obj):#x}")
        except ReferenceError:  # pragma: no cover - a dead weakproxy
            continue
    return found


async def run_soak(config: SoakConfig) -> SoakReport:
    """Run one soak; the report holds everything the assertions need."""
    report = SoakReport(config={k: v for k, v in asdict(config).items() if k != "kinds"})
    report.config["kinds"] = list(config.kinds)
    exception_texts: list[str] = []
    sim_config = SimulatorConfig(
        outcome_rule=_outcome_rule(config.fail_share),
        embed_resources=not config.link_only_events,
        conversation_logs=6,
        pget_timeout_cap=0.5,
        channel_grace=1.0,
    )
    started = time.monotonic()
    with capture_all_logs() as recorder, count_resolutions() as resolutions:
        async with UcwaSimulator(config=sim_config, seed=config.seed) as sim:
            session = ucwa_async.Session(
                sim.discovery_url,
                auth=ucwa_async.PasswordAuth(sim.username, sim.password),
                wire_format=config.wire,  # type: ignore[arg-type]
                invitation_timeout=config.invitation_timeout,
                request_timeout=5.0,
                connect_timeout=15.0,
                keepalive_interval=None,
                retry_after_cap=0.2,
                backoff=Backoff(base=0.01, cap=0.2, rng=random.Random(config.seed)),
            )
            async with session:
                logs = await session.conversation_logs()
                sim.faults.random(
                    rate=config.rate,
                    kinds=config.kinds,  # type: ignore[arg-type]
                    seed=config.seed,
                    retry_after=0.05,
                )
                semaphore = asyncio.Semaphore(config.concurrency)
                bound = config.invitation_timeout + 20.0

                async def operation(index: int) -> None:
                    async with semaphore:
                        outcome = await _one_operation(
                            session, logs[index % len(logs)], index, bound, exception_texts
                        )
                    kind, _, detail = outcome.partition(" | ")
                    report.outcomes[kind] += 1
                    if detail:
                        report.rejections.setdefault(kind, detail)
                    if outcome == "never-ended":
                        report.never_ended.append(f"op {index}")
                    elif outcome.startswith("untyped"):
                        report.untyped.append(f"op {index}: {outcome}")

                async with asyncio.TaskGroup() as group:
                    for index in range(config.operations):
                        group.create_task(operation(index))
                report.operations = config.operations

                # Random picks may miss a rare kind in a short run: arm each kind that
                # has not fired yet explicitly, with a few more operations, until it has.
                sim.faults.random(rate=0)
                next_index = config.operations
                for kind in config.kinds:
                    for _round in range(5):
                        if sim.counters.faults_injected[kind]:
                            break
                        _arm(sim, kind)
                        async with asyncio.TaskGroup() as group:
                            for index in range(next_index, next_index + SWEEP_BATCH):
                                group.create_task(operation(index))
                        next_index += SWEEP_BATCH
                        sim.faults.latency(0)
                report.sweep_operations = next_index - config.operations
                report.operations = next_index

                # Faults stop; the channel must still carry a whole invitation.
                sim.faults.clear()
                report.final_outcome = await _final(session, logs[0], exception_texts)
                report.stats = dict(attrs_asdict(session.stats))
                report.channel_reconnects = session._channel.reconnects if session._channel else 0
                report.applications_created = session.stats.applications_created
            report.faults_injected = dict(sorted(sim.counters.faults_injected.items()))
            report.requests = sim.counters.requests
            secrets = {sim.password, urllib.parse.quote(sim.password, safe="")}
            world = sim._world
            for token in (*world.tokens, *world.revoked):
                secrets.add(token)
                secrets.add(token.removeprefix("cwt="))
        report.duration = round(time.monotonic() - started, 2)
    for operation_id, calls in resolutions.items():
        changed = [c for c in calls if ":changed:" in c]
        if len(changed) > 1 or any(c.endswith(":changed:after") for c in calls):
            report.resolved_twice.append(f"{operation_id}: {calls}")
        report.late_resolutions += sum(1 for c in calls if c.endswith(":after"))
    current = asyncio.current_task()
    report.tasks_left = [repr(t) for t in asyncio.all_tasks() if t is not current and not t.done()]
    report.unclosed_http = unclosed_http_objects()
    report.log_records = len(recorder.texts)
    report.exception_texts = len(exception_texts)
    for text in (*recorder.texts, *exception_texts, repr(session), str(report.stats)):
        for secret in secrets_in(text, secrets):
            report.secret_leaks.append(f"{secret[:6]}... in {text[:200]!r}")
    return report


SWEEP_BATCH = 4


def _arm(sim: UcwaSimulator, kind: str) -> None:
    """Arm one fault of ``kind`` through the simulator's public API."""
    faults = sim.faults
    if kind == "drop_pget":
        faults.drop_pget(next_n=2)  # aiohttp re-sends a dropped idempotent GET once
    elif kind in ("service_unavailable", "too_many_requests"):
        getattr(faults, kind)(retry_after=0.05)
    elif kind == "latency":
        faults.latency(0.05)
    elif kind == "html_access_denied":
        faults.html_access_denied()
        faults.delete_application()  # it fires on the next application creation
    else:
        getattr(faults, kind)()


def attrs_asdict(instance: Any) -> dict[str, Any]:
    import attrs

    return attrs.asdict(instance)


async def _one_operation(
    session: ucwa_async.Session,
    log: ucwa_async.ConversationLog,
    index: int,
    bound: float,
    texts: list[str],
) -> str:
    try:
        async with asyncio.timeout(bound):
            if index % 2:
                invitation: Invitation[Any] = await session.continue_phone_audio(
                    log, f"tel:+1425555{index % 10000:04d}"
                )
            else:
                invitation = await session.continue_messaging(log, f"soak message {index}")
    except TimeoutError as exc:
        if isinstance(exc, ucwa_async.UcwaError):
            texts += _texts_of(exc)
            return f"rejected:{type(exc).__name__} | {exc}"
        return "never-ended"
    except ucwa_async.UcwaError as exc:
        texts += _texts_of(exc)
        return f"rejected:{type(exc).__name__} | {exc}"
    except Exception as exc:
        texts += _texts_of(exc)
        return f"untyped:{type(exc).__name__}: {exc}"
    texts.append(repr(invitation))
    return await _settle(invitation, bound, texts)


async def _settle(invitation: Invitation[Any], bound: float, texts: list[str]) -> str:
    try:
        async with asyncio.timeout(bound):
            await invitation
    except ucwa_async.InvitationFailedError as exc:
        texts += _texts_of(exc)
        return "failed"
    except ucwa_async.InvitationLostError as exc:
        texts += _texts_of(exc)
        return "lost"
    except ucwa_async.InvitationTimeoutError as exc:
        texts += _texts_of(exc)
        return "timed-out"
    except ucwa_async.SessionClosedError as exc:
        texts += _texts_of(exc)
        return "session-closed"
    except ucwa_async.UcwaError as exc:
        texts += _texts_of(exc)
        return f"other:{type(exc).__name__}"
    except TimeoutError:
        return "never-ended"
    except Exception as exc:
        texts += _texts_of(exc)
        return f"untyped:{type(exc).__name__}: {exc}"
    finally:
        texts.append(repr(invitation))
    return "connected"


async def _final(
    session: ucwa_async.Session, log: ucwa_async.ConversationLog, texts: list[str]
) -> str:
    await session.wait_connected(timeout=10.0)
    try:
        invitation = await session.continue_messaging(log, FINAL_MESSAGE)
    except ucwa_async.UcwaError as exc:
        texts += _texts_of(exc)
        return f"rejected:{type(exc).__name__}: {exc}"
    return await _settle(invitation, 15.0, texts)
