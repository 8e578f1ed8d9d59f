"""What an operation's answer says, for invitations and sent messages alike."""

from __future__ import annotations

from collections.abc import Container
from typing import Any

from ucwa_async._core import wire as _wire
from ucwa_async._core.errors import UcwaError
from ucwa_async._core.models import parse_resource
from ucwa_async._http import HttpResponse

__all__ = ["answered_self", "failure_text"]


def answered_self(response: HttpResponse, operation_id: str, rels: Container[str]) -> str | None:
    """The ``self`` href of the resource (one of ``rels``) a POST answered in its body.

    continuePhoneAudio_ref.md and sendMessage_ref.md list the operation's resource as the
    response body: without a Location, its href is how the outcome event (which need not
    repeat the operationId, SendAnIM.md step 12) is matched. A body that cannot be read,
    is another resource, or names another operationId gives None.
    """
    if not response.body or _wire.wire_of(response.content_type) is None:
        return None
    try:
        resource = parse_resource(_wire.decode(response.body, response.content_type))
    except UcwaError:
        return None
    if resource.rel not in rels:
        return None
    answered = resource.properties.get("operationId")
    if answered is not None and answered != operation_id:
        return None
    return resource.href


def failure_text(what: str, reason: Any) -> str:
    """``what`` (say "invitation failed") with the server's code/subcode and message."""
    if reason is None:
        return f"{what} (the server gave no reason)"
    parts = [p for p in (getattr(reason, "code", None), getattr(reason, "subcode", None)) if p]
    text = "/".join(parts) or "failure"
    message = getattr(reason, "message", None)
    return f"{what}: {text}" + (f": {message}" if message else "")
