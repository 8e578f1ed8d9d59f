"""Requests made with the session's credentials.

One job: send a request to UCWA as the signed-in user. It keeps a bearer token per
host of the sign-in chain (the ``Authorization`` header never goes anywhere else),
obtains and refreshes tokens (MsRtcOAuth password grant or ``TokenAuth``) when a host
answers 401, honours ``Retry-After`` on 429/503 within bounds, and turns every
error answer into the library's typed errors.

Every request of a session goes through here (ordinary requests, the P-GET, the
DELETE on close, the token grant), so the rules live in one place:

- one 401 gets one re-authentication and one repeat; re-authentications are
  bounded by a :class:`ReauthBudget` (count per window, spacing between grants),
  and an HTML 401 from a front proxy is never answered with a grant;
- an endpoint that refuses the very token its own 401 had granted, again and again
  (while the rest of the API takes it), gets no grant for ever longer holds
  (:class:`RefusingEndpoints`): its 401 is no expiry, and a keep-alive must not
  send the password once per period for as long as the client runs;
- a password token is granted again before the expiry its grant announced
  (``expires_in``), on the first request after it is due: a session that lives for
  days does not meet a 401 at each expiry (AuthenticationInUCWA.md, "Refreshing an
  OAuth token"). A renewal never waits and never fails a request: when the budget
  does not allow one yet, or the grant fails, the current token goes on;
- a password or token never goes over plain http, except to a loopback host or
  with ``allow_insecure_http``; once the chain is on https, http is refused;
- a 3xx is an error (redirects are not followed here; sign-in follows an autodiscovery
  3xx within its domain).
"""

from __future__ import annotations

import asyncio
import collections
import functools
import ipaddress
import logging
import math
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from ucwa_async._auth import Auth, PasswordAuth, TokenAuth, checked_token
from ucwa_async._core import wire as _wire
from ucwa_async._core.backoff import Backoff
from ucwa_async._core.budget import ReauthBudget, RefusingEndpoints, failure_log_level
from ucwa_async._core.errors import (
    AuthenticationError,
    InsecureTransportError,
    ProxyResponseError,
    RequestTimeoutError,
    ResponseError,
    RetryLaterError,
    SessionClosedError,
    TransportError,
    UcwaError,
)
from ucwa_async._core.responses import classify, classify_token_error, parse_www_authenticate
from ucwa_async._core.urls import domain_name, origin_of, resolve_href, same_origin
from ucwa_async._http import HttpClient, HttpResponse

__all__ = ["Transport"]


log = logging.getLogger("ucwa_async.session")

_MAX_THROTTLE_RETRIES = 3
# Durations of the last ordinary requests kept: their shortest is the round trip.
_ROUND_TRIP_SAMPLES = 16
# Repeats of one request after 401s (one of them at most after our own grant).
_MAX_AUTH_REPEATS = 3
# A password token is granted again this long before the expiry its grant announced
# (a real one lives 8 hours; a clock skew or a slow request must not outrun it) ...
_REFRESH_MARGIN = 300.0
# ... at half its life for a short one, and never sooner than this after its grant: a
# server announcing expires_in=0 or 1 forever gets a grant a minute, not one per request.
_MIN_TOKEN_AGE = 60.0
# The longest hold of an endpoint that refuses every fresh token (see RefusingEndpoints):
# a grant a day for it at most, once the holds have grown.
_REFUSING_ENDPOINT_CAP = 86400.0


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
        allow_insecure_http: bool = False,
        max_reauthentications: int = 3,
        reauthentication_window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``max_reauthentications`` grants per ``reauthentication_window`` seconds at
        most, spaced by ``backoff``'s un-jittered delays (see :class:`ReauthBudget`)."""
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
        # Host -> the clock time its password token is due for renewal (from expires_in).
        self._renew_at: dict[str, float] = {}
        self._clock = clock
        self._auth_locks: dict[str, asyncio.Lock] = {}
        # Host -> the token version the last P-GET carried: a 401 on it refreshes that
        # version only (a token refreshed meanwhile by a request is not replaced again).
        self._polled_versions: dict[str, int] = {}
        # Host -> the last P-GET's 401 (its challenge and body): the channel sees only a
        # classified error, which cannot tell UCWA's HTML 401 from a proxy's.
        self._poll_challenges: dict[str, HttpResponse] = {}
        # (host, "request" | "poll") -> the newest token version the server accepted on
        # that kind of request. Replacing an accepted token is an expiry (free); one
        # never accepted is a futile re-authentication (counted by the budget).
        self._accepted: dict[tuple[str, str], int] = {}
        # Grants of all hosts are serialised: the budget is per session.
        self._grant_lock = asyncio.Lock()
        self._budget = ReauthBudget(
            max_grants=max_reauthentications,
            window=reauthentication_window,
            base=backoff.base,
            cap=backoff.cap,
            clock=clock,
        )
        # Endpoints refusing the token granted for their own 401: the refusals one budget
        # window allows (an expiry, then max_reauthentications fresh tokens) are free;
        # then holds of a window, doubling up to a day.
        self._refusing = RefusingEndpoints(
            free=max_reauthentications + 1,
            base=reauthentication_window,
            cap=_REFUSING_ENDPOINT_CAP,
            clock=clock,
        )
        self._allow_insecure_http = allow_insecure_http
        self._durations: collections.deque[float] = collections.deque(maxlen=_ROUND_TRIP_SAMPLES)
        # Once any hop of the chain is https, a plain-http URL is a downgrade.
        self._https_seen = any(_scheme(o) == "https" for o in trusted_origins)

    # -- the URL rules --------------------------------------------------------------

    def _check_url(self, url: str, *, credentials: bool) -> None:
        """Refuse an https -> http downgrade, and credentials over plain http."""
        scheme = _scheme(url)
        if scheme == "https":
            # Only a hop of our own chain makes it https: an https URL elsewhere (the
            # escape hatch, a link to another host) must not refuse our own http origin.
            if origin_of(url) in self.trusted_origins:
                self._https_seen = True
            return
        if self._https_seen:
            raise InsecureTransportError(
                f"refusing to leave https for plain http: {_short(url)}", url=url
            )
        if credentials and not self._allow_insecure_http and not is_loopback(url):
            raise InsecureTransportError(
                f"refusing to send credentials over plain http to {origin_of(url)} "
                "(use https, or Session(allow_insecure_http=True))",
                url=url,
            )

    def received_securely(self, url: str) -> bool:
        """Whether an answer read from ``url`` is the server's own (RootURL.md's security
        check): over https, from a loopback host, or over the plain http the caller opted
        into with ``allow_insecure_http``."""
        return _scheme(url) == "https" or self._allow_insecure_http or is_loopback(url)

    @property
    def sign_in_domain(self) -> str | None:
        """The domain of the sign-in address (``user@contoso.com``), if there is one."""
        if isinstance(self._auth, PasswordAuth):
            _, at, domain = self._auth.username.rpartition("@")
            domain = domain_name(domain)
            if at and domain:
                return domain
        return None

    def trust(self, url: str) -> str:
        """Sign-in hops come from the discovery chain: each host may get its own token."""
        self.trusted_origins.add(origin_of(url))
        return url

    def headers_for(
        self, url: str, content_type: str | None = None, *, authorize: bool = True
    ) -> dict[str, str]:
        """The headers of a request to ``url``; raises ``InsecureTransportError`` for
        a downgrade, or when a token would go over plain http."""
        headers = {"Accept": self._accept, "User-Agent": self._user_agent}
        if content_type is not None:
            headers["Content-Type"] = content_type
        origin = origin_of(url)
        # The Authorization header never leaves the hosts of our own sign-in chain.
        token = self.tokens.get(origin) if authorize and origin in self.trusted_origins else None
        self._check_url(url, credentials=token is not None)
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
        # A 401 costs this request at most one re-authentication ("re-authenticate once")
        # and one repeat. A 401 for a token another task has replaced meanwhile costs no
        # grant: the request is repeated with the new token (bounded too).
        granted = False
        fresh = -1  # the token version this request's own grant made
        repeats = 0
        throttled = 0
        while True:
            if authorize:
                try:
                    await self._renew_if_due(origin, url, "request")
                except TransportError as exc:
                    exc.request_sent = False  # the token's request: this one was not sent
                    raise
            version = self.token_versions.get(origin, 0)
            headers = self.headers_for(url, content_type, authorize=authorize)
            started = time.monotonic()
            try:
                response = await self.http.request(
                    method, url, headers=headers, data=data, timeout=self._request_timeout
                )
            except UcwaError:
                if self._is_closed():
                    raise SessionClosedError("the session closed during the request") from None
                raise
            self._durations.append(time.monotonic() - started)
            if log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "%s %s -> %d (%d bytes)", method, url, response.status, len(response.body)
                )
            if "Authorization" in headers and response.status != 401:
                self._mark_accepted(origin, "request", version)
                if self._refusing:
                    self._refusing.accepted(_endpoint(method, url))
            if (
                response.status == 401
                and authorize
                and repeats < _MAX_AUTH_REPEATS
                and origin in self.trusted_origins
                and not _is_proxy_page(response)
            ):
                if self.token_versions.get(origin, 0) != version:
                    repeats += 1  # refreshed by another task meanwhile: no grant needed
                    continue
                if not granted:
                    self._check_not_held(method, url)
                    repeats += 1
                    try:
                        granted = await self.authenticate(origin, url, response, version)
                    except TransportError as exc:
                        exc.request_sent = False  # answered 401: nothing of it was done
                        raise
                    if granted:
                        fresh = self.token_versions.get(origin, 0)
                    continue
            if response.status == 401 and version == fresh and not _is_proxy_page(response):
                self._endpoint_refused(method, url)
            error = classify(
                response.status,
                response.content_type,
                response.body,
                method=method,
                url=url,
                retry_after=response.retry_after,
                location=response.location,
            )
            if error is None:
                return response
            if (
                isinstance(error, ProxyResponseError)
                and response.status == 401
                and not _is_proxy_page(response)
            ):
                # UCWA's own 401 has an HTML body too (CreateAnApplication.md, step 4): its
                # challenge says it is the server refusing the token, not a proxy's page.
                error = AuthenticationError(
                    status=401,
                    message="the server refused the token (401 with a WWW-Authenticate challenge)",
                    method=method,
                    url=url,
                    retry_after=error.retry_after,
                )
            if isinstance(error, RetryLaterError) and throttled < _MAX_THROTTLE_RETRIES:
                throttled += 1
                delay = self.retry_delay(error, throttled)
                log.info("%s %s throttled (%d); retry in %.2f s", method, url, error.status, delay)
                await asyncio.sleep(delay)
                continue
            raise error

    def _check_not_held(self, method: str, url: str) -> None:
        """Raise ``AuthenticationError`` instead of a grant for an endpoint held for
        refusing the tokens granted for its own 401s."""
        if not self._refusing:
            return
        key = _endpoint(method, url)
        wait = self._refusing.wait(key)
        if wait > 0:
            raise AuthenticationError(
                status=401,
                message=(
                    f"no new token for this endpoint for {wait:.0f} s: it refused the "
                    f"last {self._refusing.refusals(key)} tokens granted for its own 401s "
                    "(its re-authentication budget is spent)"
                ),
                method=method,
                url=url,
                retry_after=wait,
            )

    def _endpoint_refused(self, method: str, url: str) -> None:
        """The token granted for this request's 401 was refused by the same endpoint."""
        key = _endpoint(method, url)
        refusals = self._refusing.refused(key)
        wait = self._refusing.wait(key)
        log.log(
            failure_log_level(refusals),
            "%s %s refused the token granted for its own 401 (%d in a row)%s",
            method,
            _short(url),
            refusals,
            f": no new token for it for {wait:.0f} s" if wait > 0 else "",
        )

    def round_trip(self) -> float:
        """The shortest duration of the last ordinary requests (0 before the first): a
        round trip to the server, its least work included. A P-GET answered within it
        was not held, however far away the server is."""
        return min(self._durations, default=0.0)

    def retry_delay(self, error: RetryLaterError, attempt: int) -> float:
        return min(
            error.retry_after if error.retry_after is not None else self._backoff.delay(attempt),
            self._retry_after_cap,
        )

    async def get_json(self, url: str, *, authorize: bool = True) -> dict[str, Any]:
        response = await self.send("GET", url, authorize=authorize)
        return _wire.decode(response.body, response.content_type, max_size=self._max_body)

    async def poll(
        self, url: str, timeout: float, sent: asyncio.Future[None] | None = None
    ) -> HttpResponse:
        """One event-channel GET, with the headers and URL rules of :meth:`send`.

        Reserved in the connection pool; no 401 or error handling here: the
        channel's state machine reads the answer (and calls :meth:`reauthenticate`).
        ``sent``: resolved once the GET is on the wire (when the HTTP client can tell).
        """
        if self._is_closed():
            raise SessionClosedError("the session is closed")
        origin = origin_of(url)
        await self._renew_if_due(origin, url, "poll")
        version = self.token_versions.get(origin, 0)
        headers = self.headers_for(url)
        self._polled_versions[origin] = version
        response = await self.http.request(
            "GET", url, headers=headers, timeout=timeout, reserved=True, sent=sent
        )
        if response.status == 401:
            self._poll_challenges[origin] = response
        else:
            self._poll_challenges.pop(origin, None)
            if "Authorization" in headers:
                self._mark_accepted(origin, "poll", version)
        return response

    def _mark_accepted(self, origin: str, kind: str, version: int) -> None:
        key = (origin, kind)
        if self._accepted.get(key, -1) < version:
            self._accepted[key] = version

    async def delete(self, url: str, timeout: float) -> None:
        """A best-effort DELETE (the application on close): one try, errors logged."""
        try:
            response = await self.http.request(
                "DELETE", url, headers=self.headers_for(url), timeout=timeout
            )
        except UcwaError as exc:
            log.info("DELETE %s failed: %s", url, exc)
            return
        if response.status >= 300:
            log.info("DELETE %s answered %d", url, response.status)

    async def reauthenticate(self, url: str, error: UcwaError | None = None) -> None:
        """A new token for ``url``'s host after the event channel got a 401 (``error``).

        Same policy as a request's 401: the budget and its spacing apply, and
        ``AuthenticationError`` says the budget is spent (or the grant was refused).
        An HTML 401 from a front proxy (no challenge) gets no grant: ``error`` is raised
        back (a transient failure for the channel, which backs off and polls again);
        UCWA's own 401 has an HTML body too, but with its ``WWW-Authenticate`` challenge
        (CreateAnApplication.md, step 4).
        """
        origin = origin_of(url)
        challenge = self._poll_challenges.pop(origin, None)
        if isinstance(error, ProxyResponseError) and (
            challenge is None or _is_proxy_page(challenge)
        ):
            raise error
        current = self.token_versions.get(origin, 0)
        seen = self._polled_versions.get(origin, current)
        await self.authenticate(origin, url, challenge, seen, kind="poll")

    async def _renew_if_due(self, origin: str, url: str, kind: str) -> None:
        """Grant ``origin``'s password token again if it is near its announced expiry.

        Only when a grant may go now: none under way (this request goes with the current
        token, still valid), the budget's spacing passed, no failed grant to wait out. A
        failed renewal is logged and the current token goes on; one refused for good
        (``AuthenticationError``) is not tried again for this token: the server's 401
        will tell when it is over.
        """
        due = self._renew_at.get(origin)
        if due is None or self._clock() < due:
            return
        lock = self._auth_locks.get(origin)
        if (lock is not None and lock.locked()) or self._grant_lock.locked():
            return
        if self._budget.delay() != 0.0 or self._budget.retry_in() > 0:
            return
        try:
            await self.authenticate(
                origin, url, None, self.token_versions.get(origin, 0), kind=kind, renewal=True
            )
        except SessionClosedError:
            raise
        except AuthenticationError as exc:
            self._renew_at.pop(origin, None)
            log.warning("could not renew the token of %s before it expires: %s", origin, exc)
        except UcwaError as exc:  # the failed grant is logged (aggregated) by authenticate
            log.debug("could not renew the token of %s yet: %s", origin, exc)

    async def authenticate(
        self,
        origin: str,
        url: str,
        challenge: HttpResponse | None,
        seen_version: int,
        *,
        kind: str = "request",
        renewal: bool = False,
    ) -> bool:
        """A new token for ``origin``, unless another task already replaced version
        ``seen_version`` (then False: no grant was made). ``kind``: what was refused
        ("request" or "poll"), to tell an expiry (the token had worked for that kind)
        from a futile re-authentication. ``renewal``: nothing was refused, the token is
        near its announced expiry (never futile)."""
        lock = self._auth_locks.setdefault(origin, asyncio.Lock())
        async with lock:
            if self.token_versions.get(origin, 0) != seen_version:
                return False  # another task refreshed the token meanwhile
            # Credentials would go to this host: refuse plain http before anything is sent.
            self._check_url(url, credentials=True)
            had_token = origin in self.tokens
            if had_token and isinstance(self._auth, TokenAuth) and not self._auth.can_refresh:
                raise AuthenticationError(
                    status=401, message="the token was refused and TokenAuth cannot refresh it"
                )
            futile = not renewal and self._accepted.get((origin, kind), -1) < seen_version
            async with self._grant_lock:
                if had_token:
                    await self._spend_budget(url)
                self._budget.record(reauthentication=had_token, futile=futile)
                started = self._clock()
                lifetime: float | None = None
                try:
                    if isinstance(self._auth, TokenAuth):
                        # No lifetime known: the provider is asked again after a 401 only.
                        token = await self._provided_token()
                    else:
                        # A renewal's token is still valid: a throttled endpoint is
                        # not waited out by the request that found the token due.
                        token, lifetime = await self._password_grant(
                            origin, url, challenge, patient=not renewal
                        )
                except AuthenticationError:
                    raise  # refused: the budget's business, not a failure to wait out
                except UcwaError as exc:
                    self._grant_failed(origin, exc)
                    raise
                self._grant_succeeded(origin)
            self.tokens[origin] = token
            self.token_versions[origin] = seen_version + 1
            if lifetime is None:
                self._renew_at.pop(origin, None)
            else:
                self._renew_at[origin] = started + max(
                    lifetime - _REFRESH_MARGIN, lifetime / 2, _MIN_TOKEN_AGE
                )
            if had_token:
                self._on_reauthenticated()
            if renewal:
                log.info("renewed the token of %s before its expiry", origin)
            else:
                log.info("authenticated with %s", origin)
            return True

    def _grant_failed(self, origin: str, exc: UcwaError) -> None:
        """Count a grant that failed (5xx, unreachable, a failing TokenAuth provider); a
        run of them warns at its 1st, 2nd, 4th, 8th... failure, the others are DEBUG."""
        # A throttled endpoint's Retry-After holds the next grant too (a renewal does
        # not wait it out in line: it must not come back before it either).
        failures = self._budget.failed(exc.retry_after if isinstance(exc, ResponseError) else None)
        log.log(
            failure_log_level(failures),
            "could not get a token for %s (failed grants in a row: %d; next try in %.1f s "
            "at the earliest): %s",
            origin,
            failures,
            self._budget.retry_in(),
            exc,
        )

    def _grant_succeeded(self, origin: str) -> None:
        if self._budget.failures:
            log.info(
                "the token endpoint of %s works again (after failed grants: %d)",
                origin,
                self._budget.failures,
            )
            self._budget.succeeded()

    async def _spend_budget(self, url: str) -> None:
        """Wait out the spacing before a re-authentication; raise when the budget is spent.

        After failed grants, the gap before the next grow to minutes: a gap longer than
        the ordinary spacing's cap is not waited here; ``RetryLaterError`` says when the
        next grant may go, and no password is sent. The event channel retries at its
        backoff's pace meanwhile."""
        delay = self._budget.delay()
        if delay is not None:
            wait = max(delay, self._budget.retry_in())
            if wait > self._budget.cap:  # only after failed grants: delay <= cap
                raise RetryLaterError(
                    status=503,
                    message=(
                        "no new token: the token endpoint failed (grants in a row: "
                        f"{self._budget.failures}); next try in {wait:.1f} s"
                    ),
                    url=url,
                    retry_after=wait,
                )
            if wait > 0:
                log.info("re-authentication in %.2f s", wait)
                await asyncio.sleep(wait)
                delay = self._budget.delay()  # 0 now: grants are serialised by _grant_lock
        if delay is None:
            raise AuthenticationError(
                status=401,
                message=(
                    f"re-authentication budget spent ({self._budget.max_grants} fresh tokens "
                    f"refused within {self._budget.window:g} s); not trying again"
                ),
                url=url,
            )

    async def _provided_token(self) -> str:
        """``TokenAuth``'s token, within the request timeout: the provider is the caller's
        code, and one that never answers must not hold a request, or the event channel's
        re-authentication, forever."""
        assert isinstance(self._auth, TokenAuth)
        try:
            async with asyncio.timeout(self._request_timeout):
                return await self._auth.get_token()
        except TimeoutError as exc:
            if isinstance(exc, UcwaError):
                raise
        raise RequestTimeoutError(
            f"the TokenAuth provider gave no token within {self._request_timeout:g} s"
        )

    async def _password_grant(
        self, origin: str, url: str, challenge: HttpResponse | None, *, patient: bool = True
    ) -> tuple[str, float | None]:
        """The token (an ``Authorization`` value) and its lifetime in seconds, if known.
        ``patient``: a throttled endpoint (429/503) is retried after its Retry-After."""
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
        grants = params.get("grant_type") if params is not None else None
        if grants and "password" not in grants:
            # "The types of authorization code grants supported" (AuthenticationInUCWA.md):
            # the password goes only to an endpoint that offers the password grant. A
            # challenge naming no grant type at all still gets it.
            raise AuthenticationError(
                status=challenge.status if challenge else 401,
                message=(
                    f"the server does not offer the password grant (grant_type={','.join(grants)})"
                ),
                url=url,
            )
        self._check_url(token_url, credentials=True)
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
                    # As every request sample of AuthenticationInUCWA.md spells it.
                    "Content-Type": "application/x-www-form-urlencoded;charset=UTF-8",
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
            retries = _MAX_THROTTLE_RETRIES if patient else 0
            if not isinstance(error, RetryLaterError) or throttled >= retries:
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
        if not isinstance(token_type, str):
            raise AuthenticationError(status=response.status, message="token_type is not text")
        token = checked_token(f"{token_type} {token}", source="the token endpoint")
        return token, _lifetime(grant.get("expires_in"))


def _lifetime(value: object) -> float | None:
    """A grant's ``expires_in`` in seconds (a number, or its text), or None when it is
    missing or not a positive finite number: then the token lives until a 401."""
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        seconds = float(value)
    except OverflowError:
        return None
    return seconds if math.isfinite(seconds) and seconds > 0 else None


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


def _endpoint(method: str, url: str) -> str:
    """What refuses a token: a method on a URL, whatever its query (an operationId...)."""
    return f"{method} {url.partition('?')[0].partition('#')[0]}"


def _scheme(url: str) -> str:
    return url.partition(":")[0].lower()


def _short(url: str) -> str:
    return url if len(url) <= 120 else url[:117] + "..."


def is_loopback(url: str) -> bool:
    """True for a URL on this machine: ``localhost``, 127.0.0.0/8, ``::1``."""
    # Asked for every request over plain http: cached by the URL up to its path, as
    # URLs with an operationId query are all different.
    start = url.find("//")
    end = url.find("/", start + 2) if start >= 0 else -1
    return _is_loopback_prefix(url if end < 0 else url[:end])


@functools.lru_cache(maxsize=256)
def _is_loopback_prefix(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname
    if not host:
        return False
    host = host.rstrip(".").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
