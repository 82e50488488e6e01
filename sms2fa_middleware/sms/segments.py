"""How many SMS segments a message is billed as (3GPP TS 23.038 and 23.040).

A message in the GSM 7-bit alphabet takes 160 septets in one segment, 153 a segment when
split (the rest holds the concatenation header); a character of the extension table (``€``,
``[``, ``{``, ``~``, ...) takes two septets, and a split never separates them. Any other
character sends the whole message as UCS-2: 70 UTF-16 code units in one segment, 67 a segment
when split; a character outside the Basic Multilingual Plane (most emoji) takes two units,
kept together.
"""

from __future__ import annotations

_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENSION = frozenset("\f^{}\\[~]|€")


def segments(body: str) -> int:
    """How many SMS segments ``body`` needs."""
    if all(c in _GSM_BASIC or c in _GSM_EXTENSION for c in body):
        units = [2 if c in _GSM_EXTENSION else 1 for c in body]
        return _packed(units, single=160, multi=153)
    return _packed([2 if ord(c) > 0xFFFF else 1 for c in body], single=70, multi=67)


def _packed(units: list[int], *, single: int, multi: int) -> int:
    """Segments for characters of these sizes: one if all fit in ``single``, else filled
    ``multi`` at a time without splitting a character."""
    if sum(units) <= single:
        return 1
    count, used = 1, 0
    for size in units:
        if used + size > multi:
            count, used = count + 1, 0
        used += size
    return count
