"""``ucwa-async demo``: a subprocess, both wires, exit status and the summary table."""

from __future__ import annotations

import asyncio
import re
import sys

import pytest

from ucwa_async.cli import main
from ucwa_async.cli._args import build_parser
from ucwa_async.cli._demo import run_demo

from ._support import child_env, cli, no_leaks, run

_ROW = re.compile(
    r"^[│|] (messaging|phoneAudio|all)\s+[│|]\s+(\d+) [│|]\s+(\d+) [│|]\s+(\d+) [│|]\s+(\d+) [│|]$",
    re.MULTILINE,
)
_CHANNEL_ROW = re.compile(r"^[│|] (.+?)\s+[│|]\s+(\d+) [│|]$", re.MULTILINE)


def summary(stdout: str) -> dict[str, tuple[int, int, int, int]]:
    """modality -> (connected, failed, errors, total), from the Invitations table."""
    rows = {m: (int(a), int(b), int(c), int(d)) for m, a, b, c, d in _ROW.findall(stdout)}
    assert set(rows) == {"messaging", "phoneAudio", "all"}, stdout
    return rows


_MESSAGES = re.compile(
    r"^messages: sent (\d+), delivered (\d+), failed (\d+), received (\d+)$", re.MULTILINE
)


def messages(stdout: str) -> tuple[int, int, int, int]:
    """(sent, delivered, failed, received), from the demo's message summary line."""
    [found] = _MESSAGES.findall(stdout)
    sent, delivered, failed, received = (int(n) for n in found)
    assert sent == delivered + failed
    return sent, delivered, failed, received


def channel(stdout: str) -> dict[str, int]:
    return {what: int(n) for what, n in _CHANNEL_ROW.findall(stdout)}


def check_adds_up(rows: dict[str, tuple[int, int, int, int]], count: int) -> None:
    # --count is the total, alternately IM and phone audio (IM gets the odd one).
    for modality, share in (("messaging", (count + 1) // 2), ("phoneAudio", count // 2)):
        connected, failed, errors, total = rows[modality]
        assert total == share
        assert connected + failed + errors == total
    columns = list(zip(rows["messaging"], rows["phoneAudio"], strict=True))
    assert rows["all"] == tuple(a + b for a, b in columns)


@pytest.mark.parametrize("wire", ["json", "xml"])
async def test_demo_count_20_ends_every_invitation(wire: str) -> None:
    result = await cli("demo", "--count", "20", "--wire", wire, "--fail-rate", "0.2")
    assert result.returncode == 0, result.output
    rows = summary(result.stdout)
    check_adds_up(rows, 20)
    connected, failed, errors, total = rows["all"]
    assert (total, errors) == (20, 0)
    assert connected > 0
    assert failed > 0  # --fail-rate 0.2 of 20, seeded: some are declined
    assert f"all 20 invitations ended: {connected} connected, {failed} failed" in result.stdout
    assert "continuing 10 by IM and 10 by phone audio" in result.stdout
    # Two-way traffic: a follow-up in each connected IM conversation, read until the
    # echo person's answer to it; 10 incoming IMs, each answered by the echo handler.
    im_connected = rows["messaging"][0]
    sent, delivered, failed_messages, received = messages(result.stdout)
    assert (sent, delivered, failed_messages) == (im_connected + 10, im_connected + 10, 0)
    # received: the 10 IMs and the answers to the follow-ups (the echo person may also
    # answer the opening message of a continue)
    assert im_connected + 10 <= received <= 2 * im_connected + 10
    assert f"phone calls hung up: {rows['phoneAudio'][0]}" in result.stdout.splitlines()
    # The server's count is of the 20 continues and the 10 incoming IMs: it says so.
    line = re.search(r"^invitations on the server by final state, incoming IMs included: (.*)$",
                     result.stdout, re.M)  # fmt: skip
    assert line is not None, result.stdout
    assert sum(int(n) for n in re.findall(r"\d+", line[1])) == 30
    assert f"{failed} x RemoteFailure/Declined" in result.stdout
    assert f"(wire format {wire})" in result.stdout
    assert f"Invitations ({wire}," in result.stdout
    # Not a terminal: plain progress lines, no escape sequences, no reconnects without faults.
    assert re.search(r"^\[\s*[\d.]+ s\] queued \d+, in progress \d+", result.stdout, re.M)
    assert "\x1b[" not in result.stdout
    assert "channel reconnecting" not in result.stdout
    assert result.stderr == ""


@pytest.mark.parametrize("wire", ["json", "xml"])
async def test_demo_faults_shows_reconnects(wire: str) -> None:
    result = await cli("demo", "--count", "6", "--faults", "--wire", wire)
    assert result.returncode == 0, result.output
    out = result.stdout
    assert "fault: the next continue POST gets 500 ServiceFailure/CallbackChannelError" in out
    assert "fault: the next long poll (P-GET) is dropped mid-poll" in out
    reconnecting = re.findall(r"^channel reconnecting: (.+)$", out, re.M)
    reconnected = re.findall(
        r"^channel reconnected after \d+ attempt\(s\), \d+ ms down$", out, re.M
    )
    assert any("CallbackChannelError" in line for line in reconnecting), out
    assert len(reconnected) >= 2
    counts = channel(out)
    assert counts["ChannelReconnecting signals"] == len(reconnecting)
    assert counts["ChannelReconnected signals"] == len(reconnected)
    assert counts["POSTs retried after CallbackChannelError"] >= 1
    assert counts["faults injected by the server: callback_channel_error"] >= 1
    assert counts["faults injected by the server: drop_pget"] >= 1
    check_adds_up(summary(out), 6)
    assert summary(out)["all"][2] == 0  # every invitation survived the reconnects
    assert "all 6 invitations ended" in out
    assert "fault: the next message sent is not delivered" in out
    sent, _, failed, received = messages(out)
    assert failed == 1
    assert sent == summary(out)["messaging"][0] + 3
    assert received >= 3
    no_leaks(result.stderr)


@pytest.mark.parametrize(("rate", "connected", "failed"), [("0", 4, 0), ("1", 0, 4)])
async def test_demo_expected_failures_still_exit_0(rate: str, connected: int, failed: int) -> None:
    result = await cli("demo", "--count", "4", "--fail-rate", rate)
    assert result.returncode == 0, result.output
    assert summary(result.stdout)["all"] == (connected, failed, 0, 4)
    sent, delivered, failed_messages, received = messages(result.stdout)
    assert (sent, delivered, failed_messages) == (connected // 2 + 2, connected // 2 + 2, 0)
    assert received >= connected // 2 + 2
    assert f"phone calls hung up: {connected // 2}" in result.stdout.splitlines()


async def test_demo_leaves_no_warnings_in_dev_mode() -> None:
    result = await run(
        sys.executable, "-X", "dev", "-W", "error", "-m", "ucwa_async", "demo", "--count", "3",
        "--faults",
    )  # fmt: skip
    assert result.returncode == 0, result.output
    no_leaks(result.stderr)
    assert "all 3 invitations ended" in result.stdout


async def test_demo_in_process_leaves_no_task_behind(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["demo", "--count", "2", "--faults", "--wire", "xml"])
    before = asyncio.all_tasks()
    assert await run_demo(args) == 0
    assert asyncio.all_tasks() == before
    out = capsys.readouterr().out
    assert "all 2 invitations ended" in out


async def test_demo_without_rich_says_how_to_install() -> None:
    code = (
        "import sys; sys.modules['rich'] = None\n"
        "from ucwa_async.cli import main\n"
        "raise SystemExit(main(['demo', '--count', '1']))\n"
    )
    result = await run(sys.executable, "-c", code, env=child_env())
    assert result.returncode == 2
    assert "pip install 'ucwa_async[cli]'" in result.stderr
    assert "Traceback" not in result.stderr


async def test_bad_arguments_exit_2_in_a_subprocess() -> None:
    result = await cli("demo", "--count", "0")
    assert result.returncode == 2
    assert "argument --count: must be at least 1" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["demo", "--fail-rate", "2"], "argument --fail-rate: must be between 0 and 1"),
        (["demo", "--wire", "yaml"], "argument --wire: invalid choice"),
        (["demo", "--timeout", "-1"], "argument --timeout: must be a positive number"),
        (["demo", "--count", "many"], "argument --count: not a whole number: 'many'"),
        (["simulator", "--port", "70000"], "argument --port: must be within 0..65535"),
        ([], "the following arguments are required: COMMAND"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_arguments_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith("ucwa-async 0.")
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--help"])
    assert exc.value.code == 0
    assert "--faults" in capsys.readouterr().out


def test_console_script_is_declared() -> None:
    import tomllib

    from ._support import ROOT

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["ucwa-async"] == "ucwa_async.cli:main"
    assert "rich>=13" in project["optional-dependencies"]["cli"]
    main_module = (ROOT / "ucwa_async" / "__main__.py").read_text()
    assert "from ucwa_async.cli import main" in main_module


_VALID = {
    "logs": [],
    "continue-messaging": ["--index", "0", "--message", "m"],
    "continue-phone-audio": ["--index", "0", "--phone", "tel:+14255551234"],
}


@pytest.mark.parametrize("command", sorted(_VALID))
@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("--password", "never taken from the command line"),
        ("--password=secret", "never taken from the command line"),
        ("--pass", "unrecognized arguments: --pass"),  # no abbreviation of --password-env
    ],
)
def test_parser_refuses_a_password_argument(
    command: str, option: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [command, "--discovery", "http://x/", "--user", "u", *_VALID[command]]
    assert build_parser().parse_args(argv).command == command
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args([*argv, option])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
