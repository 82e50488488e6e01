"""codes.py (generation, keyed digest, matching, shape) and phones.py (parsing, policy, mask)."""

from __future__ import annotations

import random
import re
from collections import Counter

import phonenumbers
import pytest
from phonenumbers import PhoneNumberType

from sms2fa_middleware import InvalidAPIUsage, InvalidRecipient
from sms2fa_middleware.engine.codes import digest, generate_code, is_code_shaped, matches
from sms2fa_middleware.phones import mask, normalise, provider_digits
from sms2fa_middleware.settings import DEFAULT_NUMBER_TYPES, DEFAULT_REGIONS

KEY = "key-one-0123456789abcdef"
OLD_KEY = "key-old-0123456789abcdef"

# -- generate_code --------------------------------------------------------------------------


@pytest.mark.parametrize("length", range(4, 11))
def test_generate_code_has_exactly_length_ascii_digits(length: int) -> None:
    for _ in range(2000):
        code = generate_code(length)
        assert len(code) == length
        assert re.fullmatch(r"[0-9]+", code), code


def test_generate_code_keeps_leading_zeros_and_is_uniform() -> None:
    draws = 20_000
    length = 4
    sample = [generate_code(length) for _ in range(draws)]
    assert all(len(c) == length for c in sample)
    leading_zero = sum(c[0] == "0" for c in sample)
    # 10% expected (2,000); a generator that drops leading zeros gives none at all.
    assert 1_500 < leading_zero < 2_500
    expected = draws / 10
    # Chi-square per digit position, 9 degrees of freedom: P(chi2 > 45) ~ 1e-6, while a
    # randint(1000, 9999)-style generator gives ~ 2,000 on the first position.
    for position in range(length):
        counts = Counter(c[position] for c in sample)
        assert set(counts) == set("0123456789"), position
        chi2 = sum((counts[d] - expected) ** 2 / expected for d in "0123456789")
        assert chi2 < 45, (position, chi2, counts)
    # Values cover the whole range 0000..9999: both ends are reachable, nothing is stuck.
    values = [int(c) for c in sample]
    assert min(values) < 50 and max(values) > 9_950
    assert len(set(sample)) > 8_000  # ~8,647 distinct expected in 20,000 draws of 10,000


def test_generate_code_does_not_use_the_random_module() -> None:
    random.seed(1234)
    first = [generate_code(10) for _ in range(5)]
    random.seed(1234)
    second = [generate_code(10) for _ in range(5)]
    assert first != second


# -- digest and matches ---------------------------------------------------------------------


def test_digest_is_keyed_hex_and_hides_the_code() -> None:
    d = digest("123456", "user-1", KEY)
    assert re.fullmatch(r"[0-9a-f]{64}", d)
    assert "123456" not in d
    assert d == digest("123456", "user-1", KEY)  # deterministic
    assert d != digest("123456", "user-1", OLD_KEY)  # keyed
    assert d != digest("123457", "user-1", KEY)


def test_digest_is_bound_to_auth_id() -> None:
    d = digest("123456", "user-1", KEY)
    assert d != digest("123456", "user-2", KEY)
    # The auth_id and the code are separated, so moving a digit across the boundary changes
    # the digest: ("a0", "1234") is not ("a", "01234").
    assert digest("1234", "a0", KEY) != digest("01234", "a", KEY)
    assert not matches("123456", "user-2", d, [KEY])


def test_matches_right_and_wrong() -> None:
    stored = digest("0042", "u", KEY)
    assert matches("0042", "u", stored, [KEY])
    assert not matches("42", "u", stored, [KEY])  # leading zeros count
    assert not matches("0043", "u", stored, [KEY])
    assert not matches("0042", "u", stored, [OLD_KEY])
    assert not matches("0042", "u", stored, [])
    assert not matches("0042", "u", "", [KEY])


def test_matches_tries_every_key_of_a_rotation() -> None:
    under_old = digest("987654", "u", OLD_KEY)
    under_new = digest("987654", "u", KEY)
    assert matches("987654", "u", under_old, [KEY, OLD_KEY])
    assert matches("987654", "u", under_new, [KEY, OLD_KEY])
    assert not matches("987654", "u", under_old, [KEY])  # the old key retired
    assert not matches("987655", "u", under_old, [KEY, OLD_KEY])


@pytest.mark.parametrize("value", ["1268", "0000", "0123456789", "7"])
def test_code_shaped(value: str) -> None:
    assert is_code_shaped(value)


@pytest.mark.parametrize(
    "value",
    [
        "+0001268",
        " 1268",
        "1268 ",
        "12_68",
        "-1268",
        "12.68",
        "1e4",
        "\u0661\u0662\u0663\u0664",
        "12\u00b34",
        "\uff11\uff12\uff13\uff14",
        "",
        "12345678901",
        "1268\n",
        1268,
        None,
        b"1268",
    ],
)
def test_not_code_shaped(value: object) -> None:
    assert not is_code_shaped(value)


# -- phones ---------------------------------------------------------------------------------


def norm(value: object) -> str:
    return normalise(value, DEFAULT_REGIONS, DEFAULT_NUMBER_TYPES)


@pytest.mark.parametrize("value", ["12065550100", "+12065550100", 12065550100])
def test_accepted_recipients(value: object) -> None:
    assert norm(value) == "+12065550100"


def _outcome_by_parse(text: str) -> str:
    """What phonenumbers.parse() and its validity, region and type checks make of ``text``."""
    number = phonenumbers.parse(text, None)
    if not phonenumbers.is_valid_number(number):
        return "invalid"
    if phonenumbers.region_code_for_number(number) not in DEFAULT_REGIONS:
        return "region"
    kind = phonenumbers.number_type(number)
    if not any(kind == getattr(PhoneNumberType, name) for name in DEFAULT_NUMBER_TYPES):
        return "type"
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def test_north_american_numbers_are_judged_as_phonenumbers_parse_judges_them() -> None:
    # normalise() builds +1 numbers itself instead of calling parse(): it must agree with it.
    rng = random.Random(20261128)
    outcomes = Counter()
    for _ in range(3000):
        digits = str(rng.randrange(2_000_000_000, 10_000_000_000))
        expected = _outcome_by_parse("+1" + digits)
        for given in ("1" + digits, "+1" + digits):
            try:
                got = norm(given)
            except InvalidRecipient as exc:
                got = {
                    "'recipient' is not a valid phone number": "invalid",
                    "'recipient' is in a region this service does not send to": "region",
                    "'recipient' is not a mobile number": "type",
                }.get(exc.message, "format")
            if given.startswith("1") and not re.fullmatch(r"1[2-9]\d{2}[2-9]\d{6}", given):
                assert got == "format"  # the 11-digit form is stricter than E.164
            else:
                assert got == expected, given
        outcomes[expected if expected.startswith(("invalid", "region", "type")) else "ok"] += 1
    assert outcomes["ok"] > 500 and outcomes["invalid"] > 500 and outcomes["region"] > 5, outcomes


@pytest.mark.parametrize(
    "value",
    [
        " 1206555123",
        "-1206555123",
        "+1206555123",
        "1_206555123",
        "1206555012a",
        " 12065550100",
        "12065550100 ",
        "12065550100\n",
        "1-206-555-0100",
        "(206) 555-0100",
        "+1 206 555 0100",
        "2065550100",
        "+",
        "",
        "1206555010\u0660",
        "\uff112065550100",
        "+\u0661\u0662\u0660\u0666\u0665\u0665\u0665\u0660\u0661\u0660\u0660",
        True,
        False,
        None,
        1.5,
        12065550100.0,
        [12065550100],
        -12065550100,
    ],
)
def test_refused_recipients(value: object) -> None:
    with pytest.raises(InvalidRecipient) as info:
        norm(value)
    assert isinstance(info.value, InvalidAPIUsage)
    assert info.value.reason == "InvalidAPIUsage"
    # The error never repeats the number.
    assert "2065550" not in info.value.message


@pytest.mark.parametrize(
    ("number", "why"),
    [
        ("+18005551234", "mobile"),  # toll-free
        ("+19005551234", "mobile"),  # premium rate
        ("+18765550123", "region"),  # Jamaica: NANP, but not a default region
        ("+447911123456", "region"),  # UK mobile (Guernsey range)
        ("+447400123456", "region"),  # UK mobile
    ],
)
def test_policy_refuses_by_default(number: str, why: str) -> None:
    with pytest.raises(InvalidRecipient, match=why):
        norm(number)
    if number.startswith("+1"):  # the 11-digit form gets the same policy
        with pytest.raises(InvalidRecipient, match=why):
            norm(number[1:])


def test_policy_can_be_loosened_deliberately() -> None:
    assert normalise("+447400123456", ["GB"], ["MOBILE"]) == "+447400123456"
    assert normalise("+447911123456", ["GB", "GG"], ["MOBILE"]) == "+447911123456"
    assert normalise("+18765550123", ["JM"], DEFAULT_NUMBER_TYPES) == "+18765550123"
    assert normalise("+18005551234", ["US"], ["TOLL_FREE"]) == "+18005551234"
    # ... and allowing one region does not allow another.
    with pytest.raises(InvalidRecipient):
        normalise("+12065550100", ["GB"], ["MOBILE", "FIXED_LINE_OR_MOBILE"])


@pytest.mark.parametrize(
    "number", ["+12065550100", "+12065550187", "+447911123456", "+14155552671", "+861012345678901"]
)
def test_mask_shows_only_the_last_two_digits(number: str) -> None:
    masked = mask(number)
    assert len(masked) == len(number)
    assert masked.endswith(number[-2:])
    # Apart from the "+<first digit>" of the country code, only the last two digits show.
    assert masked.startswith(number[:2])
    assert not re.search(r"[0-9]", masked[2:-2])
    assert number[2:-2] not in masked


@pytest.mark.parametrize("short", ["", "+", "+1", "+12"])
def test_mask_of_something_short_shows_nothing(short: str) -> None:
    assert not re.search(r"[0-9]", mask(short))


def test_provider_digits() -> None:
    assert provider_digits("+12065550100") == "12065550100"
