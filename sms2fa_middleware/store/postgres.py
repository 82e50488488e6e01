"""PostgreSQL (psycopg 3): a pool of kept connections, and a guess in one round trip.

For several hosts. The pool keeps 16 connections per process and never opens overflow ones:
a new PostgreSQL connection forks a server process, and a burst of checks that opened and
closed them ruined tail latency (figures: bench/RESULTS.md). A request that finds all 16
busy waits up to 5 s, then gets a 503. No pre-ping (a round trip per checkout): after a server
restart the first disconnect drops the whole pool, and that one request answers 503.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import Integer, bindparam, create_engine, func, select, true
from sqlalchemy.dialects.postgresql import insert as upsert
from sqlalchemy.engine import URL, Connection, Engine

from .backend import Backend, Found, RevocationSignal, log
from .postgres_common import (
    CONNECT_TIMEOUT,
    MISSING_TABLES,
    POOL_SIZE,
    POOL_TIMEOUT,
    settle_attempt,
)
from .statements import Cursor, Prepared, hit_statement, reserve_attempt_statement

if TYPE_CHECKING:
    from .postgres_aio import AsyncPostgresStore

SCHEMA_LOCK = 0x5A52FA  # the advisory lock concurrent create_schema() calls queue for
CHANNEL = "sms2fa_revocations"  # what a revocation NOTIFYs (in its transaction)
RELISTEN = 1.0  # seconds: before a lost listener reconnects; how soon close() stops it
_PROCESS = [os.getpid()]  # this process's id, kept without a system call per request
os.register_at_fork(after_in_child=lambda: _PROCESS.__setitem__(0, os.getpid()))


def postgres_engine(url: URL) -> Engine:
    """A pool on psycopg 3 (a plain ``postgresql://`` or psycopg2 URL is switched to it)."""
    if url.get_driver_name() in ("", "psycopg2"):
        url = url.set(drivername="postgresql+psycopg")
    # hide_parameters: SQL logs and errors must never show numbers, digests or auth_ids.
    # connect_timeout: a server that drops packets must cost a 503, not a hung worker.
    return create_engine(
        url,
        pool_size=POOL_SIZE,
        max_overflow=0,
        pool_timeout=POOL_TIMEOUT,
        hide_parameters=True,
        connect_args={"connect_timeout": CONNECT_TIMEOUT},
    )


def take_attempt_statement(upsert: Any, if_pending: bool = False) -> Any:
    """The failure slot and the attempt in one statement (data-modifying CTEs).

    The upsert locks the counter row; the UPDATE sees the count it returned, and takes an
    attempt only within ``b_limit``. ``if_pending``: take the slot only if the auth_id has a
    code, live or not; with none, the statement writes nothing and returns no row.
    """
    slot = hit_statement(upsert, if_pending=if_pending).cte("failure_slot")
    attempt = (
        reserve_attempt_statement()
        .where(select(slot.c.count).scalar_subquery() <= bindparam("b_limit", type_=Integer))
        .cte("attempt")
    )
    return select(
        slot.c.count,
        slot.c.reset_at,
        attempt.c.recipient,
        attempt.c.digest,
        attempt.c.attempts_left,
        attempt.c.expires_at,
    ).select_from(slot.outerjoin(attempt, true()))


class NotifyListener(RevocationSignal):
    """PostgreSQL ``LISTEN/NOTIFY``: a thread per process, on a connection of its own (not
    from the pool), counts the revocations the server announces; the request path reads the
    count, an attribute. A revocation's ``pg_notify`` is delivered when it commits, to every
    listening process on every host; the count also goes up whenever the thread (re)connects,
    so what was announced while it was away is read then. The thread starts on first use in
    each process (a forked worker starts its own)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._count = 0  # written by the listener thread only
        self._pid = 0  # the process whose thread listens (0: none yet, or closed)
        self._generation = 0  # a thread of an older generation stops (close())
        self._lock = threading.Lock()

    def token(self) -> object:
        if self._pid != _PROCESS[0]:
            self._start()
        return self._count

    def announce(self, conn: Connection) -> None:
        conn.execute(select(func.pg_notify(CHANNEL, "")))

    def close(self) -> None:
        """Stop listening (within a second); the next :meth:`token` starts again."""
        with self._lock:
            self._generation += 1
            self._pid = 0

    def _start(self) -> None:
        with self._lock:
            if self._pid == _PROCESS[0]:
                return
            self._pid = _PROCESS[0]
            if self._engine.dialect.driver != "psycopg":  # psycopg2 given: no notifies()
                log.warning(
                    "sms2fa: revocations reach other workers within "
                    "revocation_interval (LISTEN needs psycopg 3)"
                )
                return
            self._generation += 1
            threading.Thread(
                target=self._listen,
                args=(self._generation,),
                name="sms2fa-revocations",
                daemon=True,
            ).start()

    def _listen(self, generation: int) -> None:
        while generation == self._generation:
            driver = None
            try:
                pooled = self._engine.raw_connection()
                driver = pooled.driver_connection
                pooled.detach()  # ours for good: the pool neither counts nor recycles it
                assert driver is not None
                driver.autocommit = True
                driver.execute(f"LISTEN {CHANNEL}")
                self._count += 1  # listening now: read what may have come before
                while generation == self._generation:
                    for _ in driver.notifies(timeout=RELISTEN):  # then look at generation
                        self._count += 1
            except Exception as exc:  # the server went away: sessions poll until back
                log.error("sms2fa: revocation listener lost (%s); retrying", type(exc).__name__)
                time.sleep(RELISTEN)
            finally:
                if driver is not None:
                    driver.close()  # psycopg: safe on a broken connection too


class PostgresBackend(Backend):
    """PostgreSQL: one pool for reads and writes; single statements run in autocommit."""

    def __init__(self, url: URL, engine: Engine | None = None) -> None:
        engine = engine if engine is not None else postgres_engine(url)
        # psycopg begins a transaction with the first statement: no BEGIN of ours.
        super().__init__(engine, engine, upsert, None, None)
        self.take_statement = Prepared(take_attempt_statement(upsert), engine.dialect)
        self.take_if_pending = Prepared(take_attempt_statement(upsert, True), engine.dialect)
        self.signal = NotifyListener(engine)
        self._async: AsyncPostgresStore | None = None

    def async_store(self) -> AsyncPostgresStore:
        """The same operations on the event loop (made on first use)."""
        if self._async is None:
            from .postgres_aio import AsyncPostgresStore

            self._async = AsyncPostgresStore(
                self.sql, self.take_statement, self.take_if_pending, self.engine.url
            )
            # Dropped without dispose(): its connections close with it (it holds no
            # reference back to this backend, so the finalizer does not keep it alive).
            weakref.finalize(self, self._async.dispose)
        return self._async

    def dispose(self) -> None:
        if self._async is not None:
            self._async.dispose()
        super().dispose()

    @contextmanager
    def one(self, write: bool) -> Iterator[Cursor]:
        # Autocommit: no BEGIN/COMMIT round trips around a statement that is atomic alone.
        with self.connection(self.engine) as raw:
            driver = raw.driver_connection
            driver.autocommit = True
            try:
                yield raw.cursor()
            finally:
                try:
                    driver.autocommit = False
                except self._driver.Error:  # broken: never hand it out again
                    raw.invalidate()

    def take_attempt(
        self, params: dict[str, Any], limit: int, pad: bool
    ) -> tuple[int, Any, Found | None]:
        """One round trip instead of BEGIN, two statements and COMMIT."""
        with self.one(write=True) as cursor:
            found = self.take_statement.first(cursor, params)
        assert found is not None  # the upsert always returns its row
        return self._settle(params, found, limit, pad)

    def attempt_if_pending(
        self, params: dict[str, Any], limit: int
    ) -> tuple[int, Any, Found | None] | None:
        """One round trip: no row when there is no code (and then nothing was written)."""
        with self.one(write=True) as cursor:
            found = self.take_if_pending.first(cursor, params)
        return None if found is None else self._settle(params, found, limit, False)

    def _settle(
        self, params: dict[str, Any], found: Found, limit: int, pad: bool
    ) -> tuple[int, Any, Found | None]:
        failures, ends, taken, owed = settle_attempt(params, found, limit, pad)
        if owed is not None:
            with self.one(write=True) as cursor:
                self.sql.hit.first(cursor, owed)
        return failures, ends, taken

    def unavailable(self, exc: BaseException) -> bool:
        if isinstance(exc, self._driver.errors.UndefinedTable):
            log.error(MISSING_TABLES)
            return True
        return super().unavailable(exc)

    def lock_schema(self, conn: Connection) -> None:
        # The second of two concurrent create_all()s waits, then finds the tables.
        conn.execute(select(func.pg_advisory_xact_lock(SCHEMA_LOCK)))

    def read_engine(self) -> Engine:
        # One pool; a read switches its connection to autocommit.
        return self.engine.execution_options(isolation_level="AUTOCOMMIT")
