"""The verification policy as plain values: budgets, counter keys, locks, outcomes, the clock.

Pure: nothing here touches a database, a network or the real time (the clock is injected),
so every rule can be tested in microseconds. The engine (:mod:`.engine`) asks this module
what to spend, what a check's outcome means and how long to lock, and does the I/O itself.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import NamedTuple, Protocol

from .addresses import address_key
from .errors import ConfigurationError, InvalidAPIUsage
from .settings import Settings, check_template
from .sms import segments

MAX_AUTH_ID_LENGTH = 120
#: Revocations must outlive every session they could end: a day beyond the longest.
REVOCATION_RETENTION = timedelta(days=31)
#: The store's key of one session's revocation starts with this. A control character: no
#: auth_id (printable, see :func:`check_auth_id`) can start like it, so every auth_id can be
#: revoked and no user's revocation is read as a session's.
SESSION_REVOCATION = "\x1fsession:"


class Clock(Protocol):
    """Where the engine reads the time: ``now()`` is timezone-aware UTC."""

    def now(self) -> datetime: ...


class SystemClock:
    """The real time."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class Budget(NamedTuple):
    """One counter a send spends from: refused once its count passes ``limit``."""

    name: str  # what RateLimited.budget reports: resend_cooldown, recipient, ...
    key: str  # the counter's key in the store
    limit: int
    window: int  # seconds
    amount: int  # what one send costs: 1, or the message's billed segments
    cooldown: bool = False  # given back by deleting it (ask again at once), not subtracting


@dataclass(frozen=True)
class Keys:
    """The store's keys for one namespace (``scope`` "" is the default one)."""

    scope: str = ""

    def auth(self, auth_id: str) -> str:
        """What the store knows ``auth_id`` by: itself, or in a namespace a digest of it
        (namespace + digest fit the 120-character column)."""
        if not self.scope:
            return auth_id
        return self.scope + hashlib.sha256(auth_id.encode()).hexdigest()

    @staticmethod
    def session(session_id: str) -> str:
        """What the store knows one verified session's revocation by."""
        return SESSION_REVOCATION + session_id

    @staticmethod
    def cooldown(key: str) -> str:
        return f"cooldown:{key}"

    @staticmethod
    def failed(key: str) -> str:
        return f"failed:{key}"

    @staticmethod
    def locks(key: str) -> str:
        return f"locks:{key}"

    def address_checks(self, client_address: str) -> str:
        return f"{self.scope}checks:{address_key(client_address)}"

    def failed_auth(self, client_address: str) -> str:
        """Wrong API tokens from one client address."""
        return f"{self.scope}unauthorized:{address_key(client_address)}"


def send_budgets(
    settings: Settings,
    keys: Keys,
    key: str,
    number: str,
    client_address: str | None,
    parts: int = 1,
) -> list[Budget]:
    """Every budget a send spends. ``parts``: the segments the message is billed as; the
    per-auth_id cooldown counts sends, the others segments."""
    s, scope = settings, keys.scope
    budgets: list[Budget] = []
    if s.resend_cooldown:
        budgets.append(
            Budget("resend_cooldown", keys.cooldown(key), 1, s.resend_cooldown, 1, cooldown=True)
        )
    if s.recipient_send_limit:
        budgets.append(
            Budget(
                "recipient",
                f"{scope}recipient:{number}",
                s.recipient_send_limit,
                s.recipient_send_window,
                parts,
            )
        )
    if s.address_send_limit and client_address is not None:
        budgets.append(
            Budget(
                "client_address",
                f"{scope}address:{address_key(client_address)}",
                s.address_send_limit,
                s.address_send_window,
                parts,
            )
        )
    if s.global_send_limit:
        budgets.append(Budget("global", f"{scope}global", s.global_send_limit, 3600, parts))
    return budgets


def lock_seconds(settings: Settings, locks: int) -> int:
    """How long the ``locks``-th lock lasts: each twice the one before, from lockout_seconds
    up to lockout_max_seconds."""
    doubled: int = settings.lockout_seconds * 2 ** min(max(locks, 1) - 1, 20)
    return min(doubled, settings.lockout_max_seconds)


def retry_after(reset_at: datetime, now: datetime) -> int:
    """Whole seconds to tell a refused caller to wait (never 0)."""
    return int((reset_at - now).total_seconds()) + 1


def seconds_until(reset_at: datetime | None, now: datetime) -> int:
    """Whole seconds until ``reset_at``, rounded up; 0 if none or past."""
    if reset_at is None:
        return 0
    return max(0, int((reset_at - now).total_seconds() + 0.999))


class Outcome(enum.Enum):
    """What one check means, from what the store handed back."""

    LOCKED = "locked"  # over the failed-check cap: nothing was evaluated
    NOTHING = "unknown"  # no live code to guess at (unknown, expired or used up)
    RIGHT = "right"  # the code matched: consume it
    WRONG = "wrong"  # a wrong guess at a live code


def judge(failures: int, limit: int, found: bool, right: bool) -> Outcome:
    """The outcome of a check that took failure slot ``failures`` of ``limit``."""
    if failures > limit:
        return Outcome.LOCKED
    if not found:
        return Outcome.NOTHING
    return Outcome.RIGHT if right else Outcome.WRONG


def live(attempts_left: int, expires_at: datetime, now: datetime) -> bool:
    """Whether a stored code can still be guessed at."""
    return attempts_left > 0 and expires_at > now


def check_auth_id(auth_id: object) -> str:
    """The auth_id if it is a string of 1..120 characters, else InvalidAPIUsage."""
    if not isinstance(auth_id, str) or not 0 < len(auth_id) <= MAX_AUTH_ID_LENGTH:
        raise InvalidAPIUsage(f"'auth_id' must be a string of 1 to {MAX_AUTH_ID_LENGTH} characters")
    if not auth_id.isprintable():
        raise InvalidAPIUsage("'auth_id' must not contain control characters")
    return auth_id


def option(name: str, value: object, default: int, low: int, high: int) -> int:
    """A per-request integer option: ``default`` if None, else within ``low..high``."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidAPIUsage(f"'{name}' must be an integer from {low} to {high}")
    return value


def custom_template(settings: Settings, message: object, length: int) -> str:
    """A per-request message, if enabled, valid, and one SMS segment with its code."""
    if not settings.allow_custom_message:
        raise InvalidAPIUsage(
            "'message' is turned off here; the service's own message is sent "
            "(operators enable it with SMS2FA_ALLOW_CUSTOM_MESSAGE)"
        )
    if not isinstance(message, str) or not 0 < len(message) <= 1000:
        raise InvalidAPIUsage("'message' must be a string of 1 to 1000 characters")
    try:
        template = check_template(message, "'message'")
    except ConfigurationError as exc:
        raise InvalidAPIUsage(str(exc)) from None
    if segments(template.format(code="0" * length, org_name=settings.org_name)) > 1:
        raise InvalidAPIUsage(
            "'message' must fit one SMS segment with its code filled in: 160 characters, "
            "or 70 with any character outside ASCII"
        )
    return template
