"""Response classification: status + content type + body -> success or a typed error.

Sans-IO: the HTTP shell hands over what it read; nothing here touches a socket.

Three kinds of error body reach a UCWA client:

- a UCWA error (``{"code": ..., "subcode": ...}`` or ``<reason>``): mapped through
  :func:`ucwa_async._core.errors.error_class_for`, code and subcode as open strings;
- nothing at all (a real UCWA ``401`` has no body): the class follows the status;
- anything else, typically an HTML page from a reverse proxy ("Access is denied"), plain
  text, or JSON/XML that is not an error body: :class:`ProxyResponseError`, so callers can
  tell "the UCWA server refused" from "something in front of it did".

The OAuth token endpoint speaks OAuth, not UCWA (``{"error": "invalid_grant"}``):
:func:`classify_token_error`. :func:`parse_www_authenticate` reads the ``MsRtcOAuth``
challenge of a ``401``.
"""

from __future__ import annotations

import email.utils
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ucwa_async._core import wire as _wire
from ucwa_async._core.errors import (
    AuthenticationError,
    DecodeError,
    ProxyResponseError,
    ResponseError,
    ServiceFailureError,
    ServiceUnavailableError,
    UnexpectedRedirectError,
    error_class_for,
)

__all__ = [
    "classify",
    "classify_token_error",
    "parse_retry_after",
    "parse_www_authenticate",
]

_SNIPPET = 160
_TAGS = re.compile(r"<[^>]*>")
_SPACES = re.compile(r"\s+")
# A Retry-After of a year is junk, not advice; callers cap it much lower anyway.
_MAX_RETRY_AFTER = 365 * 24 * 3600.0


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` value: delta-seconds or an HTTP-date.

    A date in the past gives ``0.0``; junk (negative, fractional, unparsable) gives None.
    ``now`` (aware or naive-UTC) is injectable for tests; default: the current time.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isascii() and text.isdigit():
        return min(float(text), _MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # HTTP-dates are GMT
    current = now if now is not None else datetime.now(UTC)
    if current.tzinfo is None:
        current = current.replace(tzinfo=UTC)
    seconds = (when - current).total_seconds()
    if not math.isfinite(seconds):  # pragma: no cover - datetimes are bounded
        return None
    return min(max(seconds, 0.0), _MAX_RETRY_AFTER)


def _text(value: Any) -> str | None:
    """An open-string field of an error body (numbers are accepted and stringified)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str | int | float):
        text = str(value).strip()
        return text or None
    return None


def _short(text: str) -> str:
    return text if len(text) <= _SNIPPET else text[: _SNIPPET - 3] + "..."


def _snippet(body: bytes) -> str:
    text = body[: _SNIPPET * 8].decode("utf-8", errors="replace")
    text = _SPACES.sub(" ", _TAGS.sub(" ", text)).strip()
    return text[:_SNIPPET] + ("..." if len(text) > _SNIPPET else "")


def _proxy_error(
    status: int,
    content_type: str | None,
    body: bytes,
    why: str,
    *,
    method: str | None,
    url: str | None,
    retry_after: float | None,
) -> ProxyResponseError:
    snippet = _snippet(body)
    message = f"{why} ({content_type or 'no content type'})"
    if snippet:
        message += f": {snippet}"
    return ProxyResponseError(
        status=status, message=message, method=method, url=url, retry_after=retry_after
    )


def classify(
    status: int,
    content_type: str | None,
    body: bytes,
    *,
    method: str | None = None,
    url: str | None = None,
    retry_after: str | None = None,
    now: datetime | None = None,
    location: str | None = None,
) -> ResponseError | None:
    """None for a 1xx/2xx answer, else the most specific :class:`ResponseError`.

    A 3xx is an :class:`UnexpectedRedirectError` (``location``: the raw ``Location``
    header): redirects are never followed, and UCWA redirects with ``redirect`` links,
    so a 302 (typically to a login page) is a refusal, never a success.
    ``retry_after`` is the raw ``Retry-After`` header; it is parsed (see
    :func:`parse_retry_after`) onto every error's ``retry_after``. Never raises.
    """
    if status < 300:
        return None
    delay = parse_retry_after(retry_after, now=now)
    if status < 400:
        where = f" to {_short(location)}" if location else ""
        return UnexpectedRedirectError(
            status=status,
            message=f"unexpected redirect{where} (redirects are not followed)",
            method=method,
            url=url,
            retry_after=delay,
            location=location,
        )
    if not body or body.isspace():
        cls = error_class_for(status, None, None)
        return cls(status=status, method=method, url=url, retry_after=delay)

    if _wire.wire_of(content_type) is None:
        return _proxy_error(
            status,
            content_type,
            body,
            "not a UCWA error body",
            method=method,
            url=url,
            retry_after=delay,
        )
    try:
        decoded = _wire.decode(body, content_type)
    except DecodeError:
        return _proxy_error(
            status,
            content_type,
            body,
            "undecodable error body",
            method=method,
            url=url,
            retry_after=delay,
        )
    code = _text(decoded.get("code"))
    if code is None:
        return _proxy_error(
            status,
            content_type,
            body,
            "error body without a UCWA code",
            method=method,
            url=url,
            retry_after=delay,
        )
    subcode = _text(decoded.get("subcode"))
    debug_info = decoded.get("debugInfo")
    cls = error_class_for(status, code, subcode)
    return cls(
        status=status,
        code=code,
        subcode=subcode,
        message=_text(decoded.get("message")),
        debug_info=debug_info if isinstance(debug_info, Mapping) else None,
        method=method,
        url=url,
        retry_after=delay,
    )


# OAuth errors that are the token endpoint's own failure, whatever the status:
# server_error (AuthenticationInUCWA.md) and RFC 6749's temporarily_unavailable.
_TOKEN_SERVER_FAILURES: dict[str, type[ResponseError]] = {
    "server_error": ServiceFailureError,
    "temporarily_unavailable": ServiceUnavailableError,
}


_TOKEN_STATUS_NOT_A_REFUSAL = frozenset({408, 429})


def classify_token_error(
    status: int,
    content_type: str | None,
    body: bytes,
    *,
    method: str | None = None,
    url: str | None = None,
    retry_after: str | None = None,
    now: datetime | None = None,
    location: str | None = None,
) -> ResponseError | None:
    """Like :func:`classify`, for the OAuth token endpoint.

    A 4xx with an OAuth error body (``{"error": "invalid_grant", "error_description": ...}``)
    is an :class:`AuthenticationError` with ``code`` = the OAuth error, except
    ``server_error`` (a :class:`ServiceFailureError`) and ``temporarily_unavailable`` (a
    :class:`ServiceUnavailableError`): the endpoint failed, nothing was refused. A 408, a
    429 or a 5xx with such a body keeps its status's class. Other bodies go through
    :func:`classify`.
    """
    if status < 400:  # 1xx/2xx: None; 3xx: a redirect error, whatever the body
        return classify(
            status,
            content_type,
            body,
            method=method,
            url=url,
            retry_after=retry_after,
            now=now,
            location=location,
        )
    if body and _wire.wire_of(content_type) == "json":
        try:
            decoded = _wire.decode(body, content_type)
        except DecodeError:
            decoded = {}
        oauth_error = _text(decoded.get("error"))
        if oauth_error is not None:
            cls: type[ResponseError]
            if status >= 500 or status in _TOKEN_STATUS_NOT_A_REFUSAL:
                # Throttled (429) or timed out (408): nothing was refused, whatever the body.
                cls = error_class_for(status, None, None)
            else:
                # AuthenticationInUCWA.md: every failed token request is "a 400 response
                # and an error body"; server_error says the server failed, not that the
                # credentials were refused (a refusal ends the event channel for good).
                cls = _TOKEN_SERVER_FAILURES.get(oauth_error.lower(), AuthenticationError)
            return cls(
                status=status,
                code=oauth_error,
                message=_text(decoded.get("error_description")),
                method=method,
                url=url,
                retry_after=parse_retry_after(retry_after, now=now),
            )
    return classify(
        status, content_type, body, method=method, url=url, retry_after=retry_after, now=now
    )


# -- WWW-Authenticate ----------------------------------------------------------------

# Bare items that start a new challenge rather than continue an unquoted value list.
_KNOWN_SCHEMES = frozenset({"basic", "bearer", "digest", "msrtcoauth", "negotiate", "ntlm"})


def _split_items(header: str) -> list[str]:
    """Split on commas outside quoted strings (backslash escapes honoured)."""
    items: list[str] = []
    current: list[str] = []
    quoted = False
    escaped = False
    for ch in header:
        if escaped:
            current.append(ch)
            escaped = False
        elif quoted and ch == "\\":
            current.append(ch)
            escaped = True
        elif ch == '"':
            current.append(ch)
            quoted = not quoted
        elif ch == "," and not quoted:
            items.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    items.append("".join(current).strip())
    return [item for item in items if item]


def _unquote(value: str) -> tuple[str, bool]:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1]), True
    return value, False


def _challenges(header: str) -> list[tuple[str, list[tuple[str, str, bool]]]]:
    """``[(scheme, [(name, value, was_quoted), ...]), ...]`` of one header value.

    RFC 7235 syntax, plus the reference's unquoted comma lists
    (``grant_type=urn:a,urn:b,password``): a bare item after an unquoted value continues
    it unless it names a known scheme.
    """
    out: list[tuple[str, list[tuple[str, str, bool]]]] = []
    for item in _split_items(header):
        head, _, tail = item.partition(" ")
        if "=" not in head and not tail.lstrip().startswith("="):
            if tail.strip() or head.lower() in _KNOWN_SCHEMES or not out or not out[-1][1]:
                out.append((head, []))  # a new challenge (maybe with a first param)
                item = tail.strip()
                if not item:
                    continue
            elif not out[-1][1][-1][2]:
                name, value, _ = out[-1][1][-1]
                out[-1][1][-1] = (name, f"{value},{item}", False)
                continue
            else:
                continue  # stray token after a quoted value: ignore it
        if not out:
            continue  # parameters before any scheme: not a challenge
        name, _, raw = item.partition("=")
        if "=" not in item:
            continue  # token68 (e.g. "Bearer abc=="-style credentials hint): not ours
        value, quoted = _unquote(raw)
        out[-1][1].append((name.strip().lower(), value, quoted))
    return out


def parse_www_authenticate(header_values: list[str]) -> dict[str, Any] | None:
    """The ``MsRtcOAuth`` challenge's parameters, or None if no header carries one.

    ``{"href": "https://.../oauthtoken", "grant_type": ["urn:microsoft.rtc:windows", ...],
    ...other params as strings}``. Values may be quoted or not (the reference writes the
    href unquoted); other challenges (``Bearer``, ``Negotiate``), first in the same header
    or in other headers, are skipped.
    """
    for header in header_values:
        for scheme, params in _challenges(header):
            if scheme.lower() != "msrtcoauth":
                continue
            found: dict[str, Any] = {}
            for name, value, _ in params:
                if name == "grant_type":
                    found[name] = [g.strip() for g in value.split(",") if g.strip()]
                else:
                    found[name] = value
            return found
    return None
