"""Hostile XML and oversized bodies: refused with a typed error, through the decoder and
through a Session (a P-GET and an ordinary GET), and the session keeps working."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp import web

import ucwa_async
from ucwa_async._core import wire as _wire
from ucwa_async._core.errors import BodyTooLargeError, DecodeError

from ._server import XML, HostileServer, Recorder

NS = _wire.UCWA_NS
BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
        for i in range(1, 10)
    )
    + f']><events xmlns="{NS}" href="/e"><link rel="next" href="&lol9;"/></events>'
)
QUADRATIC_BLOWUP = (
    f'<!DOCTYPE e [<!ENTITY a "{"x" * 5000}">]><events xmlns="{NS}">' + "&a;" * 2000 + "</events>"
)
DEEP = f'<events xmlns="{NS}" href="/e">' + "<sender>" * 5000 + "</sender>" * 5000 + "</events>"


def xxe(system_id: str) -> str:
    return (
        f'<?xml version="1.0"?><!DOCTYPE events [<!ENTITY x SYSTEM "{system_id}">]>'
        f'<events xmlns="{NS}" href="/e"><link rel="next" href="/n"/>'
        f"<property name='leak'>&x;</property></events>"
    )


def parameter_entity(system_id: str) -> str:
    return (
        f'<?xml version="1.0"?><!DOCTYPE events [<!ENTITY % p SYSTEM "{system_id}"> %p;]>'
        f'<events xmlns="{NS}" href="/e"/>'
    )


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text("TOP-SECRET-MARKER-93f1")
    return path


def hostile_bodies(secret_file: Path, recorder: Recorder) -> dict[str, bytes]:
    return {
        "billion-laughs": BILLION_LAUGHS.encode(),
        "quadratic-blowup": QUADRATIC_BLOWUP.encode(),
        "xxe-file": xxe(secret_file.as_uri()).encode(),
        "xxe-http": xxe(recorder.origin + "/xxe").encode(),
        "parameter-entity-http": parameter_entity(recorder.origin + "/pe").encode(),
        "deep-nesting": DEEP.encode(),
        "internal-subset-only": f'<!DOCTYPE events><events xmlns="{NS}"/>'.encode(),
    }


async def test_decoder_refuses_hostile_xml(secret_file: Path, recorder: Recorder) -> None:
    for name, body in hostile_bodies(secret_file, recorder).items():
        with pytest.raises(DecodeError) as info:
            _wire.decode(body, XML)
        assert "TOP-SECRET" not in str(info.value), name
        assert len(str(info.value)) < 1000, name  # no entity expansion in the message
    await asyncio.sleep(0.05)
    assert recorder.seen == []  # no external entity or DTD was fetched


def test_decoder_refuses_huge_bodies_before_parsing() -> None:
    huge = b"<events>" + b" " * (_wire.DEFAULT_MAX_BODY + 1) + b"</events>"
    with pytest.raises(BodyTooLargeError):
        _wire.decode(huge, XML)
    with pytest.raises(BodyTooLargeError):
        _wire.decode(b'{"a": "' + b"x" * 2000 + b'"}', "application/json", max_size=1000)
    assert _wire.DEFAULT_MAX_BODY == 8 * 1024 * 1024  # the documented default


def xml_response(body: bytes) -> web.Response:
    return web.Response(status=200, body=body, headers={"Content-Type": XML})


def chunked(body: bytes) -> Callable[[web.Request], object]:
    async def answer(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers={"Content-Type": XML})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(body), 4096):
            await response.write(body[start : start + 4096])
        await response.write_eof()
        return response

    return answer


async def test_hostile_get_bodies_raise_typed_errors(
    server: HostileServer,
    recorder: Recorder,
    secret_file: Path,
    make_session: Callable[..., ucwa_async.Session],
    no_leftover_tasks: Callable[[], None],
) -> None:
    bodies = hostile_bodies(secret_file, recorder)
    current: dict[str, bytes] = {}

    async def logs(request: web.Request) -> web.StreamResponse:
        return xml_response(current["body"])

    server.hooks["logs"] = logs
    async with make_session() as session:
        for name, body in bodies.items():
            current["body"] = body
            with pytest.raises(DecodeError) as info:
                await session.conversation_logs()
            assert "TOP-SECRET" not in repr(info.value), name
        assert session.channel_state is ucwa_async.ChannelStatus.CONNECTED
    await asyncio.sleep(0.05)
    assert recorder.seen == []
    no_leftover_tasks()


@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "chunked"])
async def test_max_body_size_is_configurable(
    server: HostileServer,
    make_session: Callable[..., ucwa_async.Session],
    streamed: bool,
    no_leftover_tasks: Callable[[], None],
) -> None:
    big = (
        f'<resource xmlns="{NS}" rel="conversationLogs">'.encode()
        + b" " * 20_000
        + (b"</resource>")
    )

    async def logs(request: web.Request) -> web.StreamResponse:
        if streamed:
            return await chunked(big)(request)  # type: ignore[misc]
        return xml_response(big)

    server.hooks["logs"] = logs
    async with make_session(max_body_size=10_000) as session:
        with pytest.raises(BodyTooLargeError):
            await session.conversation_logs()
    # The same body is fine under the default cap.
    async with make_session() as session:
        assert await session.conversation_logs() == []
    no_leftover_tasks()


@pytest.mark.parametrize(
    "name",
    ["billion-laughs", "xxe-file", "xxe-http", "deep-nesting", "huge-streamed"],
)
async def test_hostile_pget_bodies_are_refused_and_channel_recovers(
    server: HostileServer,
    recorder: Recorder,
    secret_file: Path,
    make_session: Callable[..., ucwa_async.Session],
    name: str,
    no_leftover_tasks: Callable[[], None],
) -> None:
    bodies = hostile_bodies(secret_file, recorder)
    bodies["huge-streamed"] = b"<events>" + b" " * 50_000 + b"</events>"
    served = {"hostile": 0}
    armed = asyncio.Event()

    async def pget(request: web.Request) -> web.StreamResponse | None:
        if armed.is_set() and served["hostile"] < 2:
            served["hostile"] += 1
            if name == "huge-streamed":
                return await chunked(bodies[name])(request)  # type: ignore[misc]
            return xml_response(bodies[name])
        return None

    server.hooks["pget"] = pget
    async with make_session(max_body_size=20_000) as session:
        async with session.events() as events:
            armed.set()
            reasons: list[BaseException | None] = []
            async with asyncio.timeout(10):
                async for event in events:
                    if isinstance(event, ucwa_async.ChannelReconnecting):
                        reasons.append(event.error)
                    if isinstance(event, ucwa_async.ChannelReconnected):
                        break
        assert reasons, "the hostile batch did not reach the channel"
        assert all(isinstance(r, DecodeError) for r in reasons), reasons
        assert "TOP-SECRET" not in repr(reasons)
        await session.wait_connected(timeout=5)
        assert served["hostile"] >= 1
    await asyncio.sleep(0.05)
    assert recorder.seen == []
    no_leftover_tasks()
