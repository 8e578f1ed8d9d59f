"""Benchmarks for ucwa_async: ``python -m benchmarks [--quick] [--output DIR]``.

Scripts that report figures, not timed tests. Every comparison is a ratio of
contenders measured side by side in one run, each against a fresh simulator in
its own process (see :mod:`benchmarks._sim`). The sections:

- :mod:`benchmarks.throughput` - invitations/s: ``ucwa_async.Session`` vs a raw-aiohttp
  floor (:mod:`benchmarks.floor`) vs a synchronous one-at-a-time client
  (:mod:`benchmarks.syncclient`), at 0 ms and 50 ms simulated latency;
- :mod:`benchmarks.scale` - 10 000 pending invitations: memory per invitation, then
  event -> future dispatch latency when they are all released;
- :mod:`benchmarks.wirecost` - decoding one 500-event batch, JSON vs XML;
- :mod:`benchmarks.reconnect` - CallbackChannelError -> the retried POST's 201.

:mod:`benchmarks.report` writes ``BENCHMARKS.md`` and ``BENCHMARKS.json``.
"""
