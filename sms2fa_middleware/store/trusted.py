"""The Store's trusted browsers: one row per browser a user chose to trust, each until its
``expires_at``. Looking one up (and noting its use) is one UPDATE whose row count decides, so
a row deleted by a revocation on another worker or host is never honoured after. A cold path
(once per new login of a trusted browser): SQLAlchemy as usual.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, insert, select, update

from .backend import Backend
from .schema import TrustedBrowserRow, trusted_browsers

T = trusted_browsers


class TrustedBrowsers:
    """Trusted-browser operations, mixed into :class:`~.core.Store`."""

    backend: Backend

    def add_trusted_browser(self, row: TrustedBrowserRow, now: datetime) -> None:
        """Record a trusted browser (and drop ``row.auth_id``'s expired ones meanwhile)."""
        with self.backend.sa_transaction() as conn:
            conn.execute(delete(T).where(T.c.auth_id == row.auth_id, T.c.expires_at <= now))
            conn.execute(
                insert(T).values(
                    id=row.id,
                    auth_id=row.auth_id,
                    created_at=row.created_at,
                    expires_at=row.expires_at,
                    last_used=row.last_used,
                    user_agent=row.user_agent,
                    network=row.network,
                )
            )

    def use_trusted_browser(self, auth_id: str, browser_id: str, now: datetime) -> bool:
        """Note a use of ``auth_id``'s trusted browser ``browser_id``; True if it is still
        trusted (its row exists and has not expired)."""
        stmt = (
            update(T)
            .where(T.c.id == browser_id, T.c.auth_id == auth_id, T.c.expires_at > now)
            .values(last_used=now)
        )
        with self.backend.sa_transaction() as conn:
            return bool(conn.execute(stmt).rowcount >= 1)

    def trusted_browsers(self, auth_id: str, now: datetime) -> list[TrustedBrowserRow]:
        """``auth_id``'s unexpired trusted browsers, the most recently trusted first."""
        stmt = (
            select(T)
            .where(T.c.auth_id == auth_id, T.c.expires_at > now)
            .order_by(T.c.created_at.desc(), T.c.id)
        )
        with self.backend.sa_read() as conn:
            return [
                TrustedBrowserRow(
                    r.id,
                    r.auth_id,
                    r.created_at,
                    r.expires_at,
                    r.last_used,
                    r.user_agent,
                    r.network,
                )
                for r in conn.execute(stmt)
            ]

    def delete_trusted_browser(self, auth_id: str, browser_id: str) -> bool:
        """Stop trusting one of ``auth_id``'s browsers; True if it was trusted."""
        with self.backend.sa_transaction() as conn:
            done = conn.execute(delete(T).where(T.c.auth_id == auth_id, T.c.id == browser_id))
            return bool(done.rowcount >= 1)

    def delete_trusted_browsers(self, auth_id: str) -> int:
        """Stop trusting every browser of ``auth_id``; how many were."""
        with self.backend.sa_transaction() as conn:
            return int(conn.execute(delete(T).where(T.c.auth_id == auth_id)).rowcount)


__all__ = ["TrustedBrowsers"]
