"""Request bodies: decode by Content-Type, then validate as the seeds show them.

Rules: ``operationId`` a non-empty string of at most 50 characters; a message
(``_links.message.href``) a ``data:`` URI with a base64 payload; a phone number
a ``tel:`` URI. Anything else is 400 ParameterValidationFailure.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from ucwa_async.testing._config import Reason
from ucwa_async.testing._render import JSON_TYPES, XML_TYPES
from ucwa_async.testing._xml import XmlInputError, parse_input

__all__ = [
    "TEL_URI",
    "BodyError",
    "ContinueBody",
    "decode_body",
    "message_link",
    "validate_continue",
]

MAX_OPERATION_ID = 50
_DATA_URI = re.compile(r"^data:([\w.+-]+/[\w.+-]+)((?:;[\w.+-]+=[\w.+-]+)*);base64,(.*)$", re.S)
TEL_URI = re.compile(r"^tel:\+?[0-9][0-9().\- ]{2,30}(;[A-Za-z0-9=\-+.]+)*$")


class BodyError(Exception):
    """A request body refused: the HTTP status and the UCWA reason to answer with."""

    def __init__(self, status: int, reason: Reason) -> None:
        super().__init__(reason.message)
        self.status = status
        self.reason = reason


def _invalid(message: str) -> BodyError:
    return BodyError(400, Reason("ParameterValidationFailure", None, message))


def decode_body(content_type: str | None, body: bytes) -> dict[str, Any]:
    """The request body in the JSON shape; 415 for an unknown type, 400 if unreadable."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if not body.strip():
        return {}
    if media in JSON_TYPES:
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BodyError(400, Reason("DeserializationFailure", None, str(exc))) from exc
        if not isinstance(data, dict):
            raise BodyError(400, Reason("DeserializationFailure", None, "expected an object"))
        return data
    if media in XML_TYPES:
        try:
            return parse_input(body)
        except XmlInputError as exc:
            raise BodyError(400, Reason("DeserializationFailure", None, str(exc))) from exc
    raise BodyError(
        415, Reason("UnsupportedMediaType", None, f"unsupported Content-Type {media!r}")
    )


class ContinueBody:
    __slots__ = ("message", "operation_id", "phone_number")

    def __init__(self, operation_id: str, message: str | None, phone_number: str | None) -> None:
        self.operation_id = operation_id
        self.message = message
        self.phone_number = phone_number


def _data_uri_text(href: Any) -> str:
    if not isinstance(href, str):
        raise _invalid("message href must be a string")
    match = _DATA_URI.match(href)
    if match is None:
        raise _invalid("message must be a data: URI with a base64 payload")
    try:
        raw = base64.b64decode(match.group(3), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _invalid("message payload is not valid base64") from exc
    return raw.decode("utf-8", errors="replace")


def message_link(data: dict[str, Any]) -> dict[str, Any] | None:
    """The ``_links.message`` object of a request body, or None; 400 if malformed."""
    links = data.get("_links")
    if links is None:
        return None
    if not isinstance(links, dict):
        raise _invalid("_links must be an object")
    link = links.get("message")
    if link is not None and not isinstance(link, dict):
        raise _invalid("_links.message must be an object with an href")
    return link


def validate_continue(data: dict[str, Any], *, phone: bool) -> ContinueBody:
    op = data.get("operationId")
    if not isinstance(op, str) or not op.strip():
        raise _invalid("operationId is required")
    if len(op) > MAX_OPERATION_ID:
        raise _invalid(f"operationId is longer than {MAX_OPERATION_ID} characters")
    link = message_link(data)
    message = _data_uri_text(link.get("href")) if link is not None else None
    number: str | None = None
    if phone:
        # Optional (continuePhoneAudio_ref.md): the server then rings the user's own number.
        number = data.get("phoneNumber")
        if number is not None and (not isinstance(number, str) or TEL_URI.match(number) is None):
            raise _invalid("phoneNumber must be a tel: URI, e.g. tel:+14255551234")
    return ContinueBody(op, message, number)
