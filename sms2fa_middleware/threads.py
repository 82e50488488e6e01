"""The one thread hop: blocking calls run in worker threads and awaited from an event loop.

The ASGI middleware (``identify``, revocation refreshes, answers that may send an SMS), the
engine's async twin (store work that is not cheap, the SMS) and the standalone service all
await blocking work through :class:`Threads`.

Chosen by measurement: ``python bench/thread_hop.py`` on the 2-core development machine
(2026-12-03, loaded: load average 9), a trivial call, median of 5 rounds of 10,000 calls::

    hop                          µs wall, one caller    µs CPU, 16 callers
                                 (asyncio / uvloop)     (asyncio / uvloop)
    Threads (this module)             53 / 31                13 / 6
    asyncio.to_thread                135 / 75                33 / 38
    loop.run_in_executor             122 / 84                38 / 30
    anyio.to_thread.run_sync         337 / 221              105 / 86

``run_in_executor`` (under ``asyncio.to_thread`` too) chains a concurrent Future to an
asyncio one, each with its own lock and callbacks; anyio adds a limiter acquisition and a
cancel scope on top. Here a job goes on a :class:`queue.SimpleQueue` and its result comes
back with one ``call_soon_threadsafe``. Like the others, the call runs in a copy of the
caller's context (``contextvars``: an ``identify`` that reads a request-scoped variable
sees it).

On an event loop that is not asyncio's (trio, through anyio) there is no asyncio loop to
call back into: the call goes through ``anyio.to_thread.run_sync`` with a limiter of the
same size, so the middleware keeps working wherever Starlette does.

Each :class:`Threads` is a pool with its own limit: a slow SMS provider holds only the
:data:`SENDS` pool's threads, never those that verified requests need (:data:`WORK`).
Threads start as calls wait for one, up to the limit, and are daemons (servers wait for
in-flight requests before they exit). A forked child starts with no threads: its pool
starts its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import queue
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # anyio comes with the ASGI extras; a Flask-only install has none
    import anyio

T = TypeVar("T")


class Threads:
    """A pool of at most ``limit`` worker threads; ``await pool.run(fn, *args)``."""

    def __init__(self, limit: int, name: str = "sms2fa") -> None:
        self.limit = limit
        self.name = name
        self._jobs: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._threads = 0
        self._waiting = 0  # calls queued or running; touched only on event loops' threads
        self._lock = threading.Lock()  # several event loops (threads) may share a pool
        self._limiter: anyio.CapacityLimiter | None = None  # for non-asyncio loops
        forget = weakref.WeakMethod(self._after_fork)
        os.register_at_fork(after_in_child=lambda: (m := forget()) and m())

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in one of this pool's threads, in a copy of the caller's context."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not asyncio (trio): anyio's hop, bounded alike
            return await self._run_elsewhere(fn, *args)
        future: asyncio.Future[T] = loop.create_future()
        context = contextvars.copy_context()
        with self._lock:
            self._waiting += 1
            start = self._waiting > self._threads and self._threads < self.limit
            if start:
                self._threads += 1
                name = f"{self.name}-{self._threads}"
        try:
            if start:
                threading.Thread(target=self._work, name=name, daemon=True).start()
            self._jobs.put((loop, future, context, fn, args))
            return await future
        finally:
            with self._lock:
                self._waiting -= 1

    async def _run_elsewhere(self, fn: Callable[..., T], *args: Any) -> T:
        import anyio  # only off asyncio (trio), where anyio is what runs the loop

        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.limit)
        return await anyio.to_thread.run_sync(fn, *args, limiter=self._limiter)

    def _work(self) -> None:
        while True:
            loop, future, context, fn, args = self._jobs.get()
            outcome: tuple[Any, BaseException | None]
            try:
                outcome = (context.run(fn, *args), None)
            except BaseException as exc:
                outcome = (None, exc)
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting
                loop.call_soon_threadsafe(_settle, future, *outcome)

    def _after_fork(self) -> None:
        """The child has none of the parent's threads (nor its queued jobs)."""
        self._jobs = queue.SimpleQueue()
        self._threads = self._waiting = 0
        self._lock = threading.Lock()
        self._limiter = None


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the awaiting task was cancelled meanwhile
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


#: Blocking work that does not wait on the SMS provider: ``identify``, revocation refreshes,
#: the async engine's store work when blocking on the store is not cheap.
WORK = Threads(limit=40, name="sms2fa")
#: Work that may wait on the SMS provider (a refusal that sends a code, the prefix routes, the
#: async engine's sends): a pool of its own, so a slow provider never holds WORK's threads.
SENDS = Threads(limit=40, name="sms2fa-send")

__all__ = ["SENDS", "WORK", "Threads"]
