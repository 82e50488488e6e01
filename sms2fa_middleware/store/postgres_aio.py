"""PostgreSQL on the event loop: the hot statements on psycopg's async connections.

What the ASGI service awaits instead of hopping to a thread per request. The statements are
the sync store's (:mod:`.statements`, :mod:`.postgres`: the same SQL text, binds and type
conversions), run on :class:`psycopg.AsyncConnection` in autocommit, each one prepared on
its connection at first use (``prepare=True``: one Parse per connection and statement, then
Bind/Execute only). A guess is one round trip (:func:`.postgres.take_attempt_statement`).

The pool is this module's own, a few lines rather than ``psycopg_pool``: it has no task of
its own (nothing to start, nothing left pending when a loop closes), opens connections in
the request that needs one (a stopped server answers 503 at once, as the sync pool does,
instead of after a pool timeout) and is kept per event loop, as asyncio connections belong
to the loop that opened them. Like the sync pool: at most ``POOL_SIZE`` connections per
process and loop, ``POOL_TIMEOUT`` seconds' wait for one, then 503; a connection found
broken drops every idle one (the server went away); a forked child never touches its
parent's connections.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import psycopg
from psycopg import pq
from sqlalchemy.engine import URL

from ..errors import StoreUnavailable
from .backend import log
from .postgres_common import (
    CONNECT_TIMEOUT,
    MISSING_TABLES,
    POOL_SIZE,
    POOL_TIMEOUT,
    settle_attempt,
)
from .schema import CodeRow
from .statements import (
    Attempt,
    Prepared,
    Statements,
    attempt,
    attempt_params,
    code_params,
    counter_params,
)

_INHERITED: list[Any] = []  # a forked child's copy of its parent's connections: never closed


class _Pool:
    """Connections of one event loop: idle ones, and callers waiting for one."""

    def __init__(self, loop: asyncio.AbstractEventLoop, store: AsyncPostgresStore) -> None:
        self.loop = loop
        self.store = store
        self.idle: list[psycopg.AsyncConnection[Any]] = []
        self.opened = 0  # connections open, or being opened, for this pool
        self.waiting: deque[asyncio.Future[psycopg.AsyncConnection[Any] | None]] = deque()
        self.closed = False

    async def acquire(self) -> psycopg.AsyncConnection[Any]:
        if self.idle:
            return self.idle.pop()
        if self.opened >= self.store.size:
            given = await self._wait()
            if given is not None:
                return given
            # None: a slot freed up (a connection was dropped); it is ours to fill.
        else:
            self.opened += 1
        try:
            return await self.store.connect()
        except BaseException:
            self._free_slot()
            raise

    async def _wait(self) -> psycopg.AsyncConnection[Any] | None:
        future: asyncio.Future[psycopg.AsyncConnection[Any] | None] = self.loop.create_future()
        timer = self.loop.call_later(self.store.timeout, _expire, future)
        self.waiting.append(future)
        try:
            return await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled() and future.exception() is None:
                handed = future.result()  # handed over just as we were cancelled
                if handed is None:
                    self._free_slot()
                else:
                    self.release(handed)
            raise
        finally:
            timer.cancel()

    def release(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Back to the pool, unless broken, in a transaction, or the pool is closed."""
        if self.closed or conn.pgconn.transaction_status != pq.TransactionStatus.IDLE:
            self.discard(conn)
            return
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_result(conn)
                return
        self.idle.append(conn)

    def discard(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Close ``conn`` (its state is unknown); its slot goes to a waiting caller."""
        _close(conn)
        self._free_slot()

    def drop(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Close ``conn`` and, since the server went away, every idle connection too."""
        self.discard(conn)
        while self.idle:
            _close(self.idle.pop())
            self._free_slot()

    def _free_slot(self) -> None:
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_result(None)  # the slot passes to a waiting caller
                return
        self.opened -= 1

    def close(self) -> None:
        """Close the idle connections; those in use close when they come back."""
        self.closed = True
        while self.idle:
            _close(self.idle.pop())
            self.opened -= 1


def _expire(future: asyncio.Future[Any]) -> None:
    if not future.done():
        log.error("sms2fa: database unavailable: no free connection in the pool")
        future.set_exception(StoreUnavailable())


def _unavailable(exc: psycopg.Error) -> bool:
    """Whether the database cannot answer (not a bug of ours): as the sync backend judges."""
    if isinstance(exc, psycopg.errors.UndefinedTable):
        log.error(MISSING_TABLES)
        return True
    return isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError))


def _close(conn: psycopg.AsyncConnection[Any]) -> None:
    """Close without awaiting: libpq's finish() sends Terminate and frees the socket."""
    conn.pgconn.finish()


class AsyncPostgresStore:
    """The Store's hot operations (see :class:`~.aio.AwaitableStore`) on the event loop."""

    def __init__(
        self, sql: Statements, take: Prepared, take_if_pending: Prepared, url: URL
    ) -> None:
        """``sql``, ``take``, ``take_if_pending``: the sync backend's statements (the same
        SQL); ``url``: its database (on psycopg 3, whichever driver it names)."""
        self.size, self.timeout, self._connect_timeout = POOL_SIZE, POOL_TIMEOUT, CONNECT_TIMEOUT
        self._sql, self._take, self._take_if_pending = sql, take, take_if_pending
        url = url.set(drivername="postgresql+psycopg")
        self._connect_args = url.get_dialect()().create_connect_args(url)
        self._pools: dict[asyncio.AbstractEventLoop, _Pool] = {}
        self._pid = os.getpid()

    async def connect(self) -> psycopg.AsyncConnection[Any]:
        args, kwargs = self._connect_args
        try:
            return await psycopg.AsyncConnection.connect(
                *args, **kwargs, autocommit=True, connect_timeout=self._connect_timeout
            )
        except psycopg.Error as exc:
            log.error("sms2fa: database unavailable: %s", type(exc).__name__)
            raise StoreUnavailable() from exc

    def _pool(self) -> _Pool:
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is None:
            pool = self._pools[loop] = self._new_pool(loop)
        return pool

    def _new_pool(self, loop: asyncio.AbstractEventLoop) -> _Pool:
        if self._pid != os.getpid():  # forked: the parent's connections are not ours
            _INHERITED.extend(c for p in self._pools.values() for c in p.idle)
            self._pools.clear()
            self._pid = os.getpid()
        for old, pool in list(self._pools.items()):
            if old.is_closed():  # a loop that ended (test clients start one per request)
                pool.close()
                del self._pools[old]
        return _Pool(loop, self)

    def dispose(self) -> None:
        """Close every idle connection (in this process)."""
        if self._pid == os.getpid():
            for pool in self._pools.values():
                pool.close()
        self._pools.clear()

    @asynccontextmanager
    async def _cursor(self) -> AsyncIterator[psycopg.AsyncCursor[Any]]:
        """A cursor on a pooled connection; database failures become StoreUnavailable."""
        pool = self._pool()
        conn = await pool.acquire()
        try:
            yield conn.cursor()
        except psycopg.Error as exc:
            if conn.broken:
                pool.drop(conn)  # the server went away: so did every idle connection
            else:
                pool.release(conn)
            if _unavailable(exc):
                log.error("sms2fa: database unavailable: %s", type(exc).__name__)
                raise StoreUnavailable() from exc
            raise
        except Exception:
            # Not the database's error (a send refused inside its transaction, which rolled
            # back): a connection left idle is as good as before.
            if conn.info.transaction_status == pq.TransactionStatus.IDLE:
                pool.release(conn)
            else:
                pool.discard(conn)
            raise
        except BaseException:  # cancelled mid-statement: the connection's state is unknown
            pool.discard(conn)
            raise
        else:
            pool.release(conn)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[psycopg.AsyncCursor[Any]]:
        async with self._cursor() as cursor, cursor.connection.transaction():
            yield cursor

    async def _first(
        self, statement: Prepared, params: dict[str, Any], tx: Any = None
    ) -> tuple[Any, ...] | None:
        if tx is not None:
            await tx.execute(statement.sql, statement.values(params), prepare=True)
            return statement.row(await tx.fetchone())
        async with self._cursor() as cursor:
            await cursor.execute(statement.sql, statement.values(params), prepare=True)
            return statement.row(await cursor.fetchone())

    async def _run(self, statement: Prepared, params: dict[str, Any], tx: Any = None) -> int:
        """Execute a statement that returns no row; its row count."""
        if tx is not None:
            await tx.execute(statement.sql, statement.values(params), prepare=True)
            return int(tx.rowcount)
        async with self._cursor() as cursor:
            await cursor.execute(statement.sql, statement.values(params), prepare=True)
            return int(cursor.rowcount)

    # -- codes ----------------------------------------------------------------------------

    async def put_code(self, row: CodeRow, now: datetime, message_id: str | None = None) -> None:
        await self._run(self._sql.put_code, code_params(row, now, message_id))

    async def delete_code(self, auth_id: str, digest: str | None = None) -> bool:
        if digest is None:
            return await self._run(self._sql.delete_code, {"b_auth_id": auth_id}) == 1
        params = {"b_auth_id": auth_id, "b_digest": digest}
        return await self._run(self._sql.delete_this_code, params) == 1

    async def take_attempt(
        self,
        auth_id: str,
        failure_key: str,
        window: int,
        limit: int,
        now: datetime,
        pad: bool = False,
    ) -> Attempt:
        params = attempt_params(auth_id, failure_key, window, limit, now)
        found = await self._first(self._take, params)
        assert found is not None  # the upsert always returns its row
        return attempt(auth_id, await self._settle(params, found, limit, pad))

    async def attempt_if_pending(
        self, auth_id: str, failure_key: str, window: int, limit: int, now: datetime
    ) -> Attempt | None:
        params = attempt_params(auth_id, failure_key, window, limit, now)
        found = await self._first(self._take_if_pending, params)
        if found is None:
            return None
        return attempt(auth_id, await self._settle(params, found, limit, False))

    async def _settle(
        self, params: dict[str, Any], found: tuple[Any, ...], limit: int, pad: bool
    ) -> tuple[int, datetime, tuple[Any, ...] | None]:
        failures, ends, taken, owed = settle_attempt(params, found, limit, pad)
        if owed is not None:
            await self._first(self._sql.hit, owed)
        return failures, ends, taken

    async def get_code(self, auth_id: str) -> CodeRow | None:
        found = await self._first(self._sql.get_code, {"b_auth_id": auth_id})
        return None if found is None else CodeRow(auth_id, *found)

    # -- counters -------------------------------------------------------------------------

    async def hit(
        self, key: str, window: int, now: datetime, amount: int = 1, tx: Any = None
    ) -> tuple[int, datetime]:
        found = await self._first(self._sql.hit, counter_params(key, window, now, amount), tx)
        assert found is not None  # an upsert with RETURNING always returns its row
        return int(found[0]), found[1]

    async def peek(self, key: str, now: datetime, tx: Any = None) -> tuple[int, datetime | None]:
        found = await self._first(self._sql.peek, {"b_key": key, "b_now": now}, tx)
        return (0, None) if found is None else (int(found[0]), found[1])

    async def reset(self, key: str, also: str | None = None, tx: Any = None) -> None:
        if also is None:
            await self._run(self._sql.reset, {"b_key": key}, tx)
        else:
            await self._run(self._sql.reset_two, {"b_key": key, "b_key2": also}, tx)

    async def extend(self, key: str, until: datetime, tx: Any = None) -> None:
        await self._run(self._sql.extend, {"b_key": key, "b_until": until}, tx)


__all__ = ["AsyncPostgresStore"]
