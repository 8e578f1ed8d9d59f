"""Sign-in endpoints: autodiscovery, the user resource (401 challenge / redirect), tokens."""

from __future__ import annotations

import json

from aiohttp import web

from ucwa_async.testing._http import Ctx
from ucwa_async.testing._render import render_links_only
from ucwa_async.testing._state import World
from ucwa_async.testing._urls import (
    APPLICATIONS_PATH,
    DISCOVERY_PATH,
    TOKEN_PATH,
    USER_PATH,
    pool_prefix,
)

__all__ = ["challenge_headers", "discovery", "token", "user"]

_GRANT_TYPES = "urn:microsoft.rtc:windows,urn:microsoft.rtc:anonmeeting,password"
_BEARER = 'Bearer trusted_issuers="00000001-0000-0000-c000-000000000000@contoso.com"'


def challenge_headers(world: World, ctx: Ctx) -> list[tuple[str, str]]:
    """``WWW-Authenticate`` header(s) of a 401, in the configured variant."""
    href = ctx.origin + TOKEN_PATH
    href_part = f'href="{href}"' if world.config.challenge_href_quoted else f"href={href}"
    ms = f'MsRtcOAuth {href_part},grant_type="{_GRANT_TYPES}"'
    mode = world.config.dual_challenge
    if mode == "combined":
        return [("WWW-Authenticate", f"{_BEARER}, {ms}")]
    if mode == "separate":
        return [("WWW-Authenticate", _BEARER), ("WWW-Authenticate", ms)]
    return [("WWW-Authenticate", ms)]


def _json(status: int, payload: dict[str, object]) -> web.Response:
    # The real token endpoint names its charset in this exact spelling.
    return web.Response(
        status=status,
        body=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json;charset=UTF-8", "Cache-Control": "no-store"},
    )


async def discovery(world: World, ctx: Ctx) -> web.Response:
    base = ctx.origin + ctx.pool
    links = [("user", base + USER_PATH), ("xframe", base + "/xframe")]
    return web.Response(
        body=render_links_only(base + DISCOVERY_PATH, links, ctx.wire),
        headers={"Content-Type": ctx.content_type},
    )


async def user(world: World, ctx: Ctx) -> web.Response:
    """Reached only with a valid token for this host (the pipeline answers the 401)."""
    base = ctx.origin + ctx.pool
    cfg = world.config
    if ctx.hop < cfg.redirect_hops:
        port = ctx.request.host.rsplit(":", 1)[-1]
        origin = f"http://{cfg.redirect_host}:{port}" if cfg.redirect_host else ctx.origin
        links = [("redirect", origin + pool_prefix(ctx.hop + 1) + DISCOVERY_PATH)]
    else:
        links = [("applications", base + APPLICATIONS_PATH), ("xframe", base + "/xframe")]
    return web.Response(
        body=render_links_only(base + USER_PATH, links, ctx.wire),
        headers={"Content-Type": ctx.content_type},
    )


async def token(world: World, ctx: Ctx) -> web.Response:
    form = await ctx.request.post()
    grant = form.get("grant_type")
    if grant != "password":
        return _json(
            400,
            {
                "error": "unsupported_grant_type",
                "error_description": "The simulator accepts only the password grant.",
            },
        )
    username, password = form.get("username"), form.get("password")
    if not isinstance(username, str) or world.config.users.get(username) != password:
        return _json(
            400,
            {"error": "invalid_grant", "error_description": "The user name or password is wrong."},
        )
    access = world.issue_token(username, ctx.host)
    return _json(
        200,
        {
            "access_token": access,
            "expires_in": world.config.token_expires_in,
            "ms_rtc_identityscope": "local",
            "token_type": "Bearer",
        },
    )
