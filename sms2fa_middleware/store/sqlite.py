"""SQLite: one file in WAL mode, shared safely by the threads and processes of one host.

Writers queue for one lock (:class:`WriterLock`) and take SQLite's write lock up front
(``BEGIN IMMEDIATE``); on a file, each thread keeps a writing and a reading connection of its
own, and a forked child opens new ones instead of using its parent's.
"""

from __future__ import annotations

import mmap
import os
import threading
import weakref
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: threads are still serialised, processes by SQLite itself
    fcntl = None  # type: ignore[assignment]

from sqlalchemy import create_engine, event
from sqlalchemy.dialects.sqlite import insert as upsert
from sqlalchemy.engine import URL, Connection, Engine

from ..errors import StoreUnavailable
from .backend import Backend, RevocationSignal, log, unavailable_on_failure
from .files import make_data_directory
from .statements import Cursor

_INHERITED: list[Any] = []  # connections a forked child must neither use nor close
# How long a statement waits for another process's lock before "database is locked", in
# seconds. Read when an engine is made; tests of a held lock shorten it.
BUSY_TIMEOUT = 30.0


class _OwnConnection:
    """A thread's own SQLite connection, closed when this holder goes (its thread ended, or
    the store was dropped) -- by the process that opened it only: a forked child closing its
    parent's connection would drop the parent's SQLite locks on the file. A finalizer, not
    ``__del__``: the garbage collector runs weakref callbacks before any object's own
    finalizer, so the connection is closed before it could warn of being left open."""

    __slots__ = ("__weakref__", "close", "connection", "pid")

    def __init__(self, connection: Any) -> None:
        self.connection, self.pid = connection, os.getpid()
        self.close = weakref.finalize(self, _close_in, self.pid, connection)


def _close_in(pid: int, connection: Any) -> None:
    if pid == os.getpid():
        connection.close()


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


class SharedCounter(RevocationSignal):
    """A revocation counter that every process of this host sees: 8 bytes of a file beside
    the database (``<database>.revocations``), mapped into memory.

    Reading it (every protected request) is a memory read: no query, not even a system call;
    a revocation adds one to it after its commit, so a process that sees the new count and
    then reads the revocations finds the new row. If the file cannot be opened, the token
    never changes and sessions fall back to reading revocations every interval.
    """

    SIZE = 8

    def __init__(self, path: str) -> None:
        self._path = path
        self._map: mmap.mmap | None = None
        self._broken = False
        self._lock = threading.Lock()

    def token(self) -> object:
        shared = self._map
        if shared is None:
            shared = self._open()
            if shared is None:
                return None
        return shared[: self.SIZE]

    def announced(self) -> None:
        shared = self._open()
        if shared is None:
            return
        try:
            with self._lock:
                fd = os.open(self._path, os.O_RDWR)
                try:
                    if fcntl is not None:  # one increment at a time across processes
                        fcntl.flock(fd, fcntl.LOCK_EX)
                    count = int.from_bytes(shared[: self.SIZE], "little") + 1
                    shared[: self.SIZE] = (count % 2**64).to_bytes(self.SIZE, "little")
                finally:
                    os.close(fd)  # drops the flock
        except OSError as exc:
            log.error(
                "sms2fa: cannot signal a revocation (%s): other workers learn of it "
                "within revocation_interval",
                type(exc).__name__,
            )

    def _open(self) -> mmap.mmap | None:
        if self._map is not None or self._broken:
            return self._map
        with self._lock:
            if self._map is None and not self._broken:
                try:
                    fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
                    try:
                        if os.fstat(fd).st_size < self.SIZE:
                            os.ftruncate(fd, self.SIZE)  # zeros; never shortens a counter
                        # MAP_SHARED (the default): a forked worker keeps seeing the same page.
                        self._map = mmap.mmap(fd, self.SIZE)
                    finally:
                        os.close(fd)
                except (OSError, ValueError) as exc:
                    self._broken = True
                    log.error(
                        "sms2fa: cannot open %s (%s): revocations reach other workers "
                        "within revocation_interval",
                        self._path,
                        type(exc).__name__,
                    )
        return self._map


def sqlite_engine(url: str | URL, *, writer: bool, lock: WriterLock | None = None) -> Engine:
    """An Engine on a WAL file; ``writer``: its transactions take the write lock up front."""
    engine = create_engine(
        url,
        connect_args={"timeout": BUSY_TIMEOUT, "check_same_thread": False},
        hide_parameters=True,
    )

    busy_ms = int(BUSY_TIMEOUT * 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, say when transactions start (see "begin" below);
        # the reader never begins one, so each of its statements is its own snapshot.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
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


def on_disk(url: URL) -> bool:
    """Whether ``url`` names a SQLite file (not memory, not a ``file:`` URI)."""
    path = url.database
    return bool(path) and path != ":memory:" and not str(path).startswith("file:")


class SQLiteBackend(Backend):
    """SQLite: local, so blocking on it is cheap; writers serialised by a WriterLock."""

    blocking_is_cheap = True

    def __init__(self, url: URL, engine: Engine | None = None) -> None:
        path = str(url.database) if on_disk(url) else None
        if path is not None:
            make_data_directory(path)
        lock = WriterLock(path)  # in memory or given an Engine: still one writer thread
        reader = None
        self._own: tuple[threading.local, threading.local] | None = None
        if engine is None:
            engine = sqlite_engine(url, writer=True, lock=lock if path else None)
            if path is not None:
                reader = sqlite_engine(url, writer=False, lock=lock)
                self._own = (threading.local(), threading.local())  # writer, reader
        # IMMEDIATE takes the write lock up front; a deferred transaction that upgrades
        # from read to write fails at once with "database is locked".
        super().__init__(engine, reader or engine, upsert, lock, "BEGIN IMMEDIATE")
        if path is not None:  # other processes may use the file: tell them of revocations
            self.signal = SharedCounter(f"{path}.revocations")

    def connection(self, engine: Engine) -> AbstractContextManager[Any]:
        """On a file, this thread's own: a pool checkout and return cost more than the
        statement. It closes when the thread ends, so a development server that starts a
        thread per request opens one per request: cheap for SQLite, and production servers
        keep their threads. Elsewhere, one from the pool."""
        if self._own is not None:
            return self._own_connection(engine, self._own[engine is self.reader])
        return self.pooled_connection(engine)

    @contextmanager
    def one(self, write: bool) -> Iterator[Cursor]:
        # SQLite connections are in autocommit unless BEGIN says otherwise.
        with (
            self.connection(self.engine if write else self.reader) as raw,
            (self._writer_lock if write else None) or nullcontext(),
        ):
            yield raw.cursor()

    @contextmanager
    def _own_connection(self, engine: Engine, here: threading.local) -> Iterator[Any]:
        try:
            with unavailable_on_failure():  # the SQLite lock file
                own = getattr(here, "own", None)
                if own is None or own.pid != os.getpid():  # this thread's first use
                    if own is not None:
                        # Inherited over fork: kept, never used or closed (closing it would
                        # drop the parent's SQLite locks on the file).
                        _INHERITED.append(own)
                    pooled = engine.raw_connection()
                    here.own = own = _OwnConnection(pooled.driver_connection)
                    pooled.detach()  # ours until the thread ends; the pool forgets it
                yield own.connection
        except self._driver.Error as exc:
            if not self.unavailable(exc):
                raise
            if getattr(here, "own", None) is not None:
                here.own.close()
                here.own = None  # a new one next time
            log.error("sms2fa: database unavailable: %s", type(exc).__name__)
            raise StoreUnavailable() from exc

    def dispose(self) -> None:
        """Also close this thread's own connections (others close as their threads end)."""
        for here in self._own or ():
            if getattr(here, "own", None) is not None:
                here.own.close()
                here.own = None
        super().dispose()
