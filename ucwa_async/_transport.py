"""Requests made with the session's credentials.

One job: send a request to UCWA as the signed-in user. It keeps a bearer token per
host of the sign-in chain (the ``Authorization`` header never goes anywhere else),
obtains and refreshes tokens (MsRtcOAuth password grant or ``TokenAuth``) when a host
answers 401, honours ``Retry-After`` on 429/503 within bounds, and turns every
error answer into the library's typed errors.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from collections.abc import Callable
from typing import Any

from ucwa_async._auth import Auth, PasswordAuth, TokenAuth
from ucwa_async._core import wire as _wire
from ucwa_async._core.backoff import Backoff
from ucwa_async._core.errors import (
    AuthenticationError,
    RetryLaterError,
    SessionClosedError,
    UcwaError,
)
from ucwa_async._core.responses import classify, classify_token_error, parse_www_authenticate
from ucwa_async._core.urls import origin_of, resolve_href, same_origin
from ucwa_async._http import HttpClient, HttpResponse

__all__ = ["Transport"]

log = logging.getLogger("ucwa_async.session")

_MAX_THROTTLE_RETRIES = 3
_MAX_REAUTHENTICATIONS = 3


class Transport:
    """Authorized, throttling-aware requests for one session."""

    def __init__(
        self,
        http: HttpClient,
        *,
        auth: Auth,
        trusted_origins: set[str],
        accept: str,
        user_agent: str,
        request_timeout: float,
        max_body: int,
        backoff: Backoff,
        retry_after_cap: float,
        is_closed: Callable[[], bool],
        on_reauthenticated: Callable[[], None],
    ) -> None:
        self.http = http
        self.tokens: dict[str, str] = {}
        self.token_versions: dict[str, int] = {}
        self.trusted_origins = trusted_origins
        self._auth = auth
        self._accept = accept
        self._user_agent = user_agent
        self._request_timeout = request_timeout
        self._max_body = max_body
        self._backoff = backoff
        self._retry_after_cap = retry_after_cap
        self._is_closed = is_closed
        self._on_reauthenticated = on_reauthenticated
        self._token_endpoints: dict[str, str] = {}
        self._auth_locks: dict[str, asyncio.Lock] = {}

    def trust(self, url: str) -> str:
        """Sign-in hops come from the discovery chain: each host may get its own token."""
        self.trusted_origins.add(origin_of(url))
        return url

    def headers_for(self, url: str, content_type: str | None = None) -> dict[str, str]:
        headers = {"Accept": self._accept, "User-Agent": self._user_agent}
        if content_type is not None:
            headers["Content-Type"] = content_type
        origin = origin_of(url)
        # The Authorization header never leaves the hosts of our own sign-in chain.
        if origin in self.trusted_origins:
            token = self.tokens.get(origin)
            if token is not None:
                headers["Authorization"] = token
        return headers

    async def send(
        self,
        method: str,
        url: str,
        *,
        data: bytes | None = None,
        content_type: str | None = None,
        authorize: bool = True,
    ) -> HttpResponse:
        if self._is_closed():
            raise SessionClosedError("the session is closed")
        origin = origin_of(url)
        # Token versions a 401 answered: each gets one refresh, so a token that expires
        # again while the request is repeated is refreshed again (bounded).
        refused_versions: set[int] = set()
        throttled = 0
        while True:
            version = self.token_versions.get(origin, 0)
            headers = self.headers_for(url, content_type)
            if not authorize:
                headers.pop("Authorization", None)
            try:
                response = await self.http.request(
                    method, url, headers=headers, data=data, timeout=self._request_timeout
                )
            except UcwaError:
                if self._is_closed():
                    raise SessionClosedError("the session closed during the request") from None
                raise
            if log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "%s %s -> %d (%d bytes)", method, url, response.status, len(response.body)
                )
            if (
                response.status == 401
                and authorize
                and version not in refused_versions
                and len(refused_versions) < _MAX_REAUTHENTICATIONS
                and origin in self.trusted_origins
                and not _is_proxy_page(response)
            ):
                refused_versions.add(version)
                await self.authenticate(origin, url, response, version)
                continue
            error = classify(
                response.status,
                response.content_type,
                response.body,
                method=method,
                url=url,
                retry_after=response.retry_after,
            )
            if error is None:
                return response
            if isinstance(error, RetryLaterError) and throttled < _MAX_THROTTLE_RETRIES:
                throttled += 1
                delay = self.retry_delay(error, throttled)
                log.info("%s %s throttled (%d); retry in %.2f s", method, url, error.status, delay)
                await asyncio.sleep(delay)
                continue
            raise error

    def retry_delay(self, error: RetryLaterError, attempt: int) -> float:
        return min(
            error.retry_after if error.retry_after is not None else self._backoff.delay(attempt),
            self._retry_after_cap,
        )

    async def get_json(self, url: str, *, authorize: bool = True) -> dict[str, Any]:
        response = await self.send("GET", url, authorize=authorize)
        return _wire.decode(response.body, response.content_type, max_size=self._max_body)

    async def authenticate(
        self, origin: str, url: str, challenge: HttpResponse | None, seen_version: int
    ) -> None:
        lock = self._auth_locks.setdefault(origin, asyncio.Lock())
        async with lock:
            if self.token_versions.get(origin, 0) != seen_version:
                return  # another task refreshed the token meanwhile
            if isinstance(self._auth, TokenAuth):
                if origin in self.tokens and not self._auth.can_refresh:
                    raise AuthenticationError(
                        status=401, message="the token was refused and TokenAuth cannot refresh it"
                    )
                token = await self._auth.get_token()
            else:
                token = await self._password_grant(origin, url, challenge)
            had_token = origin in self.tokens
            self.tokens[origin] = token
            self.token_versions[origin] = seen_version + 1
            if had_token:
                self._on_reauthenticated()
            log.info("authenticated with %s", origin)

    async def _password_grant(self, origin: str, url: str, challenge: HttpResponse | None) -> str:
        assert isinstance(self._auth, PasswordAuth)
        params = parse_www_authenticate(list(challenge.www_authenticate)) if challenge else None
        if params is not None and params.get("href"):
            token_url = resolve_href(str(params["href"]), base_url=url)
        elif origin in self._token_endpoints:
            # A 401 without a challenge (e.g. on the event channel): reuse the
            # token endpoint this host named when we signed in.
            token_url = self._token_endpoints[origin]
        else:
            raise AuthenticationError(
                status=challenge.status if challenge else 401,
                message="the server sent no MsRtcOAuth challenge",
                url=url,
            )
        if not same_origin(token_url, origin):
            raise AuthenticationError(
                status=401,
                message="refusing to send the password to a token endpoint on another host",
                url=url,
            )
        self._token_endpoints[origin] = token_url
        form = urllib.parse.urlencode(
            {
                "grant_type": "password",
                "username": self._auth.username,
                "password": self._auth.password,
            }
        ).encode()
        throttled = 0
        while True:
            response = await self.http.request(
                "POST",
                token_url,
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "Accept": "application/json",
                },
                data=form,
                timeout=self._request_timeout,
            )
            error = classify_token_error(
                response.status,
                response.content_type,
                response.body,
                method="POST",
                url=token_url,
                retry_after=response.retry_after,
            )
            if error is None:
                break
            # A throttled token endpoint (503/429) is transient, like any other request.
            if not isinstance(error, RetryLaterError) or throttled >= _MAX_THROTTLE_RETRIES:
                raise error
            throttled += 1
            await asyncio.sleep(self.retry_delay(error, throttled))
        try:
            grant = _wire.decode(response.body, response.content_type or "application/json")
            token = grant["access_token"]
        except (UcwaError, KeyError, TypeError) as exc:
            raise AuthenticationError(
                status=response.status,
                message="the token endpoint sent no access_token",
                url=token_url,
            ) from exc
        if not isinstance(token, str) or not token:
            raise AuthenticationError(status=response.status, message="empty access_token")
        token_type = grant.get("token_type") or "Bearer"
        return f"{token_type} {token}"


def _is_proxy_page(response: HttpResponse) -> bool:
    """A 401 from a front proxy, not from UCWA: no challenge, a non-UCWA body (HTML).

    Re-authenticating would not help (our token is fine) and would re-send the
    password; it is classified as a ``ProxyResponseError`` instead.
    """
    return (
        not response.www_authenticate
        and bool(response.body)
        and _wire.wire_of(response.content_type) is None
    )
