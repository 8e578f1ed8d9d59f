"""href resolution, normalisation and query building (sans-IO).

UCWA hands out hrefs in several shapes: absolute (``https://fe1.contoso.com:443/ucwa/v1/...``),
origin-relative (``/ucwa/oauth/v1/...``), document-relative (``events?ack=2``) and the
reference's shorthand ``//v1/applications/...`` with the ``/ucwa/oauth`` prefix elided.
Read literally (RFC 3986, and yarl's ``URL.join``) that last form is a network-path
reference to a host named ``v1``; we resolve it as a path under the application's base
path instead (protocol doc section 2).

Every function here works on ``str`` in and ``str`` out, with yarl as the URL builder.
"""

from __future__ import annotations

import contextlib
import functools
import re
import urllib.parse
from collections.abc import Callable

from yarl import URL

from ucwa_async._core.errors import UnsafeHrefError

__all__ = [
    "app_base_path_of",
    "domain_name",
    "make_normalizer",
    "normalize",
    "origin_of",
    "resolve_href",
    "resolve_href_normal",
    "same_origin",
    "with_query",
]

_ALLOWED_SCHEMES = frozenset({"http", "https"})
# The events URL's cursor: opaque, only ever followed as the server gave it.
_ACK = "ack"
_V1 = "v1"


def _short(href: str) -> str:
    # Keep error messages readable when the href is a long data: URI.
    return href if len(href) <= 80 else href[:77] + "..."


# CR/LF and other C0 controls (and DEL): one regex scan is ~10x cheaper than a
# per-character loop, and resolve_href runs for every event of every batch.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _parse(href: str) -> URL:
    if _CONTROL.search(href):
        # CR/LF in an href would end up in a request line or a header.
        raise UnsafeHrefError(f"href contains control characters: {_short(href)!r}", href=href)
    try:
        return URL(href)
    except (ValueError, TypeError) as exc:
        raise UnsafeHrefError(f"malformed href {_short(href)!r}: {exc}", href=href) from exc


def _check_absolute(url: URL, href: str) -> URL:
    if url.scheme.lower() not in _ALLOWED_SCHEMES:
        raise UnsafeHrefError(
            f"refusing href with scheme {url.scheme!r}: {_short(href)!r}", href=href
        )
    if not url.raw_host:
        raise UnsafeHrefError(f"href has no host: {_short(href)!r}", href=href)
    if url.raw_user is not None or url.raw_password is not None:
        # userinfo is a phishing/credential-leak vector and UCWA never uses it.
        raise UnsafeHrefError(f"refusing href with userinfo: {_short(href)!r}", href=href)
    return url


@functools.lru_cache(maxsize=64)
def _base(base_url: str) -> URL:
    # A session resolves everything against one or two base URLs: parse them once.
    base = _parse(base_url)
    if not base.is_absolute():
        raise UnsafeHrefError(f"base URL is not absolute: {_short(base_url)!r}", href=base_url)
    return _check_absolute(base, base_url)


def _is_v1_shorthand(url: URL) -> bool:
    # "//v1/..." parses as host "v1": it is the elided-prefix shorthand, not a host.
    return (
        (url.raw_host or "").lower() == _V1
        and url.explicit_port is None
        and url.raw_user is None
        and url.raw_password is None
    )


def _clean_base_path(app_base_path: str | None) -> str:
    if not app_base_path:
        return ""
    path = app_base_path.rstrip("/")
    if path and not path.startswith("/"):
        path = "/" + path
    return path


def _under_app(origin: URL, app_base_path: str | None, path: str, query: str, fragment: str) -> URL:
    """``origin + app_base_path + "/v1" + path``, query and fragment kept raw.

    ``path`` is what followed ``//v1``: empty or starting with ``/``.
    """
    return URL.build(
        scheme=origin.scheme,
        authority=origin.raw_authority,
        path=_clean_base_path(app_base_path) + "/" + _V1 + path,
        query_string=query,
        fragment=fragment,
        encoded=True,
    )


# The common case on the event channel, taken without yarl (~20 us a call): an
# origin-relative path or an absolute http(s) URL already in normal form - lowercase
# scheme and host, no userinfo, no default port, a path of unreserved characters without
# dot segments, no query, no fragment. Anything else takes the general path.
_PLAIN_PATH = r"/(?!/)[A-Za-z0-9\-_~/]*(?:\.[A-Za-z0-9\-_~]+[A-Za-z0-9\-_~/]*)*"
_LABEL = r"[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?"
_PLAIN_RELATIVE = re.compile(_PLAIN_PATH).fullmatch
_PLAIN_ABSOLUTE = re.compile(
    rf"(https?)://({_LABEL}(?:\.{_LABEL})*)(?::([1-9][0-9]{{0,4}}))?({_PLAIN_PATH})"
).fullmatch
_DEFAULT_PORTS = {"http": "80", "https": "443"}
# name=value pairs of unreserved characters.
_TOKEN = r"[A-Za-z0-9\-_~.]+"
_PLAIN_QUERY = re.compile(rf"{_TOKEN}={_TOKEN}(?:&{_TOKEN}={_TOKEN})*").fullmatch


def _plain_absolute(url: str) -> bool:
    """Whether ``url`` is an absolute URL that :func:`normalize` leaves as it is."""
    match = _PLAIN_ABSOLUTE(url)
    if match is None:
        return False
    scheme, _host, port, path = match.groups()
    if port is not None and (port == _DEFAULT_PORTS[scheme] or int(port) > 65535):
        return False
    return "/." not in path and "//" not in path


@functools.lru_cache(maxsize=64)
def _plain_origin(base_url: str) -> str | None:
    """``base_url``'s origin as text, if it is in normal form (else None)."""
    origin = str(_base(base_url).origin())
    return origin if _plain_absolute(origin + "/") else None


def resolve_href(href: str, *, base_url: str, app_base_path: str | None = None) -> str:
    """Resolve a UCWA href to an absolute http(s) URL.

    - absolute ``http(s)://`` hrefs are used as given (another host stays another host;
      the HTTP layer decides whether it gets our token), except that a same-origin URL
      whose path is ``//v1/...`` (the seeds' request lines) gets the rule below;
    - ``//v1/...`` is a path under ``app_base_path`` on ``base_url``'s origin;
    - any other ``//host/...`` is a network-path reference (``base_url``'s scheme);
    - everything else is relative to ``base_url``.

    Raises :class:`UnsafeHrefError` (a ``ValueError``) for other schemes (``javascript:``,
    ``file:``, ``data:``...), userinfo, control characters, or a malformed href.
    """
    url, _normal = resolve_href_normal(href, base_url=base_url, app_base_path=app_base_path)
    return url


def resolve_href_normal(
    href: str, *, base_url: str, app_base_path: str | None = None
) -> tuple[str, bool]:
    """:func:`resolve_href`, and whether the URL is known to be in normal form already
    (:func:`normalize` would return it unchanged): the common case, a correlation key
    without a second look."""
    if _PLAIN_RELATIVE(href) is not None and "/." not in href and "//" not in href:
        origin = _plain_origin(base_url)
        if origin is not None:
            return origin + href, True
    elif _plain_absolute(href):  # its path has no "//": the //v1 rule does not apply
        _base(base_url)  # the base is checked whatever the href
        return href, True
    return _resolve_href(href, base_url=base_url, app_base_path=app_base_path), False


def _resolve_href(href: str, *, base_url: str, app_base_path: str | None = None) -> str:
    """:func:`resolve_href` without the fast path."""
    href = href.strip()
    if not href:
        raise UnsafeHrefError("empty href", href=href)
    base = _base(base_url)
    origin = base.origin()
    url = _parse(href)

    if href.startswith("//"):
        if _is_v1_shorthand(url):
            # yarl reports "//v1" and "//v1/" alike as path "/"; take the text as written.
            rest = _parse(href[2 + len(_V1) :])
            return str(
                _under_app(
                    origin, app_base_path, rest.raw_path, rest.raw_query_string, rest.raw_fragment
                )
            )
        return str(_check_absolute(_parse(f"{base.scheme}:{href}"), href))

    if url.scheme:
        url = _check_absolute(url, href)
        segments = url.raw_path.split("/")
        if (
            # As text: yarl's URL equality tells an explicit default port from none.
            str(url.origin()) == str(origin)
            and len(segments) > 2
            and segments[1] == ""
            and segments[2].lower() == _V1
        ):
            path = url.raw_path[2 + len(_V1) :]
            return str(
                _under_app(origin, app_base_path, path, url.raw_query_string, url.raw_fragment)
            )
        return str(url)
    if url.raw_host:  # pragma: no cover - yarl gives a host only with "//" or a scheme
        raise UnsafeHrefError(f"unexpected href form: {_short(href)!r}", href=href)
    return str(_check_absolute(base.join(url), href))


def app_base_path_of(self_href: str) -> str:
    """The path before ``/v1/`` in an application's ``self`` href (``"/ucwa/oauth"``).

    ``""`` when the href has no ``v1`` segment or is in the ``//v1/...`` form.
    """
    try:
        url = URL(self_href.strip())
    except (ValueError, TypeError):
        return ""
    if self_href.strip().startswith("//") and _is_v1_shorthand(url):
        return ""
    path = url.raw_path
    segments = path.split("/")
    for index, segment in enumerate(segments):
        if segment == _V1:
            return _clean_base_path("/".join(segments[:index]))
    return ""


def normalize(url: str) -> str:
    """A comparison key for an absolute URL.

    Scheme and host lowercased, default port dropped, fragment dropped, dot segments
    removed, percent-encoding normalised (unreserved characters decoded, hex uppercased);
    the query is kept (an invitation href never differs only by query, but a log href
    may carry one that matters). A relative reference is normalised the same way
    without an origin: inject :func:`make_normalizer` to compare it with absolute ones.
    """
    if _plain_absolute(url):
        return url
    parsed = URL(url.strip())
    if not parsed.is_absolute():
        return str(parsed.with_fragment(None))
    # Built explicitly so "https://h" and "https://h/" meet on one key.
    return str(
        URL.build(
            scheme=parsed.scheme,
            authority=parsed.raw_authority,
            path=parsed.raw_path or "/",
            query_string=parsed.raw_query_string,
            encoded=True,
        )
    )


def make_normalizer(*, base_url: str, app_base_path: str | None = None) -> Callable[[str], str]:
    """A correlation key function: :func:`resolve_href` then :func:`normalize`.

    Events name invitations by absolute or origin-relative hrefs while a ``201`` Location
    may be ``//v1/...``: resolving first makes all three forms meet on one key.
    """

    def key(href: str) -> str:
        return normalize(resolve_href(href, base_url=base_url, app_base_path=app_base_path))

    return key


@functools.lru_cache(maxsize=256)  # twice per request: a profile hot spot
def domain_name(host: str) -> str:
    """``host`` as domains are compared: its form on the wire (international labels in
    IDNA's ASCII form, as yarl sends them: ``bücher.de`` is ``xn--bcher-kva.de``), lower
    case, without a trailing dot."""
    host = host.strip()
    if not host.isascii():
        # (ValueError, UnicodeError: not a name IDNA can spell: compared as it is)
        with contextlib.suppress(ValueError):
            host = URL.build(scheme="http", host=host).raw_host or host
    return host.rstrip(".").lower()


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of an absolute URL (default port dropped)."""
    parsed = URL(url.strip())
    if not parsed.is_absolute():
        raise ValueError(f"not an absolute URL: {_short(url)!r}")
    return str(parsed.origin())


def same_origin(a: str, b: str) -> bool:
    """True when both are absolute URLs with equal scheme, host and port."""
    try:
        return origin_of(a) == origin_of(b)
    except ValueError:
        return False


def with_query(url: str, /, **params: str | int | float) -> str:
    """``url`` with ``params`` added or replaced; every other parameter kept as is.

    The server's query text is kept verbatim (Hypermedia.md: server-added query
    parameters are preserved "without changing their values"): only a parameter of the
    same name as one of ``params`` is taken out; ``params`` go at the end, encoded.
    ``ack`` is the server's cursor: it is never changed, and setting it is refused.
    """
    if _ACK in params:
        raise ValueError("refusing to set 'ack': events URLs are opaque cursors")
    for name, value in params.items():
        if isinstance(value, bool):
            # yarl refuses bools anyway; say which parameter was wrong.
            raise TypeError(f"query parameter {name!r} must be str, int or float, not bool")
    ours = None
    if all(type(v) is str or type(v) is int for v in params.values()):
        # Nothing to escape (timeout on the events URL, operationId on every sendMessage
        # URL): what yarl would build, without yarl.
        ours = "&".join(f"{name}={value}" for name, value in params.items())
        if _PLAIN_QUERY(ours) is None:
            ours = None
    if ours is None:
        ours = URL.build(query=params).raw_query_string
    head, hash_mark, fragment = url.partition("#")
    path, _, query = head.partition("?")
    if query:
        pieces = query.split("&")
        kept = [p for p in pieces if urllib.parse.unquote(p.partition("=")[0]) not in params]
        if len(kept) != len(pieces):
            query = "&".join(kept)
        if query and not query.endswith("&"):
            query += "&"
    return f"{path}?{query}{ours}{hash_mark}{fragment}"
