"""Storage: SQLAlchemy Core tables and the atomic statements the engine is built on.

The same code runs on SQLite (the default: one file, WAL, shared safely by several processes)
and PostgreSQL (psycopg 3, for several hosts). Every decision that guards a secret is one
conditional statement whose returned row or row count decides -- never read, compare in
Python, then write -- so parallel requests in any number of processes cannot race it.
SQLite has no ``SELECT ... FOR UPDATE``; a conditional ``UPDATE ... RETURNING`` needs none.

The hot statements are SQLAlchemy Core statements compiled once and run on the driver's cursor
(:class:`_Prepared`); schema, pooling and the cold paths use SQLAlchemy as usual.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

try:
    import fcntl
except ImportError:  # Windows: threads are still serialised, processes by SQLite itself
    fcntl = None  # type: ignore[assignment]

from sqlalchemy import (
    Column,
    DateTime,
    Dialect,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    case,
    create_engine,
    delete,
    event,
    func,
    literal,
    select,
    true,
    update,
)
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.types import TypeDecorator

from .errors import StoreUnavailable
from .settings import make_data_directory

log = logging.getLogger("sms2fa")

T = TypeVar("T")


_NEVER = datetime(9999, 1, 1, tzinfo=timezone.utc)  # later than any code's expiry


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@contextmanager
def _unavailable_on_failure() -> Iterator[None]:
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

revocations = Table(
    "sms2fa_revocations",
    metadata,
    Column("auth_id", String(120), primary_key=True),
    Column("revoked_at", UTCDateTime, nullable=False, index=True),
)


@dataclass(frozen=True)
class CodeRow:
    auth_id: str
    recipient: str
    digest: str
    attempts_left: int
    expires_at: datetime


def _sqlite_engine(url: str, *, writer: bool, lock: WriterLock | None = None) -> Engine:
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False},
                           hide_parameters=True)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, say when transactions start (see "begin" below);
        # the reader never begins one, so each of its statements is its own snapshot.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        if cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            # Switching a new file to WAL needs it to itself: four workers starting at once
            # on a new database would get "database is locked". Switch as the only writer.
            with lock or nullcontext():
                cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    if writer:
        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            # IMMEDIATE takes the write lock up front; a deferred transaction that upgrades
            # from read to write fails at once with "database is locked".
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class WriterLock:
    """One writer at a time across the threads and processes of this host, for SQLite.

    SQLite's own busy handler polls with sleeps that grow to 100 ms, so under contention
    four workers spend their time asleep. An ``flock`` on a file beside the database queues
    writers instead and wakes the next one the moment the lock is free.
    """

    def __init__(self, database_path: str | None) -> None:
        self._path = f"{database_path}.lock" if database_path else None
        self._thread_lock = threading.Lock()
        self._fd: int | None = None
        self._pid = 0

    def __enter__(self) -> None:
        self._thread_lock.acquire()
        if self._path is None or fcntl is None:
            return
        try:
            if self._pid != os.getpid():  # a forked child must not share its parent's lock
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
                self._pid = os.getpid()
            assert self._fd is not None
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._thread_lock.release()
            raise

    def __exit__(self, *exc: object) -> None:
        try:
            if self._fd is not None and fcntl is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()


def make_engine(database_url: str, lock: WriterLock | None = None) -> Engine:
    """The writing Engine: WAL SQLite, or a PostgreSQL pool on psycopg 3."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(database_url, writer=True, lock=lock)
    if url.get_backend_name() == "postgresql" and url.get_driver_name() in ("", "psycopg2"):
        url = url.set(drivername="postgresql+psycopg")
    # 16 connections per process, kept: SQLAlchemy closes an overflow connection as it comes
    # back, and a new PostgreSQL connection forks a server process. With 5 kept plus 10
    # overflow, a burst of checks opened ~50 a second and p99 went from 8 ms to 700 ms
    # (bench/service.py). A request that finds all 16 busy waits up to 5 s, then gets a 503.
    # No pre-ping: it costs a round trip per checkout. After a server restart the first
    # disconnect drops the whole pool (Store._connection) and that one request answers 503.
    # hide_parameters: SQL logs and errors must never show numbers, digests or auth_ids.
    # connect_timeout: a server that drops packets must cost a 503, not a hung worker.
    return create_engine(url, pool_size=16, max_overflow=0, pool_timeout=5,
                         hide_parameters=True, connect_args={"connect_timeout": 5})


_INHERITED: list[Any] = []  # SQLite connections a forked child must neither use nor close

Cursor = Any  # a DBAPI cursor (sqlite3 or psycopg): DBAPI has no common type to name


class _Prepared:
    """A Core statement compiled once for one dialect and run straight on a DBAPI cursor.

    SQLAlchemy's execution layer costs several times the statement itself: a check's write
    transaction takes ~250 µs through ``Connection.execute`` and ~30 µs on the cursor. On
    SQLite that time is spent holding the one write lock every process queues for. The SQL,
    the bind order and the type conversions are still SQLAlchemy's, taken from the compiler.
    """

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        self.sql = compiled.string
        self._order = compiled.positiontup  # None for named paramstyles (psycopg)
        self._fixed: dict[str, Any] = {}  # values the statement itself carries (``- 1``)
        self._to_db: dict[str, Callable[[Any], Any]] = {}
        for bind, name in compiled.bind_names.items():
            if not bind.required:
                self._fixed[name] = bind.effective_value
            if (convert := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None:
                self._to_db[name] = convert
        self._from_db = []
        for i, column in enumerate(getattr(statement, "exported_columns", ())):
            if (convert := column.type.dialect_impl(dialect).result_processor(dialect, None)):
                self._from_db.append((i, convert))

    def execute(self, cursor: Cursor, params: dict[str, Any]) -> Cursor:
        values = self._fixed | params
        for name, convert in self._to_db.items():
            values[name] = convert(values[name])
        cursor.execute(self.sql, values if self._order is None
                       else [values[name] for name in self._order])
        return cursor

    def first(self, cursor: Cursor, params: dict[str, Any]) -> tuple[Any, ...] | None:
        """The first row, converted to Python values; None if there is none."""
        row = self.execute(cursor, params).fetchone()
        if row is None or not self._from_db:
            return row  # type: ignore[no-any-return]
        values = list(row)
        for i, convert in self._from_db:
            values[i] = convert(values[i])
        return tuple(values)


class _Statements:
    """The hot statements, built and compiled once with bind parameters."""

    def __init__(self, upsert: Any, dialect: Dialect) -> None:
        # Bind names must differ from column names in INSERT and UPDATE statements.
        auth_id = bindparam("b_auth_id", type_=String)
        now = bindparam("b_now", type_=UTCDateTime)
        insert_code = upsert(codes)  # its values come from the parameters at execution
        self.put_code = _Prepared(insert_code.on_conflict_do_update(
            index_elements=[codes.c.auth_id],
            set_={c.name: insert_code.excluded[c.name] for c in codes.columns
                  if c.name != "auth_id"},
        ), dialect)
        delete_code = delete(codes).where(codes.c.auth_id == auth_id)
        self.delete_code = _Prepared(delete_code, dialect)
        self.delete_this_code = _Prepared(
            delete_code.where(codes.c.digest == bindparam("b_digest")), dialect)
        reserve_attempt = (
            update(codes)
            .where(codes.c.auth_id == auth_id, codes.c.attempts_left > 0,
                   codes.c.expires_at > now)
            .values(attempts_left=codes.c.attempts_left - 1)
            .returning(codes.c.recipient, codes.c.digest, codes.c.attempts_left,
                       codes.c.expires_at))
        self.reserve_attempt = _Prepared(reserve_attempt, dialect)
        self.get_code = _Prepared(
            select(codes.c.recipient, codes.c.digest, codes.c.attempts_left,
                   codes.c.expires_at).where(codes.c.auth_id == auth_id), dialect)
        amount = bindparam("b_amount", type_=Integer)
        reset_at = bindparam("b_reset_at", type_=UTCDateTime)
        insert_counter = upsert(counters)
        expired = counters.c.reset_at <= now
        hit = insert_counter.on_conflict_do_update(
            index_elements=[counters.c.key],
            set_={
                "count": case((expired, amount), else_=counters.c.count + amount),
                "reset_at": case((expired, reset_at), else_=counters.c.reset_at),
            },
        ).returning(counters.c.count, counters.c.reset_at)
        self.hit = _Prepared(hit, dialect)
        # PostgreSQL: the failure slot and the attempt in one statement (data-modifying CTEs),
        # so a guess costs one round trip instead of BEGIN, two statements and COMMIT. The
        # upsert locks the counter row; the UPDATE sees the count it returned.
        self.take_attempt: _Prepared | None = None
        if dialect.name == "postgresql":
            slot = hit.cte("failure_slot")
            attempt = reserve_attempt.where(
                select(slot.c.count).scalar_subquery() <= bindparam("b_limit", type_=Integer)
            ).cte("attempt")
            self.take_attempt = _Prepared(
                select(slot.c.count, slot.c.reset_at, attempt.c.recipient, attempt.c.digest,
                       attempt.c.attempts_left, attempt.c.expires_at)
                .select_from(slot.outerjoin(attempt, true())), dialect)
        key = bindparam("b_key", type_=String)
        self.peek = _Prepared(select(counters.c.count, counters.c.reset_at).where(
            counters.c.key == key, counters.c.reset_at > now), dialect)
        self.reset = _Prepared(delete(counters).where(counters.c.key == key), dialect)
        self.reset_two = _Prepared(delete(counters).where(
            (counters.c.key == key) | (counters.c.key == bindparam("b_key2", type_=String))),
            dialect)
        self.extend = _Prepared(update(counters).where(counters.c.key == key).values(
            reset_at=bindparam("b_until", type_=UTCDateTime)), dialect)


class Store:
    """The tables and their atomic operations. One instance per process; thread-safe.

    Operations run in a transaction of their own unless given one as ``tx`` (from
    :meth:`transaction`), so that several of them commit together.
    """

    def __init__(self, database_url: str | Engine) -> None:
        url = database_url.url if isinstance(database_url, Engine) else make_url(database_url)
        path = url.database
        on_disk = (url.get_backend_name() == "sqlite" and bool(path) and path != ":memory:"
                   and not str(path).startswith("file:"))
        if on_disk:
            make_data_directory(str(path))
        self._writer_lock = WriterLock(path) if on_disk else None
        if isinstance(database_url, Engine):
            self.engine = database_url
        else:
            self.engine = make_engine(database_url, self._writer_lock)
        self.dialect = self.engine.dialect.name
        self._driver = self.engine.dialect.loaded_dbapi
        # A SQLite file: each thread keeps a writing and a reading connection of its own.
        self._own: tuple[threading.local, threading.local] | None = None
        self.reader: Engine
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as upsert

            self.reader = self.engine  # one pool; a read switches its connection to autocommit
            self._begin = None  # psycopg begins a transaction with the first statement
        else:
            from sqlalchemy.dialects.sqlite import insert as upsert  # type: ignore[assignment]

            if on_disk and not isinstance(database_url, Engine):
                self.reader = _sqlite_engine(str(url), writer=False, lock=self._writer_lock)
                self._own = (threading.local(), threading.local())  # writer, reader
            else:
                self.reader = self.engine
            if self._writer_lock is None:  # in memory: still one writer thread at a time
                self._writer_lock = WriterLock(None)
            # IMMEDIATE takes the write lock up front; a deferred transaction that upgrades
            # from read to write fails at once with "database is locked".
            self._begin = "BEGIN IMMEDIATE"
        self._upsert = upsert
        self._sql = _Statements(upsert, self.engine.dialect)

    # -- plumbing -------------------------------------------------------------------------

    def _connection(self, engine: Engine) -> AbstractContextManager[Any]:
        """A DBAPI connection to ``engine``; a database failure becomes StoreUnavailable (503).

        On a SQLite file, this thread's own: a pool checkout and return cost more than the
        statement (a third of an unknown-id check). It closes when the thread ends, so a
        development server that starts a thread per request opens one per request: cheap for
        SQLite, and production servers keep their threads. Elsewhere, one from the pool.
        """
        if self._own is not None:
            return self._own_connection(engine, self._own[engine is self.reader])
        return self._pooled_connection(engine)

    @contextmanager
    def _own_connection(self, engine: Engine, here: threading.local) -> Iterator[Any]:
        try:
            with _unavailable_on_failure():  # the SQLite lock file
                if getattr(here, "pid", None) != os.getpid():  # this thread's first use
                    if getattr(here, "connection", None) is not None:
                        # Inherited over fork: kept, never used or closed (closing it would
                        # drop this process's SQLite locks on the file).
                        _INHERITED.append(here.connection)
                        here.connection = None
                    pooled = engine.raw_connection()
                    here.connection, here.pid = pooled.driver_connection, os.getpid()
                    pooled.detach()  # ours until the thread ends; the pool forgets it
                yield here.connection
        except self._driver.Error as exc:
            if not isinstance(exc, (self._driver.OperationalError, self._driver.InterfaceError)):
                raise
            here.pid = here.connection = None  # a new one next time
            log.error("sms2fa: database unavailable: %s", type(exc).__name__)
            raise StoreUnavailable() from exc

    @contextmanager
    def _pooled_connection(self, engine: Engine) -> Iterator[Any]:
        raw = None
        try:
            with _unavailable_on_failure():  # pool timeouts, the SQLite lock file
                raw = engine.raw_connection()
                yield raw
        except self._driver.Error as exc:
            if raw is not None and self._lost(raw, exc):
                # The server went away: every pooled connection is as dead as this one.
                if raw.dbapi_connection is not None:
                    raw.invalidate(exc)
                self.engine.dispose()
            elif not isinstance(exc, (self._driver.OperationalError,
                                      self._driver.InterfaceError)):
                raise
            log.error("sms2fa: database unavailable: %s", type(exc).__name__)
            raise StoreUnavailable() from exc
        finally:
            if raw is not None:
                raw.close()

    def _lost(self, raw: Any, exc: Any) -> bool:
        """Whether ``exc`` means the connection is gone (or was already dropped)."""
        dbapi_connection = raw.dbapi_connection  # None once invalidated
        return dbapi_connection is None or bool(
            self.engine.dialect.is_disconnect(exc, dbapi_connection, None))

    @contextmanager
    def _tx(self) -> Iterator[Cursor]:
        """A write transaction (serialised across processes on SQLite)."""
        # The lock covers the transaction only, not the pool checkout and return around it:
        # every microsecond inside it is a microsecond every other writer waits.
        with self._connection(self.engine) as raw, self._writer_lock or nullcontext():
            cursor = raw.cursor()
            if self._begin:
                cursor.execute(self._begin)
            try:
                yield cursor
            except BaseException:
                raw.rollback()
                raise
            raw.commit()

    @contextmanager
    def _one(self, write: bool) -> Iterator[Cursor]:
        """A cursor for one statement outside any transaction: atomic alone, one round trip."""
        with self._connection(self.engine if write else self.reader) as raw, \
                (self._writer_lock if write else None) or nullcontext():
            if self.dialect == "postgresql":  # no BEGIN/COMMIT round trips around it
                driver = raw.driver_connection
                driver.autocommit = True
                try:
                    yield raw.cursor()
                finally:
                    try:
                        driver.autocommit = False
                    except self._driver.Error:  # broken: never hand it out again
                        raw.invalidate()
            else:  # SQLite connections are in autocommit unless BEGIN says otherwise
                yield raw.cursor()

    def transaction(self) -> AbstractContextManager[Cursor]:
        """One transaction for several operations: pass it to them as ``tx=``."""
        return self._tx()

    def _cursor(self, tx: Cursor | None, write: bool = True) -> AbstractContextManager[Cursor]:
        """``tx`` if given (part of a caller's transaction), else a statement of its own."""
        return nullcontext(tx) if tx is not None else self._one(write)

    def create_schema(self) -> None:
        """Create the tables if missing; safe when several workers start at once."""
        with self._sa_tx() as conn:
            if self.dialect == "postgresql":
                # Serialise concurrent create_all()s: the second waits, then finds the tables.
                conn.execute(select(func.pg_advisory_xact_lock(0x5A52FA)))
            # On SQLite the IMMEDIATE transaction already serialises writers.
            metadata.create_all(conn, checkfirst=True)

    @contextmanager
    def _sa_tx(self) -> Iterator[Connection]:
        """A write transaction on a SQLAlchemy Connection, for the cold paths."""
        with _unavailable_on_failure(), self.engine.connect() as conn, \
                self._writer_lock or nullcontext(), conn.begin():
            yield conn

    @contextmanager
    def _sa_read(self) -> Iterator[Connection]:
        """A SQLAlchemy Connection for one read: no lock, no transaction to commit."""
        reader = (self.engine.execution_options(isolation_level="AUTOCOMMIT")
                  if self.dialect == "postgresql" else self.reader)
        with _unavailable_on_failure(), reader.connect() as conn:
            yield conn

    def dispose(self) -> None:
        """Close the pooled connections, and this thread's own (others close as threads end)."""
        for here in self._own or ():
            if getattr(here, "connection", None) is not None and here.pid == os.getpid():
                here.connection.close()
            here.pid = here.connection = None
        self.engine.dispose()
        if self.reader is not self.engine:
            self.reader.dispose()

    # -- codes ----------------------------------------------------------------------------

    def put_code(self, row: CodeRow, now: datetime, message_id: str | None = None) -> None:
        """Store a code the provider accepted, replacing any code pending for its auth_id."""
        with self._one(write=True) as cursor:
            self._sql.put_code.execute(cursor, {
                "auth_id": row.auth_id, "recipient": row.recipient, "digest": row.digest,
                "attempts_left": row.attempts_left, "created_at": now,
                "expires_at": row.expires_at, "message_id": message_id,
            })

    def delete_code(self, auth_id: str, digest: str | None = None) -> bool:
        """Delete the code (only if it is still the one with ``digest``, when given)."""
        with self._one(write=True) as cursor:
            if digest is None:
                done = self._sql.delete_code.execute(cursor, {"b_auth_id": auth_id})
            else:
                done = self._sql.delete_this_code.execute(
                    cursor, {"b_auth_id": auth_id, "b_digest": digest})
            return done.rowcount == 1  # type: ignore[no-any-return]

    def reserve_attempt(self, auth_id: str, now: datetime) -> CodeRow | None:
        """Atomically take one attempt from a live code; None if there is none to take.

        This single conditional UPDATE is what makes brute force across processes impossible:
        each caller that gets a row back owns exactly one guess, and once ``attempts_left``
        hits zero nobody gets a row.
        """
        with self._one(write=True) as cursor:
            found = self._sql.reserve_attempt.first(cursor, {"b_auth_id": auth_id, "b_now": now})
        if found is None:
            return None
        recipient, digest, attempts_left, expires_at = found
        return CodeRow(auth_id, recipient, digest, attempts_left, expires_at)

    def take_attempt(self, auth_id: str, failure_key: str, window: int, limit: int,
                     now: datetime, pad: bool = False) -> tuple[int, datetime, CodeRow | None]:
        """Take a failure slot and, if it is within ``limit``, one attempt of the live code.

        Returns (failures so far, when they reset, the code row or None). Atomic: parallel
        guesses in any number of processes never evaluate more than ``limit`` failures, nor
        more guesses than the code has attempts. A slot that found no attempt to take
        (nothing to guess at) is given back.

        ``pad``: run the same statements whatever the outcome (an unknown, a locked and a
        live auth_id then cost the same), giving back nothing where nothing is owed.
        """
        reset_at = now + timedelta(seconds=window)
        params = {"key": failure_key, "count": 1, "reset_at": reset_at, "b_amount": 1,
                  "b_now": now, "b_reset_at": reset_at, "b_auth_id": auth_id, "b_limit": limit}
        refund = params | {"count": -1, "b_amount": -1}
        nothing = params | {"count": 0, "b_amount": 0}
        row = None
        if self._sql.take_attempt is not None:
            with self._one(write=True) as cursor:
                found = self._sql.take_attempt.first(cursor, params)
            assert found is not None  # the upsert always returns its row
            failures, ends, recipient, digest, attempts_left, expires_at = found
            if recipient is not None:
                row = CodeRow(auth_id, recipient, digest, attempts_left, expires_at)
            if recipient is None and failures <= limit:
                # Given back in a statement of its own: until it lands, a parallel guess may
                # see one failure too many (a 429 too early, never a guess too many).
                with self._one(write=True) as cursor:
                    self._sql.hit.first(cursor, refund)
            elif pad:
                with self._one(write=True) as cursor:
                    self._sql.hit.first(cursor, nothing)
            return int(failures), ends, row
        with self._tx() as cursor:
            found = self._sql.hit.first(cursor, params)
            assert found is not None
            failures, ends = found
            if failures <= limit or pad:
                # Locked: the same lookup, with a moment no code outlives, takes nothing.
                taken = self._sql.reserve_attempt.first(
                    cursor, params if failures <= limit else params | {"b_now": _NEVER})
                if taken is None and failures <= limit:
                    self._sql.hit.first(cursor, refund)
                else:
                    if taken is not None:
                        row = CodeRow(auth_id, *taken)
                    if pad:
                        self._sql.hit.first(cursor, nothing)
        return int(failures), ends, row

    def get_code(self, auth_id: str) -> CodeRow | None:
        with self._one(write=False) as cursor:
            found = self._sql.get_code.first(cursor, {"b_auth_id": auth_id})
        if found is None:
            return None
        return CodeRow(auth_id, *found)

    # -- counters -------------------------------------------------------------------------

    def hit(self, key: str, window: int, now: datetime, amount: int = 1,
            tx: Cursor | None = None) -> tuple[int, datetime]:
        """Add ``amount`` to a fixed-window counter; returns (count so far, window end).

        One upsert: a counter whose window has passed starts again from ``amount``.
        """
        reset_at = now + timedelta(seconds=window)
        params = {"key": key, "count": amount, "reset_at": reset_at,
                  "b_amount": amount, "b_now": now, "b_reset_at": reset_at}
        with self._cursor(tx) as cursor:
            found = self._sql.hit.first(cursor, params)
        assert found is not None  # an upsert with RETURNING always returns its row
        return int(found[0]), found[1]

    def peek(self, key: str, now: datetime,
             tx: Cursor | None = None) -> tuple[int, datetime | None]:
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

    # -- revocations ----------------------------------------------------------------------

    def revoke(self, auth_id: str, now: datetime) -> None:
        stmt = self._upsert(revocations).values(auth_id=auth_id, revoked_at=now)
        stmt = stmt.on_conflict_do_update(
            index_elements=[revocations.c.auth_id], set_={"revoked_at": now}
        )
        with self._sa_tx() as conn:
            conn.execute(stmt)

    def revocations_since(self, since: datetime) -> list[tuple[str, datetime]]:
        stmt = select(revocations.c.auth_id, revocations.c.revoked_at).where(
            revocations.c.revoked_at > since
        )
        with self._sa_read() as conn:
            return [(r.auth_id, r.revoked_at) for r in conn.execute(stmt)]

    # -- housekeeping ---------------------------------------------------------------------

    def purge(self, now: datetime, revocations_before: datetime) -> int:
        """Delete expired codes and counters and revocations no session can outlive."""
        with self._sa_tx() as conn:
            removed = conn.execute(delete(codes).where(codes.c.expires_at <= now)).rowcount
            removed += conn.execute(delete(counters).where(counters.c.reset_at <= now)).rowcount
            removed += conn.execute(
                delete(revocations).where(revocations.c.revoked_at <= revocations_before)
            ).rowcount
        return int(removed)

    def count_codes(self) -> int:
        with self._sa_read() as conn:
            return int(conn.execute(select(func.count()).select_from(codes)).scalar_one())

    def ping(self) -> None:
        """One trivial read: StoreUnavailable if the database cannot answer (health checks)."""
        with self._sa_read() as conn:
            conn.execute(select(literal(1))).scalar_one()

    def run(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in one transaction (for tools and tests)."""
        with self._sa_tx() as conn:
            return fn(conn)
