"""UCWA time stamps: the two forms of the same instant, one per wire.

PayloadFormat.md: JSON writes dates in the ASP.NET AJAX form ``/Date(1474932024587)/``
(milliseconds since the epoch; the samples escape it as ``\\/Date(...)\\/``), XML in ISO 8601.
"""

from __future__ import annotations

import datetime
import re

__all__ = ["parse_time_stamp"]

_MS_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")
_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_time_stamp(value: object) -> datetime.datetime | None:
    """``/Date(1383784870271)/`` (JSON samples) or ISO 8601 (XML samples) -> aware UTC
    datetime; anything else -> None (a time stamp is informative, never fatal)."""
    if not isinstance(value, str):
        return None
    text = value.replace("\\/", "/").strip()
    match = _MS_DATE.match(text)
    try:
        if match is not None:
            seconds = int(match.group(1)) / 1000
            return datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
        parsed = datetime.datetime.fromisoformat(_FRACTION.sub(r"\1", text).replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed.astimezone(datetime.UTC)
