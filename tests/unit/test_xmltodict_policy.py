"""xmltodict (used by the simulator to read request bodies) must keep refusing entities.

xmltodict >= 1.0 disables entity declarations by default; the simulator also passes
``disable_entities=True`` explicitly. If an upgrade ever changed the default, this fails.
"""

from __future__ import annotations

import pytest
import xmltodict

from ucwa_async.testing._xml import XmlInputError, parse_input

BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
    b"<input>&lol2;</input>"
)
EXTERNAL = (
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><input>&e;</input>'
)


@pytest.mark.parametrize("body", [BILLION_LAUGHS, EXTERNAL])
def test_xmltodict_default_refuses_entity_declarations(body: bytes) -> None:
    with pytest.raises(ValueError, match="entit"):
        xmltodict.parse(body)


@pytest.mark.parametrize("body", [BILLION_LAUGHS, EXTERNAL])
def test_simulator_request_reader_refuses_entities(body: bytes) -> None:
    with pytest.raises(XmlInputError) as info:
        parse_input(body)
    assert "passwd" not in str(info.value)
