"""Guard for the coverage setup: aiohttp's C parser and yarl must agree on one URL class.

If coverage (or anything at start-up) imports and then drops ucwa_async/aiohttp/yarl,
yarl is re-imported as a second URL class while aiohttp's C HTTP parser keeps the first,
and every aiohttp server's ``request.url`` raises ``TypeError: url should be URL``.
"""

from __future__ import annotations

import aiohttp
from aiohttp import web


async def test_aiohttp_server_request_url_works() -> None:
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(str(request.url))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/probe", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        async with (
            aiohttp.ClientSession() as client,
            client.get(f"http://127.0.0.1:{port}/probe") as response,
        ):
            assert response.status == 200
    finally:
        await runner.cleanup()
    assert seen == [f"http://127.0.0.1:{port}/probe"]
