"""Sans-IO protocol core: parsing decisions, correlation, channel state, errors.

Nothing in this package imports asyncio or aiohttp (tests/core/test_sans_io.py
checks it), so every rule here is testable without a socket or an event loop.
"""
