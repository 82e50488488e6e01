"""What ``identify`` returned, normalised once: the auth_id as a str, the number in E.164
(national formats read in the ``default_region`` setting), or None for the number when no
phone is on file. A value that is no identity is an :class:`IdentifyError`.
"""

from __future__ import annotations

import contextlib
import logging
import traceback

from .. import Identity
from ..engine import check_auth_id
from ..errors import InvalidAPIUsage
from ..phones import on_file
from .rules import WhenFailed

log = logging.getLogger("sms2fa")

IDENTITY_CACHE_SIZE = 10_000  # normalised identities remembered per process

# auth_id types whose str() is no stable id, or a trap (str(b"7") is "b'7'").
_NOT_AN_ID = (bool, float, bytes, bytearray, list, tuple, dict, set, frozenset)


class IdentifyError(Exception):
    """``identify`` returned something that is no identity; the message says what is wrong
    without repeating the value."""


def log_failure(error: Exception) -> None:
    """Log an ``identify`` that raised or returned a value that is no identity: the log
    names ``identify`` and where it failed, but leaves out the exception's message, which
    may hold personal data or secrets."""
    if isinstance(error, IdentifyError):
        log.error("sms2fa: %s", error)
    elif isinstance(error, WhenFailed) and error.__cause__ is not None:
        log.error(
            "sms2fa: %s %s (message left out); traceback:\n%s",
            error,
            type(error.__cause__).__name__,
            "".join(traceback.format_tb(error.__cause__.__traceback__)),
        )
    else:
        log.error(
            "sms2fa: identify() raised %s (message left out); traceback:\n%s",
            type(error).__name__,
            "".join(traceback.format_tb(error.__traceback__)),
        )


class Identities:
    """Normalises what ``identify`` returns, remembering the answers (bounded)."""

    def __init__(self, default_region: str) -> None:
        self.default_region = default_region
        self._cache: dict[object, tuple[Identity, type]] = {}

    def __call__(self, raw: object) -> Identity | None:
        """The normalised identity, or None for an anonymous request. A cache hit costs a
        dict lookup: this runs on every protected request."""
        if raw is None:
            return None
        try:
            found = self._cache.get(raw)
        except TypeError:  # an unhashable part: normalise says which
            found = None
        # The type check: 1 == True == 1.0 as dict keys, but str() tells them apart.
        if found is not None and found[1] is type(raw[0]):  # type: ignore[index]
            return found[0]
        identity = self.normalise(raw)
        assert isinstance(raw, tuple)  # normalise made sure
        if len(self._cache) >= IDENTITY_CACHE_SIZE:
            self._cache.clear()
        with contextlib.suppress(TypeError):  # an unhashable auth_id: fine, just not cached
            self._cache[raw] = (identity, type(raw[0]))
        return identity

    def normalise(self, raw: object) -> Identity:
        if not isinstance(raw, tuple) or len(raw) != 2:
            raise IdentifyError(
                "identify() must return Identity(auth_id, recipient) or None, "
                f"not {type(raw).__name__}"
            )
        auth_id, recipient = raw
        text = _auth_id_text(auth_id)
        if isinstance(recipient, int) and not isinstance(recipient, bool):
            recipient = str(recipient)
        if recipient is None or (isinstance(recipient, str) and not recipient.strip()):
            return Identity(text, None)
        if not isinstance(recipient, str):
            raise IdentifyError(
                f"identify() returned a recipient of type "
                f"{type(recipient).__name__}; give a str or None"
            )
        number = on_file(recipient, self.default_region)
        if number is None:
            log.warning(
                "sms2fa: identify() returned a recipient that is not a phone number "
                "(auth_id of %d characters); treated as no phone on file",
                len(text),
            )
        return Identity(text, number)


def _auth_id_text(auth_id: object) -> str:
    if auth_id is None or isinstance(auth_id, _NOT_AN_ID):
        raise IdentifyError(
            f"identify() returned an auth_id of type "
            f"{type(auth_id).__name__}; give a str, an int or a UUID"
        )
    text = auth_id if isinstance(auth_id, str) else str(auth_id)
    try:
        check_auth_id(text)
    except InvalidAPIUsage as exc:
        raise IdentifyError(
            f"identify() returned an auth_id that cannot be used "
            f"({len(text)} characters): {exc.message}"
        ) from None
    return text


__all__ = ["IdentifyError", "Identities"]
