"""The store as the engine awaits it: one interface, driven from a thread or from a loop.

The engine's hot steps (a check, a start's budgets and code) are written once, as
coroutines over :class:`AwaitableStore`. Two kinds of store drive them:

* :class:`InlineStore` wraps the sync :class:`~.core.Store`: its coroutines finish without
  ever suspending, so :func:`resolve` runs a step to its end in the calling thread, with no
  event loop (the sync ``Verifier``); on a loop the same store runs the step inline, which is
  what SQLite wants (``blocking_is_cheap``);
* :class:`~.postgres_aio.AsyncPostgresStore` runs the same statements on psycopg's async
  connections, on the event loop: no thread hop per request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Coroutine
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime
from typing import Any, Protocol, TypeVar

from .core import Store
from .schema import CodeRow
from .statements import Attempt, Cursor

T = TypeVar("T")


class AwaitableStore(Protocol):
    """The Store's hot operations, awaited (see :class:`~.core.Store` for each one)."""

    def transaction(self) -> AbstractAsyncContextManager[Cursor]: ...

    async def put_code(
        self, row: CodeRow, now: datetime, message_id: str | None = None
    ) -> None: ...

    async def delete_code(self, auth_id: str, digest: str | None = None) -> bool: ...

    async def take_attempt(
        self,
        auth_id: str,
        failure_key: str,
        window: int,
        limit: int,
        now: datetime,
        pad: bool = False,
    ) -> Attempt: ...

    async def attempt_if_pending(
        self, auth_id: str, failure_key: str, window: int, limit: int, now: datetime
    ) -> Attempt | None: ...

    async def get_code(self, auth_id: str) -> CodeRow | None: ...

    async def hit(
        self, key: str, window: int, now: datetime, amount: int = 1, tx: Cursor | None = None
    ) -> tuple[int, datetime]: ...

    async def peek(
        self, key: str, now: datetime, tx: Cursor | None = None
    ) -> tuple[int, datetime | None]: ...

    async def reset(self, key: str, also: str | None = None, tx: Cursor | None = None) -> None: ...

    async def extend(self, key: str, until: datetime, tx: Cursor | None = None) -> None: ...


class InlineStore:
    """A sync :class:`~.core.Store` behind the awaitable interface: each call runs at once,
    in the calling thread, and its coroutine never suspends."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Cursor]:
        with self.store.transaction() as tx:
            yield tx

    async def put_code(self, row: CodeRow, now: datetime, message_id: str | None = None) -> None:
        self.store.put_code(row, now, message_id)

    async def delete_code(self, auth_id: str, digest: str | None = None) -> bool:
        return self.store.delete_code(auth_id, digest)

    async def take_attempt(
        self,
        auth_id: str,
        failure_key: str,
        window: int,
        limit: int,
        now: datetime,
        pad: bool = False,
    ) -> Attempt:
        return self.store.take_attempt(auth_id, failure_key, window, limit, now, pad)

    async def attempt_if_pending(
        self, auth_id: str, failure_key: str, window: int, limit: int, now: datetime
    ) -> Attempt | None:
        return self.store.attempt_if_pending(auth_id, failure_key, window, limit, now)

    async def get_code(self, auth_id: str) -> CodeRow | None:
        return self.store.get_code(auth_id)

    async def hit(
        self, key: str, window: int, now: datetime, amount: int = 1, tx: Cursor | None = None
    ) -> tuple[int, datetime]:
        return self.store.hit(key, window, now, amount, tx)

    async def peek(
        self, key: str, now: datetime, tx: Cursor | None = None
    ) -> tuple[int, datetime | None]:
        return self.store.peek(key, now, tx)

    async def reset(self, key: str, also: str | None = None, tx: Cursor | None = None) -> None:
        self.store.reset(key, also, tx)

    async def extend(self, key: str, until: datetime, tx: Cursor | None = None) -> None:
        self.store.extend(key, until, tx)


def awaitable(store: Store) -> AwaitableStore:
    """``store``'s operations as an event loop awaits them: on PostgreSQL, async connections
    of their own (no thread hop); elsewhere the store itself, run inline (SQLite: cheap)."""
    found: AwaitableStore | None = store.backend.async_store()
    return InlineStore(store) if found is None else found


def resolve(step: Coroutine[Any, Any, T]) -> T:
    """Run ``step`` -- a coroutine over an :class:`InlineStore` -- to its end, here.

    It never suspends (every store call it awaits has already happened), so one ``send``
    finishes it: no event loop, and the caller's thread does the work as before.
    """
    try:
        step.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    step.close()
    raise RuntimeError("an engine step suspended over a sync store")


__all__ = ["AwaitableStore", "InlineStore", "awaitable", "resolve"]
