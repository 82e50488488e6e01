"""Guessing codes: the attempt allowance holds under parallel guesses, a right code wins
exactly once, a new code does not reset the allowance, locks grow, and a guess whose code
is gone costs nothing.

From the defects of the original Flowroute sms-verification service and the attacks of
issue 11 (the engine and store side)."""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from sms2fa_middleware import (
    RateLimited,
    VerificationError,
    Verifier,
)
from sms2fa_middleware.testing import FakeFlowroute
from tests.support import NO_BUDGETS

with warnings.catch_warnings():  # starlette >= 1.0 would rather have httpx2
    warnings.simplefilter("ignore")


pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")


NUMBER = "12065551234"


def wrong(code: str) -> str:
    return str((int(code) + 1) % 10 ** len(code)).zfill(len(code))


def reason_of(call: Callable[[], object]) -> str:
    try:
        call()
    except VerificationError as exc:
        return exc.reason
    return "ok"


def _outcome(verifier: Verifier, auth_id: str, code: str) -> tuple[str, int | None]:
    try:
        verifier.check(auth_id, code)
    except VerificationError as exc:
        return exc.reason, exc.attempts_left
    return "ok", None


# -- "Attempt counting is read-modify-write ..." ----------------------------------------------


def test_attempt_counting_is_atomic_in_threads(
    make_verifier: Callable[..., Verifier], fake_flowroute: FakeFlowroute
) -> None:
    """Defect: "Attempt counting is read-modify-write: with 4 workers and 16 parallel wrong
    guesses, 3 to 7 guesses were evaluated against an allowance of 3 ... 12 of 480 requests
    answered 500 (StaleDataError)."

    Threads in one process here; test_multiprocess.py fires them at 4 worker processes.
    """
    verifier = make_verifier(**NO_BUDGETS, max_failed_checks=100)
    for trial in range(3):
        auth_id = f"race{trial}"
        verifier.start(auth_id, NUMBER, retries=3)
        code = fake_flowroute.last_code(NUMBER)
        guess = wrong(code)
        with ThreadPoolExecutor(16) as pool:
            outcomes = list(pool.map(lambda _: _outcome(verifier, auth_id, guess), range(32)))
        evaluated = sorted(left for reason, left in outcomes if reason == "InvalidAuthCode")
        assert evaluated == [0, 1, 2], outcomes
        assert {reason for reason, _ in outcomes} <= {"InvalidAuthCode", "UnknownAuthId"}


def test_right_code_succeeds_exactly_once_in_parallel(
    make_verifier: Callable[..., Verifier], fake_flowroute: FakeFlowroute
) -> None:
    """The other half of the attempt race: parallel submissions of the right code must give
    exactly one success (single use, and never zero)."""
    verifier = make_verifier(**NO_BUDGETS, max_failed_checks=100)
    tally = []
    with ThreadPoolExecutor(20) as pool:
        for trial in range(20):
            auth_id = f"right{trial}"
            verifier.start(auth_id, NUMBER, retries=3)
            code = fake_flowroute.last_code(NUMBER)
            outcomes = list(pool.map(lambda _: _outcome(verifier, auth_id, code), range(20)))
            reasons = Counter(reason for reason, _ in outcomes)
            assert set(reasons) <= {"ok", "UnknownAuthId"}, reasons
            tally.append(reasons["ok"])
    assert tally == [1] * 20, f"successes per trial: {tally}"


# -- "A new POST resets the attempt counter: unlimited guessing by re-requesting codes." ------


def test_new_code_does_not_reset_the_guess_allowance(
    make_verifier: Callable[..., Verifier], fake_flowroute: FakeFlowroute
) -> None:
    """Defect: "A new POST resets the attempt counter: unlimited guessing by re-requesting
    codes." """
    verifier = make_verifier(**NO_BUDGETS, max_failed_checks=10, lockout_seconds=600)
    evaluated = 0
    locked = False
    for _ in range(10):  # 10 codes x 3 guesses would be 30 guesses in the original
        try:
            verifier.start("u1", NUMBER)
        except RateLimited as exc:
            assert exc.budget == "failed_checks"
            locked = True
            break
        code = fake_flowroute.last_code(NUMBER)
        for _ in range(3):
            reason = reason_of(lambda c=code: verifier.check("u1", wrong(c)))
            if reason == "InvalidAuthCode":
                evaluated += 1
            else:
                assert reason == "RateLimited"
    assert locked
    assert evaluated == 10
    # While locked even the right code of a live code is not evaluated.
    assert reason_of(lambda: verifier.check("u1", "123456")) == "RateLimited"
