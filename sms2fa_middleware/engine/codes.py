"""One-time codes: made by ``secrets``, kept as a keyed digest, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence


def generate_code(length: int) -> str:
    """A uniformly random string of exactly ``length`` digits (leading zeros kept)."""
    return str(secrets.randbelow(10**length)).zfill(length)


def digest(code: str, auth_id: str, key: str, binding: str | None = None) -> str:
    """HMAC-SHA256 of the code, bound to its auth_id, under ``key`` (hex).

    Binding the auth_id means a digest copied between rows is worthless, and the key means a
    stolen database does not give the codes away to a 10**n brute force. ``binding`` (the
    asking browser's challenge nonce) is folded in too: the code then verifies only with the
    same binding, with no column and no query of its own. Codes are digits, so an unbound
    message never equals a bound one.
    """
    message = auth_id.encode() + b"\x00" + code.encode()
    if binding is not None:
        message += b"\x00" + binding.encode()
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def matches(
    code: str, auth_id: str, stored: str, keys: Sequence[str], binding: str | None = None
) -> bool:
    """Whether ``code`` (with ``binding``) is the one behind ``stored``, trying every key of
    a rotation.

    Every key is tried even after a match, so the time taken does not tell which key (if any)
    matched.
    """
    found = False
    for key in keys:
        found |= hmac.compare_digest(digest(code, auth_id, key, binding), stored)
    return found


def is_code_shaped(value: object, max_length: int = 10) -> bool:
    """A code as a user may type it: ASCII digits only, no sign, no spaces, not too long."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= max_length
        and value.isascii()
        and value.isdigit()
    )
