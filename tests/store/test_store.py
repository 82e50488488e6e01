"""The store on a real SQLite file and the real PostgreSQL: schema, time, counters, outages."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import create_engine, select

from sms2fa_middleware import Settings, StoreUnavailable, Verifier
from sms2fa_middleware.store import CodeRow, Store, codes, counters, utcnow
from sms2fa_middleware.testing import FakeFlowroute
from tests.support import SECRET, in_threads
from tests.support.databases import create_schema_concurrently, fresh_database, table_names
from tests.support.tcp_proxy import PausableProxy

TABLES = {"sms2fa_codes", "sms2fa_counters", "sms2fa_revocations"}
T0 = datetime(2030, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
NUMBER = "+12065550123"


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    s = Store(database_url)
    s.create_schema()
    yield s
    s.dispose()


# -- schema ---------------------------------------------------------------------------------


def test_create_schema_from_4_threads_at_once(database_url: str) -> None:
    errors = create_schema_concurrently(database_url, 4)
    assert errors == []
    assert table_names(database_url) >= TABLES


CREATE_AT = """
import sys, time
from sms2fa_middleware.store import Store
store = Store(sys.argv[1])
while time.time() < float(sys.argv[2]):
    time.sleep(0.001)
store.create_schema()
store.create_schema()  # and again, as a restarted worker would
"""


@pytest.mark.server
def test_create_schema_from_4_processes_at_once(database_url: str) -> None:
    # Each process opens its first connection at the same instant (a new SQLite file: WAL is
    # switched on concurrently too), as the workers of `sms2fa serve --workers 4` do.
    at = time.time() + 2.0
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", CREATE_AT, database_url, str(at)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(4)
    ]
    results = [p.communicate(timeout=60) for p in processes]
    for process, (_, err) in zip(processes, results):
        assert process.returncode == 0, err.decode()
    assert table_names(database_url) >= TABLES
    s = Store(database_url)
    try:
        assert s.count_codes() == 0
    finally:
        s.dispose()


def test_create_schema_keeps_existing_rows(store: Store) -> None:
    store.put_code(CodeRow("u1", NUMBER, "d" * 64, 3, T0 + timedelta(minutes=5)), T0)
    store.create_schema()
    assert store.count_codes() == 1


# -- time -----------------------------------------------------------------------------------


def test_timestamps_come_back_timezone_aware_utc(store: Store) -> None:
    plus5 = timezone(timedelta(hours=5))
    expires = datetime(2030, 1, 1, 17, 0, 0, 123456, tzinfo=plus5)  # 12:00:00.123456Z
    store.put_code(CodeRow("u1", NUMBER, "d" * 64, 3, expires), T0)
    row = store.get_code("u1")
    assert row is not None
    assert row.expires_at == expires
    assert row.expires_at.utcoffset() == timedelta(0)
    assert row.expires_at.replace(tzinfo=None) == datetime(2030, 1, 1, 12, 0, 0, 123456)
    created = store.run(lambda c: c.execute(select(codes.c.created_at)).scalar_one())
    assert created == T0 and created.utcoffset() == timedelta(0)

    count, reset_at = store.hit("k", 60, T0.astimezone(plus5))
    assert (count, reset_at) == (1, T0 + timedelta(seconds=60))
    assert reset_at.tzinfo is not None and reset_at.utcoffset() == timedelta(0)

    store.revoke("u1", T0.astimezone(plus5))
    ((auth_id, revoked_at),) = store.revocations_since(T0 - timedelta(seconds=1))
    assert auth_id == "u1" and revoked_at == T0 and revoked_at.utcoffset() == timedelta(0)


def test_comparisons_respect_time_zones(store: Store) -> None:
    # Expires 12:00Z, written as 17:00+05:00; at 11:59Z it is live, at 12:01-ish not.
    expires = T0.astimezone(timezone(timedelta(hours=5)))
    store.put_code(CodeRow("u1", NUMBER, "d" * 64, 3, expires), T0 - timedelta(minutes=5))
    assert _attempt(store, "u1", T0 - timedelta(minutes=1)) is not None
    western = timezone(timedelta(hours=-8))
    assert _attempt(store, "u1", (T0 + timedelta(seconds=1)).astimezone(western)) is None
    assert _attempt(store, "u1", (T0 - timedelta(seconds=1)).astimezone(western))


def test_naive_datetimes_are_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        store.hit("k", 60, datetime(2030, 1, 1, 12, 0, 0))
    assert store.peek("k", T0) == (0, None)


# -- counters -------------------------------------------------------------------------------


def test_take_attempt_takes_a_failure_slot_with_each_attempt(store: Store) -> None:
    end = T0 + timedelta(seconds=60)
    store.put_code(CodeRow("u1", NUMBER, "d" * 64, 2, T0 + timedelta(minutes=5)), T0)

    failures, ends, row = store.take_attempt("u1", "failed:u1", 60, 5, T0)
    assert (failures, ends) == (1, end)
    assert row == CodeRow("u1", NUMBER, "d" * 64, 1, T0 + timedelta(minutes=5))
    assert store.take_attempt("u1", "failed:u1", 60, 5, T0)[::2] == (
        2,
        CodeRow("u1", NUMBER, "d" * 64, 0, T0 + timedelta(minutes=5)),
    )
    # Used up: nothing to guess at, so the slot it took is given back.
    assert store.take_attempt("u1", "failed:u1", 60, 5, T0) == (3, end, None)
    assert store.peek("failed:u1", T0) == (2, end)


def test_take_attempt_takes_no_attempt_beyond_the_failure_limit(store: Store) -> None:
    end = T0 + timedelta(seconds=60)
    store.put_code(CodeRow("u1", NUMBER, "d" * 64, 3, T0 + timedelta(minutes=5)), T0)
    store.hit("failed:u1", 60, T0, amount=2)

    assert store.take_attempt("u1", "failed:u1", 60, 2, T0) == (3, end, None)
    assert store.get_code("u1").attempts_left == 3  # type: ignore[union-attr]
    assert store.peek("failed:u1", T0) == (3, end)  # over the limit: the slot stays taken


def test_take_attempt_from_8_threads_never_exceeds_the_limit(store: Store) -> None:
    store.put_code(CodeRow("u1", NUMBER, "d" * 64, 20, T0 + timedelta(minutes=5)), T0)
    rows: list[CodeRow] = []

    def guess(_: int) -> None:
        for _ in range(10):
            row = store.take_attempt("u1", "failed:u1", 60, 7, T0)[2]
            if row is not None:
                rows.append(row)

    in_threads(guess, 8)
    assert sorted(r.attempts_left for r in rows) == list(range(13, 20))
    assert store.get_code("u1").attempts_left == 13  # type: ignore[union-attr]


def test_hit_counts_within_a_fixed_window_then_starts_again(store: Store) -> None:
    end = T0 + timedelta(seconds=60)
    assert store.hit("k", 60, T0) == (1, end)
    assert store.hit("k", 60, T0 + timedelta(seconds=10)) == (2, end)  # window not moved
    assert store.hit("k", 60, T0 + timedelta(seconds=59), amount=3) == (5, end)
    assert store.peek("k", T0 + timedelta(seconds=59)) == (5, end)
    # At the window's end the count starts again from this hit, in a new window.
    later = T0 + timedelta(seconds=60)
    assert store.hit("k", 60, later) == (1, later + timedelta(seconds=60))
    assert store.hit("k", 60, later + timedelta(seconds=1)) == (2, later + timedelta(seconds=60))


def test_peek_does_not_count_and_sees_expiry(store: Store) -> None:
    assert store.peek("k", T0) == (0, None)
    store.hit("k", 60, T0)
    for _ in range(3):
        assert store.peek("k", T0 + timedelta(seconds=1)) == (1, T0 + timedelta(seconds=60))
    assert store.peek("k", T0 + timedelta(seconds=60)) == (0, None)


def test_counters_are_independent_and_reset(store: Store) -> None:
    store.hit("a", 60, T0)
    store.hit("a", 60, T0)
    store.hit("b", 60, T0)
    assert store.peek("a", T0)[0] == 2 and store.peek("b", T0)[0] == 1
    store.reset("a")
    assert store.peek("a", T0) == (0, None)
    assert store.peek("b", T0)[0] == 1
    assert store.hit("a", 60, T0)[0] == 1


def test_forty_threads_share_a_sqlite_file_each_on_its_own_connections(tmp_path: Any) -> None:
    # More threads than the pool holds (5 + 10): each keeps its own connections, so none
    # waits for another's, and each sees what the others committed.
    store = Store(f"sqlite:///{tmp_path / 'threads.db'}")
    store.create_schema()
    barrier = threading.Barrier(40)
    seen: list[int] = []
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            store.put_code(CodeRow(f"u{i}", NUMBER, "d" * 64, 3, T0 + timedelta(minutes=5)), T0)
            barrier.wait(timeout=30)  # every thread has written and holds its connections
            seen.append(sum(store.get_code(f"u{j}") is not None for j in range(40)))
            store.hit("shared", 60, T0)
        except BaseException as exc:
            errors.append(exc)

    in_threads(work, 40)
    assert errors == []
    assert seen == [40] * 40
    assert store.peek("shared", T0) == (40, T0 + timedelta(seconds=60))
    store.dispose()


# Run in a process of its own: this one has threads (servers, pools), and forking a threaded
# process can deadlock (Python 3.12+ warns about it). The worker processes forked by gunicorn
# or uvicorn are forked before any thread starts, as this one is.
FORK_CHILD = """
import os, sys
from datetime import datetime, timedelta, timezone
from sms2fa_middleware.store import CodeRow, Store

T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)
later = T0 + timedelta(minutes=5)
store = Store(sys.argv[1])
store.create_schema()
store.put_code(CodeRow("parent", "+12065550123", "d" * 64, 3, later), T0)
assert store.get_code("parent") is not None  # this thread's connections are open now
pid = os.fork()
if pid == 0:  # the child: must not touch the parent's connections
    code = 1
    try:
        store.put_code(CodeRow("child", "+12065550123", "e" * 64, 3, later), T0)
        code = 0 if store.get_code("parent") and store.get_code("child") else 2
    finally:
        os._exit(code)
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0, status
assert store.get_code("child") is not None  # the parent's connections still work
store.hit("after-fork", 60, T0)
store.dispose()
print("fork ok")
"""


@pytest.mark.server
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_opens_its_own_sqlite_connections(tmp_path: Any) -> None:
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", FORK_CHILD, f"sqlite:///{tmp_path / 'fork.db'}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "fork ok"


def test_hit_is_atomic_under_parallel_threads(store: Store) -> None:
    n = 20
    barrier = threading.Barrier(n)
    seen: list[int] = []
    lock = threading.Lock()

    def worker(_: int) -> None:
        barrier.wait()
        count, _ = store.hit("shared", 60, utcnow())
        with lock:
            seen.append(count)

    in_threads(worker, n)
    assert sorted(seen) == list(range(1, n + 1))  # every hit saw its own, distinct count


def _attempt(store: Store, auth_id: str, now: datetime) -> CodeRow | None:
    """One guess's attempt of ``auth_id``'s live code (the failure budget far away)."""
    return store.take_attempt(auth_id, f"failed:{auth_id}", 60, 1000, now)[2]


# -- codes ----------------------------------------------------------------------------------


def test_take_attempt_takes_one_attempt_at_a_time(store: Store) -> None:
    store.put_code(CodeRow("u1", NUMBER, "d" * 64, 2, T0 + timedelta(minutes=5)), T0)
    first = _attempt(store, "u1", T0)
    second = _attempt(store, "u1", T0)
    assert first is not None and first.attempts_left == 1 and first.digest == "d" * 64
    assert second is not None and second.attempts_left == 0
    assert _attempt(store, "u1", T0) is None
    row = store.get_code("u1")
    assert row is not None and row.attempts_left == 0
    assert _attempt(store, "nobody", T0) is None


def test_take_attempt_refuses_an_expired_code(store: Store) -> None:
    store.put_code(CodeRow("u1", NUMBER, "d" * 64, 3, T0), T0 - timedelta(minutes=5))
    assert _attempt(store, "u1", T0) is None  # expires_at <= now
    row = store.get_code("u1")
    assert row is not None and row.attempts_left == 3


def test_put_code_replaces_and_delete_checks_the_digest(store: Store) -> None:
    store.put_code(CodeRow("u1", NUMBER, "a" * 64, 3, T0 + timedelta(minutes=5)), T0, "mdr2-a")
    store.put_code(CodeRow("u1", "+12065550145", "b" * 64, 5, T0 + timedelta(minutes=9)), T0)
    row = store.get_code("u1")
    assert row == CodeRow("u1", "+12065550145", "b" * 64, 5, T0 + timedelta(minutes=9))
    assert store.count_codes() == 1
    assert store.run(lambda c: c.execute(select(codes.c.message_id)).scalar_one()) is None
    assert store.delete_code("u1", "a" * 64) is False  # replaced meanwhile
    assert store.delete_code("u1", "b" * 64) is True
    assert store.delete_code("u1") is False
    assert store.get_code("u1") is None


def test_purge_removes_only_what_has_expired(store: Store) -> None:
    store.put_code(CodeRow("old", NUMBER, "a" * 64, 3, T0), T0 - timedelta(minutes=5))
    store.put_code(CodeRow("live", NUMBER, "b" * 64, 3, T0 + timedelta(seconds=1)), T0)
    store.hit("old-counter", 60, T0 - timedelta(seconds=60))
    store.hit("live-counter", 60, T0)
    store.revoke("old-revocation", T0 - timedelta(days=40))
    store.revoke("live-revocation", T0 - timedelta(days=1))
    assert store.purge(T0, T0 - timedelta(days=31)) == 3
    assert store.count_codes() == 1
    assert store.get_code("live") is not None
    keys = store.run(lambda c: set(c.execute(select(counters.c.key)).scalars()))
    assert keys == {"live-counter"}
    assert [a for a, _ in store.revocations_since(T0 - timedelta(days=365))] == ["live-revocation"]
    assert store.purge(T0, T0 - timedelta(days=31)) == 0


# -- an unreachable database ----------------------------------------------------------------

CLOSED_PORT_URL = "postgresql+psycopg://postgres@127.0.0.1:1/test"


def store_operations(s: Store) -> dict[str, Callable[[], Any]]:
    return {
        "create_schema": s.create_schema,
        "put_code": lambda: s.put_code(CodeRow("u1", NUMBER, "d" * 64, 3, T0), T0),
        "take_attempt": lambda: s.take_attempt("u1", "failed:u1", 60, 5, T0),
        "get_code": lambda: s.get_code("u1"),
        "delete_code": lambda: s.delete_code("u1"),
        "hit": lambda: s.hit("k", 60, T0),
        "peek": lambda: s.peek("k", T0),
        "reset": lambda: s.reset("k"),
        "revoke": lambda: s.revoke("u1", T0),
        "revocations_since": lambda: s.revocations_since(T0),
        "purge": lambda: s.purge(T0, T0),
        "count_codes": s.count_codes,
        "run": lambda: s.run(lambda c: c.execute(select(1)).scalar_one()),
    }


@pytest.mark.parametrize(
    "url",
    [CLOSED_PORT_URL, "sqlite:////nonexistent-dir-sms2fa/x.db"],
    ids=["postgres-closed-port", "sqlite-no-such-directory"],
)
def test_every_store_operation_raises_store_unavailable(url: str) -> None:
    s = Store(url)
    try:
        for name, operation in store_operations(s).items():
            with pytest.raises(StoreUnavailable) as info:
                operation()
            assert info.value.reason == "ServiceUnavailable", name
            assert "postgres" not in str(info.value) and "nonexistent" not in str(info.value)
    finally:
        s.dispose()


def test_verifier_on_an_unreachable_database_raises_store_unavailable(
    fake_flowroute: FakeFlowroute,
) -> None:
    settings = Settings(
        secret_key=SECRET, database_url=CLOSED_PORT_URL, **fake_flowroute.settings_kwargs()
    )
    verifier = Verifier(settings)  # no database work yet
    with pytest.raises(StoreUnavailable):
        verifier.create_schema()
    with pytest.raises(StoreUnavailable):
        verifier.start("u1", NUMBER)
    assert fake_flowroute.requests_seen == 0


def test_exhausted_connection_pool_is_store_unavailable(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=1, max_overflow=0, pool_timeout=0.2)
    s = Store(engine)
    s.create_schema()
    held = engine.connect()
    try:
        with pytest.raises(StoreUnavailable):
            s.count_codes()
    finally:
        held.close()
    assert s.count_codes() == 0
    engine.dispose()


@pytest.mark.server
@pytest.mark.postgres
def test_engine_operations_raise_store_unavailable_when_the_database_goes_away(
    fake_flowroute: FakeFlowroute,
    postgres_database_url: str,
) -> None:
    proxy, proxied = PausableProxy.to(fresh_database(postgres_database_url))
    verifier = Verifier(
        Settings(
            secret_key=SECRET,
            database_url=proxied,
            resend_cooldown=0,
            **fake_flowroute.settings_kwargs(),
        )
    )
    try:
        verifier.start("u1", NUMBER)
        assert verifier.pending("u1") is not None
        code = fake_flowroute.last_code(NUMBER)
        proxy.stop()
        operations: dict[str, Callable[[], Any]] = {
            "start": lambda: verifier.start("u2", NUMBER),
            "check": lambda: verifier.check("u1", code),
            "cancel": lambda: verifier.cancel("u1"),
            "pending": lambda: verifier.pending("u1"),
            "purge": verifier.purge,
        }
        for name, operation in operations.items():
            with pytest.raises(StoreUnavailable):
                operation()
            assert name
        assert len(fake_flowroute.messages) == 1  # no SMS for a start the store refused
    finally:
        verifier.store.dispose()


def test_the_store_makes_only_its_own_data_directory_and_checks_urls(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sms2fa_middleware.errors import ConfigurationError
    from sms2fa_middleware.store.files import data_directory, make_data_directory
    from sms2fa_middleware.store.urls import check_database_url, default_database_url

    monkeypatch.setenv("SMS2FA_DATA_DIR", str(tmp_path / "data"))
    assert data_directory() == str(tmp_path / "data")
    assert (
        check_database_url("")
        == default_database_url()
        == (f"sqlite:///{tmp_path / 'data' / 'sms2fa.db'}")
    )
    make_data_directory(str(tmp_path / "elsewhere" / "x.db"))  # not ours: left missing
    assert not (tmp_path / "elsewhere").exists()
    make_data_directory(str(tmp_path / "data" / "sms2fa.db"))
    assert (tmp_path / "data").stat().st_mode & 0o777 == 0o700
    with pytest.raises(ConfigurationError, match="SMS2FA_DATABASE_URL"):
        check_database_url("mysql://root:hunter2@localhost/test")
