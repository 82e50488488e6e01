"""The tables: codes, fixed-window counters, revocations; timezone-aware UTC on every backend."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import Column, DateTime, Dialect, Integer, MetaData, String, Table
from sqlalchemy.types import TypeDecorator

NEVER = datetime(9999, 1, 1, tzinfo=timezone.utc)  # later than any code's expiry


def utcnow() -> datetime:
    """Now, timezone-aware UTC (what every store method expects)."""
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out, on every backend (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use timezone-aware UTC")
        value = value.astimezone(timezone.utc)
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


metadata = MetaData()

codes = Table(
    "sms2fa_codes",
    metadata,
    Column("auth_id", String(120), primary_key=True),
    Column("recipient", String(16), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("attempts_left", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False, index=True),
    # Rows are written only once the provider accepted the SMS: a send that failed, or a
    # worker killed mid-send, never leaves a code that can be guessed at.
    Column("message_id", String(64)),
)

# Fixed-window counters: budgets, cooldowns and the failed-check cap, shared by every process.
counters = Table(
    "sms2fa_counters",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("count", Integer, nullable=False),
    Column("reset_at", UTCDateTime, nullable=False, index=True),
)

# Recovery codes, a set per auth_id: keyed digests only, each row deleted when used. A table
# of its own, so an existing database gets it from create_schema (create_all, checkfirst).
recovery_codes = Table(
    "sms2fa_recovery_codes",
    metadata,
    Column("auth_id", String(120), primary_key=True),
    Column("digest", String(64), primary_key=True),
    Column("created_at", UTCDateTime, nullable=False),
)

# Trusted browsers ("trust this browser for N days"): one row per browser, so a user can see
# and revoke them; the browser's signed cookie names its row. A table of its own, so an
# existing database gets it from create_schema (create_all, checkfirst).
trusted_browsers = Table(
    "sms2fa_trusted_browsers",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("auth_id", String(120), nullable=False, index=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False, index=True),
    Column("last_used", UTCDateTime, nullable=False),
    Column("user_agent", String(200), nullable=False),
    Column("network", String(64), nullable=False),  # coarse: an IPv4 /24 or an IPv6 /48
)

revocations = Table(
    "sms2fa_revocations",
    metadata,
    Column("auth_id", String(120), primary_key=True),
    Column("revoked_at", UTCDateTime, nullable=False, index=True),
)


@dataclass(frozen=True)
class TrustedBrowserRow:
    """A trusted browser as stored (no secret in it: its id is only half of its cookie)."""

    id: str
    auth_id: str
    created_at: datetime
    expires_at: datetime
    last_used: datetime
    user_agent: str
    network: str


@dataclass(frozen=True)
class CodeRow:
    """A pending code as stored (its digest, never the code)."""

    auth_id: str
    recipient: str
    digest: str
    attempts_left: int
    expires_at: datetime
