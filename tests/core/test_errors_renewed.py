"""ChannelFailedError.renewed(): a fresh error with the same message and cause."""

from __future__ import annotations

from ucwa_async._core.errors import ChannelFailedError


def test_renewed_is_a_new_error_saying_the_same() -> None:
    cause = ConnectionResetError("peer gone")
    stored = ChannelFailedError("event channel failed", cause=cause)
    renewed = stored.renewed()
    assert renewed is not stored
    assert type(renewed) is ChannelFailedError
    assert (str(renewed), renewed.cause) == ("event channel failed", cause)
    assert renewed.__traceback__ is None
