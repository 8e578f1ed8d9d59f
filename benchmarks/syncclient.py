"""The peer: a synchronous one-at-a-time UCWA client, the way existing Python clients work.

Plain blocking HTTP (``http.client``, one keep-alive connection, like a
``requests.Session``): POST the continue request, then long-poll the event channel
until *that* invitation's ``completed`` event arrives, then the next invitation.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.parse
import uuid
from typing import Any

from benchmarks.floor import MESSAGE_HREF, PHONE_NUMBER

_MAX_POLLS_PER_INVITATION = 1000


class _Http:
    def __init__(self, origin: str) -> None:
        parts = urllib.parse.urlsplit(origin)
        assert parts.hostname is not None
        self.origin = origin
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        self.auth: dict[str, str] = {}

    def request(
        self,
        method: str,
        url: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        path = url[len(self.origin) :] if url.startswith(self.origin) else url
        all_headers = {"Accept": "application/json", **self.auth, **(headers or {})}
        self.conn.request(method, path, body=body, headers=all_headers)
        response = self.conn.getresponse()
        data = response.read()
        return response.status, dict(response.getheaders()), data

    def json(self, method: str, url: str, data: Any = None) -> Any:
        body = None if data is None else json.dumps(data).encode()
        headers = {} if data is None else {"Content-Type": "application/json"}
        _status, _headers, raw = self.request(method, url, body, headers)
        return json.loads(raw)

    def close(self) -> None:
        self.conn.close()


def _one(links: Any) -> Any:
    return links[0] if isinstance(links, list) else links


def run(
    discovery: str, user: str, password: str, *, total: int, concurrency: int = 1
) -> dict[str, float]:
    """``total`` invitations one at a time (``concurrency`` is ignored: there is none)."""
    origin = discovery.split("/autodiscover", 1)[0]
    client = _Http(origin)
    try:
        root = client.json("GET", discovery)
        user_url = root["_links"]["user"]["href"]
        form = urllib.parse.urlencode(
            {"grant_type": "password", "username": user, "password": password}
        ).encode()
        _s, _h, raw = client.request(
            "POST",
            origin + "/WebTicket/oauthtoken",
            form,
            {"Content-Type": "application/x-www-form-urlencoded"},
        )
        client.auth = {"Authorization": "Bearer " + json.loads(raw)["access_token"]}
        user_res = client.json("GET", user_url)
        app = client.json(
            "POST",
            user_res["_links"]["applications"]["href"],
            {"UserAgent": "sync", "EndpointId": str(uuid.uuid4()), "Culture": "en-US"},
        )
        comm = app["_embedded"]["communication"]["_links"]
        logs = client.json("GET", origin + comm["conversationLogs"]["href"])
        targets: dict[str, str] = {}
        for link in logs["_links"]["conversationLog"]:
            log = client.json("GET", origin + link["href"])
            for rel in ("continueMessaging", "continuePhoneAudio"):
                if rel in log["_links"] and rel not in targets:
                    targets[rel] = origin + _one(log["_links"][rel])["href"]
        events = [origin + app["_links"]["events"]["href"]]
        # An event channel must exist before the first POST (else CallbackChannelError):
        # one short P-GET opens it; after that the client's own P-GETs keep it alive.
        client.request("GET", events[0] + "&timeout=0")

        def one(n: int) -> str:
            operation_id = uuid.uuid4().hex
            if n % 2 == 0:
                target = targets["continueMessaging"]
                body: dict[str, Any] = {
                    "operationId": operation_id,
                    "_links": {"message": {"href": MESSAGE_HREF}},
                }
            else:
                target = targets["continuePhoneAudio"]
                body = {"operationId": operation_id, "phoneNumber": PHONE_NUMBER}
            status, _headers, _raw = client.request(
                "POST", target, json.dumps(body).encode(), {"Content-Type": "application/json"}
            )
            assert status == 201, status
            for _ in range(_MAX_POLLS_PER_INVITATION):
                batch = client.json("GET", events[0] + "&timeout=180")
                events[0] = origin + batch["_links"]["next"]["href"]
                for sender in batch.get("sender", ()):
                    for event in sender["events"]:
                        resource: dict[str, Any] = next(
                            iter(event.get("_embedded", {}).values()), {}
                        )
                        if (
                            event["type"] == "completed"
                            and resource.get("operationId") == operation_id
                        ):
                            return str(event["status"])
            raise RuntimeError(f"no completed event for {operation_id}")

        for _ in range(min(5, total)):  # warm-up
            one(0)
        started = time.perf_counter()
        outcomes = [one(n) for n in range(total)]
        elapsed = time.perf_counter() - started
    finally:
        client.close()
    if any(o != "Success" for o in outcomes):
        raise RuntimeError("sync client: not every invitation succeeded")
    return {"invitations": total, "seconds": elapsed, "per_second": total / elapsed}
