"""Per-request context and response helpers shared by the handlers."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from ucwa_async.testing._config import Reason
from ucwa_async.testing._render import Res, Wire, render_error, render_resource

__all__ = ["Ctx", "Reply", "error", "no_content", "resource"]


@dataclass(slots=True)
class Ctx:
    """What a handler knows about its request beyond ``aiohttp.web.Request``."""

    request: web.Request
    kind: str
    tags: frozenset[str]
    wire: Wire
    content_type: str
    host: str
    """Host name of the Host header, without the port."""
    origin: str
    """``http://host:port`` as the client addressed us."""
    pool: str
    hop: int
    user: str | None = None
    fault: str | None = None


class Reply(Exception):
    """Raised by helpers deep in a handler to answer at once with ``response``."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


def error(
    ctx: Ctx,
    status: int,
    code: str,
    subcode: str | None = None,
    message: str | None = None,
    *,
    headers: dict[str, str] | None = None,
) -> web.Response:
    return error_reason(ctx, status, Reason(code, subcode, message), headers=headers)


def error_reason(
    ctx: Ctx, status: int, reason: Reason, *, headers: dict[str, str] | None = None
) -> web.Response:
    out = {"Content-Type": ctx.content_type}
    if headers:
        out.update(headers)
    return web.Response(status=status, body=render_error(reason, ctx.wire), headers=out)


def resource(ctx: Ctx, res: Res, status: int = 200) -> web.Response:
    return web.Response(
        status=status,
        body=render_resource(res, ctx.wire),
        headers={"Content-Type": ctx.content_type},
    )


def body(ctx: Ctx, data: bytes, status: int = 200) -> web.Response:
    return web.Response(status=status, body=data, headers={"Content-Type": ctx.content_type})


def no_content() -> web.Response:
    return web.Response(status=204)
