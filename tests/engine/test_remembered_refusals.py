"""Refusals from memory (engine/spent.py): what the store refused -- a client address past its
check budget, a spent send budget, a locked auth_id -- is refused again until it ends with
the same answer and events and no store statement; it ends exactly when the store's window
does; what the engine lifts early is forgotten; a refused send spends nothing; the memory is
bounded and holds no number or address.

Statements are counted on a real SQLite file (the driver's own trace of every statement it
runs); the rest runs on PostgreSQL too.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import event

from sms2fa_middleware import (
    AuditEvent,
    InvalidAuthCode,
    RateLimited,
    Settings,
    SMSDeliveryFailed,
    UnknownAuthId,
    Verified,
    Verifier,
)
from sms2fa_middleware.engine.spent import Spent
from sms2fa_middleware.engine.timing import TimingFloor
from sms2fa_middleware.store import Store, utcnow
from sms2fa_middleware.store.aio import resolve
from sms2fa_middleware.testing import FakeFlowroute
from tests.support import NO_BUDGETS
from tests.support.clock import FakeClock

SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

NUMBER = "+12065550123"
VICTIM = "+12065550177"
ADDRESS = "198.51.100.7"
NO_CHECK_BUDGET: dict[str, Any] = {"address_check_limit": 0}


def wrong(code: str) -> str:
    return code[:-1] + str((int(code[-1]) + 1) % 10)


class Statements:
    """Every statement the store's SQLite connections run, as the driver traces them."""

    def __init__(self, store: Store) -> None:
        self.seen: list[str] = []
        for engine in {store.engine, store.reader}:
            event.listen(engine, "connect", self._trace)

    def _trace(self, dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.set_trace_callback(self.seen.append)

    def clear(self) -> None:
        # A start purges in a thread of its own once a minute: let it finish first.
        for thread in threading.enumerate():
            if thread.name == "sms2fa-purge":
                thread.join(30)
        self.seen.clear()


Made = tuple[Verifier, Statements, list[AuditEvent]]


@pytest.fixture
def counted(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., Made]]:
    """A Verifier on a store whose statements are traced, recording its events."""
    stores: list[Store] = []

    def build(clock: FakeClock | None = None, **overrides: Any) -> Made:
        settings = make_settings(**overrides)
        store = Store(settings.database_url)
        stores.append(store)
        statements = Statements(store)  # before the first connection is opened
        events: list[AuditEvent] = []
        verifier = Verifier(settings, store=store, on_event=events.append, clock=clock)
        verifier.create_schema()
        return verifier, statements, events

    yield build
    for store in stores:
        store.dispose()


def refused(call: Callable[[], object]) -> RateLimited:
    with pytest.raises(RateLimited) as info:
        call()
    return info.value


def logged(caplog: pytest.LogCaptureFixture, name: str) -> list[int]:
    """The levels of the ``sms2fa`` log lines of event ``name``."""
    return [r.levelno for r in caplog.records if f"event={name} " in r.getMessage()]


# -- checks past the client address's budget ----------------------------------------------------


@SQLITE
def test_checks_past_the_address_budget_are_refused_from_memory_without_a_statement(
    counted: Callable[..., Made], caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock(datetime.now(timezone.utc))
    verifier, statements, events = counted(clock, address_check_limit=3, address_check_window=600)
    check = verifier.check
    for _ in range(3):
        with pytest.raises(UnknownAuthId):
            check("nobody", "123456", client_address=ADDRESS)
    with caplog.at_level(logging.DEBUG, logger="sms2fa"):
        first = refused(lambda: check("nobody", "123456", client_address=ADDRESS))
        assert (first.budget, first.retry_after) == ("client_address_checks", 601)
        clock.advance(5)
        statements.clear()
        for i in range(20):
            again = refused(lambda i=i: check(f"other-{i}", "123456", client_address=ADDRESS))
            assert again.to_dict() == {**first.to_dict(), "retry_after": 596}
        assert statements.seen == []  # not a read, not a write
    # Every refusal reaches the hook as the store's did; the log says it once per window (the
    # repeats go to DEBUG).
    refusals = [e for e in events if e.name == "rate_limited"]
    assert len(refusals) == 21
    assert {(e.reason, e.recipient) for e in refusals} == {("client_address_checks", None)}
    assert [e.detail["retry_after"] for e in refusals] == [601] + [596] * 20
    assert logged(caplog, "rate_limited") == [logging.INFO] + [logging.DEBUG] * 20
    # The store counted up to the refusal, then nothing more: one write per window.
    assert verifier.store.peek(verifier.keys.address_checks(ADDRESS), clock.now())[0] == 4

    statements.clear()
    clock.advance(594)  # one second before the window ends: still refused, from memory
    assert refused(lambda: check("x", "123456", client_address=ADDRESS)).retry_after == 2
    assert statements.seen == []
    clock.advance(1)  # the window's end: the store's, and the memory's
    with pytest.raises(UnknownAuthId):
        check("x", "123456", client_address=ADDRESS)
    assert any(s.startswith("INSERT INTO sms2fa_counters") for s in statements.seen)


def test_the_remembered_end_is_the_stores_own(
    make_verifier: Callable[..., Verifier], fake_flowroute: FakeFlowroute
) -> None:
    verifier = make_verifier(
        address_check_limit=1, recipient_send_limit=1, resend_cooldown=0, max_failed_checks=1
    )
    with pytest.raises(UnknownAuthId):
        verifier.check("u0", "123456", client_address=ADDRESS)
    refused(lambda: verifier.check("u0", "123456", client_address=ADDRESS))
    verifier.start("u1", NUMBER)
    refused(lambda: verifier.start("u2", NUMBER))
    with pytest.raises(InvalidAuthCode):  # the one failure allowed: u1 is locked
        verifier.check("u1", wrong(fake_flowroute.last_code(NUMBER)))
    now = utcnow()
    for key in (verifier.keys.address_checks(ADDRESS), f"recipient:{NUMBER}", "failed:u1"):
        ends = verifier.store.peek(key, now)[1]
        assert ends is not None
        assert verifier.spent.until(key, now) == ends, key
        assert verifier.spent.until(key, ends) is None, key  # over when the store's window is


# -- creates past a spent budget ---------------------------------------------------------------


@SQLITE
def test_creates_past_a_spent_recipient_budget_are_refused_from_memory(
    counted: Callable[..., Made], fake_flowroute: FakeFlowroute, caplog: pytest.LogCaptureFixture
) -> None:
    verifier, statements, events = counted(
        recipient_send_limit=2, resend_cooldown=30, address_send_limit=5
    )
    for i in range(2):
        verifier.start(f"u{i}", NUMBER, client_address=ADDRESS)
    with caplog.at_level(logging.DEBUG, logger="sms2fa"):
        first = refused(lambda: verifier.start("u2", NUMBER, client_address=ADDRESS))
        assert first.budget == "recipient"
        statements.clear()
        for i in range(3, 20):
            again = refused(lambda i=i: verifier.start(f"u{i}", NUMBER, client_address=ADDRESS))
            assert again.budget == "recipient"
            assert abs(again.retry_after - first.retry_after) <= 1
        assert statements.seen == []
    assert len(fake_flowroute.messages_to(NUMBER)) == 2
    refusals = [e for e in events if e.name == "rate_limited"]
    assert len(refusals) == 18 and {e.reason for e in refusals} == {"recipient"}
    assert logged(caplog, "rate_limited") == [logging.INFO] + [logging.DEBUG] * 17
    # A refused send spent nothing: the recipient's budget stopped at its limit, the client
    # address's at its two sends, and no refused auth_id waits out a cooldown.
    now = utcnow()
    assert verifier.store.peek(f"recipient:{NUMBER}", now)[0] == 2
    assert verifier.store.peek(f"address:{ADDRESS}", now)[0] == 2
    assert [verifier.resend_wait(f"u{i}") > 0 for i in range(4)] == [True, True, False, False]


def test_a_refused_send_spends_no_budget_of_anyone_else(
    make_verifier: Callable[..., Verifier], fake_flowroute: FakeFlowroute
) -> None:
    """Sends refused by the client address's budget must not spend the recipient's: an
    address past its budget could otherwise lock any number out of its codes."""
    first = make_verifier(address_send_limit=2, recipient_send_limit=3, resend_cooldown=30)
    for i in range(2):
        first.start(f"a{i}", f"+1206555010{i}", client_address=ADDRESS)
    for i in range(10):  # each from a worker of its own: the store decides every time
        worker = Verifier(first.settings, store=first.store)
        refusal = refused(lambda i=i: worker.start(f"v{i}", VICTIM, client_address=ADDRESS))
        assert refusal.budget == "client_address"
    for i in range(10):  # and from one that remembers
        refusal = refused(lambda i=i: first.start(f"w{i}", VICTIM, client_address=ADDRESS))
        assert refusal.budget == "client_address"
    assert first.store.peek(f"recipient:{VICTIM}", utcnow()) == (0, None)
    assert first.resend_wait("v0") == first.resend_wait("w0") == 0
    first.start("victim", VICTIM, client_address="203.0.113.5")  # the victim's code is sent
    assert len(fake_flowroute.messages_to(VICTIM)) == 1


def test_budgets_a_failed_send_gives_back_are_asked_of_the_store_again(
    make_verifier: Callable[..., Verifier], fake_flowroute: FakeFlowroute
) -> None:
    verifier = make_verifier(recipient_send_limit=1, resend_cooldown=0, address_send_limit=0)
    inside, go = threading.Event(), threading.Event()

    class Held:
        """The first send waits at the provider's door until the test lets it in."""

        def __init__(self, sender: Any) -> None:
            self.sender = sender

        def send(self, to: str, body: str) -> str | None:
            if threading.current_thread().name == "first":
                inside.set()
                assert go.wait(30)
            return self.sender.send(to, body)  # type: ignore[no-any-return]

    verifier.sender = Held(verifier.sender)
    outcome: list[object] = []

    def first() -> None:
        try:
            outcome.append(verifier.start("u1", NUMBER))
        except Exception as exc:  # the outcome is what the test looks at
            outcome.append(exc)

    thread = threading.Thread(target=first, name="first")
    thread.start()
    assert inside.wait(30)
    assert refused(lambda: verifier.start("u2", NUMBER)).budget == "recipient"  # remembered
    fake_flowroute.fail_next(400)  # the provider says no: nothing went out, the budget is back
    go.set()
    thread.join(30)
    assert len(outcome) == 1 and isinstance(outcome[0], SMSDeliveryFailed)
    assert verifier.start("u3", NUMBER).recipient == NUMBER  # not refused from memory
    assert len(fake_flowroute.messages_to(NUMBER)) == 1


# -- locked auth_ids ---------------------------------------------------------------------------


@SQLITE
def test_a_locked_id_is_refused_from_memory_checks_sends_and_recovery_alike(
    counted: Callable[..., Made], fake_flowroute: FakeFlowroute
) -> None:
    verifier, statements, events = counted(
        max_failed_checks=2, retries_allowed=5, **NO_BUDGETS, **NO_CHECK_BUDGET
    )
    verifier.start("u1", NUMBER)
    code = fake_flowroute.last_code(NUMBER)
    for _ in range(2):
        with pytest.raises(InvalidAuthCode):
            verifier.check("u1", wrong(code))
    # What another worker, which has not seen the lock, hears from the store.
    other = Verifier(verifier.settings, store=verifier.store, on_event=[].append)
    told = refused(lambda: other.check("u1", code))
    told_send = refused(lambda: other.start("u1", NUMBER))
    told_recovery = refused(lambda: other.use_recovery_code("u1", "abcde-fghjk"))
    events.clear()
    statements.clear()
    for uniform in (False, True):  # even the right code waits for the lock to end
        assert refused(lambda u=uniform: verifier.check("u1", code, uniform=u)).to_dict() == (
            told.to_dict()
        )
    assert refused(lambda: verifier.start("u1", NUMBER)).to_dict() == told_send.to_dict()
    assert refused(lambda: verifier.use_recovery_code("u1", "abcde-fghjk")).to_dict() == (
        told_recovery.to_dict()
    )
    assert told.budget == told_send.budget == "failed_checks"
    # One read: without uniform errors an id with no code answers UnknownAuthId before any
    # lock, so the check still asks for the code. No write at all.
    assert len(statements.seen) == 1 and statements.seen[0].startswith("SELECT"), statements.seen
    assert [(e.name, e.reason) for e in events] == [
        ("locked", "RateLimited"),
        ("locked", "RateLimited"),
        ("rate_limited", "failed_checks"),
        ("locked", "RateLimited"),
    ]
    assert len(fake_flowroute.messages_to(NUMBER)) == 1


def test_a_remembered_lock_ends_when_the_stores_does(
    make_verifier: Callable[..., Verifier], fake_flowroute: FakeFlowroute
) -> None:
    clock = FakeClock(datetime.now(timezone.utc))
    made = make_verifier(
        max_failed_checks=1, lockout_seconds=60, retries_allowed=5, **NO_BUDGETS, **NO_CHECK_BUDGET
    )
    verifier = Verifier(made.settings, store=made.store, clock=clock)
    verifier.start("u1", NUMBER)
    code = fake_flowroute.last_code(NUMBER)
    with pytest.raises(InvalidAuthCode):
        verifier.check("u1", wrong(code))
    assert refused(lambda: verifier.check("u1", code)).retry_after == 61
    clock.advance(59)
    assert refused(lambda: verifier.check("u1", code)).retry_after == 2
    clock.advance(1)  # the lock's end
    assert verifier.check("u1", code) == Verified("u1", NUMBER)


def test_a_lock_lifted_by_a_right_code_in_flight_is_forgotten_here(
    make_verifier: Callable[..., Verifier], fake_flowroute: FakeFlowroute
) -> None:
    """A right code that took its slot before the lock came still wins, and resets the
    failures: this process asks the store again at once (others refuse until the lock would
    have ended -- a refusal, never an answer the store would not give)."""
    verifier = make_verifier(
        max_failed_checks=2, retries_allowed=5, **NO_BUDGETS, **NO_CHECK_BUDGET
    )
    verifier.start("u1", NUMBER)
    code = fake_flowroute.last_code(NUMBER)
    with pytest.raises(InvalidAuthCode):
        verifier.check("u1", wrong(code))
    reached, go = threading.Event(), threading.Event()
    delete_code = verifier.store.delete_code

    def paused(*args: Any, **kwargs: Any) -> bool:
        if threading.current_thread().name == "right":
            reached.set()
            assert go.wait(30)
        return delete_code(*args, **kwargs)

    verifier.store.delete_code = paused  # type: ignore[method-assign]
    outcome: list[object] = []
    thread = threading.Thread(
        target=lambda: outcome.append(verifier.check("u1", code)), name="right"
    )
    thread.start()
    assert reached.wait(30)  # the right guess holds the last slot
    for _ in range(2):  # past the cap: locked (the second from memory)
        assert refused(lambda: verifier.check("u1", wrong(code))).budget == "failed_checks"
    go.set()
    thread.join(30)
    assert outcome == [Verified("u1", NUMBER)]
    verifier.start("u1", NUMBER)  # not refused from memory
    assert verifier.check("u1", fake_flowroute.last_code(NUMBER)) == Verified("u1", NUMBER)


def test_a_remembered_lock_is_padded_like_the_stores_answer(
    make_verifier: Callable[..., Verifier], fake_flowroute: FakeFlowroute
) -> None:
    verifier = make_verifier(max_failed_checks=1, **NO_BUDGETS, **NO_CHECK_BUDGET)
    verifier.start("u1", NUMBER)
    code = fake_flowroute.last_code(NUMBER)
    with pytest.raises(InvalidAuthCode):
        verifier.check("u1", wrong(code), uniform=True)
    floor = TimingFloor()
    for _ in range(16):  # the floor: 50 ms
        floor.record("unknown", 0.0, 0.05)
    result = resolve(verifier.checks.check("u1", code, None, True))  # from memory
    assert result.pad_as == "locked"
    deadline = result.deadline(floor)
    assert deadline is not None and round(deadline - result.started, 9) >= 0.05
    floor.record("locked", 0.0, 0.2)  # a lock the store answered took longer: so does this
    assert result.deadline(floor) == pytest.approx(result.started + 0.2)
    with pytest.raises(RateLimited):
        result.settle()
    # Not padded without uniform errors, as the store's answer is not.
    assert resolve(verifier.checks.check("u1", code, None, False)).deadline(floor) is None


# -- the memory itself -------------------------------------------------------------------------


def test_the_memory_is_bounded_and_holds_no_number() -> None:
    spent = Spent(size=3)
    now = utcnow()
    later = now + timedelta(seconds=60)
    for i in range(5):
        spent.remember(f"recipient:+1206555010{i}", later, now)
    assert len(spent) == 3
    assert spent.until("recipient:+12065550100", now) is None  # the oldest went first
    assert spent.until("recipient:+12065550104", now) == later
    assert "555010" not in repr(vars(spent)) and "1206" not in repr(vars(spent))
    spent.forget("recipient:+12065550104")
    assert spent.until("recipient:+12065550104", now) is None
    spent.remember("gone", now, now)  # already over: nothing to remember
    assert spent.until("gone", now - timedelta(seconds=1)) is None


def test_an_amount_refused_says_nothing_of_a_smaller_one() -> None:
    spent = Spent()
    now = utcnow()
    later = now + timedelta(seconds=60)
    spent.remember("recipient:+12065550100", later, now, amount=2)  # a 2-segment message
    assert spent.until("recipient:+12065550100", now, amount=1) is None  # ask the store
    assert spent.until("recipient:+12065550100", now, amount=2) == later
    assert spent.until("recipient:+12065550100", now, amount=3) == later


def test_a_verifiers_memory_stays_bounded_under_many_addresses(
    make_verifier: Callable[..., Verifier],
) -> None:
    verifier = make_verifier(address_check_limit=1)
    verifier.spent.size = 4
    for i in range(10):
        address = f"198.51.100.{i}"
        with pytest.raises(UnknownAuthId):
            verifier.check("nobody", "123456", client_address=address)
        assert refused(lambda a=address: verifier.check("nobody", "1", client_address=a)).budget
    assert len(verifier.spent) == 4
    # A forgotten address is asked of the store again, which still refuses it.
    refusal = refused(lambda: verifier.check("nobody", "1", client_address="198.51.100.0"))
    assert refusal.budget == "client_address_checks"
