"""Request bodies of startMessaging/startPhoneAudio and sendMessage.

startMessaging_ref / startPhoneAudio_ref: ``to`` (required; also accepted as a
query parameter), ``operationId`` (at most 50 characters), ``subject`` (at most
250), ``importance`` (Normal, Urgent, Emergency), ``threadId``, ``_links.message``
(a ``data:`` URI, base64 or percent-encoded) and, for phone audio, ``phoneNumber``
(a ``tel:`` URI). Property names are matched case-insensitively. sendMessage: a
``text/plain`` or ``text/html`` body (charset honoured, UTF-8 by default).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

from ucwa_async.testing._config import Reason
from ucwa_async.testing._validate import MAX_OPERATION_ID, TEL_URI, BodyError, message_link

__all__ = ["StartBody", "decode_data_uri", "read_message_body", "validate_start"]

MAX_SUBJECT = 250
MAX_MESSAGE_BYTES = 64 * 1024
_IMPORTANCE = frozenset({"Normal", "Urgent", "Emergency"})
_DATA_URI = re.compile(r"^data:([^,]*),(.*)$", re.S)
_SIP_URI = re.compile(r"^sip:[^@\s]+@[^@\s]+$", re.I)


def _invalid(message: str) -> BodyError:
    return BodyError(400, Reason("ParameterValidationFailure", None, message))


@dataclass(frozen=True, slots=True)
class StartBody:
    to: str
    operation_id: str | None
    subject: str
    importance: str
    message: str | None
    phone_number: str | None


def decode_data_uri(href: Any) -> str:
    """The text of a ``data:`` URI (base64 or percent-encoded; charset honoured)."""
    if not isinstance(href, str):
        raise _invalid("message href must be a string")
    match = _DATA_URI.match(href)
    if match is None:
        raise _invalid("message must be a data: URI")
    params = [p.strip() for p in match.group(1).split(";")]
    charset = "utf-8"
    for p in params[1:]:
        if p.lower().startswith("charset="):
            charset = p[8:] or charset
    payload = match.group(2)
    try:
        raw = (
            base64.b64decode(payload, validate=True)
            if "base64" in (p.lower() for p in params[1:])
            else unquote_to_bytes(payload.replace("+", " "))
        )
        return raw.decode(charset, errors="replace")
    except (binascii.Error, ValueError, LookupError) as exc:
        raise _invalid(f"message data: URI is unreadable: {exc}") from exc


def _optional_str(fields: dict[str, Any], name: str) -> str | None:
    value = fields.get(name.lower())
    if value is None:
        return None
    if not isinstance(value, str):
        raise _invalid(f"{name} must be a string")
    return value


def validate_start(data: dict[str, Any], query_to: str | None, *, phone: bool) -> StartBody:
    fields = {k.lower(): v for k, v in data.items()}
    to = _optional_str(fields, "to") or query_to
    if not to or _SIP_URI.match(to.strip()) is None:
        raise _invalid("to must be a sip: URI, e.g. sip:lenea@contoso.com")
    op = _optional_str(fields, "operationId")
    if op is not None and (not op.strip() or len(op) > MAX_OPERATION_ID):
        raise _invalid(f"operationId must be 1 to {MAX_OPERATION_ID} characters")
    subject = _optional_str(fields, "subject") or ""
    if len(subject) > MAX_SUBJECT:
        raise _invalid(f"subject is longer than {MAX_SUBJECT} characters")
    importance = _optional_str(fields, "importance") or "Normal"
    if importance not in _IMPORTANCE:
        raise _invalid("importance must be Normal, Urgent or Emergency")
    link = message_link(fields)
    message = decode_data_uri(link.get("href")) if link is not None else None
    number = _optional_str(fields, "phoneNumber")
    # Optional (startPhoneAudio_ref.md): the server then rings the user's own number.
    if phone and number is not None and TEL_URI.match(number) is None:
        raise _invalid("phoneNumber must be a tel: URI, e.g. tel:+14255551234")
    return StartBody(to.strip(), op, subject, importance, message, number if phone else None)


def read_message_body(content_type: str | None, body: bytes) -> tuple[str | None, str | None]:
    """(text, html) of a sendMessage body; 415 for another type, 400 if empty/too big."""
    media, _, rest = (content_type or "").partition(";")
    media = media.strip().lower()
    if media not in ("text/plain", "text/html"):
        raise BodyError(
            415,
            Reason("UnsupportedMediaType", None, "sendMessage takes text/plain or text/html"),
        )
    if not body.strip():
        raise _invalid("the message is empty")
    if len(body) > MAX_MESSAGE_BYTES:
        raise BodyError(413, Reason("EntityTooLarge", None, "the message is too long"))
    charset = "utf-8"
    for param in rest.split(";"):
        key, _, value = param.strip().partition("=")
        if key.lower() == "charset" and value:
            charset = value.strip('"')
    try:
        text = body.decode(charset)
    except (LookupError, UnicodeDecodeError) as exc:
        raise _invalid(f"the body is not {charset}: {exc}") from exc
    return (None, text) if media == "text/html" else (text, None)
