"""The store's awaitable side (``store.aio.awaitable(store)``): on PostgreSQL psycopg's async
connections on the event loop (store/postgres_aio.py), on SQLite the sync store run inline
(store/aio.py).

The same answers as the sync store, the same atomicity under parallel guesses from several
event loops at once, and the same fail-closed answer (StoreUnavailable) when the database is
unreachable, goes away mid-use, is out of connections or has no tables.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text

from sms2fa_middleware import StoreUnavailable
from sms2fa_middleware.store import CodeRow, Store, counters
from sms2fa_middleware.store.aio import AwaitableStore, InlineStore, awaitable, resolve
from tests.support import in_threads
from tests.support.databases import fresh_database
from tests.support.tcp_proxy import PausableProxy

T0 = datetime(2030, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
NUMBER = "+12065550123"
CLOSED_PORT_URL = "postgresql+psycopg://postgres@127.0.0.1:1/test"


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    s = Store(database_url)
    s.create_schema()
    yield s
    s.dispose()


@pytest.fixture
def pg_store(postgres_database_url: str) -> Iterator[Store]:
    s = Store(fresh_database(postgres_database_url))
    s.create_schema()
    yield s
    s.dispose()


def run(store: Store, step: Callable[[AwaitableStore], Awaitable[Any]]) -> Any:
    """``step`` over the store's awaitable side, on an event loop of its own."""

    async def main() -> Any:
        return await step(awaitable(store))

    return asyncio.run(main())


def code(attempts: int, auth_id: str = "u1") -> CodeRow:
    return CodeRow(auth_id, NUMBER, "d" * 64, attempts, T0 + timedelta(minutes=5))


# -- the same answers ---------------------------------------------------------------------------


def test_postgresql_awaits_on_async_connections_and_sqlite_runs_inline(
    store: Store, database_url: str
) -> None:
    kind = type(awaitable(store)).__name__
    assert kind == ("InlineStore" if database_url.startswith("sqlite") else "AsyncPostgresStore")


def test_codes_and_attempts_answer_as_the_sync_store(store: Store) -> None:
    end = T0 + timedelta(seconds=60)

    async def step(a: AwaitableStore) -> None:
        await a.put_code(code(2), T0, "m-1")
        assert await a.get_code("u1") == code(2)
        assert await a.take_attempt("u1", "failed:u1", 60, 5, T0) == (1, end, code(1))
        assert await a.attempt_if_pending("u1", "failed:u1", 60, 5, T0) == (2, end, code(0))
        # Used up: nothing to guess at, so the slot it took is given back.
        assert await a.attempt_if_pending("u1", "failed:u1", 60, 5, T0) == (3, end, None)
        assert await a.peek("failed:u1", T0) == (2, end)
        # pad: one more write whatever the outcome, and nothing given back that is not owed.
        assert await a.take_attempt("u1", "failed:u1", 60, 5, T0, pad=True) == (3, end, None)
        assert await a.delete_code("u1", "e" * 64) is False  # another code's digest
        assert await a.delete_code("u1", "d" * 64) is True
        assert await a.get_code("u1") is None

    run(store, step)
    assert store.peek("failed:u1", T0) == (2, end)  # the sync store sees the same rows


def test_attempts_stop_at_the_failure_limit(store: Store) -> None:
    end = T0 + timedelta(seconds=60)
    store.put_code(code(3), T0)
    store.hit("failed:u1", 60, T0, amount=2)

    async def step(a: AwaitableStore) -> None:
        assert await a.attempt_if_pending("u1", "failed:u1", 60, 2, T0) == (3, end, None)

    run(store, step)
    assert store.get_code("u1") == code(3)
    assert store.peek("failed:u1", T0) == (3, end)  # over the limit: the slot stays taken


def test_no_code_means_no_attempt_and_no_write(store: Store) -> None:
    async def step(a: AwaitableStore) -> Any:
        return await a.attempt_if_pending("nobody", "failed:nobody", 60, 5, T0)

    assert run(store, step) is None
    assert store.run(lambda c: list(c.execute(select(counters.c.key)))) == []


def test_counters_and_transactions(store: Store) -> None:
    end = T0 + timedelta(seconds=60)

    async def step(a: AwaitableStore) -> None:
        assert await a.hit("k", 60, T0) == (1, end)
        async with a.transaction() as tx:
            assert await a.hit("k", 60, T0, amount=2, tx=tx) == (3, end)
            assert await a.peek("k", T0, tx=tx) == (3, end)
            await a.extend("k", end + timedelta(seconds=30), tx=tx)
        assert await a.peek("k", T0) == (3, end + timedelta(seconds=30))
        with pytest.raises(ZeroDivisionError):
            async with a.transaction() as tx:
                await a.hit("k", 60, T0, amount=10, tx=tx)
                await a.reset("k2", tx=tx)
                _ = 1 / 0
        assert await a.peek("k", T0) == (3, end + timedelta(seconds=30))  # rolled back
        await a.hit("k2", 60, T0)
        await a.reset("k", also="k2")
        assert await a.peek("k", T0) == (0, None)
        assert await a.peek("k2", T0) == (0, None)
        # A window that has passed starts again.
        assert await a.hit("k", 60, T0 - timedelta(seconds=120)) == (1, T0 - timedelta(seconds=60))
        assert await a.hit("k", 60, T0) == (1, end)

    run(store, step)


def test_an_inline_store_step_runs_to_its_end_without_a_loop(store: Store) -> None:
    inline = InlineStore(store)
    assert resolve(inline.hit("k", 60, T0)) == (1, T0 + timedelta(seconds=60))

    async def suspends() -> None:
        await asyncio.sleep(0)

    with pytest.raises(RuntimeError, match="suspended"):
        resolve(suspends())


# -- atomic under parallel guesses, from several event loops at once ---------------------------


def test_parallel_guesses_from_four_loops_never_exceed_attempts_or_the_failure_limit(
    store: Store,
) -> None:
    # Four threads, each with its own event loop (as four workers would be), 15 guesses
    # each in flight at once: 20 attempts, a failure limit of 12.
    store.put_code(code(20), T0)
    taken: list[int] = []
    failures: list[int] = []

    async def guesses() -> list[Any]:
        a = awaitable(store)
        return await asyncio.gather(
            *(a.attempt_if_pending("u1", "failed:u1", 60, 12, T0) for _ in range(15))
        )

    def worker(_: int) -> None:
        for found in asyncio.run(guesses()):
            failures.append(found[0])
            if found[2] is not None:
                taken.append(found[2].attempts_left)

    in_threads(worker, 4)
    assert sorted(taken) == list(range(8, 20))  # 12 attempts, each taken exactly once
    assert sorted(failures) == list(range(1, 61))  # every slot counted once
    assert store.get_code("u1") == code(8)


def test_parallel_guesses_spread_over_many_codes_share_one_failure_limit(store: Store) -> None:
    # The failure slot is per auth_id key, not per code: fresh codes buy no extra guesses.
    for i in range(10):
        store.put_code(code(20, f"u{i}"), T0)

    async def guesses() -> list[Any]:
        a = awaitable(store)
        return await asyncio.gather(
            *(a.take_attempt(f"u{i % 10}", "failed:shared", 60, 7, T0) for i in range(40))
        )

    found = asyncio.run(guesses())
    assert sum(1 for f in found if f[2] is not None) == 7


# -- fail closed ---------------------------------------------------------------------------


def awaitable_operations(a: AwaitableStore) -> dict[str, Callable[[], Awaitable[Any]]]:
    return {
        "put_code": lambda: a.put_code(code(3), T0),
        "take_attempt": lambda: a.take_attempt("u1", "failed:u1", 60, 5, T0),
        "attempt_if_pending": lambda: a.attempt_if_pending("u1", "failed:u1", 60, 5, T0),
        "get_code": lambda: a.get_code("u1"),
        "delete_code": lambda: a.delete_code("u1"),
        "hit": lambda: a.hit("k", 60, T0),
        "peek": lambda: a.peek("k", T0),
        "reset": lambda: a.reset("k"),
        "extend": lambda: a.extend("k", T0),
    }


async def all_unavailable(a: AwaitableStore) -> None:
    for name, operation in awaitable_operations(a).items():
        with pytest.raises(StoreUnavailable) as info:
            await operation()
        assert info.value.reason == "ServiceUnavailable", name
    with pytest.raises(StoreUnavailable):
        async with a.transaction() as tx:
            await a.hit("k", 60, T0, tx=tx)


@pytest.mark.postgres
def test_an_unreachable_server_is_store_unavailable() -> None:
    s = Store(CLOSED_PORT_URL)
    try:
        run(s, all_unavailable)
    finally:
        s.dispose()


@pytest.mark.postgres
def test_missing_tables_are_store_unavailable(postgres_database_url: str) -> None:
    s = Store(fresh_database(postgres_database_url))  # no create_schema()
    try:
        run(s, all_unavailable)
    finally:
        s.dispose()


@pytest.mark.server
@pytest.mark.postgres
def test_a_server_that_goes_away_mid_use_is_store_unavailable_then_recovers(
    postgres_database_url: str,
) -> None:
    proxy, proxied = PausableProxy.to(fresh_database(postgres_database_url))
    s = Store(proxied)
    s.create_schema()

    async def step(a: AwaitableStore) -> None:
        # Several connections open and idle in the pool, then the server goes away.
        await asyncio.gather(*(a.hit(f"k{i}", 60, T0) for i in range(4)))
        proxy.stop()
        await all_unavailable(a)
        proxy.resume()
        # Back: the broken connections were dropped, new ones serve at once.
        assert await a.hit("k0", 60, T0) == (2, T0 + timedelta(seconds=60))

    try:
        run(s, step)
    finally:
        proxy.stop()
        s.dispose()


@pytest.mark.postgres
def test_a_pool_with_no_free_connection_is_store_unavailable(
    pg_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    a: Any = awaitable(pg_store)
    monkeypatch.setattr(a, "size", 1)
    monkeypatch.setattr(a, "timeout", 0.2)

    async def step(_: AwaitableStore) -> None:
        async with a.transaction() as tx:  # holds the only connection
            await a.hit("k", 60, T0, tx=tx)
            with pytest.raises(StoreUnavailable):
                await a.peek("k", T0)
        assert await a.peek("k", T0) == (1, T0 + timedelta(seconds=60))  # free again

    run(pg_store, step)


@pytest.mark.postgres
def test_a_statement_cancelled_midway_leaves_a_usable_pool(
    pg_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    a: Any = awaitable(pg_store)
    monkeypatch.setattr(a, "size", 1)

    async def slow() -> None:
        async with a._cursor() as cursor:
            await cursor.execute("select pg_sleep(10)")

    async def step(_: AwaitableStore) -> None:
        task = asyncio.create_task(slow())
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The cancelled statement's connection was closed, not handed out mid-query.
        assert await asyncio.wait_for(a.hit("k", 60, T0), 5) == (1, T0 + timedelta(seconds=60))

    run(pg_store, step)


# -- connections -------------------------------------------------------------------------------


def tagged(url: str, name: str) -> str:
    """``url`` whose connections show ``name`` in pg_stat_activity."""
    return url + ("&" if "?" in url else "?") + f"application_name={name}"


def open_connections(url: str, name: str) -> int:
    """How many connections named ``name`` the server has, once the count settles (a closed
    connection's server process takes a moment to go)."""
    admin = create_engine(url)
    try:
        found, deadline = -1, time.monotonic() + 5
        while time.monotonic() < deadline:
            with admin.connect() as conn:
                now = conn.execute(
                    text("select count(*) from pg_stat_activity where application_name = :n"),
                    {"n": name},
                ).scalar_one()
            if now == found:
                break
            found = now
            time.sleep(0.2)
        return int(found)
    finally:
        admin.dispose()


async def three_hits(a: AwaitableStore) -> None:
    await asyncio.gather(*(a.hit("k", 60, T0) for _ in range(3)))


@pytest.mark.postgres
def test_each_event_loop_gets_connections_of_its_own_and_ended_loops_close_theirs(
    postgres_database_url: str,
) -> None:
    url = fresh_database(postgres_database_url)
    s = Store(tagged(url, "sms2fa_async_loops"))
    s.create_schema()
    try:
        for _ in range(5):  # test clients start a loop per request: connections must not pile up
            run(s, three_hits)
        assert s.peek("k", T0)[0] == 15
        # The last loop's three, and the sync pool's one or two.
        assert open_connections(url, "sms2fa_async_loops") <= 5
        s.dispose()
        assert open_connections(url, "sms2fa_async_loops") == 0
    finally:
        s.dispose()


@pytest.mark.postgres
def test_a_store_dropped_without_dispose_closes_its_async_connections(
    postgres_database_url: str,
) -> None:
    url = fresh_database(postgres_database_url)
    s = Store(tagged(url, "sms2fa_async_dropped"))
    s.create_schema()
    run(s, three_hits)
    del s
    gc.collect()
    assert open_connections(url, "sms2fa_async_dropped") == 0
