"""The Store: the domain's atomic operations (codes, counters, revocations) over a backend.

Every decision that guards a secret is one conditional statement whose returned row or row
count decides -- never read, compare in Python, then write -- so parallel requests in any
number of processes cannot race it. SQLite has no ``SELECT ... FOR UPDATE``; a conditional
``UPDATE ... RETURNING`` needs none.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from datetime import datetime

from sqlalchemy.engine import Engine, make_url

from .backend import Backend
from .housekeeping import Housekeeping
from .postgres import PostgresBackend
from .recovery import RecoveryCodes
from .schema import CodeRow
from .sqlite import SQLiteBackend
from .statements import (
    Attempt,
    Cursor,
    attempt,
    attempt_params,
    code_params,
    counter_params,
)
from .trusted import TrustedBrowsers


def make_backend(database_url: str | Engine) -> Backend:
    """The backend for a SQLAlchemy URL (or a ready Engine): SQLite or PostgreSQL."""
    given, url = (
        (database_url, database_url.url)
        if isinstance(database_url, Engine)
        else (None, make_url(database_url))
    )
    if url.get_backend_name() == "sqlite":
        return SQLiteBackend(url, given)
    return PostgresBackend(url, given)


class Store(RecoveryCodes, TrustedBrowsers, Housekeeping):
    """The tables and their atomic operations. One instance per process; thread-safe.

    Creating one opens no connection. Operations run in a transaction of their own unless
    given one as ``tx`` (from :meth:`transaction`), so that several of them commit together.
    """

    def __init__(self, database_url: str | Engine) -> None:
        self.backend = make_backend(database_url)
        self.engine = self.backend.engine
        self.reader = self.backend.reader
        self.dialect = self.engine.dialect.name  # for tools; callers use the capabilities
        self._sql = self.backend.sql

    @property
    def blocking_is_cheap(self) -> bool:
        """Whether an operation takes microseconds on this host, so that running it on an
        event loop is cheaper than a thread hop (SQLite). See :class:`.backend.Backend`."""
        return self.backend.blocking_is_cheap

    def transaction(self) -> AbstractContextManager[Cursor]:
        """One transaction for several operations: pass it to them as ``tx=``."""
        return self.backend.transaction()

    def _cursor(self, tx: Cursor | None, write: bool = True) -> AbstractContextManager[Cursor]:
        """``tx`` if given (part of a caller's transaction), else a statement of its own."""
        return nullcontext(tx) if tx is not None else self.backend.one(write)

    # -- codes ----------------------------------------------------------------------------

    def put_code(self, row: CodeRow, now: datetime, message_id: str | None = None) -> None:
        """Store a code the provider accepted, replacing any code pending for its auth_id."""
        with self.backend.one(write=True) as cursor:
            self._sql.put_code.execute(cursor, code_params(row, now, message_id))

    def delete_code(self, auth_id: str, digest: str | None = None) -> bool:
        """Delete the code (only if it is still the one with ``digest``, when given)."""
        with self.backend.one(write=True) as cursor:
            if digest is None:
                done = self._sql.delete_code.execute(cursor, {"b_auth_id": auth_id})
            else:
                done = self._sql.delete_this_code.execute(
                    cursor, {"b_auth_id": auth_id, "b_digest": digest}
                )
            return done.rowcount == 1  # type: ignore[no-any-return]

    def take_attempt(
        self,
        auth_id: str,
        failure_key: str,
        window: int,
        limit: int,
        now: datetime,
        pad: bool = False,
    ) -> Attempt:
        """Take a failure slot and, if it is within ``limit``, one attempt of the live code.

        Returns (failures so far, when they reset, the code row or None). Atomic: parallel
        guesses in any number of processes never evaluate more than ``limit`` failures, nor
        more guesses than the code has attempts. A slot that found no attempt to take
        (nothing to guess at) is given back.

        ``pad``: run the same statements whatever the outcome (an unknown, a locked and a
        live auth_id then cost the same), giving back nothing where nothing is owed.
        """
        params = attempt_params(auth_id, failure_key, window, limit, now)
        return attempt(auth_id, self.backend.take_attempt(params, limit, pad))

    def attempt_if_pending(
        self, auth_id: str, failure_key: str, window: int, limit: int, now: datetime
    ) -> Attempt | None:
        """None if ``auth_id`` has no code at all (nothing is taken or written); else
        :meth:`take_attempt` (PostgreSQL: both in one round trip)."""
        params = attempt_params(auth_id, failure_key, window, limit, now)
        found = self.backend.attempt_if_pending(params, limit)
        return None if found is None else attempt(auth_id, found)

    def get_code(self, auth_id: str) -> CodeRow | None:
        """The stored code of ``auth_id``, live or not."""
        with self.backend.one(write=False) as cursor:
            found = self._sql.get_code.first(cursor, {"b_auth_id": auth_id})
        return None if found is None else CodeRow(auth_id, *found)

    # -- counters -------------------------------------------------------------------------

    def hit(
        self, key: str, window: int, now: datetime, amount: int = 1, tx: Cursor | None = None
    ) -> tuple[int, datetime]:
        """Add ``amount`` to a fixed-window counter; returns (count so far, window end).

        One upsert: a counter whose window has passed starts again from ``amount``.
        """
        params = counter_params(key, window, now, amount)
        with self._cursor(tx) as cursor:
            found = self._sql.hit.first(cursor, params)
        assert found is not None  # an upsert with RETURNING always returns its row
        return int(found[0]), found[1]

    def peek(
        self, key: str, now: datetime, tx: Cursor | None = None
    ) -> tuple[int, datetime | None]:
        """The live count of a counter (0 if absent or expired), without changing it."""
        with self._cursor(tx, write=False) as cursor:
            found = self._sql.peek.first(cursor, {"b_key": key, "b_now": now})
        return (0, None) if found is None else (int(found[0]), found[1])

    def reset(self, key: str, also: str | None = None, tx: Cursor | None = None) -> None:
        """Delete counter ``key`` (and ``also``, in the same statement)."""
        with self._cursor(tx) as cursor:
            if also is None:
                self._sql.reset.execute(cursor, {"b_key": key})
            else:
                self._sql.reset_two.execute(cursor, {"b_key": key, "b_key2": also})

    def extend(self, key: str, until: datetime, tx: Cursor | None = None) -> None:
        """Make counter ``key`` last until ``until`` (a lock growing longer)."""
        with self._cursor(tx) as cursor:
            self._sql.extend.execute(cursor, {"b_key": key, "b_until": until})
