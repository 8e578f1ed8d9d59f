"""href resolution, normalisation and query building."""

from __future__ import annotations

from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st
from yarl import URL

from ucwa_async import UcwaError
from ucwa_async._core.errors import UnsafeHrefError
from ucwa_async._core.urls import (
    app_base_path_of,
    make_normalizer,
    normalize,
    origin_of,
    resolve_href,
    resolve_href_normal,
    same_origin,
    with_query,
)

APP = "https://fe1.contoso.com:443/ucwa/oauth/v1/applications/833"
BASE = "/ucwa/oauth"


# -- resolve_href -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "href"),
    [
        # The seeds' request line names the default port; the application's URL may not
        # (CreateAnApplication.md's hrefs), or the other way round: one origin all the same.
        (
            "https://fe1.contoso.com/ucwa/oauth/v1/applications/833",
            "https://fe1.contoso.com:443//v1/applications/833/communication/conversationLogs/"
            "conversationLog/continueMessaging",
        ),
        (
            "https://fe1.contoso.com:443/ucwa/oauth/v1/applications/833",
            "https://fe1.contoso.com//v1/applications/833/communication/conversationLogs/"
            "conversationLog/continueMessaging",
        ),
        (
            "http://fe1.contoso.com:80/ucwa/oauth/v1/applications/833",
            "http://FE1.contoso.com//v1/applications/833/communication/conversationLogs/"
            "conversationLog/continueMessaging",
        ),
    ],
)
def test_seed_request_line_with_or_without_the_default_port(base: str, href: str) -> None:
    scheme = base.partition(":")[0]
    assert resolve_href(href, base_url=base, app_base_path=BASE) == (
        f"{scheme}://fe1.contoso.com/ucwa/oauth/v1/applications/833/communication/"
        "conversationLogs/conversationLog/continueMessaging"
    )


@pytest.mark.parametrize(
    ("href", "expected"),
    [
        # The seeds' Location: a path under the application's base path, not host "v1".
        (
            "//v1/applications/833/communication/invitations/700",
            "https://fe1.contoso.com/ucwa/oauth/v1/applications/833/communication/invitations/700",
        ),
        ("//V1/applications/833", "https://fe1.contoso.com/ucwa/oauth/v1/applications/833"),
        ("//v1?x=1", "https://fe1.contoso.com/ucwa/oauth/v1?x=1"),
        ("//v1", "https://fe1.contoso.com/ucwa/oauth/v1"),
        (
            "//v1/applications/833/x?y=%2B+1#frag",
            "https://fe1.contoso.com/ucwa/oauth/v1/applications/833/x?y=%2B+1#frag",
        ),
        # Origin-relative and document-relative.
        ("/ucwa/oauth/v1/x", "https://fe1.contoso.com/ucwa/oauth/v1/x"),
        ("events?ack=2", "https://fe1.contoso.com/ucwa/oauth/v1/applications/events?ack=2"),
        ("833/events?ack=2", "https://fe1.contoso.com/ucwa/oauth/v1/applications/833/events?ack=2"),
        # Absolute: used as given (another host stays another host).
        ("https://OTHER.example:8443/a#f", "https://other.example:8443/a#f"),
        ("HTTP://fe1.contoso.com/a", "http://fe1.contoso.com/a"),
        ("  https://fe1.contoso.com/a  ", "https://fe1.contoso.com/a"),
        # The seeds' request line: same origin, path "//v1/...".
        (
            "https://fe1.contoso.com:443//v1/applications/833/x?y=%2B#f",
            "https://fe1.contoso.com/ucwa/oauth/v1/applications/833/x?y=%2B#f",
        ),
        # ... but only on our own origin.
        ("https://other.example//v1/x", "https://other.example//v1/x"),
        # Network-path references to a real host, and "v1" with a port is a host.
        ("//other.example/x", "https://other.example/x"),
        ("//v1:8080/x", "https://v1:8080/x"),
        ("//v1.example.com/x", "https://v1.example.com/x"),
    ],
)
def test_resolve_href(href: str, expected: str) -> None:
    assert resolve_href(href, base_url=APP, app_base_path=BASE) == expected


@pytest.mark.parametrize(
    ("href", "normal"),
    [
        ("/ucwa/oauth/v1/applications/833/communication/invitations/7", True),
        ("https://fe1.contoso.com/ucwa/oauth/v1/x", True),
        ("https://FE1.contoso.com/ucwa/oauth/v1/x", False),  # upper case: normalize's job
        ("https://fe1.contoso.com:443/x", False),  # a default port
        ("/ucwa/./x", False),
        ("/a%7Eb", False),  # an escape normalize may decode
        ("//v1/applications/833", False),
        ("events?ack=2", False),
    ],
)
def test_resolve_href_normal_says_when_normalize_has_nothing_to_do(href: str, normal: bool) -> None:
    url, known_normal = resolve_href_normal(href, base_url=APP, app_base_path=BASE)
    assert url == resolve_href(href, base_url=APP, app_base_path=BASE)
    assert known_normal is normal
    if known_normal:
        assert normalize(url) == url


def test_v1_shorthand_without_known_base_path() -> None:
    for base_path in (None, ""):
        assert (
            resolve_href("//v1/applications/1", base_url=APP, app_base_path=base_path)
            == "https://fe1.contoso.com/v1/applications/1"
        )


@pytest.mark.parametrize("base_path", ["/ucwa/oauth/", "ucwa/oauth", "/ucwa/oauth"])
def test_base_path_is_cleaned(base_path: str) -> None:
    assert (
        resolve_href("//v1/a", base_url=APP, app_base_path=base_path)
        == "https://fe1.contoso.com/ucwa/oauth/v1/a"
    )


def test_yarl_join_would_get_v1_wrong() -> None:
    # Documents why resolve_href does not use URL.join for this form.
    assert URL(APP).join(URL("//v1/applications/833")).host == "v1"
    assert URL(resolve_href("//v1/applications/833", base_url=APP)).host == "fe1.contoso.com"


def test_network_path_follows_base_scheme() -> None:
    assert resolve_href("//h.example/x", base_url="http://a.example/") == "http://h.example/x"


@pytest.mark.parametrize(
    "href",
    [
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        "file:///etc/passwd",
        "data:text/plain;base64,aGk=",
        "ftp://fe1.contoso.com/x",
        "mailto:a@b.example",
        "https://user:pw@fe1.contoso.com/x",
        "https://user@fe1.contoso.com/x",
        "//user@evil.example/x",
        "//v1@evil.example/x",
        "",
        "   ",
        "https:///nohost",
        "https://fe1.contoso.com/a\r\nX-Injected: 1",
        "/a\x00b",
        "https://[::1/",
    ],
)
def test_resolve_href_rejects(href: str) -> None:
    with pytest.raises(UnsafeHrefError) as info:
        resolve_href(href, base_url=APP, app_base_path=BASE)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, UcwaError)


@pytest.mark.parametrize("base", ["/relative/base", "ftp://h/x", "https://u:p@h/"])
def test_resolve_href_rejects_bad_base(base: str) -> None:
    with pytest.raises(UnsafeHrefError):
        resolve_href("/x", base_url=base)


def test_unsafe_href_error_message_is_short_and_keeps_href() -> None:
    href = "data:text/plain;base64," + "A" * 500
    with pytest.raises(UnsafeHrefError) as info:
        resolve_href(href, base_url=APP)
    assert info.value.href == href
    assert len(str(info.value)) < 200
    assert "data" in str(info.value)


@given(
    segments=st.lists(st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True), min_size=1, max_size=5),
    ack=st.integers(min_value=0, max_value=10**6),
)
def test_v1_shorthand_property(segments: list[str], ack: int) -> None:
    href = "//v1/" + "/".join(segments) + f"?ack={ack}"
    resolved = URL(resolve_href(href, base_url=APP, app_base_path=BASE))
    assert resolved.host == "fe1.contoso.com"
    assert resolved.path == "/ucwa/oauth/v1/" + "/".join(segments)
    assert resolved.query["ack"] == str(ack)


# -- app_base_path_of -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("self_href", "expected"),
    [
        ("/ucwa/oauth/v1/applications/833", "/ucwa/oauth"),
        ("/ucwa/v1/applications/833", "/ucwa"),
        (APP, "/ucwa/oauth"),
        ("//v1/applications/833", ""),
        ("/v1/applications/833", ""),
        ("https://h.example/no/version/here", ""),
        ("//h.example/ucwa/v1/applications/1", "/ucwa"),
        ("https://[::1/", ""),
        # Only a whole segment counts.
        ("/ucwa/v10/x/v1/applications", "/ucwa/v10/x"),
    ],
)
def test_app_base_path_of(self_href: str, expected: str) -> None:
    assert app_base_path_of(self_href) == expected


# -- normalize / origin ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("HTTPS://FE1.Contoso.COM/a", "https://fe1.contoso.com/a"),
        ("https://fe1.contoso.com:443/a", "https://fe1.contoso.com/a"),
        ("http://fe1.contoso.com:80/a", "http://fe1.contoso.com/a"),
        ("https://fe1.contoso.com/a#frag", "https://fe1.contoso.com/a"),
        ("https://fe1.contoso.com/%7euser/%41", "https://fe1.contoso.com/~user/A"),
        ("https://fe1.contoso.com/a/./b/../c", "https://fe1.contoso.com/a/c"),
        ("https://fe1.contoso.com", "https://fe1.contoso.com/"),
        ("https://fe1.contoso.com?x=1", "https://fe1.contoso.com/?x=1"),
    ],
)
def test_normalize_equal(a: str, b: str) -> None:
    assert normalize(a) == normalize(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("https://fe1.contoso.com/a", "http://fe1.contoso.com/a"),
        ("https://fe1.contoso.com:8443/a", "https://fe1.contoso.com/a"),
        ("https://fe1.contoso.com/a?ack=1", "https://fe1.contoso.com/a?ack=2"),
        ("https://fe1.contoso.com/a", "https://fe1.contoso.com/A"),
        ("https://fe1.contoso.com/a%2Fb", "https://fe1.contoso.com/a/b"),
    ],
)
def test_normalize_different(a: str, b: str) -> None:
    assert normalize(a) != normalize(b)


def test_normalize_keeps_query_and_relative_refs() -> None:
    assert normalize("https://h.example/a?ack=1&b=2#x") == "https://h.example/a?ack=1&b=2"
    assert normalize("/ucwa/x#y") == "/ucwa/x"


def test_make_normalizer_joins_all_three_forms() -> None:
    key = make_normalizer(base_url=APP, app_base_path=BASE)
    forms = [
        "//v1/applications/833/communication/invitations/700",
        "/ucwa/oauth/v1/applications/833/communication/invitations/700",
        "https://FE1.contoso.com:443/ucwa/oauth/v1/applications/833/communication/invitations/700",
    ]
    assert len({key(form) for form in forms}) == 1
    with pytest.raises(UnsafeHrefError):
        key("javascript:alert(1)")


def test_origin_of_and_same_origin() -> None:
    assert origin_of("HTTPS://FE1.contoso.com:443/a/b?c#d") == "https://fe1.contoso.com"
    assert origin_of("https://h.example:8443/a") == "https://h.example:8443"
    with pytest.raises(ValueError, match="absolute"):
        origin_of("/relative")
    assert same_origin("https://fe1.contoso.com/a", "https://FE1.contoso.com:443/b")
    assert not same_origin("https://fe1.contoso.com/a", "http://fe1.contoso.com/a")
    assert not same_origin("https://fe1.contoso.com/a", "https://fe2.contoso.com/a")
    assert not same_origin("https://fe1.contoso.com/a", "https://fe1.contoso.com:444/a")
    assert not same_origin("/a", "/a")


# -- with_query -----------------------------------------------------------------------


def test_with_query_adds_after_ack() -> None:
    url = "https://h.example/ucwa/oauth/v1/applications/833/events?ack=1"
    result = with_query(url, timeout=180)
    assert URL(result).query.getall("ack") == ["1"]
    assert URL(result).query["timeout"] == "180"
    assert result.startswith(url)  # the server's cursor text is untouched


def test_with_query_replaces_other_params() -> None:
    result = with_query("https://h.example/e?ack=5&timeout=100&low=2", timeout=900, medium=3)
    query = URL(result).query
    assert query.getall("timeout") == ["900"]
    assert query["low"] == "2"
    assert query["medium"] == "3"
    assert query["ack"] == "5"


def test_with_query_without_existing_query_and_encoding() -> None:
    result = with_query("https://h.example/e", q="a b&c=d")
    assert URL(result).query["q"] == "a b&c=d"
    assert "&c=d" not in result  # encoded, not concatenated


def test_with_query_refuses_ack_and_bool() -> None:
    with pytest.raises(ValueError, match="ack"):
        with_query("https://h.example/e?ack=1", ack=2)
    with pytest.raises(TypeError, match="flag"):
        with_query("https://h.example/e?ack=1", flag=True)


@given(
    ack=st.from_regex(r"[A-Za-z0-9._~-]{1,20}", fullmatch=True),
    timeout=st.integers(min_value=180, max_value=1800),
)
def test_with_query_never_touches_ack(ack: str, timeout: int) -> None:
    url = f"https://h.example/ucwa/v1/applications/1/events?ack={ack}"
    result = with_query(url, timeout=timeout)
    assert URL(result).query.getall("ack") == [ack]
    assert result.startswith(url)


@given(st.text(alphabet="aZ09-_~/.%?#:", min_size=1, max_size=40))
def test_a_url_said_normal_is_left_as_it_is_by_normalize(tail: str) -> None:
    for href in ("/" + tail, "https://fe1.contoso.com/" + tail):
        try:
            url, known_normal = resolve_href_normal(href, base_url=APP, app_base_path=BASE)
        except UcwaError:
            continue
        if known_normal:
            assert normalize(url) == url


@given(
    path=st.text(alphabet="az09-_~/.%", max_size=20),
    query=st.sampled_from(["", "?ack=3", "?a=b%20c"]),
    value=st.one_of(
        st.text(alphabet="aZ09-_~. &=?%+", max_size=12),
        st.integers(min_value=-(10**6), max_value=10**6),
        st.sampled_from([0.5, 1e-07, 180.0]),
    ),
)
def test_with_query_encodes_our_parameter_as_yarl_does(
    path: str, query: str, value: str | int | float
) -> None:
    url = "https://fe1.contoso.com/" + path + query
    try:
        ours = URL.build(query={"operationId": value}).raw_query_string
    except ValueError:
        return
    assert with_query(url, operationId=value) == url + ("&" if query else "?") + ours


# Hypermedia.md, URL usage: "some URLs in the links might already have query parameters
# that were added by the server. It is important for the client to preserve these
# server-added query parameters without changing their values."
@pytest.mark.parametrize(
    "query",
    ["ack=1&x=a%2Fb", "ack=1&z", "ack=2;x=1", "ack=1&x=a%20b", "ack=1&x==", "ack=1&x=%7E"],
)
def test_with_query_keeps_the_servers_query_text(query: str) -> None:
    url = "https://fe1.contoso.com/ucwa/oauth/v1/applications/833/events?" + query
    assert with_query(url, timeout=180) == url + "&timeout=180"


def test_with_query_replaces_only_our_names_and_keeps_the_rest_verbatim() -> None:
    url = "https://fe1.contoso.com/e?ack=2;x=1&timeout=100&z&x=a%2Fb#f"
    assert (
        with_query(url, timeout=900)
        == "https://fe1.contoso.com/e?ack=2;x=1&z&x=a%2Fb&timeout=900#f"
    )
    assert with_query("https://fe1.contoso.com/e?timeout=1", timeout=2) == (
        "https://fe1.contoso.com/e?timeout=2"
    )
    assert (
        with_query("https://fe1.contoso.com/e?", timeout=2) == "https://fe1.contoso.com/e?timeout=2"
    )
    assert with_query("https://fe1.contoso.com/e?a=1&", timeout=2) == (
        "https://fe1.contoso.com/e?a=1&timeout=2"
    )


_QUERY_PIECE = st.text(alphabet="aZ09-_~.%;=+/:@!$'()*,?", max_size=10)


@given(
    pieces=st.lists(_QUERY_PIECE, max_size=5),
    value=st.one_of(st.integers(min_value=0, max_value=10**6), st.text(max_size=8)),
)
def test_with_query_keeps_every_other_piece_verbatim(pieces: list[str], value: int | str) -> None:
    query = "&".join(p for p in pieces if unquote(p.partition("=")[0]) != "operationId")
    url = "https://fe1.contoso.com/x/?" + query
    result = with_query(url, operationId=value)
    kept = url if query == "" or query.endswith("&") else url + "&"
    assert result.startswith(kept + "operationId=")
    assert URL(result).query.getall("operationId") == [str(value)]


def test_with_query_refuses_what_yarl_refuses() -> None:
    with pytest.raises(ValueError, match="not supported"):
        with_query("https://fe1.contoso.com/x", timeout=float("inf"))
