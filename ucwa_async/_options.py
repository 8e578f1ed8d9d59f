"""Grouped tuning options of a ``Session``: ``Timeouts``, ``Retries`` and ``Limits``.

Frozen values (as httpx's ``Timeout`` and ``Limits``): build one, share it between
sessions, derive a variant with ``attrs.evolve``. Every field is validated when the
object is built, so a bad value fails where it was written, not inside a request.
"""

from __future__ import annotations

import math
from typing import Any

import attrs

from ucwa_async._core.backoff import Backoff
from ucwa_async._core.wire import DEFAULT_MAX_BODY

__all__ = ["Limits", "Retries", "Timeouts"]


def _positive(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or not value > 0
    ):
        raise ValueError(f"{attribute.name} must be a positive number, got {value!r}")


def _positive_or_none(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None:
        _positive(instance, attribute, value)


def _count(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{attribute.name} must be a whole number, got {value!r}")
    if value < 0:
        raise ValueError(f"{attribute.name} must not be negative, got {value!r}")


def _at_least_one(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{attribute.name} must be a whole number, got {value!r}")
    if value < 1:
        raise ValueError(f"{attribute.name} must be at least 1, got {value!r}")


@attrs.frozen(kw_only=True)
class Timeouts:
    """How long the session waits, in seconds.

    - ``request``: one ordinary request, time queued for a pooled connection included.
    - ``connect``: all of ``open()`` (sign-in, application, event channel,
      makeMeAvailable), and how long a POST waits for the channel to come back.
    - ``close``: the DELETE of the application when the session closes; and, when the
      session closes (or ``open()`` gives up) while its application POST is on its way,
      first the wait for that POST's answer, so the application the server made is
      deleted too. A given-up ``open()`` can so take ``connect`` plus twice ``close``.
    - ``pget``: the event channel's ``timeout`` query, clamped by UCWA to 180..1800;
      the P-GET's read timeout is 30 s above it.
    - ``keepalive``: the ``reportMyActivity`` period; ``None`` turns it off. A session
      never made available (``available_for=()``) sends none (the server refuses it).
    - ``reconnect_settle``: a fresh P-GET the server still holds after this long counts
      as registered (UCWA gives no other sign). The first retry after a POST's
      CallbackChannelError does not wait for it: it goes as soon as the fresh P-GET is
      on the wire (a session's own ``ClientSession`` tells; a borrowed one does not, and
      waits this long); a retry refused again waits it.
    """

    request: float = attrs.field(default=30.0, validator=_positive)
    connect: float = attrs.field(default=30.0, validator=_positive)
    close: float = attrs.field(default=5.0, validator=_positive)
    pget: float = attrs.field(default=180.0, validator=_positive)
    keepalive: float | None = attrs.field(default=180.0, validator=_positive_or_none)
    reconnect_settle: float = attrs.field(default=0.1, validator=_positive)


@attrs.frozen(kw_only=True)
class Retries:
    """How often the session tries again, and how long it waits between tries.

    - ``callback_channel``: re-tries of a POST answered ``CallbackChannelError`` (each
      after re-establishing the event channel) before the error reaches you.
    - ``redirects``: autodiscovery redirect hops.
    - ``app_create``: re-tries of the application POST refused by a front proxy.
    - ``retry_after_cap``: the longest ``Retry-After`` honoured, in seconds.
    - ``backoff``: delays between re-tries (exponential, capped, full jitter).
    - ``reauthentications`` per ``reauthentication_window`` seconds: fresh tokens the
      server may refuse before the session gives up with ``AuthenticationError`` (a
      password is never sent in a loop; expiries of tokens that worked are not counted).
      An endpoint that refuses the very token granted for its own 401 (while the rest
      of the API takes it) gets ``reauthentications + 1`` such grants; then none for
      ``reauthentication_window`` seconds, doubling up to a day, until it takes a
      token: its calls raise ``AuthenticationError`` meanwhile.
    """

    callback_channel: int = attrs.field(default=3, validator=_count)
    redirects: int = attrs.field(default=4, validator=_count)
    app_create: int = attrs.field(default=4, validator=_count)
    retry_after_cap: float = attrs.field(default=60.0, validator=_positive)
    backoff: Backoff = attrs.field(factory=Backoff, validator=attrs.validators.instance_of(Backoff))
    reauthentications: int = attrs.field(default=3, validator=_count)
    reauthentication_window: float = attrs.field(default=60.0, validator=_positive)


@attrs.frozen(kw_only=True)
class Limits:
    """Sizes the session never exceeds.

    - ``event_queue_size``: items each ``events()`` subscriber may hold (the oldest is
      dropped beyond it).
    - ``max_body_size``: bytes of one response; a larger one is refused.
    - ``incoming_queue_size``: incoming invitations waiting for ``incoming()``; one more
      is declined (reason Local), counted in ``SessionStats.incoming_overflowed``.
    - ``message_buffer_size``: incoming messages each conversation keeps for its
      ``messages()`` streams; beyond it the oldest is dropped (counted, see MessageStream).
      Ended conversations keep at most 10 x this many in all, for a ``Conversation``
      asked for after the end (``Invitation.conversation()``): past it, those that ended
      first lose theirs (counted in ``messages_dropped``). A ``Conversation`` still held
      keeps its own messages.
    """

    event_queue_size: int = attrs.field(default=1000, validator=_at_least_one)
    max_body_size: int = attrs.field(default=DEFAULT_MAX_BODY, validator=_at_least_one)
    incoming_queue_size: int = attrs.field(default=100, validator=_at_least_one)
    message_buffer_size: int = attrs.field(default=1000, validator=_at_least_one)
