"""The engine's shapes: AsyncVerifier (the event-loop twin), an injected clock, and schema
creation as an explicit step -- on a real SQLite file, real PostgreSQL and FakeFlowroute."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from sms2fa_middleware import (
    ExpiredAuthCode,
    InvalidAuthCode,
    RateLimited,
    Settings,
    SMSDeliveryFailed,
    StoreUnavailable,
    UnknownAuthId,
    VerificationError,
    Verified,
    Verifier,
)
from sms2fa_middleware.engine import AsyncVerifier
from sms2fa_middleware.store import Store
from sms2fa_middleware.testing import FakeFlowroute
from tests.support import SECRET, in_threads
from tests.support.clock import FakeClock
from tests.support.databases import table_names

NUMBER = "+12065550123"
CLOSED_PORT_URL = "postgresql+psycopg://postgres@127.0.0.1:9/nothing"


def wrong(code: str) -> str:
    return code[:-1] + str((int(code[-1]) + 1) % 10)


# -- AsyncVerifier ------------------------------------------------------------------------------


def test_the_async_twin_starts_and_checks(
    verifier: Verifier, fake_flowroute: FakeFlowroute
) -> None:
    twin = AsyncVerifier(verifier)

    async def flow() -> Verified:
        started = await twin.start("u1", NUMBER, retries=2)
        assert started.attempts_left == 2 and started.message_id
        code = fake_flowroute.last_code(NUMBER)
        with pytest.raises(InvalidAuthCode) as wrong_guess:
            await twin.check("u1", wrong(code))
        assert wrong_guess.value.attempts_left == 1
        assert (await twin.pending("u1")) is not None
        return await twin.check("u1", code)

    assert asyncio.run(flow()) == Verified("u1", NUMBER)
    assert verifier.pending("u1") is None  # one store, one policy: consumed for both


def test_the_async_twin_leaves_no_code_when_the_send_fails(
    verifier: Verifier, fake_flowroute: FakeFlowroute
) -> None:
    fake_flowroute.fail_next(500)
    with pytest.raises(SMSDeliveryFailed):
        asyncio.run(AsyncVerifier(verifier).start("u1", NUMBER))
    assert verifier.store.count_codes() == 0
    assert verifier.resend_wait("u1") == 0  # a refused send gives its budgets back


def test_the_async_twin_shares_budgets_with_the_sync_verifier(
    make_verifier: Callable[..., Verifier],
) -> None:
    verifier = make_verifier(resend_cooldown=60)
    verifier.start("u1", NUMBER)
    with pytest.raises(RateLimited) as info:
        asyncio.run(AsyncVerifier(verifier).start("u1", NUMBER))
    assert info.value.budget == "resend_cooldown"


def test_a_uniform_async_check_awaits_its_timing_floor_without_holding_the_loop(
    verifier: Verifier,
) -> None:
    twin = AsyncVerifier(verifier)
    for _ in range(16):  # give the floor a value: every kind's 75th percentile
        verifier.floor.record("unknown", 0.0, 0.2)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    async def probe() -> int:
        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        before = ticks
        with pytest.raises(UnknownAuthId):
            await twin.check("nobody", "123456", uniform=True)
        task.cancel()
        return ticks - before

    # The loop kept serving others while this check waited (a spin would have starved them).
    assert asyncio.run(probe()) > 1


def _outcomes(twin: AsyncVerifier, guesses: list[str], auth_id: str = "u1") -> list[str]:
    """Every guess checked at once on a new event loop; each one's reason ("ok": verified)."""

    async def one(guess: str) -> str:
        try:
            await twin.check(auth_id, guess)
        except VerificationError as exc:
            return exc.reason
        return "ok"

    async def main() -> list[str]:
        return list(await asyncio.gather(*(one(g) for g in guesses)))

    return asyncio.run(main())


def test_parallel_async_checks_on_four_loops_guess_no_more_than_allowed_and_succeed_once(
    make_verifier: Callable[..., Verifier], fake_flowroute: FakeFlowroute
) -> None:
    # Four event loops in four threads (as four workers), each with ten checks in flight: the
    # right code among them, on a code with 5 attempts. Exactly one success, and never more
    # guesses evaluated than the code allowed.
    verifier = make_verifier(resend_cooldown=0, max_failed_checks=100)
    twin = AsyncVerifier(verifier)
    asyncio.run(twin.start("u1", NUMBER, retries=5))
    code = fake_flowroute.last_code(NUMBER)
    outcomes: list[str] = []

    def worker(i: int) -> None:
        guesses = [wrong(code)] * 10
        if i == 2:
            guesses[5] = code
        outcomes.extend(_outcomes(twin, guesses))

    in_threads(worker, 4)
    assert len(outcomes) == 40
    assert outcomes.count("ok") <= 1
    assert outcomes.count("ok") + outcomes.count("InvalidAuthCode") <= 5  # guesses evaluated
    assert set(outcomes) <= {"ok", "InvalidAuthCode", "UnknownAuthId"}


def test_a_right_async_check_after_parallel_wrong_ones_succeeds_once(
    make_verifier: Callable[..., Verifier], fake_flowroute: FakeFlowroute
) -> None:
    verifier = make_verifier(resend_cooldown=0, max_failed_checks=100)
    twin = AsyncVerifier(verifier)
    asyncio.run(twin.start("u1", NUMBER, retries=10))
    code = fake_flowroute.last_code(NUMBER)
    assert _outcomes(twin, [wrong(code)] * 6) == ["InvalidAuthCode"] * 6
    assert sorted(_outcomes(twin, [code] * 5)) == ["UnknownAuthId"] * 4 + ["ok"]
    assert verifier.pending("u1") is None


def test_async_failed_checks_lock_the_auth_id_as_sync_ones_do(
    make_verifier: Callable[..., Verifier], fake_flowroute: FakeFlowroute
) -> None:
    verifier = make_verifier(resend_cooldown=0, max_failed_checks=3, retries_allowed=10)
    twin = AsyncVerifier(verifier)
    asyncio.run(twin.start("u1", NUMBER))
    code = fake_flowroute.last_code(NUMBER)
    # Eight parallel wrong guesses: three evaluated, the rest refused, and the lock taken.
    outcomes = _outcomes(twin, [wrong(code)] * 8)
    assert sorted(outcomes) == ["InvalidAuthCode"] * 3 + ["RateLimited"] * 5
    assert _outcomes(twin, [code]) == ["RateLimited"]  # locked: even the right code waits
    with pytest.raises(RateLimited):
        verifier.check("u1", code)  # one store: the sync verifier sees the lock too
    with pytest.raises(RateLimited) as refused:
        asyncio.run(twin.start("u1", NUMBER))  # no SMS for a locked auth_id
    assert refused.value.budget == "failed_checks"


def test_an_unknown_auth_id_costs_no_write_on_the_async_path(verifier: Verifier) -> None:
    assert _outcomes(AsyncVerifier(verifier), ["123456"], "nobody") == ["UnknownAuthId"]
    failures = verifier.keys.failed(verifier.keys.auth("nobody"))
    assert verifier.store.peek(failures, datetime.now(timezone.utc)) == (0, None)


@pytest.mark.postgres
def test_the_async_twin_on_an_unreachable_database_fails_closed(
    fake_flowroute: FakeFlowroute,
) -> None:
    verifier = Verifier(
        Settings(
            secret_key=SECRET, database_url=CLOSED_PORT_URL, **fake_flowroute.settings_kwargs()
        ),
        auto_schema=False,
    )
    twin = AsyncVerifier(verifier)
    try:
        with pytest.raises(StoreUnavailable):
            asyncio.run(twin.start("u1", NUMBER))
        with pytest.raises(StoreUnavailable):
            asyncio.run(twin.check("u1", "123456"))
        assert fake_flowroute.requests_seen == 0  # no SMS for a start the store refused
    finally:
        verifier.store.dispose()


def test_store_work_runs_on_the_loop_only_where_blocking_is_cheap(database_url: str) -> None:
    store = Store(database_url)
    try:
        assert store.blocking_is_cheap is database_url.startswith("sqlite")
    finally:
        store.dispose()


# -- the injected clock -------------------------------------------------------------------------


def test_codes_expire_and_locks_end_on_the_injected_clock(
    make_settings: Callable[..., Settings], fake_flowroute: FakeFlowroute
) -> None:
    clock = FakeClock(datetime.now(timezone.utc))
    verifier = Verifier(
        make_settings(
            resend_cooldown=0, code_expiration=300, max_failed_checks=1, lockout_seconds=120
        ),
        clock=clock,
    )
    try:
        verifier.start("u1", NUMBER)
        code = fake_flowroute.last_code(NUMBER)
        clock.advance(301)
        with pytest.raises(ExpiredAuthCode):
            verifier.check("u1", code)

        verifier.start("u1", NUMBER)
        code = fake_flowroute.last_code(NUMBER)
        with pytest.raises(InvalidAuthCode):
            verifier.check("u1", wrong(code))
        with pytest.raises(RateLimited) as locked:
            verifier.check("u1", code)
        assert locked.value.retry_after == 121
        clock.advance(121)
        assert verifier.check("u1", code) == Verified("u1", NUMBER)
    finally:
        verifier.store.dispose()


# -- schema creation is an explicit step --------------------------------------------------------


def test_a_new_verifier_touches_no_database(tmp_path: Path, fake_flowroute: FakeFlowroute) -> None:
    path = tmp_path / "later.db"
    for url in (f"sqlite:///{path}", CLOSED_PORT_URL):
        settings = Settings(
            secret_key="s" * 32, database_url=url, **fake_flowroute.settings_kwargs()
        )
        Verifier(settings).store.dispose()  # an unreachable server is no error yet
    assert not path.exists()
    assert fake_flowroute.requests_seen == 0


def test_the_schema_is_made_on_first_use_or_when_asked(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    verifier = Verifier(make_settings(resend_cooldown=0))
    try:
        assert table_names(database_url) == set()
        assert verifier.pending("u1") is None  # first use: the tables are made
        assert "sms2fa_codes" in table_names(database_url)
        verifier.create_schema()  # and asking again is harmless
    finally:
        verifier.store.dispose()


def test_without_auto_schema_only_create_schema_makes_the_tables(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    verifier = Verifier(make_settings(resend_cooldown=0), auto_schema=False)
    try:
        with pytest.raises(StoreUnavailable):  # no tables: as unusable as no database
            verifier.pending("u1")
        assert table_names(database_url) == set()
        verifier.create_schema()
        assert verifier.pending("u1") is None
        verifier.start("u1", NUMBER)
        assert verifier.pending("u1") is not None
    finally:
        verifier.store.dispose()


def test_expiry_is_judged_on_the_injected_clock_in_pending(
    make_verifier: Callable[..., Verifier],
) -> None:
    verifier = make_verifier(resend_cooldown=0)
    verifier.start("u1", NUMBER)
    later = FakeClock(datetime.now(timezone.utc) + timedelta(hours=1))
    assert Verifier(verifier.settings, store=verifier.store, clock=later).pending("u1") is None
