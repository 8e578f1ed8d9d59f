"""Autodiscovery answered with an HTTP redirect (RootURL.md): "Some scenarios can allow HTTP
as a first hop. In such cases Lync will always respond with a redirect to HTTPS", and a
discovery fails on an "HTTP 302 redirect to a domain different from the domain of the
autodiscovery service". Discovery GETs carry no token, so following one leaks nothing."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from aiohttp import web

import ucwa_async
from ucwa_async._application import _discovery_redirect

from ._server import BOTH_WIRES, TOKEN, HostileServer, Recorder


@BOTH_WIRES
@pytest.mark.parametrize("status", [301, 302, 307])
async def test_a_discovery_redirect_in_the_same_domain_is_followed(
    server: HostileServer, make_session: Callable[..., ucwa_async.Session], status: int
) -> None:
    async def moved(request: web.Request) -> web.StreamResponse | None:
        return web.Response(status=status, headers={"Location": "/lyncdiscover/root"})

    async def moved_root(request: web.Request) -> web.StreamResponse | None:
        if request.path != "/lyncdiscover/root":
            return None
        return server.answer({"_links": {"user": {"href": server.origin + "/user"}}})

    server.hooks["discovery"] = moved
    server.hooks["other"] = moved_root
    async with make_session() as session:
        assert session.application_url is not None
    first = [s for s in server.seen if "/autodiscover" in s.url or "/lyncdiscover" in s.url]
    assert [s.url.removeprefix(server.origin) for s in first] == [
        "/autodiscover",
        "/lyncdiscover/root",
    ]
    assert all(s.authorization is None for s in first)


@BOTH_WIRES
async def test_a_discovery_redirect_to_another_host_is_refused(
    server: HostileServer, recorder: Recorder, make_session: Callable[..., ucwa_async.Session]
) -> None:
    async def elsewhere(request: web.Request) -> web.StreamResponse | None:
        location = f"http://localhost:{recorder.port}/autodiscover"
        return web.Response(status=302, headers={"Location": location})

    server.hooks["discovery"] = elsewhere
    with pytest.raises(ucwa_async.UnexpectedRedirectError):
        async with make_session():
            pass
    assert recorder.seen == []


@pytest.mark.parametrize(
    ("url", "location", "expected"),
    [
        (
            "http://lyncdiscover.contoso.com/",
            "https://lyncdiscover.contoso.com/",
            "https://lyncdiscover.contoso.com/",
        ),
        (
            "https://lyncdiscover.contoso.com/",
            "https://lyncweb.contoso.com/Autodiscover/AutodiscoverService.svc/root",
            "https://lyncweb.contoso.com/Autodiscover/AutodiscoverService.svc/root",
        ),
        (
            "https://LyncDiscoverInternal.contoso.com/",
            "https://contoso.com/Autodiscover/AutodiscoverService.svc/root",
            "https://contoso.com/Autodiscover/AutodiscoverService.svc/root",
        ),
        ("https://lyncdiscover.contoso.com/x", "/root", "https://lyncdiscover.contoso.com/root"),
        ("https://lyncdiscover.contoso.com/", "https://login.fabrikam.com/adfs/ls/", None),
        ("https://lyncdiscover.contoso.com/", "https://evilcontoso.com/", None),
        ("https://contoso.com/", "https://other.com/", None),
        ("http://127.0.0.1:8080/", "http://127.0.0.2:8080/", None),
        ("https://lyncdiscover.contoso.com/", "javascript:alert(1)", None),
        ("https://lyncdiscover.contoso.com/", None, None),
        # Only a host named as RootURL.md's table names discovery services
        # (LyncDiscover.<domain>, LyncDiscoverInternal.<domain>) stands for its parent
        # domain; any other host's domain is itself: its parent may be a public suffix.
        ("http://contoso.co.uk/", "https://evil.co.uk/", None),
        ("http://foo.github.io/", "https://bar.github.io/", None),
        ("http://contoso.co.uk/", "https://co.uk/", None),
        ("https://lyncweb.contoso.com/", "https://evil.contoso.com/", None),
        ("http://contoso.co.uk/", "https://contoso.co.uk/r", "https://contoso.co.uk/r"),
        (
            "http://contoso.co.uk/",
            "https://lyncweb.contoso.co.uk/",
            "https://lyncweb.contoso.co.uk/",
        ),
        ("http://lyncdiscover.contoso.co.uk/", "https://evil.co.uk/", None),
        (
            "http://lyncdiscover.contoso.co.uk/",
            "https://lyncweb.contoso.co.uk/",
            "https://lyncweb.contoso.co.uk/",
        ),
        ("http://lyncdiscover.com/", "https://evil.com/", None),
        ("http://lyncdiscoverx.contoso.com/", "https://evil.contoso.com/", None),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8443/x", "http://127.0.0.1:8443/x"),
    ],
)
def test_which_discovery_redirects_are_followed(
    url: str, location: str | None, expected: str | None
) -> None:
    assert _discovery_redirect(url, location) == expected


@BOTH_WIRES
async def test_the_user_resource_s_redirect_resource_is_read_with_the_token(
    server: HostileServer, make_session: Callable[..., ucwa_async.Session]
) -> None:
    # user_ref.md: "after credentials are acquired, the server might serve a redirect
    # resource"; redirect_ref.md's GET of it carries "Authorization: Bearer cwt=..." (it
    # is under the protected user resource). Its JSON sample, with the user link on the
    # pool the user is homed on.
    redirect_path = "/autodiscover/autodiscoverservice.svc/root/user/redirect"
    pool_user = "/pool2/autodiscover/autodiscoverservice.svc/root/user"
    authorized = f"Bearer {TOKEN}"

    async def user(request: web.Request) -> web.StreamResponse | None:
        if request.headers.get("Authorization") != authorized:
            return None  # the default 401 challenge
        return server.answer(
            {
                "rel": "user",
                "_links": {
                    "self": {"href": "/autodiscover/autodiscoverservice.svc/root/user"},
                    "redirect": {"href": redirect_path},
                    "xframe": {"href": "/autodiscover/autodiscoverservice.svc/root/xframe"},
                },
            }
        )

    async def protected(request: web.Request) -> web.StreamResponse | None:
        if request.path not in (redirect_path, pool_user):
            return None
        if request.headers.get("Authorization") != authorized:
            challenge = f'MsRtcOAuth href="{server.origin}/token",grant_type="password"'
            return web.Response(status=401, headers={"WWW-Authenticate": challenge})
        if request.path == pool_user:
            return server.answer(
                {"_links": {"applications": {"href": "/ucwa/oauth/v1/applications"}}}
            )
        return server.answer(
            {
                "rel": "redirect",
                "_links": {
                    "self": {"href": redirect_path},
                    "user": {"href": pool_user},
                    "xframe": {"href": "/autodiscover/autodiscoverservice.svc/root/xframe"},
                },
            }
        )

    server.hooks["user"] = user
    server.hooks["other"] = protected
    async with make_session() as session:
        assert session.application_url is not None
    hops = [(s.url.removeprefix(server.origin), s.authorization) for s in server.seen]
    assert (redirect_path, authorized) in hops
    assert (redirect_path, None) not in hops  # no 401 round trip, no second grant
    assert [s.url for s in server.seen].count(server.origin + "/token") == 1
