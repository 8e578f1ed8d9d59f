"""The simulator's URL layout and href styles.

Layout (``{pool}`` is empty, or ``/pool1``, ``/pool2``... after redirect hops)::

    {pool}/autodiscover/autodiscoverservice.svc/root             discovery
    {pool}/autodiscover/autodiscoverservice.svc/root/oauth/user  user (401 without token)
    /WebTicket/oauthtoken                                        password grant (per host)
    {pool}/ucwa/oauth/v1/applications                            POST: create
    {app} = {pool}/ucwa/oauth/v1/applications/{id}               GET / DELETE
    {app}/events?ack=N                                           event channel
    {app}/me, {app}/me/reportMyActivity
    {app}/communication/makeMeAvailable or {app}/me/makeMeAvailable   (linked from me)
    {app}/people, {app}/onlineMeetings
    {app}/communication
    {app}/communication/conversationLogs?limit=N
    {app}/communication/conversationLogs/{log}[/continueMessaging|/continuePhoneAudio|...]
    {app}/communication/invitations/{n}[/cancel]                    continue invitations
    {app}/communication/messagingInvitations[/{n}[/accept|/decline|/cancel]]   (POST: start)
    {app}/communication/phoneAudioInvitations[/{n}[/accept|/decline|/cancel]]  (POST: start)
    {app}/communication/conversations[/{n}]      conversation layout: _conv_model
"""

from __future__ import annotations

from ucwa_async.testing._config import HrefStyle

__all__ = [
    "APPLICATIONS_PATH",
    "DISCOVERY_PATH",
    "TOKEN_PATH",
    "USER_PATH",
    "app_path",
    "pool_prefix",
    "styled",
]

DISCOVERY_PATH = "/autodiscover/autodiscoverservice.svc/root"
USER_PATH = DISCOVERY_PATH + "/oauth/user"
TOKEN_PATH = "/WebTicket/oauthtoken"
APPLICATIONS_PATH = "/ucwa/oauth/v1/applications"


def pool_prefix(hop: int) -> str:
    return f"/pool{hop}" if hop else ""


def app_path(pool: str, app_id: str) -> str:
    return f"{pool}{APPLICATIONS_PATH}/{app_id}"


def styled(path: str, style: HrefStyle, origin: str) -> str:
    """Write a server-relative ``path`` in ``style``.

    ``v1`` is the seeds' literal form: everything before ``/v1/`` is elided and the
    rest starts with ``//v1/`` (a client resolves it under the application's base path).
    """
    if style == "relative":
        return path
    if style == "absolute":
        return origin + path
    cut = path.find("/v1/")
    return "/" + path[cut:] if cut >= 0 else path
