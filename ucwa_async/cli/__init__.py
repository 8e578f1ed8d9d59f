"""The ``ucwa-async`` command (also ``python -m ucwa_async``).

Commands:

- ``demo``: a live demo against the embedded UCWA simulator (needs ``rich``).
- ``simulator``: run the UCWA simulator standalone until Ctrl+C / SIGTERM.
- ``chat``: an interactive chat line with someone (a real server, or ``--simulator``).
- ``logs``, ``continue-messaging``, ``continue-phone-audio``: a real UCWA server.
  The password comes from an environment variable (``UCWA_PASSWORD`` unless
  ``--password-env`` names another) or a prompt on a terminal; never from argv.

Exit codes:

- 0: success (for ``demo``: every invitation ended, connected or failed with a reason).
- 1: an operation did not succeed: the invitation was declined/failed, timed out or
  was lost; a demo invitation ended with an error.
- 2: usage error: bad arguments, a bad URL, no password available, a conversation
  log that does not exist, or ``rich`` missing for ``demo``.
- 3: authentication refused (wrong user name or password).
- 4: server unreachable, or it did not answer in time; ``simulator``: cannot listen.
- 5: the server answered something unexpected (a protocol or server error).
- 130: interrupted (Ctrl+C).

A closed stdout (``ucwa-async demo | head``) is not an error: output stops, the status
is the command's own (0 when nothing failed).

Errors are one ``ucwa-async: ...`` line on stderr, never a traceback (``-v`` / ``-vv``
turn on the library's logging).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Iterator, Sequence

from ucwa_async.cli._args import build_parser
from ucwa_async.cli._console import silence_stdout
from ucwa_async.cli._errors import EXIT_USAGE, CliError, exit_code_for

__all__ = ["main"]

RICH_MISSING = (
    "the demo needs the 'rich' package for its live view: "
    "python -m pip install 'ucwa_async[cli]'  (or: python -m pip install rich)"
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    with _cli_logging(args.verbose, quiet_channel=args.command == "demo"):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_dispatch(args))
    except KeyboardInterrupt:
        print("ucwa-async: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `ucwa-async logs | head`: the reader has what it wanted; that is no failure.
        silence_stdout()
        return 0
    except CliError as exc:
        print(f"ucwa-async: {exc}", file=sys.stderr)
        return exc.code
    except Exception as exc:  # last line of defence: a message, never a traceback
        if args.verbose > 1:
            logging.getLogger("ucwa_async.cli").exception("failed")
        code, text = exit_code_for(exc)
        print(f"ucwa-async: {text}", file=sys.stderr)
        return code


@contextlib.contextmanager
def _cli_logging(verbose: int, *, quiet_channel: bool) -> Iterator[None]:
    """Warnings of the library on stderr as ``ucwa-async: warning: ...`` lines; more with -v.

    The demo prints channel signals itself, so its library warnings are shown only with -v.
    Everything is put back afterwards: ``main()`` called from a program (or a test) must
    not leave the ``ucwa_async`` logger silenced for the rest of the process.
    """
    root = logging.getLogger()
    library = logging.getLogger("ucwa_async")
    saved = (root.handlers[:], root.level, library.handlers[:], library.level, library.propagate)
    if verbose:
        handler: logging.Handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.DEBUG if verbose > 1 else logging.INFO)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("ucwa-async: %(levelname)s: %(message)s"))
        library.addHandler(handler)
        library.setLevel(logging.ERROR if quiet_channel else logging.WARNING)
        library.propagate = False
    try:
        yield
    finally:
        root.handlers[:], library.handlers[:] = saved[0], saved[2]
        root.setLevel(saved[1])
        library.setLevel(saved[3])
        library.propagate = saved[4]


async def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "demo":
        try:
            from ucwa_async.cli._demo import run_demo
        except ImportError as exc:
            if (exc.name or "").partition(".")[0] != "rich":
                raise
            raise CliError(RICH_MISSING, EXIT_USAGE) from None

        return await run_demo(args)
    if args.command == "chat":
        from ucwa_async.cli._chat import run_chat

        return await run_chat(args)
    if args.command == "simulator":
        from ucwa_async.cli._simulator import run_simulator

        return await run_simulator(args)
    from ucwa_async.cli._real import run_real

    return await run_real(args)
