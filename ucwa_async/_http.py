"""The thin aiohttp shell: one request in, one fully-read response out.

Everything aiohttp raises is translated here into ``TransportError`` /
``RequestTimeoutError``, so no aiohttp type reaches the rest of the library or
its users. Redirects are never followed automatically: a 3xx to another host
must not carry our Authorization header there.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections.abc import Mapping
from typing import Any

import aiohttp
import attrs

from ucwa_async._core.errors import (
    BodyTooLargeError,
    RequestTimeoutError,
    TransportError,
    UcwaError,
)
from ucwa_async._deadlines import Deadlines

__all__ = ["HttpClient", "HttpResponse", "sent_signal_trace"]


class _SentSignal:
    """A request's ``trace_request_ctx``: resolves ``future`` once its headers are sent."""

    __slots__ = ("future",)

    def __init__(self, future: asyncio.Future[None]) -> None:
        self.future = future


async def _on_headers_sent(
    _session: aiohttp.ClientSession, context: Any, _params: aiohttp.TraceRequestHeadersSentParams
) -> None:
    signal = context.trace_request_ctx
    if isinstance(signal, _SentSignal) and not signal.future.done():
        signal.future.set_result(None)


def _make_sent_trace() -> aiohttp.TraceConfig:
    trace = aiohttp.TraceConfig()
    trace.on_request_headers_sent.append(_on_headers_sent)
    trace.freeze()
    return trace


_SENT_TRACE = _make_sent_trace()


def sent_signal_trace() -> aiohttp.TraceConfig:
    """The ``TraceConfig`` that tells the event channel its fresh P-GET is on the wire.

    A session's own P-GET ``ClientSession`` has it; a borrowed one created with it in its
    ``trace_configs`` gets the same fast reconnects (without it, a fresh P-GET counts as
    registered only after ``Timeouts.reconnect_settle``)."""
    return _SENT_TRACE


@attrs.frozen
class HttpResponse:
    """A response read to the end."""

    method: str
    url: str
    status: int
    content_type: str | None
    body: bytes
    location: str | None = None
    retry_after: str | None = None
    www_authenticate: tuple[str, ...] = ()


class _InFlight:
    """A request under way: its task, and whether its deadline cancelled it."""

    __slots__ = ("expired", "task")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.expired = False


class HttpClient:
    """Sends requests through one ``aiohttp.ClientSession`` (owned or borrowed)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        max_body: int,
        reserved_session: aiohttp.ClientSession | None = None,
    ) -> None:
        self._session = session
        self._in_flight: dict[int, _InFlight] = {}
        self._tokens = itertools.count()
        self._deadlines: Deadlines[int] = Deadlines(self._deadline_passed, self._deadline_live)
        self._deadline_loop: asyncio.AbstractEventLoop | None = None
        # The P-GET's own ClientSession (sharing the connector and cookie jar): only it
        # carries the sent-signal trace, which would cost every other request ~20 us.
        self._reserved_session = reserved_session or session
        self._max_body = max_body
        self._ordinary = _ordinary_slots(session)
        self.signals_sent = any(t is _SENT_TRACE for t in self._reserved_session.trace_configs)
        """Whether ``request(sent=...)`` resolves ``sent`` (its session has the trace)."""

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        data: bytes | None = None,
        timeout: float,
        reserved: bool = False,
        sent: asyncio.Future[None] | None = None,
    ) -> HttpResponse:
        """Send one request and read its body, all within ``timeout`` seconds.

        ``sent`` is resolved once the request's headers are written, if
        :attr:`signals_sent` (else it is left alone).

        ``reserved`` requests (the event channel's P-GET) bypass the bound on
        ordinary requests, so a burst of POSTs can never queue the P-GET behind
        them in the connection pool: a P-GET the server does not see in time
        makes it answer CallbackChannelError to every POST. Time spent queued for
        the pool counts against ``timeout``: a caller's deadline is the deadline.

        Errors are ``TransportError``/``RequestTimeoutError`` raised outside the
        ``except`` block, so neither ``__cause__`` nor ``__context__`` holds an
        aiohttp object (whose ``request_info`` would carry our Authorization header).
        """
        session = self._reserved_session if reserved else self._session
        if session.closed:
            # aiohttp would raise a bare RuntimeError: keep the contract (a UcwaError).
            closed = TransportError(f"{method} {url}: the HTTP client session is closed")
            closed.request_sent = False
            raise closed
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("HttpClient.request must run in a task")
        # The deadline, as asyncio.timeout() keeps it but in one heap for every request
        # (asyncio.timeout: a timer handle, a heap entry and two getpid calls per request).
        loop = task.get_loop()
        if loop is not self._deadline_loop:
            # First use, or used from another loop (the old one gone): the deadlines and
            # requests of the old loop can never fire or end there.
            self._deadlines.close()
            self._in_flight.clear()
            self._deadline_loop = loop
        token = next(self._tokens)
        flight = self._in_flight[token] = _InFlight(task)
        cancelling = task.cancelling()
        self._deadlines.add(token, loop.time() + timeout)
        error: TransportError
        try:
            signal = _SentSignal(sent) if sent is not None else None
            if reserved or self._ordinary is None:
                return await self._request(session, method, url, headers, data, timeout, signal)
            async with self._ordinary:
                return await self._request(session, method, url, headers, data, timeout, signal)
        except asyncio.CancelledError:
            if not flight.expired:
                raise  # cancelled by someone else
            flight.expired = False  # its cancel is taken back here
            if task.uncancel() > cancelling:
                raise  # cancelled by someone else too
            error = RequestTimeoutError(f"{method} {url} timed out after {timeout:g} s")
        except TimeoutError as exc:  # aiohttp's connect timeout
            if isinstance(exc, UcwaError):
                raise
            error = RequestTimeoutError(f"{method} {url} timed out after {timeout:g} s")
        except aiohttp.ClientError as exc:
            error = TransportError(f"{method} {url} failed: {_describe(exc)}")
            if isinstance(exc, aiohttp.ClientConnectorError):
                error.request_sent = False  # no connection: nothing was sent
        except OSError as exc:
            error = TransportError(f"{method} {url} failed: {type(exc).__name__}: {exc}")
        except UnicodeError as exc:
            # getaddrinfo's idna codec refuses the host name (a label empty or over 63
            # characters): a name that cannot resolve, which aiohttp does not wrap.
            error = TransportError(f"{method} {url} failed: cannot resolve the host: {exc}")
            error.request_sent = False
        finally:
            self._in_flight.pop(token, None)  # (gone if the loop changed meanwhile)
            if flight.expired:
                # Expired as it ended otherwise: take the cancel back, as asyncio.timeout
                # does (on 3.11 the task may still see it at its next await).
                task.uncancel()
            if not self._in_flight:
                self._deadlines.close()
        raise error

    def _deadline_passed(self, token: int, _when: float) -> None:
        flight = self._in_flight.get(token)
        if flight is not None and not flight.expired:
            flight.expired = True
            flight.task.cancel()

    def _deadline_live(self, token: int, _when: float) -> bool:
        return token in self._in_flight

    async def _request(
        self,
        session: aiohttp.ClientSession,
        method: str,
        url: str,
        headers: Mapping[str, str],
        data: bytes | None,
        timeout: float,
        signal: _SentSignal | None = None,
    ) -> HttpResponse:
        client_timeout = _client_timeout(min(timeout, 30.0))
        async with session.request(
            method,
            url,
            headers=dict(headers),
            data=data,
            allow_redirects=False,
            # The session reads every status itself (a 401 challenge, CallbackChannelError):
            # a borrowed ClientSession(raise_for_status=True) must not raise on them.
            raise_for_status=False,
            timeout=client_timeout,
            trace_request_ctx=signal,
        ) as response:
            body = await self._read_capped(response)
            return HttpResponse(
                method=method,
                url=url,
                status=response.status,
                content_type=response.headers.get("Content-Type"),
                body=body,
                location=response.headers.get("Location"),
                retry_after=response.headers.get("Retry-After"),
                www_authenticate=tuple(response.headers.getall("WWW-Authenticate", ())),
            )

    async def _read_capped(self, response: aiohttp.ClientResponse) -> bytes:
        declared = response.content_length
        if declared is not None and declared > self._max_body:
            raise BodyTooLargeError(
                f"response body of {declared} bytes exceeds the {self._max_body}-byte cap",
                content_type=response.headers.get("Content-Type"),
            )
        if declared is not None and "Content-Encoding" not in response.headers:
            # Within the cap already: one read, no chunk loop (aiohttp stops at the
            # declared length). A compressed body is counted as it is inflated, below.
            return await response.read()
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(65536):
            size += len(chunk)
            if size > self._max_body:
                raise BodyTooLargeError(
                    f"response body exceeds the {self._max_body}-byte cap",
                    content_type=response.headers.get("Content-Type"),
                )
            chunks.append(chunk)
        return b"".join(chunks)


@functools.lru_cache(maxsize=64)
def _client_timeout(sock_connect: float) -> aiohttp.ClientTimeout:
    """aiohttp's timeout object for a connect bound (one per value: it is immutable)."""
    return aiohttp.ClientTimeout(total=None, sock_connect=sock_connect)


def _describe(exc: aiohttp.ClientError) -> str:
    """The error's class and a plain-text reason: never its request_info (our headers)."""
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"{type(exc).__name__}: {exc.status} {exc.message}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"{type(exc).__name__}: cannot connect to {exc.host}:{exc.port}: {exc.strerror}"
    return f"{type(exc).__name__}: {exc}"


# Connections kept free for the event channel: the live P-GET and one being replaced.
_RESERVED_CONNECTIONS = 2


def _ordinary_slots(session: aiohttp.ClientSession) -> asyncio.Semaphore | None:
    """A bound for ordinary requests just under the connector's own limit (None: unbounded)."""
    connector = session.connector
    if connector is None:
        return None
    limits = [n for n in (connector.limit, connector.limit_per_host) if n]
    if not limits:
        return None
    return asyncio.Semaphore(max(1, min(limits) - _RESERVED_CONNECTIONS))
