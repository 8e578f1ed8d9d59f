"""Issue 14's CLI polish: colour only for people, ``logs --json``, one style for defaults
in ``--help``, every option documented, a closed pipe is no failure, one phone check."""

from __future__ import annotations

import argparse
import json
import re
import shlex

import pytest

from ucwa_async import InvalidPhoneNumberError
from ucwa_async._core.phone import phone_uri
from ucwa_async.cli import main
from ucwa_async.cli._args import build_parser
from ucwa_async.testing import UcwaSimulator

from ._support import CLI, child_env, cli, no_leaks, run

_COLOUR = re.compile(r"\x1b\[[0-9;]*3[0-7]m")  # a foreground colour


def _parsers() -> dict[str, argparse.ArgumentParser]:
    from ucwa_async.testing.__main__ import _parser as standalone_simulator

    parser = build_parser()
    found = {"ucwa-async": parser, "python -m ucwa_async.testing": standalone_simulator()}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found.update(action.choices)
    return found


def test_every_option_is_documented_and_defaults_have_one_style(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parsers = _parsers()
    assert {"demo", "simulator", "logs", "continue-messaging", "continue-phone-audio"} <= set(
        parsers
    )
    for name, parser in parsers.items():
        for action in parser._actions:
            if action.help == argparse.SUPPRESS or isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help, f"{name} {action.option_strings} has no help"
        text = parser.format_help()
        # Only argparse's "(default: X)", never "(default X)" or a bare "(30)".
        assert not re.search(r"\(default [^:]|\(\d+(\.\d+)?\)", text), f"{name}:\n{text}"
    with pytest.raises(SystemExit):
        main(["simulator", "--help"])
    out = capsys.readouterr().out
    assert re.search(r"--seed SEED\s+seed of the simulated data", out)
    assert "(default: 0)" in out


def test_demo_count_is_a_total() -> None:
    help_text = _parsers()["demo"].format_help()
    assert "invitations in total" in " ".join(help_text.split())
    assert build_parser().parse_args(["demo"]).count == 20


@pytest.mark.ucwa_simulator(conversation_logs=3)
async def test_logs_json(ucwa_simulator: UcwaSimulator) -> None:
    sim = ucwa_simulator
    result = await cli(
        "logs", "--discovery", sim.discovery_url, "--user", sim.username, "--json",
        env=child_env(UCWA_PASSWORD=sim.password),
    )  # fmt: skip
    assert result.returncode == 0, result.output
    logs = json.loads(result.stdout)
    assert [entry["index"] for entry in logs] == [0, 1, 2]
    for entry in logs:
        assert entry["href"].startswith(sim.base_url + "/ucwa/")
        assert entry["status"] in ("Archived", "Missed")  # ConversationLogStatus_ref.md
        assert {"creationTime", "subject", "modalities", "previewMessage"} <= set(entry)
    assert {entry["status"] for entry in logs} == {"Archived", "Missed"}  # mixed, as issue 14 asks
    no_leaks(result.stderr)


def _continue_argv(sim: UcwaSimulator) -> list[str]:
    return [
        "continue-messaging", "--discovery", sim.discovery_url, "--user", sim.username,
        "--index", "0", "--message", "hi",
    ]  # fmt: skip


@pytest.mark.ucwa_simulator(completion_delay=0.02)
async def test_outcomes_in_colour_when_forced(ucwa_simulator: UcwaSimulator) -> None:
    env = child_env(UCWA_PASSWORD=ucwa_simulator.password, NO_COLOR=None, FORCE_COLOR="1")
    result = await cli(*_continue_argv(ucwa_simulator), env=env)
    assert result.returncode == 0, result.output
    assert _COLOUR.search(result.stdout), repr(result.stdout)
    assert "connected (state Connected)" in result.stdout


@pytest.mark.ucwa_simulator(completion_delay=0.02)
async def test_no_colour_with_no_color_or_a_pipe(ucwa_simulator: UcwaSimulator) -> None:
    password = ucwa_simulator.password
    for extra in ({"NO_COLOR": "1", "FORCE_COLOR": "1"}, {"NO_COLOR": None}):
        env = child_env(UCWA_PASSWORD=password, **extra)
        result = await cli(*_continue_argv(ucwa_simulator), env=env)
        assert result.returncode == 0, result.output
        assert not _COLOUR.search(result.stdout), (extra, repr(result.stdout))
    # A pipe, no NO_COLOR: plain text, not even bold.
    assert "\x1b[" not in result.stdout


async def test_demo_colours_its_summary_when_forced() -> None:
    result = await cli("demo", "--count", "2", env=child_env(NO_COLOR=None, FORCE_COLOR="1"))
    assert result.returncode == 0, result.output
    assert _COLOUR.search(result.stdout)


async def test_a_closed_pipe_exits_0() -> None:
    # `ucwa-async demo | head -n 1`: the reader leaves early; that is no failure.
    ucwa = " ".join(shlex.quote(part) for part in CLI)
    script = f"{ucwa} demo --count 40 | head -n 1 >/dev/null; exit ${{PIPESTATUS[0]}}"
    result = await run("bash", "-c", script, env=child_env())
    assert result.returncode == 0, result.output
    no_leaks(result.stderr)
    assert "Broken pipe" not in result.stderr
    assert "BrokenPipeError" not in result.stderr


def test_the_cli_and_the_library_share_the_phone_check(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(InvalidPhoneNumberError) as refused:
        phone_uri("12345")
    argv = ["continue-phone-audio", "--discovery", "http://x/", "--user", "u"]
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args([*argv, "--index", "0", "--phone", "12345"])
    assert exc.value.code == 2
    assert str(refused.value) in capsys.readouterr().err
    args = build_parser().parse_args([*argv, "--index", "0", "--phone", "+1 425 555 1234"])
    assert args.phone == "tel:+14255551234"
    # Optional, as the API's phone_number: the server then rings the user's own number.
    assert build_parser().parse_args([*argv, "--index", "0"]).phone is None
