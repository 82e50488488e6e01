"""The pure policy (sms2fa_middleware.policy) and the timing waits, with injected clocks: no
database, no network, no sleeping."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from sms2fa_middleware import InvalidAPIUsage, Settings
from sms2fa_middleware.engine import timing
from sms2fa_middleware.policy import (
    Budget,
    Keys,
    Outcome,
    judge,
    live,
    lock_seconds,
    retry_after,
    seconds_until,
    send_budgets,
)
from tests.support.clock import T0, FakeClock

NUMBER = "+12065550123"


def settings(**overrides: Any) -> Settings:
    return Settings(secret_key="policy-test-secret-0123456789", sms_backend="console", **overrides)


def test_send_budgets_are_named_values_with_their_own_keys() -> None:
    s = settings(
        resend_cooldown=30,
        recipient_send_limit=5,
        recipient_send_window=600,
        address_send_limit=20,
        address_send_window=900,
        global_send_limit=1000,
    )
    budgets = send_budgets(s, Keys(), "alice", NUMBER, "203.0.113.9", parts=2)
    assert budgets == [
        Budget("resend_cooldown", "cooldown:alice", 1, 30, 1, cooldown=True),
        Budget("recipient", f"recipient:{NUMBER}", 5, 600, 2),
        Budget("client_address", "address:203.0.113.9", 20, 900, 2),
        Budget("global", "global", 1000, 3600, 2),
    ]
    assert [b.name for b in budgets if b.cooldown] == ["resend_cooldown"]


def test_budgets_that_are_off_are_not_spent() -> None:
    s = settings(resend_cooldown=0, recipient_send_limit=0, address_send_limit=0)
    assert send_budgets(s, Keys(), "alice", NUMBER, "203.0.113.9") == []
    # Without a client address there is no per-address budget to spend.
    s = settings(resend_cooldown=0, recipient_send_limit=0)
    assert send_budgets(s, Keys(), "alice", NUMBER, None) == []


def test_a_namespace_scopes_every_key_and_digests_auth_ids() -> None:
    keys = Keys("api\x1e")
    key = keys.auth("alice")
    assert key.startswith("api\x1e") and "alice" not in key and len(key) <= 120
    assert Keys().auth("alice") == "alice"
    budgets = send_budgets(settings(global_send_limit=10), keys, key, NUMBER, "203.0.113.9")
    assert all(b.key.startswith(("api\x1e", "cooldown:api\x1e")) for b in budgets)
    assert keys.address_checks("2001:db8::1") != Keys().address_checks("2001:db8::1")


def test_locks_double_up_to_the_maximum() -> None:
    s = settings(lockout_seconds=60, lockout_max_seconds=300)
    assert [lock_seconds(s, n) for n in (0, 1, 2, 3, 4, 50)] == [60, 60, 120, 240, 300, 300]


def test_waits_are_whole_seconds_measured_on_the_injected_clock() -> None:
    clock = FakeClock()
    reset_at = T0 + timedelta(seconds=30)
    assert retry_after(reset_at, clock.now()) == 31  # never 0, even at the edge
    clock.advance(29.5)
    assert seconds_until(reset_at, clock.now()) == 1
    clock.advance(0.5)
    assert seconds_until(reset_at, clock.now()) == 0
    assert seconds_until(None, clock.now()) == 0


def test_what_a_checks_outcome_means() -> None:
    assert judge(11, 10, found=True, right=True) is Outcome.LOCKED  # nothing evaluated
    assert judge(10, 10, found=False, right=False) is Outcome.NOTHING
    assert judge(3, 10, found=True, right=True) is Outcome.RIGHT
    assert judge(10, 10, found=True, right=False) is Outcome.WRONG


def test_a_code_is_live_until_it_expires_or_runs_out() -> None:
    clock = FakeClock()
    expires = T0 + timedelta(minutes=5)
    assert live(3, expires, clock.now())
    assert not live(0, expires, clock.now())
    clock.advance(300)
    assert not live(3, expires, clock.now())


@pytest.mark.parametrize("value", [True, 3.0, "6", 11, 3])
def test_options_out_of_range_are_invalid_api_usage(value: object) -> None:
    from sms2fa_middleware.policy import option

    with pytest.raises(InvalidAPIUsage):
        option("code_length", value, 6, 4, 10)


class FakeTime:
    """Stands in for the ``time`` module in engine.timing: sleeping moves its clock."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []
        self.spins = 0

    def perf_counter(self) -> float:
        self.spins += 1
        self.now += 0.0001  # each look at the clock takes a little time
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_a_blocking_wait_sleeps_and_spins_only_the_last_millisecond(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeTime()
    monkeypatch.setattr(timing, "time", fake)
    timing.wait(fake.now + 0.050)
    (slept,) = fake.sleeps
    assert 0.048 < slept <= 0.049 + 1e-9
    assert fake.spins < 20  # ~1 ms of spinning at 0.1 ms a look


def test_a_blocking_wait_over_a_millisecond_sleeps(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeTime()
    monkeypatch.setattr(timing, "time", fake)
    timing.wait(fake.now + 0.0015)
    assert len(fake.sleeps) == 1 and fake.sleeps[0] < 0.0006


def test_a_short_blocking_wait_only_spins(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeTime()
    monkeypatch.setattr(timing, "time", fake)
    timing.wait(fake.now + 0.0008)
    assert fake.sleeps == []


def test_the_floor_is_the_slowest_kinds_75th_percentile() -> None:
    floor = timing.TimingFloor()
    deadline = 0.0
    for i in range(16):
        floor.record("unknown", 0.0, 0.001)
        deadline = floor.record("live", 0.0, 0.002 + i * 0.0001)
    assert deadline == pytest.approx(0.002 + 12 * 0.0001)
