"""_wire: content types, JSON decoding, request encoding, data URIs."""

from __future__ import annotations

import ast
import base64
import json
from pathlib import Path

import pytest

from ucwa_async._core import wire as _wire
from ucwa_async._core.errors import BodyTooLargeError, DecodeError
from ucwa_async._core.wire import (
    JSON_MEDIA_TYPE,
    UCWA_JSON_MEDIA_TYPE,
    UCWA_XML_MEDIA_TYPE,
    data_uri,
    decode,
    encode_input,
    media_type,
    parse_data_uri,
    wire_of,
)


def test_sans_io_modules_import_no_io() -> None:
    root = Path(_wire.__file__).resolve().parent
    for name in ("wire.py", "models.py", "converter.py"):
        tree = ast.parse((root / name).read_text(encoding="utf-8"))
        imported: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
        assert not imported & {"asyncio", "aiohttp"}, name


# ---------------------------------------------------------------- media types


@pytest.mark.parametrize(
    ("ctype", "wire"),
    [
        ("application/json", "json"),
        ("application/json; charset=utf-8", "json"),
        ("application/json; odata=verbose; charset=utf-8", "json"),
        ("Application/JSON;charset=UTF-8", "json"),
        (UCWA_JSON_MEDIA_TYPE, "json"),
        ("application/problem+json", "json"),
        ("text/json", "json"),
        (UCWA_XML_MEDIA_TYPE, "xml"),
        ("application/xml", "xml"),
        ("text/xml; charset=utf-8", "xml"),
        ("application/atom+xml", "xml"),
        ("text/html", None),
        ("text/plain", None),
        ("", None),
        (None, None),
    ],
)
def test_wire_of(ctype: str | None, wire: str | None) -> None:
    assert wire_of(ctype) == wire


def test_media_type() -> None:
    assert media_type("json") == JSON_MEDIA_TYPE == "application/json"
    assert media_type("xml") == UCWA_XML_MEDIA_TYPE
    with pytest.raises(ValueError, match="wire format"):
        media_type("yaml")  # type: ignore[arg-type]


# ---------------------------------------------------------------- decode: JSON


@pytest.mark.parametrize("body", [b"", b"   \r\n\t"])
@pytest.mark.parametrize("ctype", ["application/json", UCWA_XML_MEDIA_TYPE, None, "text/html"])
def test_empty_body_is_empty_dict(body: bytes, ctype: str | None) -> None:
    assert decode(body, ctype) == {}


def test_json_shapes_are_kept() -> None:
    body = b'{"a": 1, "b": true, "c": null, "_links": {"x": [{"href": "/1"}, {"href": "/2"}]}}'
    assert decode(body, "application/json") == {
        "a": 1,
        "b": True,
        "c": None,
        "_links": {"x": [{"href": "/1"}, {"href": "/2"}]},
    }


def test_json_charsets_and_bom() -> None:
    text = '{"subject": "Grüße ☃"}'
    assert decode(text.encode("utf-8"), "application/json")["subject"] == "Grüße ☃"
    assert decode(b"\xef\xbb\xbf" + text.encode(), "application/json") == {"subject": "Grüße ☃"}
    assert decode(text.encode("utf-16"), "application/json") == {"subject": "Grüße ☃"}
    latin = '{"subject": "Grüße"}'.encode("latin-1")
    assert decode(latin, 'application/json; charset="ISO-8859-1"') == {"subject": "Grüße"}
    assert decode(text.encode(), "application/json;charset=utf-8") == {"subject": "Grüße ☃"}


@pytest.mark.parametrize(
    ("body", "ctype"),
    [
        (b"{", "application/json"),
        (b'{"a": 1} trailing', "application/json"),
        (b"[1, 2]", "application/json"),
        (b'"text"', "application/json"),
        (b"null", "application/json"),
        (b"42", "application/json"),
        (b'{"a": NaN}', "application/json"),
        (b'{"a": Infinity}', "application/json"),
        (b"\xff\xfe\xfd", "application/json"),
        (b'{"a": "\xc3"}', "application/json"),
        (b'{"a": 1}', "application/json; charset=no-such-charset"),
        (b"\xff{}", "application/json; charset=utf-16-le"),
        (b"[" * 100_000 + b"]" * 100_000, "application/json"),
        (b'{"n": ' + b"9" * 5000 + b"}", "application/json"),
    ],
)
def test_malformed_json_is_one_typed_error(body: bytes, ctype: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode(body, ctype)
    assert type(info.value) is DecodeError
    assert info.value.content_type == ctype


SECRET = "cwt=AAEB-not-for-your-eyes"


@pytest.mark.parametrize(
    ("body", "ctype"),
    [
        (b'{"access_token": "' + SECRET.encode() + b'", nope', "application/json"),
        (b'{"access_token": "' + SECRET.encode() + b'"} trailing', "application/json"),
        (b'{"access_token": "' + SECRET.encode() + b'"}', "application/json; charset=nope"),
        (
            b'<resource xmlns="http://schemas.microsoft.com/rtc/2012/03/ucwa"><b>'
            + SECRET.encode()
            + b"</resource>",
            "application/vnd.microsoft.com.ucwa+xml",
        ),
    ],
)
@pytest.mark.parametrize("steps", [False, True], ids=["decode", "decode_steps"])
def test_decode_error_holds_no_parser_error_nor_the_body(
    body: bytes, ctype: str, steps: bool
) -> None:
    # The parser's own error (json.JSONDecodeError keeps the whole body in .doc: a token
    # grant's access_token, up to max_body_size of text) is neither __cause__ nor
    # __context__: users see ucwa_async errors only, and the message says what was wrong.
    def run() -> object:
        if steps:
            return _wire.complete(_wire.decode_steps(body, ctype))
        return decode(body, ctype)

    with pytest.raises(DecodeError) as info:
        run()
    error = info.value
    assert isinstance(error, ValueError)
    assert "malformed" in str(error) or "charset" in str(error)
    assert error.__cause__ is None
    assert error.__context__ is None
    assert SECRET not in str(error)


def test_malformed_data_uri_holds_no_codec_error() -> None:
    with pytest.raises(DecodeError) as info:
        parse_data_uri("data:text/plain;base64,!!not base64!!")
    assert info.value.__cause__ is None
    assert info.value.__context__ is None


@pytest.mark.parametrize("ctype", ["text/html", "text/plain; charset=utf-8", None, "image/png"])
def test_unknown_content_type(ctype: str | None) -> None:
    with pytest.raises(DecodeError) as info:
        decode(b"<html>Access is denied</html>", ctype)
    assert info.value.content_type == ctype


def test_body_too_large() -> None:
    body = json.dumps({"x": "y" * 100}).encode()
    assert decode(body, "application/json", max_size=len(body)) == {"x": "y" * 100}
    with pytest.raises(BodyTooLargeError) as info:
        decode(body, "application/json", max_size=len(body) - 1)
    assert isinstance(info.value, DecodeError)
    with pytest.raises(BodyTooLargeError):
        decode(b" " * 11, None, max_size=10)


def test_default_max_body() -> None:
    assert _wire.DEFAULT_MAX_BODY == 8 * 1024 * 1024
    big = b'{"x": "' + b"a" * _wire.DEFAULT_MAX_BODY + b'"}'
    with pytest.raises(BodyTooLargeError):
        decode(big, "application/json")


# ---------------------------------------------------------------- encode


def test_encode_json_is_compact_utf8() -> None:
    body, ctype = encode_input(
        {"operationId": "op", "subject": "Grüße", "_links": {"message": {"href": "data:,x"}}},
        "json",
    )
    assert ctype == "application/json"
    assert body == (
        '{"operationId":"op","subject":"Grüße","_links":{"message":{"href":"data:,x"}}}'.encode()
    )
    assert decode(body, ctype)["subject"] == "Grüße"


def test_encode_json_refuses_nan_and_odd_types() -> None:
    with pytest.raises(ValueError, match="JSON"):
        encode_input({"x": float("nan")}, "json")
    with pytest.raises(TypeError):
        encode_input({"x": object()}, "json")


def test_encode_unknown_wire() -> None:
    with pytest.raises(ValueError, match="wire format"):
        encode_input({}, "yaml")  # type: ignore[arg-type]


# ---------------------------------------------------------------- data URIs


def test_data_uri() -> None:
    uri = data_uri("Following up <b>& more</b> ☃")
    assert uri.startswith("data:text/plain;base64,")
    assert base64.b64decode(uri.split(",", 1)[1]).decode() == "Following up <b>& more</b> ☃"
    assert parse_data_uri(uri) == ("text/plain", "Following up <b>& more</b> ☃")
    html = data_uri("<p>hi</p>", "text/html")
    assert html.startswith("data:text/html;base64,")
    assert parse_data_uri(html) == ("text/html", "<p>hi</p>")
    assert parse_data_uri(data_uri("")) == ("text/plain", "")


def test_parse_data_uri_variants() -> None:
    assert parse_data_uri("data:,Hello%2C%20World") == ("text/plain", "Hello, World")
    assert parse_data_uri("data:text/plain;name=x.txt,hi") == ("text/plain", "hi")
    assert parse_data_uri("DATA:Text/Plain;charset=utf-8,caf%C3%A9") == ("text/plain", "café")
    latin = base64.b64encode("café".encode("latin-1")).decode()
    assert parse_data_uri(f"data:text/plain;charset=iso-8859-1;base64,{latin}") == (
        "text/plain",
        "café",
    )


@pytest.mark.parametrize(
    "uri",
    [
        "",
        "http://example.com/x",
        "data:text/plain;base64",
        "data:text/plain;base64,***",
        "data:text/plain;base64,abc",
        "data:text/plain;base64," + base64.b64encode(b"\xff\xfe\xfa").decode(),
        "data:text/plain,%FF",
        "data:text/plain;charset=nope,abc",
    ],
)
def test_parse_data_uri_junk(uri: str) -> None:
    with pytest.raises(DecodeError):
        parse_data_uri(uri)


def test_parse_data_uri_not_a_string() -> None:
    with pytest.raises(DecodeError):
        parse_data_uri(b"data:,x")  # type: ignore[arg-type]
