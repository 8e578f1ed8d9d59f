"""Every script in examples/ runs against a simulator started by the test.

They take ``--discovery`` / ``--user`` and read ``UCWA_PASSWORD`` from the environment,
exactly as a user would run them.
"""

from __future__ import annotations

import asyncio
import re
import signal
import sys

import pytest
from cli._support import ROOT, child_env, no_leaks, read_until, reap, run

from ucwa_async.testing import UcwaSimulator

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
    assert names == {"continue_conversation.py", "followup_bot.py", "chatops_daemon.py"}


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


async def test_followup_bot_follows_up_unread_logs_by_default(
    ucwa_simulator: UcwaSimulator,
) -> None:
    # The simulator's logs are mixed: one in three is Unread (the first of three here).
    result = await run(*example("followup_bot.py", ucwa_simulator), env=env_for(ucwa_simulator))
    assert result.returncode == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "1 of 3 conversation logs to follow up"
    assert len(lines) == 3, lines
    assert lines[1].split()[0] in ("connected", "declined"), lines
    assert lines[2].startswith("summary: "), lines
    assert ucwa_simulator.counters.invitations_created == 1


# --- chatops_daemon.py -------------------------------------------------------------------

_OUTCOME = r"^call (tel:\+\d+): (connected|failed: .+|error: .+)$"


async def _start_daemon(sim: UcwaSimulator, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *example("chatops_daemon.py", sim, *args),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env_for(sim),
        cwd=ROOT,
    )


@WIRES
@pytest.mark.ucwa_simulator(fail_rate=0.5, completion_delay=0.05, seed=2)
async def test_chatops_daemon_places_calls_then_stops_on_sigterm(
    ucwa_simulator: UcwaSimulator, wire: str
) -> None:
    proc = await _start_daemon(ucwa_simulator, "--wire", wire, "--concurrency", "2")
    try:
        assert proc.stdin is not None
        assert proc.stdout is not None
        await read_until(proc.stdout, r"^ready: 3 logs")
        numbers = [f"tel:+1425555{i:04d}" for i in range(4)]
        commands = [f"call {i % 3} {n}" for i, n in enumerate(numbers)] + ["call 9 tel:+1"]
        proc.stdin.write(("\n".join(commands) + "\n").encode())
        await proc.stdin.drain()
        outcomes: dict[str, str] = {}
        lines: list[str] = []
        for _ in range(len(numbers)):  # one outcome line per call, in any order
            found, read = await read_until(proc.stdout, _OUTCOME)
            outcomes[found[1]] = found[2]
            lines += read
        assert sorted(outcomes) == numbers
        assert "call tel:+1: no log #9 (there are 3)" in lines
        proc.send_signal(signal.SIGTERM)  # stdin still open: only the signal stops it
        rest, err = await asyncio.wait_for(proc.communicate(), 20)
    finally:
        await reap(proc)
    assert proc.returncode == 0, err.decode()
    tail = rest.decode().splitlines()
    assert tail == ["shutting down: waiting for calls in progress", "stopped cleanly"]
    by_state = ucwa_simulator.counters.invitations_by_state
    assert sum(by_state.values()) == 4
    assert by_state["Connected"] == list(outcomes.values()).count("connected")
    no_leaks(err.decode())


@pytest.mark.ucwa_simulator(completion_delay=1.0)
async def test_chatops_daemon_lets_calls_in_progress_end(ucwa_simulator: UcwaSimulator) -> None:
    proc = await _start_daemon(ucwa_simulator, "--concurrency", "2")
    try:
        assert proc.stdin is not None
        assert proc.stdout is not None
        await read_until(proc.stdout, r"^ready: ")
        lines = [f"call {i} tel:+1425555000{i}" for i in range(3)]
        proc.stdin.write(("\n".join(lines) + "\n").encode())
        await proc.stdin.drain()
        for _ in range(100):  # bounded: until both workers' calls are in progress
            if ucwa_simulator.counters.invitations_created >= 2:
                break
            await asyncio.sleep(0.05)
        assert ucwa_simulator.counters.invitations_created == 2  # concurrency 2
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), 20)
    finally:
        await reap(proc)
    assert proc.returncode == 0, err.decode()
    text = out.decode().splitlines()
    assert text[0] == "shutting down: waiting for calls in progress"
    assert "not started: 'call 2 tel:+14255550002'" in text
    assert sorted(line for line in text if line.startswith("call ")) == [
        "call tel:+14255550000: connected",
        "call tel:+14255550001: connected",
    ]
    assert text[-1] == "stopped cleanly"
    assert ucwa_simulator.counters.invitations_by_state == {"Connected": 2}


async def test_chatops_daemon_end_of_input_finishes_queued_calls(
    ucwa_simulator: UcwaSimulator,
) -> None:
    commands = b"call 0 tel:+14255550100\nbogus\ncall 1 tel:+14255550101\n"
    result = await run(
        *example("chatops_daemon.py", ucwa_simulator, "--concurrency", "1"),
        env=env_for(ucwa_simulator),
        stdin=commands,
    )
    assert result.returncode == 0, result.output
    out = result.stdout.splitlines()
    assert "bad command 'bogus': use 'call <log-index> <tel:+1...>'" in out
    assert "call tel:+14255550100: connected" in out
    assert "call tel:+14255550101: connected" in out
    assert out[-1] == "stopped cleanly"
    no_leaks(result.stderr)
