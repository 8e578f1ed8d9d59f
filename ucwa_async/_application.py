"""The UCWA application's life: sign-in, create / re-create / delete, makeMeAvailable,
keep-alive, and the href rules that depend on which application is current.

One job: know which application this session has and where its resources live.
``Session`` owns one ``Application``; the operations table and the channel host ask it
to resolve hrefs (the ``//v1/...`` form needs the application's base path) and to move
hrefs of a lost application onto the current one.
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import logging
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

import attrs

from ucwa_async._core import wire as _wire
from ucwa_async._core.backoff import Backoff
from ucwa_async._core.budget import failure_log_level
from ucwa_async._core.errors import (
    AlreadyExistsError,
    AuthenticationError,
    InsecureTransportError,
    ProxyResponseError,
    TransportError,
    UcwaError,
    UnexpectedRedirectError,
    UnsafeHrefError,
)
from ucwa_async._core.models import Resource, parse_resource
from ucwa_async._core.urls import (
    app_base_path_of,
    domain_name,
    normalize,
    origin_of,
    resolve_href,
    resolve_href_normal,
    same_origin,
)
from ucwa_async._http import HttpResponse
from ucwa_async._outcome import shielded
from ucwa_async._transport import Transport

__all__ = ["Application"]

log = logging.getLogger("ucwa_async.session")

# Bound of the href -> URL and URL -> correlation-key memos. An invitation's href is
# resolved for its 201 and again for each of its events; the memos make the repeats
# dict look-ups (resolve_href + normalize were ~17% of the client's CPU at 2 000
# invitations/s, see BENCHMARKS.md). Small: only recent hrefs repeat.
_HREF_MEMO_SIZE = 1024
# Lost applications whose hrefs (a ConversationLog the caller still holds) are still moved
# onto the current one. Bounded: a server losing applications must not grow it; the
# re-creation budget allows 60 per 10 minutes, so this spans the worst 10 minutes.
_OLD_APPLICATIONS_KEPT = 64

PostOperation = Callable[[str, Mapping[str, Any]], Awaitable[HttpResponse]]


class Application:
    """Which application the session has, how to reach it, and how to replace it."""

    def __init__(
        self,
        transport: Transport,
        *,
        discovery_url: str,
        wire_format: Literal["json", "xml"],
        user_agent: str,
        culture: str,
        max_redirects: int,
        app_create_retries: int,
        max_body: int,
        backoff: Backoff,
        delete_timeout: float,
        available_for: tuple[str, ...] = ("Messaging", "PhoneAudio"),
    ) -> None:
        self._transport = transport
        self._available_for = available_for
        self._discovery_url = discovery_url
        self._wire_format = wire_format
        self._user_agent = user_agent
        self._culture = culture
        self._max_redirects = max_redirects
        self._app_create_retries = app_create_retries
        self._max_body = max_body
        self._backoff = backoff
        self._delete_timeout = delete_timeout
        self.applications_url: str | None = None
        self.resource: Resource | None = None
        # ``me`` as read again once it links reportMyActivity (None: the embedded one).
        self._me: Resource | None = None
        # ``communication`` as read again for a link its embedded copy lacked.
        self._communication: Resource | None = None
        self.url: str | None = None
        self.base_path: str | None = None
        # Create POSTs given up while on their way (see create): the close waits for them.
        self._creating: list[asyncio.Task[HttpResponse]] = []
        self.generation = 0
        self.created = 0
        # URLs of applications lost and re-created: hrefs under them (conversation logs a
        # caller still holds) are moved onto the current application.
        self.old_urls: collections.deque[str] = collections.deque(maxlen=_OLD_APPLICATIONS_KEPT)
        self._origin: str | None = None
        # href -> absolute URL and URL -> key, for the base below (several lookups per
        # event: a profile hot spot). Emptied when full or when the base changes.
        self._resolved: dict[str, str] = {}
        self._keys: dict[str, str] = {}
        self._memo_base: tuple[str | None, str | None] = (None, None)

    # -- sign-in and creation ----------------------------------------------------------

    async def sign_in(self) -> None:
        """Autodiscovery, the user resource, redirects (bounded): find ``applications``."""
        transport = self._transport
        url = self._discovery_url
        # Discovery carries no token; a redirect resource served by the user resource does
        # (redirect_ref.md's GET sends one: it sits under the protected user resource).
        # A host that issued no token gets none either way (tokens are per host).
        authorize = False
        for _hop in range(self._max_redirects + 1):
            try:
                root = parse_resource(
                    await transport.get_json(url, authorize=authorize), rel="root"
                )
            except UnexpectedRedirectError as exc:
                # RootURL.md: an http first hop is answered with a redirect to https, and
                # only a 3xx to another domain is a failure. Discovery carries no token.
                target = _discovery_redirect(url, exc.location, self._discovery_url)
                if target is None:
                    target = self._in_sign_in_domain(url, exc.location)
                if target is None:
                    raise
                log.info("autodiscovery answered %d; following it to %s", exc.status, target)
                # A hop of the chain, as the discovery URL itself (in its domain, no token
                # sent): an http discovery sent to https makes the rest of the chain https.
                url = transport.trust(target)
                continue
            user_href = root.link("user")
            redirect = root.link("redirect")
            if user_href is None and redirect is not None:
                url = transport.trust(self._checked_link(redirect, url))
                continue
            if user_href is None:
                raise UcwaError("autodiscovery answered without a user link")
            user_url = transport.trust(self._checked_link(user_href, url))
            user = parse_resource(await transport.get_json(user_url), rel="user")
            applications = user.link("applications")
            if applications is not None:
                self.applications_url = resolve_href(applications, base_url=user_url)
                self._origin = transport.trust(origin_of(self.applications_url))
                return
            redirect = user.link("redirect")
            if redirect is None:
                raise UcwaError("the user resource has neither an applications nor a redirect link")
            url = transport.trust(self._checked_link(redirect, user_url))
            authorize = True
            log.info("autodiscovery redirected to %s", origin_of(url))
        raise UcwaError(f"too many autodiscovery redirects (more than {self._max_redirects})")

    def _checked_link(self, href: str, answered: str) -> str:
        """A sign-in link (``user``, ``redirect``) of the answer read from ``answered``.

        RootURL.md's security check: an answer not received over https may have been
        spoofed, so its links are followed only within the sign-in domain (that of the
        sign-in address, or the domain of the discovery URL or of the host that answered,
        as ``_discovery_domain`` reads them); else the password would go to whichever
        https host a plain-http answer names.
        """
        target = resolve_href(href, base_url=answered)
        transport = self._transport
        if transport.received_securely(answered) or _discovery_redirect(
            answered, target, self._discovery_url
        ):
            return target
        if _within(_host_of(target), transport.sign_in_domain):
            return target
        raise InsecureTransportError(
            f"autodiscovery answered over plain http with a link to {origin_of(target)}, "
            "outside the sign-in domain: refused (RootURL.md security check; use https)",
            url=target,
        )

    def _in_sign_in_domain(self, url: str, location: str | None) -> str | None:
        """Where a discovery 3xx at ``url`` leads, if within the sign-in address's domain
        (``user@contoso.com``: RootURL.md step 1 names the service ``LyncDiscover.<domain>``
        after it, whatever host the caller gave as the discovery URL)."""
        where = _redirect_target(url, location)
        if where is None:
            return None
        target, host = where
        return target if _within(host, self._transport.sign_in_domain) else None

    async def create(self) -> str:
        """POST a new application; returns its first events URL."""
        assert self.applications_url is not None
        # The names of applications_ref.md (its table and both samples); the PascalCase of
        # the CreateAnApplication.md walk-through is refused by a case-sensitive server.
        body = {
            "userAgent": self._user_agent,
            "endpointId": str(uuid.uuid4()),
            "culture": self._culture,
        }
        payload, content_type = _wire.encode_input(body, self._wire_format)
        attempt = 0
        while True:
            post = asyncio.create_task(
                self._transport.send(
                    "POST", self.applications_url, data=payload, content_type=content_type
                ),
                name="ucwa_async.create-application",
            )
            try:
                response = await shielded(post)
                break
            except asyncio.CancelledError:
                # Given up (open() cancelled, connect_timeout, the session closing): the
                # server may have made the application already. The POST goes on; the
                # close waits for its answer to DELETE that application (finish_creation),
                # else it stays on the server, unknown here, until it expires.
                self._creating.append(post)
                raise
            except (ProxyResponseError, AuthenticationError) as exc:
                # A front proxy's HTML "Access is denied" page, or UCWA's own 401 refusing
                # the token just granted (no code: not a refused grant): transient, bounded
                # retries.
                if (
                    exc.status not in (401, 403)
                    or (isinstance(exc, AuthenticationError) and exc.code is not None)
                    or attempt >= self._app_create_retries
                ):
                    raise
                delay = self._backoff.delay(attempt)
                attempt += 1
                log.info(
                    "proxy refused application creation (%d); retry in %.2f s", exc.status, delay
                )
                await asyncio.sleep(delay)
        application, url = self._created(response)
        self.resource = application
        self._me = None
        self._communication = None
        self.url = url
        self.base_path = app_base_path_of(self.url)
        self.created += 1
        events = application.link("events")
        if events is None:
            raise UcwaError("the application resource has no events link")
        return self.resolve(events)

    def _created(self, response: HttpResponse) -> tuple[Resource, str]:
        """The application a create POST's answer describes, and its URL."""
        assert self.applications_url is not None
        application = parse_resource(
            _wire.decode(response.body, response.content_type, max_size=self._max_body),
            rel="application",
        )
        if application.href is None and response.location:
            application = attrs.evolve(application, href=response.location)
        if application.href is None:
            raise UcwaError("the application resource has no self link")
        return application, resolve_href(application.href, base_url=self.applications_url)

    async def finish_creation(self, timeout: float) -> None:
        """The session closes: wait up to ``timeout`` seconds for the create POSTs given
        up on their way (0: none; they are cancelled then), and DELETE (best effort) the
        applications they made."""
        posts = self._creating
        if not posts:
            return
        try:
            if timeout > 0:
                await asyncio.wait(posts, timeout=timeout)
        finally:
            self._creating = []
            for post in posts:
                post.cancel()
            await asyncio.gather(*posts, return_exceptions=True)
        for post in posts:
            if post.cancelled() or post.exception() is not None:
                continue
            try:
                _, url = self._created(post.result())
            except UcwaError as exc:
                log.info("an application created as the session closed is unreadable: %s", exc)
                continue
            if url != self.url:  # (the session DELETEs its own)
                await self._transport.delete(url, self._delete_timeout)

    def lose(self) -> bool:
        """The server says the application is gone; False if this loss was already known.

        Its URL joins the lost ones (hrefs under it move onto the next application) and
        the generation moves on, so a POST that spans the loss knows it.
        """
        if self.url is None or self.url in self.old_urls:
            return False
        self.generation += 1
        self.old_urls.append(self.url)
        return True

    async def recreate(self) -> str:
        """Replace a lost application: DELETE it (best effort: a misrouted 404 must not
        leave it behind on the server), create a new one; returns its first events URL."""
        self.lose()
        old_url = self.url
        if old_url is not None:
            await self._transport.delete(old_url, self._delete_timeout)
        events_url = await self.create()
        if self.url is not None and self.url in self.old_urls:
            self.old_urls.remove(self.url)  # the server may reuse an id: that one is not dead
        return events_url

    @property
    def recreating(self) -> bool:
        """A re-creation is under way: the current URL is known to be dead."""
        return self.url is not None and self.url in self.old_urls

    async def make_me_available(self, post: PostOperation) -> None:
        """POST the ``makeMeAvailable`` link of ``me`` (never a URL we build).

        UCWA links it from the ``me`` resource (``_embedded.me._links.makeMeAvailable``);
        its href may point under ``/communication/`` (Microsoft's samples) or under
        ``/me/``. A server that links it from ``communication`` instead is still
        followed (harmless, keeps such servers working); none at all: skipped.
        """
        if not self._available_for:
            log.info("available_for is empty: not making the session available")
            return
        href = self.make_me_available_href()
        if href is None:
            log.info("no makeMeAvailable link on me; skipping (already available?)")
            return
        body = {
            "supportedModalities": list(self._available_for),
            "supportedMessageFormats": ["Plain", "Html"],
        }
        url = self.resolve(href)
        for attempt in range(2):  # bounded: a POST without an answer is sent once more
            try:
                await post(url, body)
            except AlreadyExistsError:
                log.debug("makeMeAvailable: already available")
            except TransportError as exc:
                if attempt:
                    raise
                # The server may have taken it (the answer was lost): a second one then
                # answers 409 AlreadyExists, "Multiple invocations of this operation is
                # not valid" (makeMeAvailable_ref.md), which says so.
                log.info("makeMeAvailable got no answer (%s); posting it again", exc)
                continue
            return

    def make_me_available_href(self) -> str | None:
        """The makeMeAvailable href: on ``me``, else on ``communication``, else None."""
        assert self.resource is not None
        me = self.resource.embedded_one("me")
        href = me.link("makeMeAvailable") if me is not None else None
        if href is not None:
            return href
        communication = self.resource.embedded_one("communication")
        href = communication.link("makeMeAvailable") if communication is not None else None
        if href is not None:
            log.debug("makeMeAvailable is not linked from me; using communication's link")
        return href

    async def keepalive(self, interval: float, alive: Callable[[], bool] = lambda: True) -> None:
        """POST ``reportMyActivity`` every ``interval`` seconds, for as long as it runs
        and ``alive()`` says the session still works."""
        if not self._available_for:
            # Never made available: the server refuses it (reportMyActivity_ref.md,
            # 409 MakeMeAvailableRequired), and only an available application expires
            # for want of it (ApplicationDashboard.md).
            log.info("available_for is empty: no reportMyActivity keep-alive")
            return
        failures = 0  # in a row
        while True:
            await asyncio.sleep(interval)
            if not alive():
                # The session failed for good (its event channel): a keep-alive would
                # only hit the same wall every period, a password grant each time the
                # re-authentication budget's window has slid.
                log.info("the session has failed: reportMyActivity keep-alive stopped")
                return
            try:
                href = await self._report_my_activity_href()
                if href is None:
                    log.debug("no reportMyActivity link; keep-alive idle")
                    continue
                await self._transport.send("POST", self.resolve(href))
            except UcwaError as exc:
                failures += 1
                level = failure_log_level(failures)
                if failures == 1:
                    log.log(level, "reportMyActivity failed: %s", exc)
                else:
                    log.log(level, "reportMyActivity failed %d times in a row: %s", failures, exc)
                continue
            if failures:
                log.info("reportMyActivity works again after %d failure(s)", failures)
                failures = 0

    async def _report_my_activity_href(self) -> str | None:
        """The ``reportMyActivity`` link of ``me``, reading ``me`` again while it has none.

        The ``me`` of a new application may not link it yet (CreateAnApplication.md's
        201); ``me`` read after makeMeAvailable does (ReceiveAnIM.md, MeDashboard.md).
        """
        if self._me is not None:
            return self._me.link("reportMyActivity")
        me = self.resource.embedded_one("me") if self.resource is not None else None
        href = me.link("reportMyActivity") if me is not None else None
        if href is not None or me is None or not me.href:
            return href
        url = self.url
        fresh = parse_resource(await self._transport.get_json(self.resolve(me.href)), rel="me")
        href = fresh.link("reportMyActivity")
        if href is not None and self.url == url:  # not re-created meanwhile
            self._me = fresh
        return href

    def communication(self) -> Resource:
        if self._communication is not None:
            return self._communication
        assert self.resource is not None
        communication = self.resource.embedded_one("communication")
        if communication is None:
            raise UcwaError("the application has no embedded communication resource")
        return communication

    async def communication_link(self, rel: str) -> str | None:
        """The ``rel`` link of ``communication``, reading it again if our copy lacks it.

        The copy embedded in the 201 may not link everything yet (CreateAnApplication.md's
        has no conversationLogs); communication is "updated ... after the application
        invokes makeMeAvailable" (communication_ref.md).
        """
        communication = self.communication()
        href = communication.link(rel)
        if href is not None or not communication.href:
            return href
        url = self.url
        fresh = parse_resource(
            await self._transport.get_json(self.resolve(communication.href)), rel="communication"
        )
        if self.url == url:  # not re-created meanwhile
            self._communication = fresh
        return fresh.link(rel)

    # -- hrefs -------------------------------------------------------------------------

    def _memo_base_url(self) -> str:
        """The base hrefs resolve against; the memos are emptied when it changes."""
        base_url = self.url or self._origin or self._discovery_url
        base = self._memo_base
        if base[0] is not base_url or base[1] is not self.base_path:
            # Another application or origin (identity: the base strings are replaced,
            # never mutated): what was resolved against the old one is forgotten.
            self._memo_base = (base_url, self.base_path)
            self._resolved.clear()
            self._keys.clear()
        return base_url

    def resolve(self, href: str) -> str:
        """An href of this application's resources as an absolute URL (memoised)."""
        base_url = self._memo_base_url()
        url = self._resolved.get(href)
        if url is None:  # errors are raised, never memoised
            url = resolve_href(href, base_url=base_url, app_base_path=self.base_path)
            _memo(self._resolved, href, url)
        return url

    def resolve_own(self, href: str) -> str:
        """``resolve`` for an href the server named (events, resources) that we follow:
        on this application's origin only. Elsewhere the token never goes, but a message's
        text or a decline reason would: refused with ``UnsafeHrefError``."""
        url = self.resolve(href)
        if self.url is None or not same_origin(url, self.url):
            raise UnsafeHrefError(f"not the application's origin: {origin_of(url)}", href=href)
        return url

    def safe_resolve(self, href: str | None) -> str | None:
        """``resolve``, with an unsafe or malformed href treated as none."""
        if not href:
            return None
        try:
            return self.resolve(href)
        except (UcwaError, ValueError):
            return None

    def key(self, href: str) -> str:
        """The correlation key of an href: its resolved, normalised URL (memoised)."""
        base_url = self._memo_base_url()
        key = self._keys.get(href)
        if key is None:  # errors are raised, never memoised
            url, normal = resolve_href_normal(href, base_url=base_url, app_base_path=self.base_path)
            key = url if normal else normalize(url)
            _memo(self._keys, href, key)
        return key

    def rebase(self, url: str) -> str:
        """A URL under a lost (re-created) application, moved onto the current one."""
        current = self.url
        if current is None:
            return url
        for old in self.old_urls:
            if url.startswith(old + "/") and old != current:
                return current + url[len(old) :]
        return url


def _discovery_redirect(url: str, location: str | None, *also: str) -> str | None:
    """Where an autodiscovery 3xx leads, if it stays in the discovery host's domain
    (that of ``url``, or of any of the URLs ``also`` names).

    RootURL.md: "HTTP 302 redirect to a domain different from the domain of the
    autodiscovery service" is a failed discovery; so is an unusable ``Location``.
    """
    where = _redirect_target(url, location)
    if where is None:
        return None
    target, there = where
    for base in (url, *also):
        domain = _discovery_domain(base)
        if domain and (
            there == domain or (not _is_address(domain) and there.endswith("." + domain))
        ):
            return target
    return None


def _redirect_target(url: str, location: str | None) -> tuple[str, str] | None:
    """A discovery 3xx's ``Location`` resolved against ``url``, and its host; None when
    it is missing or unusable (no host, or not a URL)."""
    if not location:
        return None
    try:
        target = resolve_href(location, base_url=url)
        host = _host_of(target)
    except ValueError:
        return None
    return (target, host) if host else None


# RootURL.md's table: the root URL is [http|https]://LyncDiscover[Internal].<domain>.
_DISCOVERY_LABELS = ("lyncdiscover", "lyncdiscoverinternal")


def _discovery_domain(url: str) -> str:
    """The domain of the autodiscovery service at ``url`` ('' if it has no host).

    A host named as RootURL.md names the service, ``LyncDiscover.<domain>`` or
    ``LyncDiscoverInternal.<domain>``, stands for ``<domain>`` (``lyncdiscover.contoso.com``
    for ``contoso.com``). Any other host stands for itself alone (and its subdomains):
    its parent may be a public suffix (``contoso.co.uk``'s is ``co.uk``, ``foo.github.io``'s
    ``github.io``), where anyone can hold a name. So does a single-label parent.
    """
    try:
        host = _host_of(url)
    except ValueError:
        return ""
    label, _, parent = host.partition(".")
    if label in _DISCOVERY_LABELS and "." in parent and not _is_address(host):
        return parent
    return host


def _within(host: str, domain: str | None) -> bool:
    """``host`` is ``domain`` or one of its subdomains (False without a domain)."""
    if not host or not domain:
        return False
    return host == domain or host.endswith("." + domain)


def _host_of(url: str) -> str:
    return domain_name(urllib.parse.urlsplit(url).hostname or "")


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _memo(memo: dict[str, str], key: str, value: str) -> None:
    """Remember ``key -> value``; a full memo starts afresh (O(1) amortised, and no
    dict's scan over the dead slots that deleting its oldest entries leaves)."""
    if len(memo) >= _HREF_MEMO_SIZE:
        memo.clear()
    memo[key] = value
