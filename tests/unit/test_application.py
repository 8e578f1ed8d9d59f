"""Application: what it sends to create an application and to make itself available,
checked against the samples of Microsoft's reference pages (applications_ref.md,
makeMeAvailable_ref.md), in both wires."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any, Literal

import pytest

from ucwa_async._application import Application
from ucwa_async._core import wire as _wire
from ucwa_async._core.backoff import Backoff
from ucwa_async._http import HttpResponse

APPLICATIONS = "https://fe1.contoso.com/ucwa/v1/applications"

# The 201 of applications_ref.md, trimmed to what the client reads.
APPLICATION_201 = b"""{
  "rel" : "application",
  "culture" : "en-us",
  "_links" : {
    "self" : {"href" : "/ucwa/v1/applications/192"},
    "batch" : {"href" : "/ucwa/v1/applications/192/batch"},
    "events" : {"href" : "/ucwa/v1/applications/192/events?ack=1"}
  },
  "_embedded" : {
    "me" : {
      "rel" : "me",
      "_links" : {
        "self" : {"href" : "/ucwa/v1/applications/192/me"},
        "makeMeAvailable" : {"href" : "/ucwa/v1/applications/192/communication/makeMeAvailable"},
        "reportMyActivity" : {"href" : "/ucwa/v1/applications/192/reportMyActivity"}
      }
    },
    "communication" : {
      "rel" : "communication",
      "_links" : {
        "self" : {"href" : "/ucwa/v1/applications/192/communication"},
        "conversationLogs" : {"href" : "/ucwa/v1/applications/192/communication/conversationLogs"}
      }
    }
  }
}"""


class RecordingTransport:
    """Answers the applications POST with the reference's 201; keeps what was sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, bytes | None, str | None]] = []

    async def send(
        self,
        method: str,
        url: str,
        *,
        data: bytes | None = None,
        content_type: str | None = None,
        authorize: bool = True,
    ) -> HttpResponse:
        self.sent.append((method, url, data, content_type))
        return HttpResponse(
            method=method,
            url=url,
            status=201,
            content_type="application/json",
            body=APPLICATION_201,
        )


def make_application(
    transport: RecordingTransport,
    wire_format: Literal["json", "xml"],
    available_for: tuple[str, ...] = ("Messaging", "PhoneAudio"),
) -> Application:
    app = Application(
        transport,  # type: ignore[arg-type]
        discovery_url="https://lyncdiscover.contoso.com/",
        wire_format=wire_format,
        user_agent="ContosoApp/1.0",
        culture="en-US",
        max_redirects=3,
        app_create_retries=0,
        max_body=1 << 20,
        backoff=Backoff(base=0.01, cap=0.02),
        delete_timeout=1.0,
        available_for=available_for,
    )
    app.applications_url = APPLICATIONS
    return app


def _decoded(data: bytes | None, content_type: str | None) -> Mapping[str, Any]:
    assert data is not None
    assert content_type is not None
    return _wire.decode(data, content_type)


@pytest.mark.parametrize("wire_format", ["json", "xml"])
async def test_create_sends_the_fields_named_as_the_reference_names_them(
    wire_format: Literal["json", "xml"],
) -> None:
    """applications_ref.md's request body table and both its samples: ``culture``,
    ``endpointId``, ``userAgent`` (camelCase, as every UCWA input property)."""
    transport = RecordingTransport()
    app = make_application(transport, wire_format)
    events = await app.create()
    assert events == "https://fe1.contoso.com/ucwa/v1/applications/192/events?ack=1"
    [(method, url, data, content_type)] = transport.sent
    assert (method, url) == ("POST", APPLICATIONS)
    body = _decoded(data, content_type)
    assert set(body) == {"culture", "endpointId", "userAgent"}
    assert body["culture"] == "en-US"
    assert body["userAgent"] == "ContosoApp/1.0"
    assert isinstance(body["endpointId"], str)
    assert 0 < len(body["endpointId"]) <= 100


# CreateAnApplication.md's 201: ``me`` links makeMeAvailable, not reportMyActivity yet.
CREATED_ME_WITHOUT_REPORT = b"""{
"culture":"en-US",
"userAgent":"UCWA Samples",
"_links":{
"self":{"href":"/ucwa/oauth/v1/applications/105"},
"batch":{"href":"/ucwa/oauth/v1/applications/105/batch"},
"events":{"href":"/ucwa/oauth/v1/applications/105/events?ack=1"}
},
"_embedded":{
"me":{
"name":"Lene Aaling",
"uri":"sip:lenea@contoso.com",
"_links":{
"self":{"href":"/ucwa/oauth/v1/applications/105/me"},
"makeMeAvailable":{"href":"/ucwa/oauth/v1/applications/105/me/makeMeAvailable"},
"phones":{"href":"/ucwa/oauth/v1/applications/105/me/phones"}
},
"rel":"me"
},
"communication":{
"_links":{
"self":{"href":"/ucwa/oauth/v1/applications/105/communication"},
"conversationLogs":{"href":"/ucwa/oauth/v1/applications/105/communication/conversationLogs"}
},
"rel":"communication"
}
},
"rel":"application"
}"""

# ReceiveAnIM.md: ``me`` read after makeMeAvailable links reportMyActivity (under /me).
ME_AFTER_MAKE_ME_AVAILABLE = {
    "name": "Tosh Meston",
    "uri": "sip:toshm@contoso.com",
    "_links": {
        "self": {"href": "/ucwa/oauth/v1/applications/105/me"},
        "note": {"href": "/ucwa/oauth/v1/applications/105/me/note"},
        "presence": {"href": "/ucwa/oauth/v1/applications/105/me/presence"},
        "reportMyActivity": {"href": "/ucwa/oauth/v1/applications/105/me/reportMyActivity"},
    },
    "rel": "me",
}


class LurkerToAvailableTransport(RecordingTransport):
    """The 201 of CreateAnApplication.md; ``me`` as ReceiveAnIM.md shows it afterwards."""

    def __init__(self) -> None:
        super().__init__()
        self.gets: list[str] = []
        self.reports: list[str] = []
        self.reported_twice = asyncio.Event()

    async def send(
        self,
        method: str,
        url: str,
        *,
        data: bytes | None = None,
        content_type: str | None = None,
        authorize: bool = True,
    ) -> HttpResponse:
        self.sent.append((method, url, data, content_type))
        if url.endswith("/reportMyActivity"):
            self.reports.append(url)
            if len(self.reports) >= 2:
                self.reported_twice.set()
        if url.endswith("/applications"):
            return HttpResponse(
                method=method,
                url=url,
                status=201,
                content_type="application/json; charset=utf-8",
                body=CREATED_ME_WITHOUT_REPORT,
            )
        return HttpResponse(method=method, url=url, status=204, content_type=None, body=b"")

    async def get_json(self, url: str, *, authorize: bool = True) -> dict[str, Any]:
        self.gets.append(url)
        assert url == "https://fe1.contoso.com/ucwa/oauth/v1/applications/105/me"
        return dict(ME_AFTER_MAKE_ME_AVAILABLE)


async def test_keepalive_finds_report_my_activity_once_me_links_it() -> None:
    transport = LurkerToAvailableTransport()
    app = make_application(transport, "json")
    app.applications_url = "https://fe1.contoso.com/ucwa/oauth/v1/applications"
    await app.create()

    async def post(url: str, body: Mapping[str, Any]) -> HttpResponse:
        return await transport.send("POST", url)

    await app.make_me_available(post)
    keepalive = asyncio.create_task(app.keepalive(0.01))
    try:
        async with asyncio.timeout(2.0):
            await transport.reported_twice.wait()
    finally:
        keepalive.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keepalive
    me = "https://fe1.contoso.com/ucwa/oauth/v1/applications/105/me"
    assert set(transport.reports) == {me + "/reportMyActivity"}
    assert transport.gets == [me]  # read once: the link is kept


async def test_keepalive_reports_nothing_when_never_made_available() -> None:
    """reportMyActivity_ref.md: ``409 MakeMeAvailableRequired`` "The application has not
    yet sent a request on the makeMeAvailable resource" - so none is sent."""
    transport = RecordingTransport()
    app = make_application(transport, "json", available_for=())
    await app.create()

    async def post(url: str, body: Mapping[str, Any]) -> HttpResponse:
        raise AssertionError("makeMeAvailable is not posted for available_for=()")

    await app.make_me_available(post)
    keepalive = asyncio.create_task(app.keepalive(0.01))
    await asyncio.sleep(0.1)
    keepalive.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await keepalive
    assert [method for method, *_ in transport.sent] == ["POST"]  # the application's only
