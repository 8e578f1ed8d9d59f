"""The simulator process of a benchmark: ``python -m benchmarks.simproc [options]``.

Like ``python -m ucwa_async.testing`` (it prints ``discovery_url:``, ``username:`` and
``password:`` lines), plus what the benchmarks need and the standalone command lacks:

- ``--hold``: every invitation stays ``Connecting`` (an ``outcome_rule`` with
  ``complete=False``) until the parent writes ``release`` on stdin;
- a line protocol on stdin, one answer line on stdout per command:

  ``release``                   -> ``released N``: complete every held invitation
                                   (Success) in ONE push, so they leave in full batches;
  ``callback_channel_error N``  -> ``armed``: the next N continue POSTs answer 500
                                   ServiceFailure/CallbackChannelError;
  ``giant_batch N``             -> ``armed``: the next P-GET answers one batch of N
                                   valid events (the ``giant_batch`` fault);
  ``counters``                  -> one JSON line of ``sim.counters``;
  ``quit``                      -> ``bye``, and the server stops.

``release`` is ``UcwaSimulator.release_held()``.
Runs at most ``--duration`` seconds; EOF on stdin (the parent went away) stops it too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import random
import signal
import sys

from ucwa_async.testing import InvitationRequest, Outcome, SimulatorConfig, UcwaSimulator

_MAX_COMMANDS = 100_000  # every loop is bounded


def _hold(_request: InvitationRequest, _rng: random.Random) -> Outcome:
    return Outcome(complete=False)


def _answer(sim: UcwaSimulator, line: str) -> str:
    words = line.split()
    if not words:
        return "error empty command"
    if words[0] == "release":
        return f"released {sim.release_held()}"
    if words[0] == "callback_channel_error":
        sim.faults.callback_channel_error(int(words[1]) if len(words) > 1 else 1)
        return "armed"
    if words[0] == "giant_batch":
        sim.faults.giant_batch(int(words[1]) if len(words) > 1 else 60_000)
        return "armed"
    if words[0] == "counters":
        # Not dataclasses.asdict: it rebuilds a Counter from (key, value) pairs, which
        # counts the pairs (tuple keys, and json.dumps fails) once a Counter is non-empty.
        counters = {f.name: getattr(sim.counters, f.name) for f in dataclasses.fields(sim.counters)}
        return json.dumps(counters)
    return f"error unknown command {words[0]!r}"


async def _commands(sim: UcwaSimulator, stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    for _ in range(_MAX_COMMANDS):
        raw = await reader.readline()
        line = raw.decode().strip()
        if not raw or line == "quit":
            print("bye", flush=True)
            break
        try:
            answer = _answer(sim, line)
        except Exception as exc:  # one bad command must not end the loop
            answer = f"error {exc!r}"
        print(answer, flush=True)
    stop.set()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.simproc", description=__doc__)
    p.add_argument("--latency", type=float, default=0.0, help="seconds added to each response")
    p.add_argument("--hold", action="store_true", help="hold invitations until 'release'")
    p.add_argument("--no-require-channel", action="store_true")
    p.add_argument("--pget-timeout-cap", type=float, default=30.0)
    p.add_argument("--max-events-per-batch", type=int, default=500)
    p.add_argument("--duration", type=float, default=900.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--users", type=int, default=1, help="accounts: the default one and benchN@<its domain>"
    )
    return p


async def _serve(args: argparse.Namespace) -> None:
    first = SimulatorConfig()
    users = dict(first.users)
    domain = next(iter(users)).partition("@")[2]
    for n in range(1, args.users):
        users[f"bench{n}@{domain}"] = f"bench-{n}"
    config = SimulatorConfig(
        users=users,
        latency=args.latency,
        outcome_rule=_hold if args.hold else None,
        require_channel=not args.no_require_channel,
        pget_timeout_cap=args.pget_timeout_cap,
        max_events_per_batch=args.max_events_per_batch,
        request_log_limit=100,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with UcwaSimulator(config=config, seed=args.seed) as sim:
        print(f"discovery_url: {sim.discovery_url}", flush=True)
        print(f"username: {sim.username}", flush=True)
        print(f"password: {sim.password}", flush=True)
        commands = asyncio.create_task(_commands(sim, stop))
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), args.duration)
        finally:
            commands.cancel()
            await asyncio.gather(commands, return_exceptions=True)


def main() -> int:
    asyncio.run(_serve(_parser().parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
