"""ucwa_async: an asyncio client for Microsoft's Unified Communications Web API (UCWA 2.0).

Pick up past conversations (``conversationLog``) and continue them by instant
message or phone audio, many at once, and know for certain how each ended::

    async with ucwa_async.Session(discovery_url,
                                  auth=ucwa_async.PasswordAuth(user, password)) as session:
        logs = await session.conversation_logs(limit=20)
        im = await session.continue_messaging(logs[0], message="Following up")
        result = await im   # MessagingInvitation, or raises InvitationFailedError
"""

from ucwa_async._auth import PasswordAuth, TokenAuth
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
    Event,
    EventBatch,
    Link,
    MessagingInvitation,
    PhoneAudioInvitation,
    Reason,
    Resource,
    UnknownEvent,
    UnknownResource,
)
from ucwa_async._events import (
    ApplicationRecreated,
    ChannelClosed,
    ChannelConnected,
    ChannelFailed,
    ChannelReconnected,
    ChannelReconnecting,
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
    "ChannelStatus",
    "ConflictError",
    "Conversation",
    "ConversationEndReason",
    "ConversationEndedError",
    "ConversationError",
    "ConversationLog",
    "DecodeError",
    "Event",
    "EventBatch",
    "EventStream",
    "ForbiddenError",
    "InactiveApplicationExpiredError",
    "IncomingInvitation",
    "InsecureTransportError",
    "Invitation",
    "InvitationError",
    "InvitationFailedError",
    "InvitationLostError",
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
