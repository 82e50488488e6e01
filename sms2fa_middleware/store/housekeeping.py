"""The cold paths of the Store: schema, revocations, purging, health -- SQLAlchemy as usual."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import delete, func, literal, select
from sqlalchemy.engine import Connection

from .backend import Backend, RevocationSignal
from .schema import codes, counters, metadata, revocations, trusted_browsers

T = TypeVar("T")


class Housekeeping:
    """What runs rarely: on start-up, on revocation, once a minute, from tools."""

    backend: Backend

    def create_schema(self) -> None:
        """Create the tables if missing; safe when several workers start at once."""
        with self.backend.sa_transaction() as conn:
            self.backend.lock_schema(conn)  # SQLite: the IMMEDIATE transaction already does
            metadata.create_all(conn, checkfirst=True)

    def dispose(self) -> None:
        """Close the pooled connections, and this thread's own (others close as threads end)."""
        self.backend.dispose()

    def revoke(self, auth_id: str, now: datetime) -> None:
        """Record that every session of ``auth_id`` issued until ``now`` is void, and tell
        every process at once (:attr:`revocation_signal`)."""
        stmt = self.backend.upsert(revocations).values(auth_id=auth_id, revoked_at=now)
        signal = self.backend.signal

        def write(conn: Connection) -> None:
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[revocations.c.auth_id], set_={"revoked_at": now}
                )
            )
            signal.announce(conn)

        self.run(write)
        signal.announced()

    @property
    def revocation_signal(self) -> RevocationSignal:
        """Its ``token()`` changes after every revocation (on this host, or on every host
        with PostgreSQL): while it holds still, no revocation needs reading. No I/O."""
        return self.backend.signal

    def revocations_since(self, since: datetime) -> list[tuple[str, datetime]]:
        """(auth_id, revoked_at) of every revocation after ``since``."""
        stmt = select(revocations.c.auth_id, revocations.c.revoked_at).where(
            revocations.c.revoked_at > since
        )
        with self.backend.sa_read() as conn:
            return [(r.auth_id, r.revoked_at) for r in conn.execute(stmt)]

    def purge(self, now: datetime, revocations_before: datetime) -> int:
        """Delete expired codes, counters and trusted browsers, and revocations no session
        can outlive."""

        def purge(conn: Connection) -> int:
            return sum(
                conn.execute(stmt).rowcount
                for stmt in (
                    delete(codes).where(codes.c.expires_at <= now),
                    delete(counters).where(counters.c.reset_at <= now),
                    delete(revocations).where(revocations.c.revoked_at <= revocations_before),
                    delete(trusted_browsers).where(trusted_browsers.c.expires_at <= now),
                )
            )

        return self.run(purge)

    def count_codes(self) -> int:
        """How many codes are stored, live or not."""
        return int(self._read_one(select(func.count()).select_from(codes)))

    def ping(self) -> None:
        """One trivial read: StoreUnavailable if the database cannot answer (health checks)."""
        self._read_one(select(literal(1)))

    def _read_one(self, stmt: Any) -> Any:
        with self.backend.sa_read() as conn:
            return conn.execute(stmt).scalar_one()

    def run(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in one transaction (for tools and tests)."""
        with self.backend.sa_transaction() as conn:
            return fn(conn)
