"""``python -m ucwa_async.testing``: run the UCWA simulator standalone.

Prints the discovery URL and the credentials (one ``key: value`` per line, flushed)
and serves until interrupted (Ctrl-C / SIGTERM) or ``--duration`` seconds pass.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence

from ucwa_async.cli._args import HelpFormatter
from ucwa_async.testing._announce import connection_lines, stopped_line
from ucwa_async.testing._config import SimulatorConfig
from ucwa_async.testing._simulator import UcwaSimulator

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ucwa_async.testing",
        description=__doc__,
        formatter_class=HelpFormatter,  # the ucwa-async command's: one style of defaults
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind")
    p.add_argument("--port", type=int, default=0, help="port to listen on; 0 picks a free one")
    p.add_argument("--seed", type=int, default=0, help="seed of the simulated data")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument(
        "--pget-timeout-cap", type=float, default=30.0, help="longest a long poll is held, s"
    )
    p.add_argument(
        "--completion-delay", type=float, default=0.0, help="invitation start to outcome, s"
    )
    p.add_argument("--fail-rate", type=float, default=0.0, help="share of invitations declined")
    p.add_argument("--latency", type=float, default=0.0, help="added to every answer, s")
    p.add_argument(
        "--location-style",
        choices=("relative", "absolute", "v1"),
        default="relative",
        help="shape of the 201 Location hrefs",
    )
    p.add_argument(
        "--event-href-style",
        choices=("relative", "absolute", "v1"),
        default="relative",
        help="shape of the hrefs in events",
    )
    p.add_argument("--no-embed", action="store_true", help="link-only events")
    p.add_argument(
        "--conversation-logs", type=int, default=3, help="conversation logs the account has"
    )
    p.add_argument(
        "--max-events-per-batch", type=int, default=500, help="events in one long-poll answer"
    )
    p.add_argument(
        "--request-log-limit", type=int, default=10_000, help="requests kept in the request log"
    )
    return p


async def _serve(args: argparse.Namespace) -> None:
    config = SimulatorConfig(
        host=args.host,
        port=args.port,
        pget_timeout_cap=args.pget_timeout_cap,
        completion_delay=args.completion_delay,
        fail_rate=args.fail_rate,
        latency=args.latency,
        location_style=args.location_style,
        event_href_style=args.event_href_style,
        embed_resources=not args.no_embed,
        max_events_per_batch=args.max_events_per_batch,
        request_log_limit=args.request_log_limit,
        conversation_logs=args.conversation_logs,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # not on Windows
            loop.add_signal_handler(sig, stop.set)
    async with UcwaSimulator(config=config, seed=args.seed) as sim:
        print("\n".join(connection_lines(sim)), flush=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), args.duration)
        print(stopped_line(sim), file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
