"""Every script in examples/ runs against a simulator started by the test.

They take ``--discovery`` / ``--user`` and read ``UCWA_PASSWORD`` from the environment,
exactly as a user would run them.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import signal
import sys
import urllib.parse

import pytest
from cli._support import ROOT, child_env, no_leaks, read_until, reap, run

from ucwa_async.testing import (
    Behaviour,
    InvitationRequest,
    Outcome,
    Person,
    SimulatorReason,
    UcwaSimulator,
)

EXAMPLES = ROOT / "examples"
WIRES = pytest.mark.parametrize("wire", ["json", "xml"])


def example(name: str, sim: UcwaSimulator, *args: str) -> list[str]:
    return [
        sys.executable, str(EXAMPLES / name),
        "--discovery", sim.discovery_url, "--user", sim.username, *args,
    ]  # fmt: skip


def env_for(sim: UcwaSimulator) -> dict[str, str]:
    return child_env(UCWA_PASSWORD=sim.password)


def test_every_example_is_tested() -> None:
    names = {p.name for p in EXAMPLES.glob("*.py")}
    assert names == {
        "continue_conversation.py",
        "followup_bot.py",
        "ops_followup.py",
        "chatops_daemon.py",
    }


# --- continue_conversation.py ------------------------------------------------------------


@WIRES
async def test_continue_conversation_connects(ucwa_simulator: UcwaSimulator, wire: str) -> None:
    argv = example("continue_conversation.py", ucwa_simulator, "--wire", wire)
    result = await run(*argv, env=env_for(ucwa_simulator))
    assert result.returncode == 0, result.output
    assert "continuing 'Build is red' by IM" in result.stdout
    assert re.search(r"^invitation created: http://127\.0\.0\.1:\d+/\S+$", result.stdout, re.M)
    assert result.stdout.rstrip().endswith("connected: Connected")
    assert ucwa_simulator.counters.invitations_by_state == {"Connected": 1}
    no_leaks(result.stderr)


@pytest.mark.ucwa_simulator(fail_rate=1.0)
async def test_continue_conversation_declined_exits_1(ucwa_simulator: UcwaSimulator) -> None:
    result = await run(
        *example("continue_conversation.py", ucwa_simulator), env=env_for(ucwa_simulator)
    )
    assert result.returncode == 1, result.output
    assert "not connected: " in result.stdout
    assert "Declined" in result.stdout


async def test_continue_conversation_without_password_exits_2(
    ucwa_simulator: UcwaSimulator,
) -> None:
    result = await run(*example("continue_conversation.py", ucwa_simulator), env=child_env())
    assert result.returncode == 2
    assert result.stderr == "set UCWA_PASSWORD to the password of --user\n"
    assert ucwa_simulator.counters.requests == 0


@pytest.mark.parametrize("name", ["continue_conversation.py", "followup_bot.py", "ops_followup.py"])
async def test_sign_in_refused_is_one_line_and_exit_3(
    ucwa_simulator: UcwaSimulator, name: str
) -> None:
    # As chatops_daemon.py: a wrong password printed a traceback (exit 1).
    env = child_env(UCWA_PASSWORD="not-the-password")
    result = await run(*example(name, ucwa_simulator), env=env)
    assert result.returncode == 3, result.output
    assert result.stderr.startswith("sign-in refused: ")
    assert "Traceback" not in result.stderr
    no_leaks(result.stderr)


@pytest.mark.parametrize("name", ["continue_conversation.py", "followup_bot.py", "ops_followup.py"])
async def test_unreachable_server_is_one_line_and_exit_1(name: str) -> None:
    argv = [sys.executable, str(EXAMPLES / name), "--discovery", "http://127.0.0.1:9/x"]
    result = await run(*argv, "--user", "alice@contoso.com", env=child_env(UCWA_PASSWORD="pw"))
    assert result.returncode == 1, result.output
    assert result.stderr.startswith("stopped: TransportError: ")
    assert "Traceback" not in result.stderr


# --- followup_bot.py ---------------------------------------------------------------------


@WIRES
@pytest.mark.ucwa_simulator(conversation_logs=6, fail_rate=0.5, completion_delay=0.05, seed=4)
async def test_followup_bot_reports_every_outcome(ucwa_simulator: UcwaSimulator, wire: str) -> None:
    argv = example("followup_bot.py", ucwa_simulator, "--all", "--wire", wire)
    result = await run(*argv, env=env_for(ucwa_simulator))
    assert result.returncode == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "6 of 6 conversation logs to follow up"
    outcomes = [line.split()[0] for line in lines[1:7]]
    assert all(o in ("connected", "declined") for o in outcomes), lines
    summary = dict(part.split("=") for part in lines[7].removeprefix("summary: ").split(", "))
    connected = outcomes.count("connected")
    declined = outcomes.count("declined")
    assert connected + declined == 6
    assert connected > 0
    assert declined > 0  # fail_rate 0.5, seeded
    assert summary == {
        k: str(v) for k, v in {"connected": connected, "declined (Declined)": declined}.items() if v
    }
    by_state = ucwa_simulator.counters.invitations_by_state
    assert (by_state["Connected"], by_state["Declined"]) == (connected, declined)
    no_leaks(result.stderr)


async def test_followup_bot_follows_up_missed_logs_by_default(
    ucwa_simulator: UcwaSimulator,
) -> None:
    # The simulator's logs are mixed: one in three is Missed (the first of three here).
    result = await run(*example("followup_bot.py", ucwa_simulator), env=env_for(ucwa_simulator))
    assert result.returncode == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "1 of 3 conversation logs to follow up"
    assert len(lines) == 3, lines
    assert lines[1].split()[0] in ("connected", "declined"), lines
    assert lines[2].startswith("summary: "), lines
    assert ucwa_simulator.counters.invitations_created == 1


# --- ops_followup.py ---------------------------------------------------------------------


def _ops_outcome(request: InvitationRequest, rng: random.Random) -> Outcome:
    # The simulator's logs: cl0001..cl0008, dated 2 to 9 March (the newest last), the
    # even ones audio calls. cl0004 (audio) is declined, cl0005 (IM) never answered.
    if request.log_id == "cl0004":
        return Outcome(success=False, reason=SimulatorReason("Forbidden", "DoNotDisturb", "busy"))
    if request.log_id == "cl0005":
        return Outcome(complete=False)
    return Outcome(delay=0.02)


async def _reply_in_every_chat(sim: UcwaSimulator) -> None:
    """Each remote party answers once in every connected IM conversation."""
    answered: set[str] = set()
    while True:
        await asyncio.sleep(0.02)
        for url in sim.conversation_urls():
            if url in answered or sim.conversation_state(url) != "Connected":
                continue
            for who in ("sip:bob@contoso.com", "sip:carol@contoso.com", "sip:dan@contoso.com"):
                with contextlib.suppress(LookupError):  # not in it, or a phone call
                    await sim.say(url, who, "thanks, on it")
                    answered.add(url)
                    break


@WIRES
@pytest.mark.ucwa_simulator(
    conversation_logs=8, outcome_rule=_ops_outcome, continue_conversation_events=True
)
async def test_ops_followup_continues_the_newest_each_its_way(
    ucwa_simulator: UcwaSimulator, wire: str
) -> None:
    sim = ucwa_simulator
    argv = example(
        "ops_followup.py", sim, "--wire", wire, "--count", "6",
        "--answer-timeout", "0.5", "--listen", "0.5", "--phone", "+1 425 555 1234",
    )  # fmt: skip
    async with asyncio.TaskGroup() as group:
        replier = group.create_task(_reply_in_every_chat(sim))
        result = await run(*argv, env=env_for(sim))
        replier.cancel()
    assert result.returncode == 1, result.output  # one declined, one timed out
    lines = result.stdout.splitlines()
    assert lines[0] == "following up 6 conversations"
    # The six newest (cl0003..cl0008), each continued the way it went.
    continued = {
        r.path.rsplit("/", 2)[-2]: r.path.rsplit("/", 1)[-1]
        for r in sim.request_log
        if r.kind == "continue"
    }
    assert continued == {
        f"cl{n:04d}": "continuePhoneAudio" if n % 2 == 0 else "continueMessaging"
        for n in range(3, 9)
    }
    outcomes = sorted([line[:10].rstrip(), line[11:16].rstrip()] for line in lines[1:7])
    assert outcomes == sorted(
        [["connected", "IM"], ["connected", "IM"], ["connected", "phone"],
         ["connected", "phone"], ["failed", "phone"], ["timed out", "IM"]]
    ), lines  # fmt: skip
    assert any(
        line.startswith("failed") and "Forbidden/DoNotDisturb: busy" in line for line in lines
    )
    assert any(line.startswith("timed out") and line.endswith("cancelled") for line in lines)
    assert lines[7] == "listening 0.5 s for replies in 2 conversations"
    replies = [line for line in lines if line.startswith("reply on ")]
    assert len(replies) == 2, lines
    assert all(line.endswith(": thanks, on it") for line in replies)
    assert all(" from them:" not in line for line in replies)  # the sender is named
    assert lines[-1] == "summary: connected=4, failed=1, timed out=1"
    # The unanswered one was cancelled on the server: nothing left ringing.
    assert sim.counters.invitations_by_state == {"Connected": 4, "Failed": 2}
    assert sum(1 for r in sim.request_log if r.kind == "cancel") == 1
    no_leaks(result.stderr)


@pytest.mark.ucwa_simulator(conversation_logs=4)
async def test_ops_followup_exits_0_when_every_follow_up_connected(
    ucwa_simulator: UcwaSimulator,
) -> None:
    argv = example("ops_followup.py", ucwa_simulator, "--listen", "0.1")
    result = await run(*argv, env=env_for(ucwa_simulator))
    assert result.returncode == 0, result.output
    assert result.stdout.splitlines()[-1] == "summary: connected=4"
    assert ucwa_simulator.counters.invitations_by_state == {"Connected": 4}
    no_leaks(result.stderr)


# --- chatops_daemon.py -------------------------------------------------------------------

LENE = Person(uri="sip:lenea@contoso.com", name="Lene Aaling", behaviour=Behaviour.silent())
BOB = Person(uri="sip:bob@contoso.com", name="Bob Kelly", behaviour=Behaviour.silent())
DONE = re.compile(r"^deploy (\S+): done in \d+\.\d s$")


async def _start_daemon(sim: UcwaSimulator, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *example("chatops_daemon.py", sim, *args),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env_for(sim),
        cwd=ROOT,
    )


async def _conversation_of(sim: UcwaSimulator, known: set[str]) -> str:
    """The conversation created since ``known`` once the daemon answered in it."""
    for _ in range(400):  # bounded: 20 s
        for url in sim.conversation_urls():
            if url not in known and sim.messages_from_client(url):
                return url
        await asyncio.sleep(0.05)
    raise AssertionError(f"no answered conversation beyond {known}")


async def _received(sim: UcwaSimulator, url: str, count: int) -> list[str]:
    """The first ``count`` messages the person received in ``url`` (waits for them)."""
    for _ in range(400):  # bounded: 20 s
        if len(texts := sim.messages_from_client(url)) >= count:
            return texts
        await asyncio.sleep(0.05)
    raise AssertionError(f"{url}: {texts!r}, expected {count} messages")


def path_of(url: str) -> str:
    return urllib.parse.urlsplit(url).path


def left(sim: UcwaSimulator) -> list[str]:
    """Paths of the conversations the client left (its stopMessaging requests): the
    simulator forgets them when the daemon's application is deleted at exit."""
    return [
        r.path.removesuffix("/messaging/terminate")
        for r in sim.request_log
        if r.kind == "stopMessaging"
    ]


async def _stop(proc: asyncio.subprocess.Process) -> tuple[list[str], str]:
    """SIGTERM, then wait for the daemon to exit 0."""
    proc.send_signal(signal.SIGTERM)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    return out.decode().splitlines(), err.decode()


@WIRES
async def test_chatops_daemon_answers_commands_by_im(
    ucwa_simulator: UcwaSimulator, wire: str
) -> None:
    sim = ucwa_simulator
    sim.add_person(LENE)
    sim.add_person(BOB)
    proc = await _start_daemon(sim, "--wire", wire, "--deploy-seconds", "0.3")
    try:
        assert proc.stdout is not None
        await read_until(proc.stdout, r"^ready: send an IM to ")
        await sim.incoming_message(LENE.uri, "help")
        lene = await _conversation_of(sim, set())
        await sim.incoming_message(BOB.uri, "status")
        bob = await _conversation_of(sim, {lene})
        await sim.say(lene, LENE.uri, "deploy web")
        await sim.say(bob, BOB.uri, "frobnicate")
        with pytest.raises(LookupError):  # available for Messaging only: nobody can call it
            await sim.incoming_call(BOB.uri)
        lene_texts = await _received(sim, lene, 3)
        bob_texts = await _received(sim, bob, 2)
        await sim.say(bob, BOB.uri, "status")
        bob_texts = await _received(sim, bob, 3)
        out, err = await _stop(proc)
    finally:
        await reap(proc)
    assert lene_texts[:2] == [
        "commands: help | status | deploy <name> (takes a while, reports back when done)",
        "deploying web (about 0.3 s)",
    ]
    assert DONE.match(lene_texts[2]), lene_texts
    assert re.fullmatch(r"up \d+ s; 2 conversation\(s\); running: nothing", bob_texts[0])
    assert bob_texts[1] == "unknown command 'frobnicate'; try: help"
    assert bob_texts[2].startswith("up ")
    assert out[-1] == "stopped cleanly"
    assert sorted(left(sim)) == sorted(path_of(url) for url in (lene, bob))
    no_leaks(err)


@pytest.mark.parametrize(
    ("seconds", "grace", "last"),
    [("60", "0.5", r"^deploy db: cut short by shutdown$"), ("2", "20", DONE.pattern)],
    ids=["cut", "finished"],
)
async def test_chatops_daemon_sigterm_finishes_or_cuts_commands(
    ucwa_simulator: UcwaSimulator, seconds: str, grace: str, last: str
) -> None:
    sim = ucwa_simulator
    sim.add_person(LENE)
    sim.add_person(BOB)
    proc = await _start_daemon(sim, "--deploy-seconds", seconds, "--grace", grace)
    try:
        assert proc.stdout is not None
        await read_until(proc.stdout, r"^ready: ")
        await sim.incoming_message(LENE.uri, "deploy db")
        lene = await _conversation_of(sim, set())
        await sim.incoming_message(BOB.uri, "status")
        bob = await _conversation_of(sim, {lene})
        assert (await _received(sim, bob, 1))[0].endswith("running: deploy db")
        assert await _received(sim, lene, 1) == [f"deploying db (about {seconds} s)"]
        out, err = await _stop(proc)
    finally:
        await reap(proc)
    # The daemon logs a reply once the server reported it delivered (the simulator
    # forgets the conversation when the daemon's application is deleted at exit).
    to_lene = [
        line.removeprefix("to sip:lenea@contoso.com: ") for line in out if "to sip:l" in line
    ]
    assert to_lene[0] == f"deploying db (about {seconds} s)"
    assert re.match(last, to_lene[1]), out
    assert len(to_lene) == 2
    assert f"waiting up to {grace} s for 1 command(s)" in out
    assert out[-1] == "stopped cleanly"
    assert sorted(left(sim)) == sorted(path_of(url) for url in (lene, bob))
    no_leaks(err)


# Windows' event loops have no add_signal_handler (NotImplementedError): the daemon run
# in a child whose loops are made to lack it, as there.
_NO_LOOP_SIGNALS = """
import asyncio, sys
def lacking(*args, **kwargs):
    raise NotImplementedError
asyncio.unix_events._UnixSelectorEventLoop.add_signal_handler = lacking
asyncio.unix_events._UnixSelectorEventLoop.remove_signal_handler = lacking
sys.path.insert(0, "examples")
import chatops_daemon
sys.exit(chatops_daemon.cli(sys.argv[1:]))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="sends POSIX signals to the child")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_chatops_daemon_stops_on_a_signal_without_loop_signal_handlers(
    ucwa_simulator: UcwaSimulator, sig: signal.Signals
) -> None:
    sim = ucwa_simulator
    sim.add_person(LENE)
    command = example("chatops_daemon.py", sim)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _NO_LOOP_SIGNALS, *command[2:],
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env_for(sim),
        cwd=ROOT,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        await read_until(proc.stdout, r"^ready: ")
        await sim.incoming_message(LENE.uri, "status")
        lene = await _conversation_of(sim, set())
        proc.send_signal(sig)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        await reap(proc)
    assert proc.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert "shutting down: no new conversations" in lines
    assert lines[-1] == "stopped cleanly"
    assert left(sim) == [path_of(lene)]
    no_leaks(err.decode())


async def test_chatops_daemon_stops_when_the_event_channel_fails(
    ucwa_simulator: UcwaSimulator,
) -> None:
    # The channel fails for good: the inbox raises ChannelFailedError (it used to wait
    # for ever, the daemon serving nothing until a signal), and the daemon stops.
    sim = ucwa_simulator
    sim.add_person(LENE)
    proc = await _start_daemon(sim)
    try:
        assert proc.stdout is not None
        await read_until(proc.stdout, r"^ready: ")
        await sim.incoming_message(LENE.uri, "status")
        await _conversation_of(sim, set())
        sim.faults.unauthorized_forever(target="pget", next_n=None)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        await reap(proc)
    assert proc.returncode == 1, err.decode()
    lines = out.decode().splitlines()
    assert any(line.startswith("event channel failed: re-authentication") for line in lines)
    assert "shutting down: no new conversations" in lines
    assert lines[-1] == "stopped: the event channel failed"
    no_leaks(err.decode())


async def test_chatops_daemon_serves_many_conversations_at_once(
    ucwa_simulator: UcwaSimulator,
) -> None:
    sim = ucwa_simulator
    people = [
        Person(uri=f"sip:ops{i}@contoso.com", name=f"Ops {i}", behaviour=Behaviour.silent())
        for i in range(8)
    ]
    for person in people:
        sim.add_person(person)
    proc = await _start_daemon(sim, "--deploy-seconds", "1")
    try:
        assert proc.stdout is not None
        await read_until(proc.stdout, r"^ready: ")
        await asyncio.gather(
            *(sim.incoming_message(p.uri, f"deploy s{i}") for i, p in enumerate(people))
        )
        for _ in range(400):  # bounded: 20 s, until every deploy reported back
            urls = sim.conversation_urls()
            if len(urls) == 8 and all(len(sim.messages_from_client(u)) == 2 for u in urls):
                break
            await asyncio.sleep(0.05)
        reports = [sim.messages_from_client(u)[-1] for u in urls]
        out, err = await _stop(proc)
    finally:
        await reap(proc)
    finished = sorted(match[1] for r in reports if (match := DONE.match(r)))
    assert finished == sorted(f"s{i}" for i in range(8))
    assert out[-1] == "stopped cleanly"
    no_leaks(err)


async def test_chatops_daemon_declines_beyond_max_conversations(
    ucwa_simulator: UcwaSimulator,
) -> None:
    sim = ucwa_simulator
    sim.add_person(LENE)
    sim.add_person(BOB)
    proc = await _start_daemon(sim, "--max-conversations", "1")
    try:
        assert proc.stdout is not None
        await read_until(proc.stdout, r"^ready: ")
        await sim.incoming_message(LENE.uri, "status")
        lene = await _conversation_of(sim, set())
        await sim.incoming_message(BOB.uri, "help")
        await read_until(
            proc.stdout, r"^sip:bob@contoso\.com: declined \(too many conversations\)$"
        )
        assert sim.messages_from_client(lene)[0].startswith("up ")
        out, err = await _stop(proc)
    finally:
        await reap(proc)
    assert left(sim) == [path_of(lene)]
    assert out[-1] == "stopped cleanly"
    no_leaks(err)


async def test_chatops_daemon_simulator_mode_reads_commands_from_stdin() -> None:
    argv = [sys.executable, str(EXAMPLES / "chatops_daemon.py"), "--simulator"]
    result = await run(
        *argv, "--deploy-seconds", "0.2", env=child_env(), stdin=b"help\nstatus\ndeploy web\n"
    )
    assert result.returncode == 0, result.output
    out = result.stdout.splitlines()
    to_lene = [line.removeprefix("to sip:lenea@contoso.com: ") for line in out if "to sip:" in line]
    assert to_lene[0].startswith("commands: help | status")
    assert to_lene[1].startswith("up ")
    assert to_lene[2] == "deploying web (about 0.2 s)"
    assert DONE.match(to_lene[3]), out
    assert out[-1] == "stopped cleanly"
    no_leaks(result.stderr)


async def test_chatops_daemon_without_password_exits_2(ucwa_simulator: UcwaSimulator) -> None:
    result = await run(*example("chatops_daemon.py", ucwa_simulator), env=child_env())
    assert result.returncode == 2
    assert result.stderr == "set UCWA_PASSWORD to the password of --user\n"
    assert ucwa_simulator.counters.requests == 0


async def test_chatops_daemon_wrong_password_exits_3(ucwa_simulator: UcwaSimulator) -> None:
    env = child_env(UCWA_PASSWORD="not-the-password")
    result = await run(*example("chatops_daemon.py", ucwa_simulator), env=env)
    assert result.returncode == 3, result.output
    assert result.stderr.startswith("sign-in refused: ")
    no_leaks(result.stderr)
