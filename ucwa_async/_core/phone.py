"""The phone number of ``continuePhoneAudio``: one check, shared by the library and the CLI.

UCWA's reference writes it as a ``tel:`` URI of a global number (``tel:+14255551234``).
Accepted: that, with or without ``tel:``, with the visual separators of RFC 3966
(space, ``-``, ``.``, parentheses); refused: local numbers (``12345``), letters, more than
15 digits (E.164). The result is always ``tel:+<digits>``.
"""

from __future__ import annotations

from ucwa_async._core.errors import InvalidPhoneNumberError

__all__ = ["phone_uri"]

_SEPARATORS = str.maketrans("", "", " -.()")
_MAX_DIGITS = 15  # E.164


def phone_uri(value: object) -> str:
    """``value`` as ``tel:+<digits>``; TypeError if not a str, InvalidPhoneNumberError
    (a ValueError) if not a global number."""
    if not isinstance(value, str):
        raise TypeError(
            f"phone_number must be a str such as 'tel:+14255551234', not {type(value).__name__}"
        )
    text = value.strip()
    number = text[4:] if text[:4].lower() == "tel:" else text
    digits = number[1:].translate(_SEPARATORS)
    if (
        not number.startswith("+")
        or not digits.isascii()
        or not digits.isdigit()
        or len(digits) > _MAX_DIGITS
    ):
        raise InvalidPhoneNumberError(
            f"phone_number {value!r} is not a global number: "
            "phone numbers look like tel:+14255551234"
        )
    return f"tel:+{digits}"
