"""``ucwa-async simulator``: run the UCWA simulator until Ctrl+C or SIGTERM.

Prints the discovery URL and the credentials on stdout (flushed, so a parent
process can read them), then an example command; stops cleanly on a signal.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import signal
import sys
from contextlib import suppress

from ucwa_async.cli._errors import EXIT_OK, EXIT_UNREACHABLE, CliError
from ucwa_async.testing import SimulatorConfig, UcwaSimulator
from ucwa_async.testing._announce import connection_lines, stopped_line


async def run_simulator(args: argparse.Namespace) -> int:
    config = SimulatorConfig(
        host=args.host,
        port=args.port,
        fail_rate=args.fail_rate,
        completion_delay=args.completion_delay,
        conversation_logs=args.conversation_logs,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with suppress(NotImplementedError, RuntimeError):  # not on Windows
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
    sim = UcwaSimulator(config=config, seed=args.seed)
    try:
        await sim.start()
    except OSError as exc:
        raise CliError(
            f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", EXIT_UNREACHABLE
        ) from None
    try:
        password = shlex.quote(sim.password)
        print("\n".join(connection_lines(sim)))
        print("try, in another terminal:")
        print(
            f"  UCWA_PASSWORD={password} ucwa-async logs --wire {args.wire} "
            f"--discovery {sim.discovery_url} --user {sim.username}"
        )
        print("serving; press Ctrl+C to stop", flush=True)
        await stop.wait()
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
        await sim.stop()
    print(stopped_line(sim), file=sys.stderr, flush=True)
    return EXIT_OK
