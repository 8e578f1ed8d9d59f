"""Request validation: 400 ParameterValidationFailure, 415, 409 conflicts, XML safety."""

from __future__ import annotations

import pytest

from ucwa_async.testing import InvitationRequest, Reason, SimulatorConfig
from ucwa_async.testing._xml import XmlInputError, parse_input, property_xml

from ._support import JSON, MakeClient


@pytest.mark.parametrize(
    ("rel", "body"),
    [
        ("continueMessaging", {}),
        ("continueMessaging", {"operationId": ""}),
        ("continueMessaging", {"operationId": "x" * 51}),
        ("continueMessaging", {"operationId": 5}),
        ("continueMessaging", {"operationId": "a", "_links": {"message": {"href": "hello"}}}),
        (
            "continueMessaging",
            {"operationId": "a", "_links": {"message": {"href": "data:text/plain,hello"}}},
        ),
        (
            "continueMessaging",
            {"operationId": "a", "_links": {"message": {"href": "data:text/plain;base64,@@@"}}},
        ),
        ("continuePhoneAudio", {"operationId": "a", "phoneNumber": "+14255551234"}),
        ("continuePhoneAudio", {"operationId": "a", "phoneNumber": "sip:bob@contoso.com"}),
    ],
)
async def test_parameter_validation_failure(
    make_client: MakeClient, rel: str, body: dict[str, object]
) -> None:
    client = await make_client()
    pget = await client.start_pget()
    reply = await client.post_json(await client.continue_link(rel), body)
    assert reply.status == 400
    assert reply.json()["code"] == "ParameterValidationFailure"
    await pget


async def test_operation_id_of_50_chars_and_html_message_pass(make_client: MakeClient) -> None:
    client = await make_client()
    pget = await client.start_pget()
    reply = await client.post_json(
        await client.continue_link(),
        {
            "operationId": "x" * 50,
            "_links": {"message": {"href": "data:text/html;charset=utf-8;base64,PGI+aGk8L2I+"}},
        },
    )
    assert reply.status == 201
    await pget


async def test_error_bodies_in_xml(make_client: MakeClient) -> None:
    client = await make_client(wire="xml")
    pget = await client.start_pget()
    reply = await client.request(
        "POST",
        await client.continue_link("continuePhoneAudio"),
        body=b'<input xmlns="http://schemas.microsoft.com/rtc/2012/03/ucwa">'
        b'<property name="operationId">a</property>'
        b'<property name="phoneNumber">+14255551234</property></input>',
        content_type="application/xml",
    )
    assert reply.status == 400
    reason = reply.xml()["reason"]
    assert reason["@xmlns"] == "http://schemas.microsoft.com/rtc/2012/03/ucwa"
    assert reason["code"] == "ParameterValidationFailure"
    await pget


@pytest.mark.parametrize(
    ("content_type", "body", "status", "code"),
    [
        ("text/plain", b"operationId=a", 415, "UnsupportedMediaType"),
        (JSON, b"{not json", 400, "DeserializationFailure"),
        (JSON, b"[1, 2]", 400, "DeserializationFailure"),
        ("application/xml", b"<input><property", 400, "DeserializationFailure"),
        ("application/xml", b"<output/>", 400, "DeserializationFailure"),
        (
            "application/xml",
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]>'
            b'<input><property name="operationId">&a;</property></input>',
            400,
            "DeserializationFailure",
        ),
    ],
)
async def test_unreadable_bodies(
    make_client: MakeClient, content_type: str, body: bytes, status: int, code: str
) -> None:
    client = await make_client()
    pget = await client.start_pget()
    reply = await client.request(
        "POST", await client.continue_link(), body=body, content_type=content_type, accept=JSON
    )
    assert reply.status == status
    assert reply.json()["code"] == code
    await pget


async def test_duplicate_operation_id_conflicts_while_connecting(make_client: MakeClient) -> None:
    client = await make_client(SimulatorConfig(completion_delay=30.0, pget_timeout_cap=0.3))
    pget = await client.start_pget()
    target = await client.continue_link()
    assert (await client.post_json(target, {"operationId": "dup"})).status == 201
    again = await client.post_json(target, {"operationId": "dup"})
    assert again.status == 409
    assert again.json()["subcode"] == "AlreadyExists"
    await pget


async def test_conflict_rule(make_client: MakeClient) -> None:
    def rule(request: InvitationRequest) -> Reason | None:
        if request.modality == "PhoneAudio":
            return Reason("Conflict", "TooManyGroups", "too many")
        return None

    client = await make_client(SimulatorConfig(conflict_rule=rule, pget_timeout_cap=0.3))
    pget = await client.start_pget()
    reply = await client.post_json(
        await client.continue_link("continuePhoneAudio"),
        {"operationId": "p", "phoneNumber": "tel:+14255551234"},
    )
    assert reply.status == 409
    assert reply.json() == {"code": "Conflict", "subcode": "TooManyGroups", "message": "too many"}
    assert (
        await client.post_json(await client.continue_link(), {"operationId": "m"})
    ).status == 201
    await pget


async def test_unknown_paths_answer_ucwa_404(make_client: MakeClient) -> None:
    client = await make_client()
    reply = await client.request("GET", client.app_href + "/nothing/here")
    assert reply.status == 404
    assert reply.json()["code"] == "ResourceNotFound"
    unauth = await client.request(
        "GET", client.app_href + "/communication", headers={"Authorization": "Bearer cwt=forged"}
    )
    assert unauth.status == 401


def test_xml_reader_accepts_https_namespace_and_lists() -> None:
    data = parse_input(
        b'<input xmlns="https://schemas.microsoft.com/rtc/2012/03/ucwa">'
        b'<propertyList name="supportedModalities"><item>Messaging</item></propertyList>'
        b'<link rel="message" href="data:text/plain;base64,aGk="/></input>'
    )
    assert data == {
        "supportedModalities": ["Messaging"],
        "_links": {"message": {"href": "data:text/plain;base64,aGk="}},
    }
    with pytest.raises(XmlInputError):
        parse_input(b'<input xmlns="urn:other"/>')


def test_xml_writer_booleans_and_escaping() -> None:
    assert "".join(property_xml("flag", True)) == '<property name="flag">True</property>'
    assert "".join(property_xml("flag", False)) == '<property name="flag">False</property>'
    assert "".join(property_xml("s", "a<&>b")) == '<property name="s">a&lt;&amp;&gt;b</property>'
    assert "".join(property_xml("l", ["x", 1])) == (
        '<propertyList name="l"><item>x</item><item>1</item></propertyList>'
    )
