"""The Store's recovery codes: a set of keyed digests per auth_id, each usable once.

Replacing a set is one transaction (delete the old, insert the new); using a code is one
conditional DELETE whose row count decides, so two workers given the same code never both
succeed. A cold path: SQLAlchemy as usual.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import Connection

from .backend import Backend
from .schema import recovery_codes


class RecoveryCodes:
    """Recovery-code operations, mixed into :class:`~.core.Store`."""

    backend: Backend

    def put_recovery_codes(self, auth_id: str, digests: Sequence[str], now: datetime) -> None:
        """Replace ``auth_id``'s recovery codes with ``digests`` (the old set stops working
        in the same transaction)."""
        with self.backend.sa_transaction() as conn:
            conn.execute(delete(recovery_codes).where(recovery_codes.c.auth_id == auth_id))
            if digests:
                conn.execute(
                    insert(recovery_codes),
                    [{"auth_id": auth_id, "digest": d, "created_at": now} for d in digests],
                )

    def use_recovery_code(self, auth_id: str, digests: Sequence[str]) -> bool:
        """Delete the code behind one of ``digests`` (one per key of a rotation); True if
        this call deleted it -- exactly one of parallel uses of one code does."""

        def use(conn: Connection) -> bool:
            done = conn.execute(
                delete(recovery_codes).where(
                    recovery_codes.c.auth_id == auth_id, recovery_codes.c.digest.in_(digests)
                )
            )
            return bool(done.rowcount >= 1)

        with self.backend.sa_transaction() as conn:
            return use(conn)

    def count_recovery_codes(self, auth_id: str) -> int:
        """How many unused recovery codes ``auth_id`` has."""
        stmt = (
            select(func.count())
            .select_from(recovery_codes)
            .where(recovery_codes.c.auth_id == auth_id)
        )
        with self.backend.sa_read() as conn:
            return int(conn.execute(stmt).scalar_one())

    def delete_recovery_codes(self, auth_id: str) -> int:
        """Drop ``auth_id``'s recovery codes; how many went."""
        with self.backend.sa_transaction() as conn:
            done = conn.execute(delete(recovery_codes).where(recovery_codes.c.auth_id == auth_id))
            return int(done.rowcount)


__all__ = ["RecoveryCodes"]
