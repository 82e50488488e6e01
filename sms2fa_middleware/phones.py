"""Recipients: parse, normalise to E.164, apply the region and number-type policy, mask."""

from __future__ import annotations

import re
from collections.abc import Collection

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumber, PhoneNumberType

from .errors import InvalidRecipient

# The two forms the API accepts: the original's 11-digit North American "1XXXXXXXXXX", and
# E.164 with its "+". Nothing else: no spaces, signs, separators or underscores, which the
# original's int() let through.
# re.ASCII: \d would otherwise take any Unicode digit ("1206555010\u0660").
_NANP_DIGITS = re.compile(r"1[2-9]\d{2}[2-9]\d{6}", re.ASCII)
_E164 = re.compile(r"\+[1-9]\d{6,14}", re.ASCII)
_NANP_E164 = re.compile(r"\+1[2-9]\d{9}", re.ASCII)

_TYPE_NAMES = {value: name for name, value in vars(PhoneNumberType).items() if name.isupper()}


def normalise(
    recipient: object,
    allowed_regions: Collection[str],
    allowed_types: Collection[str],
) -> str:
    """The recipient as E.164 (``+12065551234``), or :class:`InvalidRecipient`.

    A JSON integer of the 11-digit form is accepted too, as the original's clients sent them.
    The error message never repeats the number.
    """
    if isinstance(recipient, int) and not isinstance(recipient, bool):
        recipient = str(recipient)
    if not isinstance(recipient, str):
        raise InvalidRecipient("'recipient' must be a string: '1XXXXXXXXXX' or '+E.164'")
    if _NANP_DIGITS.fullmatch(recipient) or _NANP_E164.fullmatch(recipient):
        # Country code 1 and ten digits: what parse() would build, at a fortieth of its cost.
        number = PhoneNumber(country_code=1, national_number=int(recipient[-10:]))
    elif _E164.fullmatch(recipient):
        try:
            number = phonenumbers.parse(recipient, None)
        except NumberParseException:
            raise InvalidRecipient("'recipient' is not a phone number") from None
    else:
        raise InvalidRecipient(
            "'recipient' must be an 11-digit number '1XXXXXXXXXX' or E.164 '+<digits>'"
        )
    # number_type is UNKNOWN exactly when is_valid_number is False; asking it alone saves a
    # second walk over the ~25 regions that share country code 1.
    kind = _TYPE_NAMES.get(phonenumbers.number_type(number), "UNKNOWN")
    if kind == "UNKNOWN":
        raise InvalidRecipient("'recipient' is not a valid phone number")
    if phonenumbers.region_code_for_number(number) not in allowed_regions:
        raise InvalidRecipient("'recipient' is in a region this service does not send to")
    if kind not in allowed_types:
        raise InvalidRecipient("'recipient' is not a mobile number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def on_file(recipient: str, default_region: str) -> str | None:
    """A number as an app keeps it -- ``(206) 555-0123``, ``+44 20 7946 0018``,
    ``12065550123`` -- in E.164, or None when it is no phone number at all.

    National formats are read in ``default_region``. Only the form is normalised here: the
    region and number-type policy is :func:`normalise`'s, when a code is sent.
    """
    text = recipient.strip()
    if _E164.fullmatch(text):
        return text
    if _NANP_DIGITS.fullmatch(text):
        return "+" + text
    if len(text) > 64:  # no phone number is this long; spare the parser
        return None
    try:
        number = phonenumbers.parse(text, default_region)
    except NumberParseException:
        return None
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return e164 if _E164.fullmatch(e164) else None


def mask(e164: str) -> str:
    """The number as safe to show or log: only the last two digits (``+1••••••••34``)."""
    if len(e164) < 4:
        return "•" * len(e164)
    return e164[:2] + "•" * (len(e164) - 4) + e164[-2:]


def provider_digits(e164: str) -> str:
    """Flowroute v2.1 wants digits only (``12065551234``)."""
    return e164.lstrip("+")
