"""A start's store work, before and after its one SMS, and the purge it triggers.

:meth:`Sends.prepare` validates, spends every budget and makes the code; the caller hands
the message to the sender (in this thread, or in a worker thread from an event loop); then
:meth:`Sends.sent` stores the code, or :meth:`Sends.failed` gives back what a refused send
spent. A code is stored only once the provider accepted it, so a failed send (or a worker
killed mid-send) leaves nothing to guess at, and a code costs one write.

A refused send spends nothing (its transaction is rolled back), and what the store refused
-- a lock, a spent budget -- is remembered until it ends (:mod:`.spent`): repeats are refused
from memory, with the same answer and event, and no write.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple, NoReturn

from .. import text
from ..errors import SMSDeliveryFailed
from ..phones import normalise
from ..policy import (
    REVOCATION_RETENTION,
    Budget,
    Clock,
    Keys,
    check_auth_id,
    custom_template,
    option,
    retry_after,
    send_budgets,
)
from ..settings import Settings
from ..sms import SendError, segments
from ..sms.bound import bind
from ..store import CodeRow, Cursor, Store
from ..store.aio import AwaitableStore
from .audit import Audit
from .codes import digest, generate_code
from .results import SendWait, Started
from .spent import Spent

log = logging.getLogger("sms2fa")

PURGE_INTERVAL = 60.0  # seconds between purges of expired rows, per process


@dataclass(frozen=True)
class SendPlan:
    """A start whose budgets are spent and whose SMS is ready to hand to the sender."""

    auth_id: str
    key: str  # the store's key of auth_id
    to: str  # E.164
    attempts: int
    expires_at: datetime
    budgets: tuple[Budget, ...]
    now: datetime
    body: str = field(repr=False)  # it holds the code
    digest: str = field(repr=False)


class Refusal(NamedTuple):
    """Why a send is refused: the budget's name (``failed_checks``: a lock), the store key
    that refused, until when, and the amount refused."""

    budget: str
    key: str
    until: datetime
    amount: int = 1


class _Refused(Exception):
    """Rolls a send's budget transaction back: a refused send spends nothing."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.budget)
        self.refusal = refusal


@dataclass(frozen=True)
class StartOptions:
    """A start's per-request options (None: the settings' value)."""

    code_length: int | None = None
    expiration: int | None = None
    retries: int | None = None
    message: str | None = None
    client_address: str | None = None
    #: The domain of the origin-bound last line (``@domain #code``); None: no such line.
    otp_domain: str | None = None
    #: The asking browser's challenge nonce: the code verifies only with it (None: unbound).
    binding: str | None = None


class Sends:
    """Everything a start does but the send itself: coroutines over an awaitable store (see
    :class:`~.checking.Checks`)."""

    def __init__(
        self,
        settings: Settings,
        store: AwaitableStore,
        keys: Keys,
        audit: Audit,
        clock: Clock,
        purger: Purger,
        spent: Spent | None = None,
    ) -> None:
        self.settings, self.store, self.keys = settings, store, keys
        self.audit, self.clock, self.purger = audit, clock, purger
        self.spent = spent if spent is not None else Spent()

    async def prepare(self, auth_id: str, recipient: str | int, options: StartOptions) -> SendPlan:
        """Validate, spend every budget (or raise RateLimited) and make the code."""
        s = self.settings
        auth_id = check_auth_id(auth_id)
        number = normalise(recipient, s.allowed_regions, s.allowed_number_types)
        length = option("code_length", options.code_length, s.code_length, 4, 10)
        lifetime = option("expiration", options.expiration, s.code_expiration, 30, 3600)
        attempts = option("retries", options.retries, s.retries_allowed, 1, 20)
        template = self.template()
        if options.message is not None:
            template = custom_template(s, options.message, length)
        # Budgets count billed segments, not messages (the code is digits: any code will do).
        parts = billed_parts(template, s.org_name, length, options.otp_domain)
        key = self.keys.auth(auth_id)
        now = self.clock.now()
        self.purger.maybe(now)
        budgets = send_budgets(s, self.keys, key, number, options.client_address, parts)
        if (known := self._remembered(key, budgets, now)) is not None:
            self.audit.refuse(known.budget, auth_id, number, known.until, now, remembered=True)
        # No SMS for an auth_id locked by failed checks, then every budget it spends: in one
        # transaction, or with no budget to spend, a read.
        refused = await (self._spend(key, budgets, now) if budgets else self._locked(key, now))
        if refused is not None:
            self.spent.remember(refused.key, refused.until, now, refused.amount)
            self.audit.refuse(refused.budget, auth_id, number, refused.until, now)
        code = generate_code(length)
        self.audit.emit("started", auth_id, number)
        return SendPlan(
            auth_id,
            key,
            number,
            attempts,
            now + timedelta(seconds=lifetime),
            tuple(budgets),
            now,
            body=self.body(template, code, options.otp_domain),
            digest=digest(code, key, s.secret_keys[0], options.binding),
        )

    async def wait(
        self, auth_id: str, recipient: str | int, options: StartOptions
    ) -> SendWait | None:
        """What would refuse a send with ``options`` now (the settings' message and code
        length), and for how long: None when nothing would. A read; nothing is spent."""
        s = self.settings
        key = self.keys.auth(check_auth_id(auth_id))
        number = normalise(recipient, s.allowed_regions, s.allowed_number_types)
        parts = billed_parts(self.template(), s.org_name, s.code_length, options.otp_domain)
        now = self.clock.now()
        refusals = [locked] if (locked := await self._locked(key, now)) is not None else []
        for budget in send_budgets(s, self.keys, key, number, options.client_address, parts):
            count, reset_at = await self.store.peek(budget.key, now)
            if reset_at is not None and count + budget.amount > budget.limit:
                refusals.append(Refusal(budget.name, budget.key, reset_at))  # as _spend would
        if not refusals:
            return None
        last = max(refusals, key=lambda refusal: refusal.until)  # the last to lift
        return SendWait(last.budget, retry_after(last.until, now))

    def template(self) -> str:
        """The settings' message (``auth_message``), else the default one in the language
        of this request (:func:`text.speaking`): the SMS speaks the language of the page
        that asked for it, and its budget counts that text's segments."""
        return self.settings.auth_message or text.sms_template(self.settings.org_name)

    def body(self, template: str, code: str, otp_domain: str | None) -> str:
        """The SMS: the template filled in, and the origin-bound line when it fits."""
        return bind(template.format(code=code, org_name=self.settings.org_name), otp_domain, code)

    async def sent(self, plan: SendPlan, message_id: str | None) -> Started:
        """Store the code the provider accepted; an earlier code stays valid until now."""
        await self.store.put_code(
            CodeRow(plan.key, plan.to, plan.digest, plan.attempts, plan.expires_at),
            plan.now,
            message_id,
        )
        self.audit.emit("sent", plan.auth_id, plan.to, message_id=message_id)
        return Started(plan.auth_id, plan.to, plan.expires_at, plan.attempts, message_id)

    async def failed(self, plan: SendPlan, exc: SendError) -> NoReturn:
        """Raise SMSDeliveryFailed; give back what a send the provider refused had spent."""
        if exc.status is not None:
            # The provider answered "no": nothing went out, so the budgets are given back.
            # After a timeout or a dropped connection the SMS may have gone: they stay spent.
            await self._refund(plan.budgets, plan.now)
        elif self.settings.resend_cooldown:
            await self.store.reset(Keys.cooldown(plan.key))  # the user may ask again at once
            self.spent.forget(Keys.cooldown(plan.key))
        self.audit.emit(
            "send_failed", plan.auth_id, plan.to, reason="SMSDeliveryFailed", status=exc.status
        )
        raise SMSDeliveryFailed() from exc

    async def _locked(self, key: str, now: datetime, tx: Cursor | None = None) -> Refusal | None:
        """The refusal if failed checks have locked ``key``."""
        failed = Keys.failed(key)
        failures, until = await self.store.peek(failed, now, tx=tx)
        if failures >= self.settings.max_failed_checks and until is not None:
            return Refusal("failed_checks", failed, until)
        return None

    def _remembered(self, key: str, budgets: list[Budget], now: datetime) -> Refusal | None:
        """A refusal the store made earlier and that still lasts, if this process knows one:
        the lock, then the budgets, in the order :meth:`_spend` asks them."""
        failed = Keys.failed(key)
        if (until := self.spent.until(failed, now)) is not None:
            return Refusal("failed_checks", failed, until)
        for budget in budgets:
            if (until := self.spent.until(budget.key, now, budget.amount)) is not None:
                return Refusal(budget.name, budget.key, until, budget.amount)
        return None

    async def _spend(self, key: str, budgets: list[Budget], now: datetime) -> Refusal | None:
        """Charge every budget in one transaction unless locked; the first refusal, with
        nothing charged: a refused send spends no budget (not even the ones before the
        refusing one, so refused requests cannot spend a victim's recipient budget)."""
        try:
            async with self.store.transaction() as tx:
                if (locked := await self._locked(key, now, tx)) is not None:
                    return locked
                for budget in budgets:
                    count, reset_at = await self.store.hit(
                        budget.key, budget.window, now, amount=budget.amount, tx=tx
                    )
                    if count > budget.limit:
                        raise _Refused(Refusal(budget.name, budget.key, reset_at, budget.amount))
        except _Refused as refused:
            return refused.refusal
        return None

    async def _refund(self, budgets: tuple[Budget, ...], now: datetime) -> None:
        """Give back what a send the provider refused had spent: nothing was delivered."""
        async with self.store.transaction() as tx:
            for budget in budgets:
                if budget.cooldown:
                    await self.store.reset(budget.key, tx=tx)
                else:
                    await self.store.hit(
                        budget.key, budget.window, now, amount=-budget.amount, tx=tx
                    )
        self.spent.forget(*(budget.key for budget in budgets))  # refused here: ask again


@functools.lru_cache(maxsize=256)  # a few templates, lengths and domains: counted once each
def billed_parts(template: str, org_name: str, length: int, otp_domain: str | None) -> int:
    """The segments a message from ``template`` is billed as: the code is digits, so any
    code of ``length`` digits counts the same."""
    sample = "0" * length
    return segments(bind(template.format(code=sample, org_name=org_name), otp_domain, sample))


class Purger:
    """Deletes expired rows: now, or once a minute per process in a thread of its own."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._last = 0.0
        self._lock = threading.Lock()

    def purge(self, now: datetime) -> int:
        """Delete expired codes and counters and old revocations; how many rows went."""
        return self.store.purge(now, now - REVOCATION_RETENTION)

    def maybe(self, now: datetime) -> None:
        """Purge in the background if a minute has passed: a purge takes as long as there is
        to delete, and this may run on an event loop."""
        if time.monotonic() - self._last < PURGE_INTERVAL:
            return
        if not self._lock.acquire(blocking=False):
            return  # one is running
        self._last = time.monotonic()
        threading.Thread(
            target=self._background, args=(now,), name="sms2fa-purge", daemon=True
        ).start()

    def _background(self, now: datetime) -> None:
        try:
            self.purge(now)
        except Exception as exc:  # the next one will try again; requests must not notice
            log.warning("sms2fa: purging expired rows failed: %s", type(exc).__name__)
        finally:
            self._lock.release()
