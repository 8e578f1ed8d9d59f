"""The real-server commands against a simulator started by the test."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

import pytest

from ucwa_async.cli import main
from ucwa_async.testing import UcwaSimulator

from ._support import child_env, cli, no_leaks, refused_port

WIRES = pytest.mark.parametrize("wire", ["json", "xml"])
Main = Callable[..., int]


@pytest.fixture
def quiet_main(monkeypatch: pytest.MonkeyPatch) -> Main:
    """``main(argv, **env)`` in this process (main() puts the logging set-up back)."""

    def call(argv: list[str], **env: str) -> int:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        return main(argv)

    return call


def common(sim: UcwaSimulator, wire: str = "json") -> list[str]:
    return ["--discovery", sim.discovery_url, "--user", sim.username, "--wire", wire]


def env_for(sim: UcwaSimulator, password: str | None = None) -> dict[str, str]:
    return child_env(UCWA_PASSWORD=password if password is not None else sim.password)


@WIRES
@pytest.mark.ucwa_simulator(conversation_logs=4)
async def test_logs_lists_the_logs(ucwa_simulator: UcwaSimulator, wire: str) -> None:
    result = await cli("logs", *common(ucwa_simulator, wire), env=env_for(ucwa_simulator))
    assert result.returncode == 0, result.output
    rows = re.findall(
        r"^\s+(\d+)\s+\S+\s+\S+\s+.+\s(\S+/conversationLogs/\S+)$", result.stdout, re.M
    )
    assert [int(i) for i, _ in rows] == [0, 1, 2, 3]
    # Absolute, as the library gives them (and as invitation hrefs are).
    assert all(href.startswith(f"{ucwa_simulator.base_url}/ucwa/oauth/v1/") for _, href in rows)
    # The created column reads the same in both wires (JSON writes /Date(ms)/, XML ISO).
    created = re.findall(r"^\s+\d+\s+(\S+)\s", result.stdout, re.M)
    assert len(created) == 4
    assert all(re.fullmatch(r"2015-03-\d\dT\d\d:14:07\+00:00", c) for c in created), created
    assert ucwa_simulator.password not in result.output
    no_leaks(result.stderr)


@WIRES
@pytest.mark.parametrize(
    ("command", "extra"),
    [
        ("continue-messaging", ["--message", "Following up"]),
        ("continue-phone-audio", ["--phone", "tel:+14255551234"]),
    ],
)
@pytest.mark.ucwa_simulator(completion_delay=0.05)
async def test_continue_connected_exits_0(
    ucwa_simulator: UcwaSimulator, wire: str, command: str, extra: list[str]
) -> None:
    argv = [command, *common(ucwa_simulator, wire), "--index", "1", *extra]
    assert ucwa_simulator.password not in argv
    result = await cli(*argv, env=env_for(ucwa_simulator))
    assert result.returncode == 0, result.output
    assert re.search(
        r"^invitation http://127\.0\.0\.1:\d+/\S+/invitations/\d+ ", result.stdout, re.M
    )
    assert "connected (state Connected)" in result.stdout
    assert ucwa_simulator.counters.invitations_by_state == {"Connected": 1}
    no_leaks(result.stderr)


@WIRES
@pytest.mark.parametrize(
    ("command", "extra"),
    [
        ("continue-messaging", ["--message", "Following up"]),
        ("continue-phone-audio", ["--phone", "tel:+14255551234"]),
    ],
)
@pytest.mark.ucwa_simulator(fail_rate=1.0)
async def test_continue_declined_exits_1(
    ucwa_simulator: UcwaSimulator, wire: str, command: str, extra: list[str]
) -> None:
    result = await cli(
        command, *common(ucwa_simulator, wire), "--index", "0", *extra, env=env_for(ucwa_simulator)
    )
    assert result.returncode == 1, result.output
    assert (
        "not connected: RemoteFailure/Declined: The remote party declined the invitation."
        in result.stdout
    )
    assert ucwa_simulator.counters.invitations_by_state == {"Declined": 1}
    no_leaks(result.stderr)


async def test_continue_by_log_href(ucwa_simulator: UcwaSimulator) -> None:
    logs = await cli("logs", *common(ucwa_simulator), env=env_for(ucwa_simulator))
    href = logs.stdout.split()[-1]
    assert "/conversationLogs/" in href
    result = await cli(
        "continue-messaging", *common(ucwa_simulator), "--log", href, "--message", "hi",
        env=env_for(ucwa_simulator),
    )  # fmt: skip
    assert result.returncode == 0, result.output


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        (["--index", "7"], "--index 7: there are only 3 conversation logs"),
        (["--log", "/ucwa/nope"], "--log /ucwa/nope: no such conversation log"),
    ],
)
async def test_missing_log_exits_2(
    ucwa_simulator: UcwaSimulator, selector: list[str], message: str
) -> None:
    result = await cli(
        "continue-messaging", *common(ucwa_simulator), *selector, "--message", "hi",
        env=env_for(ucwa_simulator),
    )  # fmt: skip
    assert result.returncode == 2, result.output
    assert message in result.stderr
    assert ucwa_simulator.counters.invitations_created == 0


@pytest.mark.ucwa_simulator(completion_delay=5.0)
async def test_no_outcome_in_time_exits_1(ucwa_simulator: UcwaSimulator) -> None:
    result = await cli(
        "continue-messaging", *common(ucwa_simulator), "--index", "0", "--message", "hi",
        "--timeout", "0.3", env=env_for(ucwa_simulator),
    )  # fmt: skip
    assert result.returncode == 1, result.output
    assert "no outcome within 0.3 s" in result.stdout


async def test_wrong_password_exits_3(ucwa_simulator: UcwaSimulator) -> None:
    wrong = "Wr0ng-S3cret!"
    argv = ["logs", *common(ucwa_simulator)]
    result = await cli(*argv, env=env_for(ucwa_simulator, wrong))
    assert result.returncode == 3, result.output
    assert result.stderr.startswith("ucwa-async: authentication failed")
    assert "Traceback" not in result.stderr
    assert wrong not in result.output  # neither echoed nor logged
    assert wrong not in argv
    assert ucwa_simulator.counters.tokens_issued == 0


async def test_unreachable_server_exits_4() -> None:
    with refused_port() as port:
        url = f"http://127.0.0.1:{port}/autodiscover/autodiscoverservice.svc/root"
        result = await cli(
            "logs", "--discovery", url, "--user", "alice@contoso.com",
            env=child_env(UCWA_PASSWORD="x"),
        )  # fmt: skip
    assert result.returncode == 4, result.output
    assert result.stderr.startswith("ucwa-async: cannot reach the server")
    assert result.stderr.count("\n") == 1  # one line, no traceback


async def test_bad_url_exits_2() -> None:
    result = await cli(
        "logs", "--discovery", "lyncdiscover.contoso.com", "--user", "alice@contoso.com",
        env=child_env(UCWA_PASSWORD="x"),
    )  # fmt: skip
    assert result.returncode == 2, result.output
    assert result.stderr == (
        "ucwa-async: --discovery must be an http(s) URL such as "
        "https://lyncdiscover.contoso.com, got 'lyncdiscover.contoso.com'\n"
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/x", "--discovery must be an http(s) URL"),
        ("http://[::1", "--discovery is not a valid URL (Invalid IPv6 URL)"),
        ("http://h:99999/", "--discovery is not a valid URL (Port out of range"),
        ("https://bob:pw@h/", "--discovery must not carry credentials"),
    ],
)
def test_bad_urls_exit_2(
    url: str, message: str, quiet_main: Main, capsys: pytest.CaptureFixture[str]
) -> None:
    assert quiet_main(["logs", "--discovery", url, "--user", "u"], UCWA_PASSWORD="x") == 2
    assert message in capsys.readouterr().err


async def test_no_password_and_no_terminal_exits_2(ucwa_simulator: UcwaSimulator) -> None:
    result = await cli("logs", *common(ucwa_simulator), env=child_env(UCWA_PASSWORD=None))
    assert result.returncode == 2, result.output
    assert "no password: set the environment variable UCWA_PASSWORD" in result.stderr
    assert ucwa_simulator.counters.requests == 0  # refused before any request


async def test_password_env_names_another_variable(ucwa_simulator: UcwaSimulator) -> None:
    env = child_env(UCWA_PASSWORD=None, MY_SECRET=ucwa_simulator.password)
    result = await cli("logs", *common(ucwa_simulator), "--password-env", "MY_SECRET", env=env)
    assert result.returncode == 0, result.output


async def test_bad_arguments_exit_2_in_a_subprocess() -> None:
    result = await cli("logs", "--discovery", "http://x/", env=child_env(UCWA_PASSWORD="x"))
    assert result.returncode == 2, result.output
    assert "the following arguments are required: --user" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["continue-phone-audio", "--discovery", "http://x/", "--user", "u", "--index", "0",
             "--phone", "4255551234"],
            "phone numbers look like tel:+14255551234",
        ),
        (
            ["continue-messaging", "--discovery", "http://x/", "--user", "u", "--message", "m"],
            "one of the arguments --log --index is required",
        ),
        (
            ["continue-messaging", "--discovery", "http://x/", "--user", "u", "--index", "-1",
             "--message", "m"],
            "argument --index: must be 0",
        ),
        (["logs", "--discovery", "http://x/", "--user", "u", "--password", "s3cret"],
         "the password is never taken from the command line"),
        (["logs", "--discovery", "http://x/", "--user", "u", "--limit", "0"],
         "argument --limit: must be at least 1"),
    ],
)  # fmt: skip
def test_bad_arguments_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_main_called_in_process_leaves_logging_as_it_found_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The CLI silences the library logger's propagation for its own stderr lines; a
    # program (or a test) calling main() must get its logging back as it was.
    monkeypatch.setenv("UCWA_PASSWORD", "x")
    root, library = logging.getLogger(), logging.getLogger("ucwa_async")
    before = (root.handlers[:], root.level, library.handlers[:], library.level, library.propagate)
    with refused_port() as port:
        url = f"http://127.0.0.1:{port}/autodiscover/autodiscoverservice.svc/root"
        for verbose in ([], ["-vv"]):
            assert main([*verbose, "logs", "--discovery", url, "--user", "a@contoso.com"]) == 4
    after = (root.handlers[:], root.level, library.handlers[:], library.level, library.propagate)
    assert after == before
    assert "cannot reach the server" in capsys.readouterr().err
