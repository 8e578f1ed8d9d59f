"""Grouped options: Timeouts, Retries, Limits, and the 0.1 shorthands that map onto them."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

import ucwa_async
from ucwa_async import Backoff, Limits, Retries, Timeouts

URL = "https://lyncdiscover.contoso.com"
AUTH = ucwa_async.TokenAuth("cwt=abc")


def test_defaults_are_the_documented_ones() -> None:
    timeouts, retries, limits = Timeouts(), Retries(), Limits()
    assert (timeouts.request, timeouts.connect, timeouts.close) == (30.0, 30.0, 5.0)
    assert (timeouts.pget, timeouts.keepalive, timeouts.reconnect_settle) == (180.0, 180.0, 0.1)
    assert (retries.callback_channel, retries.redirects, retries.app_create) == (3, 4, 4)
    assert retries.retry_after_cap == 60.0
    assert (retries.reauthentications, retries.reauthentication_window) == (3, 60.0)
    assert isinstance(retries.backoff, Backoff)
    assert (limits.event_queue_size, limits.max_body_size) == (1000, 8 * 1024 * 1024)


def test_groups_are_frozen_values() -> None:
    timeouts = Timeouts(request=2)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        timeouts.request = 3  # type: ignore[misc]
    assert timeouts == Timeouts(request=2)
    assert attrs.evolve(timeouts, close=1).close == 1


@pytest.mark.parametrize(
    ("kind", "field", "value"),
    [
        (Timeouts, "request", 0),
        (Timeouts, "connect", -1),
        (Timeouts, "pget", float("nan")),
        (Timeouts, "close", True),
        (Timeouts, "keepalive", float("inf")),
        (Retries, "callback_channel", -1),
        (Retries, "redirects", 1.5),
        (Retries, "retry_after_cap", 0),
        (Retries, "reauthentications", -1),
        (Retries, "reauthentication_window", 0),
        (Limits, "event_queue_size", 0),
        (Limits, "max_body_size", -5),
    ],
)
def test_bad_values_fail_where_written(kind: type[Any], field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=field):
        kind(**{field: value})


def test_retries_backoff_must_be_a_backoff() -> None:
    with pytest.raises(TypeError):
        Retries(backoff="fast")  # type: ignore[arg-type]


def test_keepalive_none_turns_it_off() -> None:
    assert Timeouts(keepalive=None).keepalive is None


def test_session_takes_the_groups() -> None:
    timeouts = Timeouts(request=2, connect=3, keepalive=None)
    retries = Retries(callback_channel=1)
    limits = Limits(event_queue_size=5)
    session = ucwa_async.Session(URL, auth=AUTH, timeouts=timeouts, retries=retries, limits=limits)
    assert session.timeouts is timeouts
    assert session.retries is retries
    assert session.limits is limits


def test_shorthands_win_over_their_group_field() -> None:
    session = ucwa_async.Session(
        URL,
        auth=AUTH,
        timeouts=Timeouts(request=2, close=1),
        request_timeout=7,
        keepalive_interval=None,
        max_callback_retries=0,
        event_queue_size=9,
    )
    assert session.timeouts.request == 7
    assert session.timeouts.close == 1  # untouched fields keep the group's value
    assert session.timeouts.keepalive is None
    assert session.retries.callback_channel == 0
    assert session.limits.event_queue_size == 9


def test_shorthand_error_names_the_shorthand() -> None:
    with pytest.raises(ValueError, match="request_timeout"):
        ucwa_async.Session(URL, auth=AUTH, request_timeout=-1)


@pytest.mark.parametrize("name", ["timeouts", "retries", "limits"])
def test_a_group_of_the_wrong_type_is_refused(name: str) -> None:
    with pytest.raises(TypeError, match=name):
        ucwa_async.Session(URL, auth=AUTH, **{name: {"request": 1}})
