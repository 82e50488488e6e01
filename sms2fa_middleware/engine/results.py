"""What the engine hands back: plain values, never a secret."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Started:
    """A verification whose code was sent."""

    auth_id: str
    recipient: str  # E.164
    expires_at: datetime
    attempts_left: int
    message_id: str | None = None


@dataclass(frozen=True)
class Verified:
    """A code that was right: it is consumed now."""

    auth_id: str
    recipient: str  # E.164


@dataclass(frozen=True)
class Pending:
    """A live code waiting to be checked (what the challenge page shows)."""

    auth_id: str
    recipient: str
    expires_at: datetime
    attempts_left: int


@dataclass(frozen=True)
class SendWait:
    """A send would be refused now: by ``budget`` (a :class:`~..errors.RateLimited`'s
    budget name, or ``"failed_checks"`` for a lock), for ``retry_after`` seconds -- as long
    as the longest refusing budget lasts, counted as the 429's ``retry_after`` is."""

    budget: str
    retry_after: int
