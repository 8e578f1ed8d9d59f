"""ucwa_async: an asyncio client for Microsoft's Unified Communications Web API (UCWA 2.0).

Pick up past conversations (``conversationLog``) and continue them by instant
message or phone audio, many at once, and know for certain how each ended::

    async with ucwa_async.Session(discovery_url,
                                  auth=ucwa_async.PasswordAuth(user, password)) as session:
        logs = await session.conversation_logs(limit=20)
        im = await session.continue_messaging(logs[0], message="Following up")
        result = await im   # MessagingInvitation, or raises InvitationFailedError
"""

import inspect as _inspect
import logging as _logging
import typing as _typing

from ucwa_async._auth import Auth, PasswordAuth, TokenAuth, TokenProvider
from ucwa_async._conversation import Conversation, MessageStream
from ucwa_async._core.backoff import Backoff
from ucwa_async._core.chat import Message, Participant
from ucwa_async._core.conversation import ConversationEndReason
from ucwa_async._core.errors import (
    AlreadyExistsError,
    ApplicationNotFoundError,
    AuthenticationError,
    BadRequestError,
    BodyTooLargeError,
    CallbackChannelError,
    ChannelFailedError,
    ConflictError,
    ConversationEndedError,
    ConversationError,
    DecodeError,
    ForbiddenError,
    InactiveApplicationExpiredError,
    InsecureTransportError,
    InvalidPhoneNumberError,
    InvitationError,
    InvitationFailedError,
    InvitationLostError,
    InvitationTimeoutError,
    InvitationWithdrawnError,
    MessageError,
    MessageFailedError,
    MessageTimeoutError,
    NotFoundError,
    ParameterValidationError,
    PGetReplacedError,
    ProxyResponseError,
    RequestTimeoutError,
    ResponseError,
    RetryLaterError,
    ServiceFailureError,
    ServiceUnavailableError,
    SessionClosedError,
    TooManyGroupsError,
    TooManyRequestsError,
    TransportError,
    UcwaError,
    UnexpectedRedirectError,
    UnsafeHrefError,
    UnsupportedModalityError,
)
from ucwa_async._core.models import (
    ConversationLog,
    ConversationLogRecipient,
    Event,
    InvitationResource,
    Link,
    MessagingInvitation,
    PhoneAudioInvitation,
    Reason,
    Resource,
    UnknownEvent,
    UnknownResource,
)
from ucwa_async._core.models import (
    EventBatch as EventBatch,  # importable, not in __all__: only the channel sees batches
)
from ucwa_async._events import (
    ApplicationRecreated,
    ChannelClosed,
    ChannelConnected,
    ChannelFailed,
    ChannelReconnected,
    ChannelReconnecting,
    ChannelSignal,
    ChannelStatus,
    SessionState,
)
from ucwa_async._incoming import IncomingInvitation, InvitationStream
from ucwa_async._invitation import Invitation
from ucwa_async._options import Limits, Retries, Timeouts
from ucwa_async._outgoing import OutgoingMessage
from ucwa_async._session import Session, SessionStats
from ucwa_async._stream import EventStream

__version__ = "0.1.0.dev0"

__all__ = [
    "AlreadyExistsError",
    "ApplicationNotFoundError",
    "ApplicationRecreated",
    "Auth",
    "AuthenticationError",
    "Backoff",
    "BadRequestError",
    "BodyTooLargeError",
    "CallbackChannelError",
    "ChannelClosed",
    "ChannelConnected",
    "ChannelFailed",
    "ChannelFailedError",
    "ChannelReconnected",
    "ChannelReconnecting",
    "ChannelSignal",
    "ChannelStatus",
    "ConflictError",
    "Conversation",
    "ConversationEndReason",
    "ConversationEndedError",
    "ConversationError",
    "ConversationLog",
    "ConversationLogRecipient",
    "DecodeError",
    "Event",
    "EventStream",
    "ForbiddenError",
    "InactiveApplicationExpiredError",
    "IncomingInvitation",
    "InsecureTransportError",
    "InvalidPhoneNumberError",
    "Invitation",
    "InvitationError",
    "InvitationFailedError",
    "InvitationLostError",
    "InvitationResource",
    "InvitationStream",
    "InvitationTimeoutError",
    "InvitationWithdrawnError",
    "Limits",
    "Link",
    "Message",
    "MessageError",
    "MessageFailedError",
    "MessageStream",
    "MessageTimeoutError",
    "MessagingInvitation",
    "NotFoundError",
    "OutgoingMessage",
    "PGetReplacedError",
    "ParameterValidationError",
    "Participant",
    "PasswordAuth",
    "PhoneAudioInvitation",
    "ProxyResponseError",
    "Reason",
    "RequestTimeoutError",
    "Resource",
    "ResponseError",
    "Retries",
    "RetryLaterError",
    "ServiceFailureError",
    "ServiceUnavailableError",
    "Session",
    "SessionClosedError",
    "SessionState",
    "SessionStats",
    "Timeouts",
    "TokenAuth",
    "TokenProvider",
    "TooManyGroupsError",
    "TooManyRequestsError",
    "TransportError",
    "UcwaError",
    "UnexpectedRedirectError",
    "UnknownEvent",
    "UnknownResource",
    "UnsafeHrefError",
    "UnsupportedModalityError",
    "__version__",
]


def _present_as_public(names: list[str]) -> None:
    """Users see (and pickle, and read in tracebacks) the public classes as ucwa_async.X,
    not as the private module that defines them: ucwa_async.AuthenticationError, not
    ucwa_async._core.errors.AuthenticationError.

    A class's string annotations are resolved in the namespace of its ``__module__``
    (typing.get_type_hints, as cattrs does): they are evaluated first, while that is
    still the defining module, and kept evaluated."""
    classes = [obj for name in names if isinstance(obj := globals()[name], type)]
    hints: dict[type, dict[str, object]] = {}
    for cls in classes:
        try:
            hints[cls] = _typing.get_type_hints(cls, include_extras=True)
        except Exception:  # unresolvable already (a TYPE_CHECKING name): a test reports it
            continue
    for cls in classes:
        own = _inspect.get_annotations(cls)
        if own and cls in hints:
            cls.__annotations__ = {key: hints[cls][key] for key in own}
        cls.__module__ = __name__


_present_as_public(__all__)

# A library does not print its warnings to the stderr of a program that configured no
# logging (Python's "last resort" handler): the application decides where they go.
_logging.getLogger(__name__).addHandler(_logging.NullHandler())
