"""Billed SMS segments (3GPP TS 23.038 / 23.040): budgets and the one-segment limit on a
per-request message count these, so an undercount is money and an open door."""

from __future__ import annotations

import pytest

from sms2fa_middleware.sms import segments

BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("", 1),
        ("x" * 160, 1),
        ("x" * 161, 2),
        ("x" * 306, 2),  # 2 x 153
        ("x" * 307, 3),
        ("é" * 160, 1),  # in the GSM alphabet, though not ASCII
        (BASIC + BASIC[:33], 1),  # the whole basic table: 127 + 33 = 160 septets
        ("€" * 80, 1),  # extension characters take two septets
        ("€" * 81, 2),
        ("x" * 159 + "[", 2),  # 161 septets
        ("x" * 152 + "~" + "x" * 152, 3),  # 306 septets, but the pair is not split: 152|153|1
        ("x" * 152 + "~" + "x" * 151, 2),  # 152 | 2+151
        ("`" + "x" * 69, 1),  # the backtick is not in the GSM alphabet: UCS-2
        ("`" + "x" * 70, 2),
        ("ł" * 70, 1),
        ("ł" * 71, 2),
        ("ł" * 134, 2),  # 2 x 67
        ("ł" * 135, 3),
        ("😀" * 35, 1),  # outside the BMP: two UTF-16 units each
        ("😀" * 36, 2),
        ("ł" + "😀" * 33, 1),  # 67 units
        ("ł" * 66 + "😀" + "ł" * 66, 3),  # 134 units, but the pair is not split: 66 | 68 -> 3
        ("ł" * 66 + "😀" + "ł" * 65, 2),  # 66 | 2+65
    ],
)
def test_segments(body: str, expected: int) -> None:
    assert segments(body) == expected


def test_the_basic_table_has_127_characters_and_no_extension_overlap() -> None:
    assert len(set(BASIC)) == 127  # 128 codes, one of them the escape
    assert all(segments(c * 160) == 1 for c in BASIC)
    assert all(segments(c * 80) == 1 and segments(c * 81) == 2 for c in "\f^{}\\[~]|€")
