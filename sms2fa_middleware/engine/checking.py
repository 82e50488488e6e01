"""A check's store work and what its outcome means; the caller pads uniform answers.

Every guess first takes a failure slot and an attempt in one atomic store operation, so
parallel wrong guesses in any number of processes never evaluate more guesses than allowed,
and a right code succeeds exactly once. Consecutive failures are capped per auth_id across
codes, and each lock lasts twice the one before.

Refusals the store decided (a client address past its check budget, a locked auth_id) are
remembered until they end (:mod:`.spent`): repeats are refused from memory, with the same
answer and event, and no write.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..errors import (
    ExpiredAuthCode,
    InvalidAPIUsage,
    InvalidAuthCode,
    RateLimited,
    UnknownAuthId,
    VerificationError,
)
from ..policy import Clock, Keys, Outcome, check_auth_id, judge, lock_seconds, retry_after
from ..settings import Settings
from ..store import CodeRow
from ..store.aio import AwaitableStore
from ..store.statements import Attempt
from .audit import Audit
from .codes import is_code_shaped, matches
from .results import Verified
from .spent import Spent
from .timing import TimingFloor


@dataclass(frozen=True)
class CheckResult:
    """A check's answer, and (for a uniform failure) the timing kind to pad it as."""

    verified: Verified | None
    error: VerificationError | None = None
    pad_as: str | None = None
    started: float = 0.0  # perf_counter when the check began
    elapsed: float | None = 0.0  # how long its store and digest work took (None: none done)

    def deadline(self, floor: TimingFloor) -> float | None:
        """When a padded answer may leave (perf_counter); None: at once."""
        if self.pad_as is None:
            return None
        if self.elapsed is None:  # answered from memory: nothing to record
            # Its kind's times, else an unknown id's: the store pads a lock to the same work.
            return floor.deadline(self.started, self.pad_as, Outcome.NOTHING.value)
        return floor.record(self.pad_as, self.started, self.elapsed)

    def settle(self) -> Verified:
        """The Verified, or raise the error."""
        if self.error is not None:
            raise self.error
        assert self.verified is not None
        return self.verified


class Checks:
    """Everything a check does but wait out the timing floor: coroutines over an awaitable
    store, driven in a thread by the Verifier (:func:`~..store.aio.resolve`) and on an
    event loop by the AsyncVerifier."""

    def __init__(
        self,
        settings: Settings,
        store: AwaitableStore,
        keys: Keys,
        audit: Audit,
        clock: Clock,
        spent: Spent | None = None,
    ) -> None:
        self.settings, self.store, self.keys = settings, store, keys
        self.audit, self.clock = audit, clock
        self.spent = spent if spent is not None else Spent()

    async def check(
        self,
        auth_id: str,
        code: str,
        client_address: str | None,
        uniform: bool | None,
        binding: str | None = None,
    ) -> CheckResult:
        """See :meth:`Verifier.check`; raises only before any guess was evaluated."""
        s = self.settings
        auth_id = check_auth_id(auth_id)
        if not is_code_shaped(code):
            raise InvalidAPIUsage("'code' must be a string of 1 to 10 digits")
        uniform = s.uniform_errors if uniform is None else uniform
        key = self.keys.auth(auth_id)
        started = time.perf_counter()
        now = self.clock.now()
        if client_address is not None and s.address_check_limit:
            # Counted before anything else, so probing many auth_ids costs the prober too.
            # Past the budget, refused from memory until its window ends: no more counting.
            budget = self.keys.address_checks(client_address)
            if (until := self.spent.until(budget, now)) is not None:
                self.audit.refuse(
                    "client_address_checks", auth_id, None, until, now, remembered=True
                )
            count, reset_at = await self.store.hit(budget, s.address_check_window, now)
            if count > s.address_check_limit:
                self.spent.remember(budget, reset_at, now)
                self.audit.refuse("client_address_checks", auth_id, None, reset_at, now)
        if (until := self.spent.until(Keys.failed(key), now)) is not None and (
            uniform or await self.store.get_code(key) is not None
        ):
            # Locked, as the store said: it would take the slot and refuse (even a right
            # code) until the lock ends. Answered alike, padded alike, without the write (a
            # read tells an unknown id, answered as below, when answers are not uniform).
            locked = self.locked(auth_id, until, now, remembered=True)
            return CheckResult(
                None, locked, Outcome.LOCKED.value if uniform else None, started, None
            )
        # A failure slot is taken first, atomically with the attempt: even 1,000 parallel
        # checks spread over fresh codes evaluate at most max_failed_checks guesses. Success
        # gives the slot back.
        args = (key, Keys.failed(key), s.lockout_seconds, s.max_failed_checks, now)
        if uniform:
            taken: Attempt | None = await self.store.take_attempt(*args, pad=True)
        else:
            # Nothing to guess at: no slot taken, no write (SQLite: a read, without the write
            # lock; PostgreSQL: in the same round trip as the guess).
            taken = await self.store.attempt_if_pending(*args)
        if taken is None:
            matches(code, key, "", s.secret_keys, binding)  # same digest work as a guess
            self.audit.emit("failed", auth_id, reason="UnknownAuthId")
            raise UnknownAuthId()
        failures, reset_at, row = taken
        # The same digest work on every path: against the row's digest, or against nothing.
        # A code bound to another browser (or a check without its binding) is a wrong guess:
        # no oracle says "right code, wrong browser", and the guess spends an attempt.
        right = matches(code, key, row.digest if row else "", s.secret_keys, binding)
        outcome = judge(failures, s.max_failed_checks, row is not None, right)
        elapsed = time.perf_counter() - started
        if outcome is Outcome.RIGHT:
            assert row is not None
            return await self._consume(auth_id, key, row, now)
        error = await self._failure(outcome, auth_id, key, row, failures, reset_at, now, uniform)
        return CheckResult(None, error, outcome.value if uniform else None, started, elapsed)

    async def _failure(
        self,
        outcome: Outcome,
        auth_id: str,
        key: str,
        row: CodeRow | None,
        failures: int,
        reset_at: datetime,
        now: datetime,
        uniform: bool,
    ) -> VerificationError:
        """The error a failed check answers, with its events (and a lock it earned)."""
        if outcome is Outcome.LOCKED:
            self.spent.remember(Keys.failed(key), reset_at, now)
            return self.locked(auth_id, reset_at, now)
        if row is None:  # nothing to guess at (expired or used up): no failure
            # Uniform answers all look alike: no second read to tell why (purge deletes).
            error = (
                UnknownAuthId()
                if uniform
                else await self._why_not_checkable(await self.store.get_code(key), now)
            )
            self.audit.emit("failed", auth_id, reason=error.reason)
            return error
        # A wrong guess never deletes the code, even on its last attempt: a right guess that
        # took an earlier attempt may still be evaluating, and must be the one to consume it.
        # With no attempt left nobody can take another; a new start or purge removes it.
        self.audit.emit(
            "failed",
            auth_id,
            row.recipient,
            reason="InvalidAuthCode",
            attempts_left=row.attempts_left,
        )
        if failures == self.settings.max_failed_checks:
            until = await self.lock(key, now)
            self.audit.emit(
                "locked",
                auth_id,
                row.recipient,
                reason="failed_checks",
                until=until.isoformat(timespec="seconds"),
            )
        return InvalidAuthCode(attempts_left=row.attempts_left)

    async def _consume(self, auth_id: str, key: str, row: CodeRow, now: datetime) -> CheckResult:
        """A right code: consume it, unless a parallel right guess or a new code came first."""
        # Two transactions, not one: checks lock the counter, then the code; taking them
        # the other way round here could deadlock on PostgreSQL.
        if await self.store.delete_code(key, row.digest):
            await self.store.reset(Keys.failed(key), also=Keys.locks(key))  # escalation restarts
            # A lock that came while this guess was evaluated is lifted: here at once (other
            # processes that saw it refuse until it would have ended).
            self.spent.forget(Keys.failed(key))
            self.audit.emit("approved", auth_id, row.recipient)
            return CheckResult(Verified(auth_id, row.recipient))
        # Single use: this guess evaluated nothing, so its slot is given back.
        await self.store.hit(Keys.failed(key), self.settings.lockout_seconds, now, amount=-1)
        self.audit.emit("failed", auth_id, row.recipient, reason="UnknownAuthId")
        return CheckResult(None, UnknownAuthId())

    def locked(
        self, auth_id: str, until: datetime, now: datetime, remembered: bool = False
    ) -> RateLimited:
        """The answer to a guess at ``auth_id``, locked until ``until``, and its event
        (``remembered``: the lock was known here, the store not asked)."""
        wait = retry_after(until, now)
        self.audit.emit(
            "locked", auth_id, reason="RateLimited", remembered=remembered, retry_after=wait
        )
        return RateLimited("failed_checks", wait, "Too many failed attempts; try again later.")

    async def lock(self, key: str, now: datetime) -> datetime:
        """Lock ``key`` after its last allowed failure (see :func:`policy.lock_seconds`);
        recovery codes' wrong guesses earn the same lock.

        The number of locks is remembered until a full lockout_max_seconds after the last
        one ends (or a right code), so waiting out one lock does not start over cheaply.
        """
        s = self.settings
        locks_key = Keys.locks(key)
        async with self.store.transaction() as tx:
            locks, _ = await self.store.hit(locks_key, s.lockout_max_seconds, now, tx=tx)
            until = now + timedelta(seconds=lock_seconds(s, locks))
            await self.store.extend(Keys.failed(key), until, tx=tx)
            await self.store.extend(
                locks_key, until + timedelta(seconds=s.lockout_max_seconds), tx=tx
            )
        self.spent.remember(Keys.failed(key), until, now)  # guesses until then: refused here
        return until

    async def _why_not_checkable(self, row: CodeRow | None, now: datetime) -> VerificationError:
        if row is None:
            return UnknownAuthId()
        if row.expires_at <= now:
            await self.store.delete_code(row.auth_id, row.digest)
            return ExpiredAuthCode()
        # No attempts left: the guesses that took them are still being evaluated (one of them
        # may hold the right code and must be the one to consume it), or the last one was
        # killed. Deleting here would race them, so leave the row: it can no longer be guessed
        # at, and a new start replaces it or purge removes it when it expires.
        return UnknownAuthId()
