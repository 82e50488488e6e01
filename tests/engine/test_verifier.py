"""The Verifier against real parts: FakeFlowroute over HTTP, a SQLite file and PostgreSQL."""

from __future__ import annotations

import logging
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import select, update

from sms2fa_middleware import (
    AuditEvent,
    ExpiredAuthCode,
    InvalidAPIUsage,
    InvalidAuthCode,
    InvalidRecipient,
    Pending,
    RateLimited,
    Settings,
    SMSDeliveryFailed,
    UnknownAuthId,
    VerificationError,
    Verified,
    Verifier,
)
from sms2fa_middleware.engine import codes as code_tools
from sms2fa_middleware.phones import mask
from sms2fa_middleware.sms import SendError
from sms2fa_middleware.store import CodeRow, codes, utcnow
from sms2fa_middleware.testing import FakeFlowroute
from tests.support import in_threads

NUMBER = "+12065550123"
OTHER = "+12065550145"


def wrong(code: str) -> str:
    """A code of the same shape that is certainly not ``code``."""
    return code[:-1] + str((int(code[-1]) + 1) % 10)


def rows(verifier: Verifier) -> list[Any]:
    return verifier.store.run(lambda conn: conn.execute(select(codes)).all())


def expire(verifier: Verifier, auth_id: str) -> None:
    past = utcnow() - timedelta(seconds=1)
    verifier.store.run(
        lambda conn: conn.execute(
            update(codes).where(codes.c.auth_id == auth_id).values(expires_at=past)
        )
    )


@pytest.fixture
def events_verifier(
    make_settings: Callable[..., Settings],
) -> Iterator[Callable[..., tuple[Verifier, list[AuditEvent]]]]:
    """Like make_verifier, with an on_event hook that records the events."""
    made: list[Verifier] = []

    def build(**overrides: Any) -> tuple[Verifier, list[AuditEvent]]:
        events: list[AuditEvent] = []
        verifier = Verifier(make_settings(**overrides), on_event=events.append)
        made.append(verifier)
        return verifier, events

    yield build
    for verifier in made:
        verifier.store.dispose()


# -- start ----------------------------------------------------------------------------------


def test_start_sends_exactly_one_sms_with_a_code_of_the_configured_length(
    make_verifier: Callable[..., Verifier],
    fake_flowroute: FakeFlowroute,
) -> None:
    verifier = make_verifier(code_length=8, org_name="Acme")
    before = datetime.now(timezone.utc)
    started = verifier.start("u1", "12065550123")
    assert started.auth_id == "u1"
    assert started.recipient == NUMBER
    assert started.attempts_left == 3
    assert started.expires_at.tzinfo is not None
    assert before + timedelta(seconds=599) <= started.expires_at
    assert started.expires_at <= datetime.now(timezone.utc) + timedelta(seconds=601)
    assert started.message_id and started.message_id.startswith("mdr2-")
    sent = fake_flowroute.messages
    assert len(sent) == 1
    assert sent[0].to == "12065550123" and sent[0].id == started.message_id
    assert sent[0].from_ == fake_flowroute.number
    code = fake_flowroute.last_code(NUMBER, 8)
    assert len(code) == 8 and code.isdigit()
    assert sent[0].body == f"Your Acme verification code is {code}. Don't share it with anyone."


def test_start_options_per_call(
    make_verifier: Callable[..., Verifier], fake_flowroute: FakeFlowroute
) -> None:
    verifier = make_verifier(resend_cooldown=0, allow_custom_message=True)
    started = verifier.start(
        "u1", NUMBER, code_length=4, expiration=60, retries=5, message="Code {code} for {org_name}."
    )
    assert started.attempts_left == 5
    assert started.expires_at <= utcnow() + timedelta(seconds=61)
    body = fake_flowroute.messages[-1].body
    code = fake_flowroute.last_code(NUMBER, 4)
    assert body == f"Code {code} for ."


BAD_OPTIONS: list[dict[str, Any]] = [
    {"code_length": 3},
    {"code_length": 11},
    {"code_length": "6"},
    {"code_length": True},
    {"expiration": 29},
    {"expiration": 3601},
    {"retries": 0},
    {"retries": 21},
    {"message": "no placeholder"},
    {"message": "{code} {secret}"},
    {"message": ""},
    {"message": "{code:x}"},
    {"message": "{code:>999999999}"},
    {"message": 5},
]


def test_bad_options_are_refused_before_any_sms(
    make_verifier: Callable[..., Verifier],
    fake_flowroute: FakeFlowroute,
) -> None:
    verifier = make_verifier(resend_cooldown=0, allow_custom_message=True)
    for options in BAD_OPTIONS:
        with pytest.raises(InvalidAPIUsage):
            verifier.start("u1", NUMBER, **options)
    assert fake_flowroute.requests_seen == 0
    assert verifier.store.count_codes() == 0


def test_bad_auth_id_is_refused(verifier: Verifier, fake_flowroute: FakeFlowroute) -> None:
    for auth_id in ["", "x" * 121, None, 5, "a\x00b", "a\nb"]:
        with pytest.raises(InvalidAPIUsage):
            verifier.start(auth_id, NUMBER)  # type: ignore[arg-type]
        with pytest.raises(InvalidAPIUsage):
            verifier.check(auth_id, "123456")  # type: ignore[arg-type]
    assert fake_flowroute.requests_seen == 0


def test_auth_id_of_120_characters_is_fine(
    verifier: Verifier, fake_flowroute: FakeFlowroute
) -> None:
    auth_id = "é" * 120
    verifier.start(auth_id, NUMBER)
    assert verifier.check(auth_id, fake_flowroute.last_code(NUMBER)) == Verified(auth_id, NUMBER)


def test_refused_recipient_costs_no_sms(verifier: Verifier, fake_flowroute: FakeFlowroute) -> None:
    for recipient in [
        "+18005551234",
        "+19005551234",
        "+18765550123",
        "+447400123456",
        " 1206555123",
        "+1206555123",
        True,
        None,
    ]:
        with pytest.raises(InvalidRecipient):
            verifier.start("u1", recipient)  # type: ignore[arg-type]
    assert fake_flowroute.requests_seen == 0
    assert verifier.store.count_codes() == 0


def test_code_is_stored_only_as_a_keyed_digest(
    verifier: Verifier, fake_flowroute: FakeFlowroute
) -> None:
    verifier.start("u1", NUMBER, code_length=10)
    code = fake_flowroute.last_code(NUMBER, 10)
    (row,) = rows(verifier)
    for value in row:
        assert code not in str(value)
    assert row.digest == code_tools.digest(code, "u1", verifier.settings.secret_key[0])
    assert row.recipient == NUMBER
    assert row.message_id == fake_flowroute.messages[-1].id


# -- check ----------------------------------------------------------------------------------


def test_right_code_verifies_once(verifier: Verifier, fake_flowroute: FakeFlowroute) -> None:
    verifier.start("u1", NUMBER)
    code = fake_flowroute.last_code(NUMBER, 6)
    assert verifier.check("u1", code) == Verified("u1", NUMBER)
    assert verifier.store.count_codes() == 0
    with pytest.raises(UnknownAuthId):
        verifier.check("u1", code)


def test_unknown_auth_id(verifier: Verifier) -> None:
    with pytest.raises(UnknownAuthId) as info:
        verifier.check("nobody", "123456")
    assert info.value.attempts_left == 0
    assert info.value.to_dict() == {
        "attempts_left": 0,
        "message": "Unknown auth id",
        "reason": "UnknownAuthId",
    }


def test_malformed_code_is_refused_without_spending_an_attempt(
    verifier: Verifier,
    fake_flowroute: FakeFlowroute,
) -> None:
    verifier.start("u1", NUMBER)
    for code in [
        "+0001268",
        " 1268",
        "12_68",
        "\u0661\u0662\u0663\u0664",
        "",
        "12345678901",
        None,
        1268,
    ]:
        with pytest.raises(InvalidAPIUsage):
            verifier.check("u1", code)  # type: ignore[arg-type]
    pending = verifier.pending("u1")
    assert pending is not None and pending.attempts_left == 3


def test_leading_zeros_count(make_verifier: Callable[..., Verifier]) -> None:
    verifier = make_verifier(resend_cooldown=0)
    digest = code_tools.digest("0042", "u1", verifier.settings.secret_key[0])
    now = utcnow()
    verifier.store.put_code(CodeRow("u1", NUMBER, digest, 3, now + timedelta(minutes=5)), now)
    with pytest.raises(InvalidAuthCode):
        verifier.check("u1", "42")
    assert verifier.check("u1", "0042") == Verified("u1", NUMBER)


def test_wrong_guesses_count_down_then_the_code_is_gone(
    verifier: Verifier,
    fake_flowroute: FakeFlowroute,
) -> None:
    verifier.start("u1", NUMBER, retries=3)
    code = fake_flowroute.last_code(NUMBER)
    answers = []
    for _ in range(3):
        with pytest.raises(InvalidAuthCode) as info:
            verifier.check("u1", wrong(code))
        answers.append(info.value.attempts_left)
        assert info.value.to_dict()["reason"] == "InvalidAuthCode"
    assert answers == [2, 1, 0]
    # Used up: no longer pending. The row stays until it expires (a right guess that took an
    # earlier attempt may still be evaluating: issue 11, item 4).
    assert verifier.pending("u1") is None
    with pytest.raises(UnknownAuthId):
        verifier.check("u1", wrong(code))
    with pytest.raises(UnknownAuthId):
        verifier.check("u1", code)  # even the right one, now


def test_right_code_on_the_last_attempt_still_works(
    verifier: Verifier,
    fake_flowroute: FakeFlowroute,
) -> None:
    verifier.start("u1", NUMBER, retries=2)
    code = fake_flowroute.last_code(NUMBER)
    with pytest.raises(InvalidAuthCode):
        verifier.check("u1", wrong(code))
    assert verifier.check("u1", code) == Verified("u1", NUMBER)


def test_expired_code_is_refused_even_when_right_and_deleted(
    make_verifier: Callable[..., Verifier],
    fake_flowroute: FakeFlowroute,
) -> None:
    verifier = make_verifier(code_expiration=30, resend_cooldown=0)
    started = verifier.start("u1", NUMBER)
    assert started.expires_at <= utcnow() + timedelta(seconds=31)
    code = fake_flowroute.last_code(NUMBER)
    expire(verifier, "u1")
    assert verifier.pending("u1") is None
    with pytest.raises(ExpiredAuthCode) as info:
        verifier.check("u1", code)
    assert info.value.reason == "ExpiredAuthCode"
    assert verifier.store.count_codes() == 0
    with pytest.raises(UnknownAuthId):
        verifier.check("u1", code)


def test_new_start_replaces_the_pending_code(
    verifier: Verifier, fake_flowroute: FakeFlowroute
) -> None:
    verifier.start("u1", NUMBER, code_length=10)
    first = fake_flowroute.last_code(NUMBER, 10)
    with pytest.raises(InvalidAuthCode):
        verifier.check("u1", wrong(first))
    verifier.start("u1", NUMBER, code_length=10)
    second = fake_flowroute.last_code(NUMBER, 10)
    assert first != second
    assert len(fake_flowroute.messages_to(NUMBER)) == 2
    assert verifier.store.count_codes() == 1
    with pytest.raises(InvalidAuthCode) as info:
        verifier.check("u1", first)
    assert info.value.attempts_left == 2  # the new code has its own attempts
    assert verifier.check("u1", second) == Verified("u1", NUMBER)


class Sender:
    """A sender that records what the store held while the SMS was handed over."""

    def __init__(self, verifier: Verifier, outcome: str | SendError) -> None:
        self.verifier, self.outcome = verifier, outcome
        self.seen: list[tuple[str, str, int]] = []

    def send(self, to: str, body: str) -> str:
        self.seen.append((to, body, self.verifier.store.count_codes()))
        if isinstance(self.outcome, SendError):
            raise self.outcome
        return self.outcome


def test_start_stores_nothing_until_the_sms_was_accepted(verifier: Verifier) -> None:
    sender = verifier.sender = Sender(verifier, "mdr2-given")  # type: ignore[assignment]
    started = verifier.start("u1", NUMBER)
    ((to, body, stored_while_sending),) = sender.seen
    assert to == NUMBER and stored_while_sending == 0
    assert started.message_id == "mdr2-given"
    code = re.findall(r"\d{6}", body)[0]
    assert verifier.check("u1", code) == Verified("u1", NUMBER)


def test_start_turns_a_send_error_into_sms_delivery_failed(verifier: Verifier) -> None:
    verifier.sender = Sender(verifier, SendError("refused", status=422))  # type: ignore[assignment]
    with pytest.raises(SMSDeliveryFailed):
        verifier.start("u1", NUMBER)
    assert verifier.store.count_codes() == 0


def test_a_failed_resend_leaves_the_earlier_code_as_it_was(
    verifier: Verifier, fake_flowroute: FakeFlowroute
) -> None:
    verifier.start("u1", NUMBER)
    code = fake_flowroute.last_code(NUMBER)
    fake_flowroute.fail_next(500)
    with pytest.raises(SMSDeliveryFailed):
        verifier.start("u1", NUMBER)
    pending = verifier.pending("u1")
    assert pending is not None and pending.attempts_left == 3
    assert verifier.check("u1", code) == Verified("u1", NUMBER)


def test_key_rotation_keeps_pending_codes_valid(
    make_settings: Callable[..., Settings],
    fake_flowroute: FakeFlowroute,
) -> None:
    old, new = "old-key-0123456789abcdef", "new-key-0123456789abcdef"
    before = Verifier(make_settings(secret_key=old, resend_cooldown=0))
    after = Verifier(make_settings(secret_key=f"{new},{old}", resend_cooldown=0))
    retired = Verifier(make_settings(secret_key=new, resend_cooldown=0))
    try:
        before.start("u1", NUMBER)
        code1 = fake_flowroute.last_code(NUMBER)
        assert after.check("u1", code1) == Verified("u1", NUMBER)
        before.start("u2", NUMBER)
        code2 = fake_flowroute.last_code(NUMBER)
        with pytest.raises(InvalidAuthCode):
            retired.check("u2", code2)  # the old key is no longer accepted
        after.start("u3", NUMBER)  # new codes are digested under the first key
        code3 = fake_flowroute.last_code(NUMBER)
        assert retired.check("u3", code3) == Verified("u3", NUMBER)
    finally:
        for v in (before, after, retired):
            v.store.dispose()


# -- the failed-check cap across codes ------------------------------------------------------


def guess_wrong_until_refused(
    verifier: Verifier, fake: FakeFlowroute, auth_id: str, starts: int
) -> tuple[int, list[str]]:
    """Start codes and guess wrong; count evaluated wrong guesses and how it ended."""
    evaluated = 0
    refusals: list[str] = []
    for _ in range(starts):
        try:
            verifier.start(auth_id, NUMBER)
        except RateLimited as exc:
            refusals.append(f"start:{exc.budget}")
            break
        code = fake.last_code(NUMBER)
        while True:
            try:
                verifier.check(auth_id, wrong(code))
            except InvalidAuthCode as exc:
                evaluated += 1
                if exc.attempts_left:
                    continue
            except RateLimited as exc:
                refusals.append(f"check:{exc.budget}")
            except UnknownAuthId:
                pass
            break
    return evaluated, refusals


def test_failed_checks_are_capped_across_codes(
    make_verifier: Callable[..., Verifier],
    fake_flowroute: FakeFlowroute,
) -> None:
    verifier = make_verifier(
        max_failed_checks=5, resend_cooldown=0, recipient_send_limit=100, retries_allowed=3
    )
    evaluated, refusals = guess_wrong_until_refused(verifier, fake_flowroute, "u1", 10)
    assert evaluated == 5
    assert refusals == ["check:failed_checks", "start:failed_checks"]
    with pytest.raises(RateLimited) as info:
        verifier.start("u1", NUMBER)
    assert info.value.budget == "failed_checks"
    assert 0 < info.value.retry_after <= 901
    with pytest.raises(RateLimited) as info:
        verifier.check("u1", "123456")
    assert info.value.budget == "failed_checks"
    # Another auth_id is not locked by it.
    verifier.start("u2", NUMBER)
    assert verifier.check("u2", fake_flowroute.last_code(NUMBER)) == Verified("u2", NUMBER)


def test_locked_auth_id_refuses_even_the_right_code(
    make_verifier: Callable[..., Verifier],
    fake_flowroute: FakeFlowroute,
) -> None:
    verifier = make_verifier(max_failed_checks=2, resend_cooldown=0, retries_allowed=5)
    verifier.start("u1", NUMBER)
    code = fake_flowroute.last_code(NUMBER)
    for _ in range(2):
        with pytest.raises(InvalidAuthCode):
            verifier.check("u1", wrong(code))
    with pytest.raises(RateLimited) as info:
        verifier.check("u1", code)
    assert info.value.budget == "failed_checks"
    assert verifier.pending("u1") is not None  # the guess was not evaluated


def test_success_resets_the_failed_check_cap(
    make_verifier: Callable[..., Verifier],
    fake_flowroute: FakeFlowroute,
) -> None:
    verifier = make_verifier(max_failed_checks=5, resend_cooldown=0, recipient_send_limit=100)
    verifier.start("u1", NUMBER)
    code = fake_flowroute.last_code(NUMBER)
    for _ in range(2):
        with pytest.raises(InvalidAuthCode):
            verifier.check("u1", wrong(code))
    assert verifier.check("u1", code) == Verified("u1", NUMBER)
    # Without the reset only 3 more failures would be evaluated.
    evaluated, refusals = guess_wrong_until_refused(verifier, fake_flowroute, "u1", 10)
    assert evaluated == 5
    assert refusals[0] == "check:failed_checks"


# -- SMS failures ---------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["500", "401", "drop"])
def test_sms_failure_leaves_no_pending_code(
    events_verifier: Callable[..., tuple[Verifier, list[AuditEvent]]],
    fake_flowroute: FakeFlowroute,
    fault: str,
) -> None:
    verifier, events = events_verifier(resend_cooldown=30)
    if fault == "drop":
        fake_flowroute.drop_next()
    else:
        fake_flowroute.fail_next(int(fault))
    with pytest.raises(SMSDeliveryFailed) as info:
        verifier.start("u1", NUMBER)
    assert info.value.to_dict()["reason"] == "SMSDeliveryFailed"
    assert fake_flowroute.requests_seen == 1  # none of these is retried
    assert fake_flowroute.messages == []
    assert verifier.store.count_codes() == 0
    assert rows(verifier) == []
    assert verifier.pending("u1") is None
    failed = [e for e in events if e.name == "send_failed"]
    assert len(failed) == 1 and failed[0].reason == "SMSDeliveryFailed"
    # The user may try again at once: a failed send does not start the resend cooldown.
    started = verifier.start("u1", NUMBER)
    assert verifier.check("u1", fake_flowroute.last_code(NUMBER)) == Verified("u1", NUMBER)
    assert started.recipient == NUMBER


# -- budgets --------------------------------------------------------------------------------


def test_recipient_budget(
    make_verifier: Callable[..., Verifier], fake_flowroute: FakeFlowroute
) -> None:
    verifier = make_verifier(recipient_send_limit=5, recipient_send_window=600, resend_cooldown=0)
    for i in range(5):
        verifier.start(f"u{i}", NUMBER)
    with pytest.raises(RateLimited) as info:
        verifier.start("u5", NUMBER)
    assert info.value.budget == "recipient"
    assert 0 < info.value.retry_after <= 601
    assert info.value.to_dict()["retry_after"] == info.value.retry_after
    assert len(fake_flowroute.messages_to(NUMBER)) == 5
    assert verifier.pending("u5") is None
    # The 11-digit form is the same recipient.
    with pytest.raises(RateLimited):
        verifier.start("u6", "12065550123")
    # Another recipient has its own budget.
    verifier.start("u5", OTHER)
    assert len(fake_flowroute.messages_to(OTHER)) == 1


def test_client_address_budget(
    make_verifier: Callable[..., Verifier], fake_flowroute: FakeFlowroute
) -> None:
    verifier = make_verifier(address_send_limit=3, resend_cooldown=0)
    numbers = [f"+120655501{i:02d}" for i in range(10, 20)]
    for i in range(3):
        verifier.start(f"u{i}", numbers[i], client_address="198.51.100.7")
    with pytest.raises(RateLimited) as info:
        verifier.start("u3", numbers[3], client_address="198.51.100.7")
    assert info.value.budget == "client_address"
    assert info.value.retry_after > 0
    assert len(fake_flowroute.messages) == 3
    verifier.start("u4", numbers[4], client_address="198.51.100.8")
    verifier.start("u5", numbers[5])  # no address known: this budget does not apply
    assert len(fake_flowroute.messages) == 5


def test_resend_cooldown(
    make_verifier: Callable[..., Verifier], fake_flowroute: FakeFlowroute
) -> None:
    verifier = make_verifier(resend_cooldown=30)
    verifier.start("u1", NUMBER)
    code = fake_flowroute.last_code(NUMBER)
    with pytest.raises(RateLimited) as info:
        verifier.start("u1", NUMBER)
    assert info.value.budget == "resend_cooldown"
    assert 0 < info.value.retry_after <= 31
    assert len(fake_flowroute.messages) == 1
    verifier.start("u2", NUMBER)  # per auth_id
    # The refused resend did not replace the pending code.
    assert verifier.check("u1", code) == Verified("u1", NUMBER)


def test_global_budget(
    make_verifier: Callable[..., Verifier], fake_flowroute: FakeFlowroute
) -> None:
    verifier = make_verifier(global_send_limit=3, resend_cooldown=0)
    numbers = [f"+120655501{i:02d}" for i in range(20, 30)]
    for i in range(3):
        verifier.start(f"u{i}", numbers[i], client_address=f"198.51.100.{i}")
    with pytest.raises(RateLimited) as info:
        verifier.start("u3", numbers[3], client_address="198.51.100.3")
    assert info.value.budget == "global"
    assert 0 < info.value.retry_after <= 3601
    assert len(fake_flowroute.messages) == 3


def test_budgets_are_shared_between_verifiers_on_one_store(
    make_verifier: Callable[..., Verifier],
    fake_flowroute: FakeFlowroute,
) -> None:
    a = make_verifier(recipient_send_limit=2, resend_cooldown=0)
    b = make_verifier(recipient_send_limit=2, resend_cooldown=0)
    a.start("u1", NUMBER)
    b.start("u2", NUMBER)
    with pytest.raises(RateLimited):
        a.start("u3", NUMBER)
    # ... and a code sent by one is checked by the other.
    assert a.check("u2", fake_flowroute.last_code(NUMBER)) == Verified("u2", NUMBER)


# -- cancel, pending, purge -----------------------------------------------------------------


def test_cancel(verifier: Verifier, fake_flowroute: FakeFlowroute) -> None:
    verifier.start("u1", NUMBER)
    code = fake_flowroute.last_code(NUMBER)
    assert verifier.cancel("u1") is True
    assert verifier.pending("u1") is None
    with pytest.raises(UnknownAuthId):
        verifier.check("u1", code)
    assert verifier.cancel("u1") is False
    assert verifier.cancel("never-started") is False


def test_pending(verifier: Verifier, fake_flowroute: FakeFlowroute) -> None:
    assert verifier.pending("u1") is None
    started = verifier.start("u1", NUMBER)
    code = fake_flowroute.last_code(NUMBER)
    pending = verifier.pending("u1")
    assert pending == Pending("u1", NUMBER, started.expires_at, 3)
    assert code not in repr(pending)
    with pytest.raises(InvalidAuthCode):
        verifier.check("u1", wrong(code))
    pending = verifier.pending("u1")
    assert pending is not None and pending.attempts_left == 2
    verifier.check("u1", code)
    assert verifier.pending("u1") is None


def test_purge_removes_expired_rows(verifier: Verifier, fake_flowroute: FakeFlowroute) -> None:
    verifier.start("old", NUMBER)
    verifier.start("live", OTHER)
    live_code = fake_flowroute.last_code(OTHER)
    assert verifier.store.count_codes() == 2
    expire(verifier, "old")
    assert verifier.purge() >= 1
    assert verifier.store.count_codes() == 1
    assert [r.auth_id for r in rows(verifier)] == ["live"]
    assert verifier.purge() == 0
    assert verifier.check("live", live_code) == Verified("live", OTHER)


# -- audit events and logs ------------------------------------------------------------------


def test_events_and_logs_carry_no_code_and_only_a_masked_number(
    events_verifier: Callable[..., tuple[Verifier, list[AuditEvent]]],
    fake_flowroute: FakeFlowroute,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    verifier, events = events_verifier(
        resend_cooldown=0, max_failed_checks=4, recipient_send_limit=3, code_length=8
    )
    verifier.start("u1", NUMBER)
    code1 = fake_flowroute.last_code(NUMBER)
    with pytest.raises(InvalidAuthCode):
        verifier.check("u1", wrong(code1))
    verifier.check("u1", code1)
    verifier.start("u1", NUMBER, retries=5)  # the code outlives the 4 failures the cap allows
    code2 = fake_flowroute.last_code(NUMBER)
    for _ in range(4):
        with pytest.raises(VerificationError):
            verifier.check("u1", wrong(code2))
    with pytest.raises(RateLimited):
        verifier.check("u1", code2)
    fake_flowroute.fail_next(500)
    with pytest.raises(SMSDeliveryFailed):
        verifier.start("u2", NUMBER)  # refused by the provider: the budget is given back
    verifier.start("u3", NUMBER)  # the third send of the budget of 3
    with pytest.raises(RateLimited):
        verifier.start("u4", NUMBER)
    verifier.cancel("u1")

    names = Counter(e.name for e in events)
    for name in ("started", "sent", "approved", "failed", "locked", "send_failed", "rate_limited"):
        assert names[name] >= 1, (name, names)
    secrets = {
        code1,
        wrong(code1),
        code2,
        wrong(code2),
        NUMBER,
        NUMBER.lstrip("+"),
        NUMBER[2:],
        verifier.settings.secret_key[0],
    }
    for event in events:
        assert event.recipient in (None, mask(NUMBER))
        text = repr(event)
        for secret in secrets:
            assert secret not in text, (event, secret)
    assert any(e.recipient == mask(NUMBER) for e in events)
    ours = [r for r in caplog.records if not r.name.startswith("sms2fa.testing")]
    assert any(r.name == "sms2fa" for r in ours)
    for record in ours:
        text = record.getMessage() + str(record.args)
        for secret in secrets:
            assert secret not in text, (record.getMessage(), secret)


def test_a_failing_event_hook_does_not_break_verification(
    make_settings: Callable[..., Settings],
    fake_flowroute: FakeFlowroute,
) -> None:
    def hook(event: AuditEvent) -> None:
        raise RuntimeError("audit sink down")

    verifier = Verifier(make_settings(resend_cooldown=0), on_event=hook)
    try:
        verifier.start("u1", NUMBER)
        assert verifier.check("u1", fake_flowroute.last_code(NUMBER)) == Verified("u1", NUMBER)
    finally:
        verifier.store.dispose()


# -- concurrency ----------------------------------------------------------------------------


def hammer(n: int, fn: Callable[[], object]) -> Counter[str]:
    """Run ``fn`` in ``n`` threads released at once; count outcomes by type name."""
    barrier = threading.Barrier(n)
    outcomes: list[str] = []
    lock = threading.Lock()

    def worker(_: int) -> None:
        barrier.wait()
        try:
            result = fn()
            name = type(result).__name__
        except BaseException as exc:  # every outcome is counted, surprises included
            name = type(exc).__name__
            if not isinstance(exc, VerificationError):
                name += f"({exc!r})"
        with lock:
            outcomes.append(name)

    in_threads(worker, n)
    assert len(outcomes) == n
    return Counter(outcomes)


def test_parallel_wrong_guesses_evaluate_exactly_the_allowance(
    make_verifier: Callable[..., Verifier],
    fake_flowroute: FakeFlowroute,
) -> None:
    verifier = make_verifier(max_failed_checks=100, resend_cooldown=0)
    verifier.start("u1", NUMBER, retries=3)
    code = fake_flowroute.last_code(NUMBER)
    outcomes = hammer(50, lambda: verifier.check("u1", wrong(code)))
    assert outcomes["InvalidAuthCode"] == 3, outcomes
    assert set(outcomes) <= {"InvalidAuthCode", "UnknownAuthId", "RateLimited"}, outcomes
    assert verifier.pending("u1") is None  # used up (kept until it expires)
    with pytest.raises(UnknownAuthId):
        verifier.check("u1", code)


def test_parallel_right_code_succeeds_exactly_once(
    make_verifier: Callable[..., Verifier],
    fake_flowroute: FakeFlowroute,
) -> None:
    verifier = make_verifier(max_failed_checks=100, resend_cooldown=0)
    verifier.start("u1", NUMBER)
    code = fake_flowroute.last_code(NUMBER)
    outcomes = hammer(20, lambda: verifier.check("u1", code))
    assert outcomes["Verified"] == 1, outcomes
    assert set(outcomes) <= {"Verified", "UnknownAuthId"}, outcomes
    assert verifier.store.count_codes() == 0


def test_a_check_finding_no_attempt_left_does_not_take_the_code_from_one_in_flight(
    verifier: Verifier,
    fake_flowroute: FakeFlowroute,
) -> None:
    # The interleaving behind "20 parallel right codes, none verified": a check holds the
    # last attempt (reserved, still comparing) when another check finds no attempt left.
    verifier.start("u1", NUMBER, retries=1)
    code = fake_flowroute.last_code(NUMBER)
    in_flight = verifier.store.take_attempt("u1", "held:u1", 60, 5, utcnow())[2]
    assert in_flight is not None and in_flight.attempts_left == 0
    with pytest.raises(UnknownAuthId):
        verifier.check("u1", code)
    # The check in flight, holding the right code, can still be the one to consume it.
    assert verifier.store.delete_code("u1", in_flight.digest)


def test_parallel_right_code_rounds(
    make_verifier: Callable[..., Verifier],
    fake_flowroute: FakeFlowroute,
) -> None:
    # Each round of 20 parallel right guesses at 3 attempts must verify exactly once; the race
    # above made ~3% of rounds verify nobody.
    verifier = make_verifier(max_failed_checks=100, resend_cooldown=0)
    key = verifier.settings.secret_key[0]
    for i in range(15):
        auth_id = f"round-{i}"
        digest = code_tools.digest("246810", auth_id, key)
        now = utcnow()
        verifier.store.put_code(
            CodeRow(auth_id, NUMBER, digest, 3, now + timedelta(minutes=5)), now
        )
        outcomes = hammer(20, lambda a=auth_id: verifier.check(a, "246810"))
        assert outcomes["Verified"] == 1, (i, outcomes)


def test_a_send_the_provider_refused_gives_the_budgets_back(
    make_verifier: Callable[..., Verifier],
    fake_flowroute: FakeFlowroute,
) -> None:
    """A Flowroute outage must not lock a number out: a definite "no" delivered nothing."""
    verifier = make_verifier(recipient_send_limit=1, resend_cooldown=30)
    fake_flowroute.fail_next(500)
    with pytest.raises(SMSDeliveryFailed):
        verifier.start("u1", NUMBER)
    verifier.start("u1", NUMBER)  # neither the recipient budget nor the cooldown was spent
    assert len(fake_flowroute.messages_to(NUMBER)) == 1


def test_a_send_that_may_have_gone_out_keeps_the_recipient_budget_spent(
    make_verifier: Callable[..., Verifier],
    fake_flowroute: FakeFlowroute,
) -> None:
    """A dropped connection is ambiguous (the SMS may have gone): the budget stays spent."""
    verifier = make_verifier(recipient_send_limit=1, resend_cooldown=30)
    fake_flowroute.drop_next()
    with pytest.raises(SMSDeliveryFailed):
        verifier.start("u1", NUMBER)
    with pytest.raises(RateLimited) as refused:
        verifier.start("u1", NUMBER)  # the cooldown is given back, the recipient budget not
    assert refused.value.budget == "recipient"
