"""The small interface every database backend implements, and what they share.

A backend owns connections, transactions and the dialect's way of running the hot statements
(:mod:`.statements`); :class:`~sms2fa_middleware.store.Store` keeps the domain methods over
it. Callers ask a backend for capabilities (:attr:`Backend.blocking_is_cheap`), never for its
dialect's name. Every database failure leaves here as StoreUnavailable (a 503).
"""

from __future__ import annotations

import logging
import os
import weakref
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from ..errors import StoreUnavailable
from .schema import NEVER
from .statements import Cursor, Statements, Upsert

log = logging.getLogger("sms2fa")

Found = tuple[Any, ...]  # a row of a hot statement, converted to Python values


@contextmanager
def unavailable_on_failure() -> Iterator[None]:
    """Database failures become StoreUnavailable (a 503), with the cause logged."""
    try:
        yield
    except OperationalError as exc:
        log.error("sms2fa: database unavailable: %s", type(exc.orig).__name__)
        raise StoreUnavailable() from exc
    except PoolTimeout as exc:
        # Every pooled connection is busy (or hung on a dead server) for pool_timeout.
        log.error("sms2fa: database unavailable: no free connection in the pool")
        raise StoreUnavailable() from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise StoreUnavailable() from exc
        raise
    except OSError as exc:  # the SQLite lock file cannot be opened (a missing directory, say)
        log.error("sms2fa: database unavailable: %s", type(exc).__name__)
        raise StoreUnavailable() from exc


class RevocationSignal:
    """How every process learns at once that a revocation was made, with no query on the
    request path: :meth:`token` changes after each revocation that this signal reaches.

    This base never changes (a database in memory: one process; ``file:`` URIs): sessions
    then read revocations every ``revocation_interval``. SQLite on a file: a counter in shared
    memory (:class:`~.sqlite.SharedCounter`); PostgreSQL: ``LISTEN/NOTIFY``
    (:class:`~.postgres.NotifyListener`).
    """

    def token(self) -> object:
        """A value that differs after every revocation seen here. Cheap: no I/O."""
        return None

    def announce(self, conn: Connection) -> None:
        """In the revoking transaction (sent when it commits)."""

    def announced(self) -> None:
        """After the revoking transaction committed."""

    def close(self) -> None:
        """Release what it holds (on :meth:`Backend.dispose`); it may be used again."""


def _close_pools(pid: int, *engines: Engine) -> None:
    """Close the engines' pooled connections -- in the process that opened them only (a
    forked child must leave its parent's alone)."""
    if pid == os.getpid():
        for engine in engines:
            engine.dispose()


class Backend:
    """Connections and transactions on one database; subclasses: SQLite, PostgreSQL."""

    #: Tells every process of a revocation at once (see :class:`RevocationSignal`).
    signal: RevocationSignal = RevocationSignal()

    #: Whether a statement is local and takes microseconds, so that running it right on an
    #: event loop costs less than handing it to a thread (SQLite: a file on this host, whose
    #: writes queue for one lock anyway). False: round trips to a server, keep them off loops.
    blocking_is_cheap = False

    def __init__(
        self,
        engine: Engine,
        reader: Engine,
        upsert: Upsert,
        writer_lock: AbstractContextManager[Any] | None,
        begin: str | None,
    ) -> None:
        self.engine = engine
        self.reader = reader  # the engine reads go to (the writing one unless SQLite's own)
        self.upsert = upsert
        self.sql = Statements(upsert, engine.dialect)
        self._driver = engine.dialect.loaded_dbapi
        self._writer_lock = writer_lock
        self._begin = begin  # what opens a write transaction, if the driver does not
        # A store dropped without dispose() (an app rebuilt in tests, say) closes its pooled
        # connections when it goes, not whenever the garbage collector reaches them.
        weakref.finalize(self, _close_pools, os.getpid(), engine, reader)

    def one(self, write: bool) -> AbstractContextManager[Cursor]:
        """A cursor for one statement outside any transaction: atomic alone, one round trip."""
        raise NotImplementedError

    def async_store(self) -> Any:
        """The hot operations on the event loop (:class:`~.aio.AwaitableStore`), if this
        backend has them; None: the engine runs the sync ones (inline where cheap)."""
        return None

    def connection(self, engine: Engine) -> AbstractContextManager[Any]:
        """A DBAPI connection to ``engine``; a failure becomes StoreUnavailable."""
        return self.pooled_connection(engine)

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        """A write transaction (serialised across processes where writers must queue)."""
        # The lock covers the transaction only, not the pool checkout and return around it:
        # every microsecond inside it is a microsecond every other writer waits.
        with self.connection(self.engine) as raw, self._writer_lock or nullcontext():
            cursor = raw.cursor()
            if self._begin:
                cursor.execute(self._begin)
            try:
                yield cursor
            except BaseException:
                raw.rollback()
                raise
            raw.commit()

    def take_attempt(
        self, params: dict[str, Any], limit: int, pad: bool
    ) -> tuple[int, Any, Found | None]:
        """A failure slot and, within ``limit``, an attempt: (failures, reset_at, row found).

        One transaction: the slot first, then the attempt; a slot that found nothing to take
        is given back. ``pad``: the same statements whatever the outcome.
        """
        refund = params | {"count": -1, "b_amount": -1}
        taken = None
        with self.transaction() as cursor:
            found = self.sql.hit.first(cursor, params)
            assert found is not None  # an upsert with RETURNING always returns its row
            failures, ends = found
            if failures <= limit or pad:
                # Locked: the same lookup, with a moment no code outlives, takes nothing.
                taken = self.sql.reserve_attempt.first(
                    cursor, params if failures <= limit else params | {"b_now": NEVER}
                )
                if taken is None and failures <= limit:
                    self.sql.hit.first(cursor, refund)
                elif pad:
                    self.sql.hit.first(cursor, params | {"count": 0, "b_amount": 0})
        return int(failures), ends, taken

    def attempt_if_pending(
        self, params: dict[str, Any], limit: int
    ) -> tuple[int, Any, Found | None] | None:
        """None if ``b_auth_id`` has no code at all, else :meth:`take_attempt` (no pad).

        Here a read first, without the write lock: probing unknown auth_ids writes nothing.
        """
        with self.one(write=False) as cursor:
            if self.sql.get_code.first(cursor, params) is None:
                return None
        return self.take_attempt(params, limit, False)

    def lock_schema(self, conn: Connection) -> None:
        """Serialise concurrent schema creation (inside its transaction)."""

    @contextmanager
    def sa_transaction(self) -> Iterator[Connection]:
        """A write transaction on a SQLAlchemy Connection, for the cold paths."""
        with (
            unavailable_on_failure(),
            self.engine.connect() as conn,
            self._writer_lock or nullcontext(),
            conn.begin(),
        ):
            yield conn

    @contextmanager
    def sa_read(self) -> Iterator[Connection]:
        """A SQLAlchemy Connection for one read: no lock, no transaction to commit."""
        with unavailable_on_failure(), self.read_engine().connect() as conn:
            yield conn

    def read_engine(self) -> Engine:
        return self.reader

    @contextmanager
    def pooled_connection(self, engine: Engine) -> Iterator[Any]:
        """A connection from ``engine``'s pool; a lost server drops the whole pool."""
        raw = None
        try:
            with unavailable_on_failure():  # pool timeouts, the SQLite lock file
                raw = engine.raw_connection()
                yield raw
        except self._driver.Error as exc:
            if raw is not None and self._lost(raw, exc):
                # The server went away: every pooled connection is as dead as this one.
                if raw.dbapi_connection is not None:
                    raw.invalidate(exc)
                self.engine.dispose()
            elif not self.unavailable(exc):
                raise
            log.error("sms2fa: database unavailable: %s", type(exc).__name__)
            raise StoreUnavailable() from exc
        finally:
            if raw is not None:
                raw.close()

    def unavailable(self, exc: BaseException) -> bool:
        """Whether a driver error means the database cannot answer (not a bug of ours)."""
        return isinstance(exc, (self._driver.OperationalError, self._driver.InterfaceError))

    def _lost(self, raw: Any, exc: Any) -> bool:
        """Whether ``exc`` means the connection is gone (or was already dropped)."""
        dbapi_connection = raw.dbapi_connection  # None once invalidated
        return dbapi_connection is None or bool(
            self.engine.dialect.is_disconnect(exc, dbapi_connection, None)
        )

    def dispose(self) -> None:
        """Close the pooled connections (and the revocation signal's)."""
        self.signal.close()
        self.engine.dispose()
        if self.reader is not self.engine:
            self.reader.dispose()
