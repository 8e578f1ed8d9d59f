"""The argument parser of ``ucwa-async`` (argparse; no secret ever comes from argv)."""

from __future__ import annotations

import argparse

from ucwa_async import __version__
from ucwa_async._core.errors import InvalidPhoneNumberError
from ucwa_async._core.phone import phone_uri

_REAL_EPILOG = (
    "The password is read from the environment variable named by --password-env "
    "(default: UCWA_PASSWORD), or prompted for on a terminal. It is never an argument."
)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _count(text: str) -> int:
    """A whole number, 0 or more (``_positive_int`` refuses 0)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def _index(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 (the first listed) or more")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value


def _delay(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0.0 <= value <= 3600.0:
        raise argparse.ArgumentTypeError("must be within 0..3600 seconds")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("must be within 0..65535 (0: a free port)")
    return value


def _phone(text: str) -> str:
    try:
        return phone_uri(text)  # the library's own check
    except InvalidPhoneNumberError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """One style for defaults in every ``--help``: ``(default: X)``, added by argparse;
    nothing for options without a meaningful default (None, a flag's False)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


class _RefusePassword(argparse.Action):
    """``--password``: refused with a message, so a secret never sits in argv or history."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        parser.error(
            "the password is never taken from the command line: set the environment "
            "variable UCWA_PASSWORD (or the one --password-env names), or type it at the prompt"
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ucwa-async",
        allow_abbrev=False,
        formatter_class=HelpFormatter,
        description=(
            "asyncio UCWA 2.0 client: continue past conversations by IM or phone audio. "
            "Start with 'ucwa-async demo'."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="show the library's log; -vv for debug"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        allow_abbrev=False,
        formatter_class=HelpFormatter,
        help="run a live demo against the embedded UCWA simulator",
        description=(
            "Start the embedded UCWA simulator, sign in, list conversation logs, and continue "
            "them: N invitations in total, alternately by IM and by phone audio, "
            "concurrently, with live progress and a summary. Exit status 0 when every "
            "invitation ended."
        ),
    )
    demo.add_argument("--wire", choices=("json", "xml"), default="json", help="wire format")
    demo.add_argument(
        "--count",
        type=_positive_int,
        default=20,
        metavar="N",
        help="invitations in total, alternately by IM and by phone audio",
    )
    demo.add_argument(
        "--fail-rate",
        type=_rate,
        default=0.1,
        help="share of invitations the simulated peer declines, 0..1",
    )
    demo.add_argument(
        "--faults",
        action="store_true",
        help="inject CallbackChannelError and dropped long polls, to show reconnects",
    )
    demo.add_argument("--seed", type=int, default=1, help="seed of the simulator")
    demo.add_argument(
        "--timeout",
        type=_seconds,
        default=30.0,
        metavar="SECONDS",
        help="invitation timeout",
    )

    sim = commands.add_parser(
        "simulator",
        allow_abbrev=False,
        formatter_class=HelpFormatter,
        help="run the UCWA simulator standalone",
        description=(
            "Serve the UCWA simulator (JSON and XML) until Ctrl+C or SIGTERM; prints its "
            "discovery URL and credentials."
        ),
    )
    sim.add_argument("--host", default="127.0.0.1", help="address to bind")
    sim.add_argument("--port", type=_port, default=0, help="port to listen on; 0 picks a free one")
    sim.add_argument(
        "--wire",
        choices=("json", "xml"),
        default="json",
        help="wire format of the printed example command; the server speaks both",
    )
    sim.add_argument(
        "--fail-rate", type=_rate, default=0.0, help="share of invitations declined, 0..1"
    )
    sim.add_argument(
        "--completion-delay",
        type=_delay,
        default=0.2,
        metavar="SECONDS",
        help="time from an invitation's start to its outcome",
    )
    sim.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the simulated data (logs, outcomes): the same seed, the same run",
    )
    sim.add_argument(
        "--conversation-logs",
        type=_count,
        default=3,
        metavar="N",
        help="conversation logs the account has, for a bot that reads many",
    )

    for name, helptext in (
        ("logs", "list conversation logs on a UCWA server"),
        ("continue-messaging", "continue a conversation by instant message"),
        ("continue-phone-audio", "continue a conversation by phone audio"),
    ):
        cmd = commands.add_parser(
            name,
            help=helptext,
            description=helptext,
            epilog=_REAL_EPILOG,
            allow_abbrev=False,
            formatter_class=HelpFormatter,
        )
        cmd.add_argument(
            "--discovery",
            required=True,
            metavar="URL",
            help="autodiscovery URL, e.g. https://lyncdiscover.contoso.com",
        )
        cmd.add_argument("--user", required=True, help="sign-in name (user@domain)")
        cmd.add_argument("--wire", choices=("json", "xml"), default="json", help="wire format")
        cmd.add_argument(
            "--password-env",
            default="UCWA_PASSWORD",
            metavar="VAR",
            help="environment variable holding the password",
        )
        cmd.add_argument("--password", nargs="?", action=_RefusePassword, help=argparse.SUPPRESS)
        cmd.add_argument(
            "--connect-timeout",
            type=_seconds,
            default=30.0,
            metavar="SECONDS",
            help="time allowed for sign-in and for each request",
        )
        if name == "logs":
            cmd.add_argument("--limit", type=_positive_int, default=20, help="most logs to list")
            cmd.add_argument(
                "--json",
                action="store_true",
                help="print the logs as one JSON array (index, href, status, subject...)",
            )
            continue
        target = cmd.add_mutually_exclusive_group(required=True)
        target.add_argument("--log", metavar="HREF", help="the conversationLog href")
        target.add_argument(
            "--index",
            type=_index,
            metavar="N",
            help="the N-th log as 'ucwa-async logs' lists them (0 = the first)",
        )
        cmd.add_argument(
            "--timeout",
            type=_seconds,
            default=60.0,
            metavar="SECONDS",
            help="how long to wait for the outcome",
        )
        if name == "continue-messaging":
            cmd.add_argument("--message", required=True, help="the first message to send")
        else:
            cmd.add_argument(
                "--phone",
                type=_phone,
                help="global number to call, e.g. tel:+14255551234 or +1 425 555 1234 "
                "(default: the server rings your own number, continuePhoneAudio_ref.md)",
            )
    from ucwa_async.cli._chat import add_chat_command  # its options live with the command

    add_chat_command(commands)
    return parser
