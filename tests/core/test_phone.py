"""One phone-number check for the library and the CLI."""

from __future__ import annotations

import pytest

from ucwa_async._core.errors import InvalidPhoneNumberError, UcwaError
from ucwa_async._core.phone import phone_uri


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("tel:+14255551234", "tel:+14255551234"),
        ("+14255551234", "tel:+14255551234"),
        ("  TEL:+1 (425) 555-12.34 ", "tel:+14255551234"),
        ("tel:+1", "tel:+1"),
        ("+" + "9" * 15, "tel:+" + "9" * 15),
    ],
)
def test_global_numbers_are_accepted_and_normalised(given: str, expected: str) -> None:
    assert phone_uri(given) == expected


@pytest.mark.parametrize(
    "bad",
    ["", "   ", "12345", "tel:12345", "4255551234", "+", "tel:+", "+1x", "+1²", "+" + "1" * 16],
)
def test_anything_else_is_a_typed_error(bad: str) -> None:
    with pytest.raises(InvalidPhoneNumberError, match="phone_number") as info:
        phone_uri(bad)
    assert isinstance(info.value, UcwaError)
    assert isinstance(info.value, ValueError)
    assert "tel:+14255551234" in str(info.value)


@pytest.mark.parametrize("bad", [None, 14255551234, b"tel:+1"])
def test_not_a_str_is_a_type_error(bad: object) -> None:
    with pytest.raises(TypeError, match="phone_number"):
        phone_uri(bad)
