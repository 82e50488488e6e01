"""The Verifier: start, check and cancel verifications -- the whole policy, and no HTTP.

Guarantees (each one a test):

* codes come from ``secrets``, have exactly the asked number of digits, live at most
  ``code_expiration`` seconds, are stored only as a keyed digest and compared in constant time;
* a code is stored (and so checkable) only once the SMS provider accepted it: a failed send
  leaves no new code pending;
* every guess first takes an attempt with one conditional UPDATE, so parallel wrong guesses in
  any number of processes never evaluate more guesses than allowed, and a right code succeeds
  exactly once;
* consecutive failed checks are capped per auth_id *across* codes, so asking for new codes
  never buys unlimited guesses;
* every SMS is paid for from budgets kept in the store (per auth_id cooldown, per recipient,
  per client address, overall), so four workers or four hosts share them.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from . import codes as code_tools
from .addresses import address_key
from .errors import (
    ConfigurationError,
    ExpiredAuthCode,
    InvalidAPIUsage,
    InvalidAuthCode,
    RateLimited,
    SMSDeliveryFailed,
    UnknownAuthId,
    VerificationError,
)
from .phones import mask, normalise
from .settings import Settings, check_template
from .sms import Sender, SendError, segments, sender_from_settings
from .store import CodeRow, Cursor, Store, utcnow

log = logging.getLogger("sms2fa")

MAX_AUTH_ID_LENGTH = 120
PURGE_INTERVAL = 60.0  # seconds between purges of expired rows, per process

T = TypeVar("T")


@dataclass(frozen=True)
class OutgoingSMS:
    """One text message to hand to the sender (see :meth:`Verifier.start_steps`)."""

    to: str  # E.164
    body: str = field(repr=False)  # it holds the code


SendSteps = Generator[OutgoingSMS, "str | None", T]
"""Work that pauses at each SMS: it yields the message and is resumed with the provider's
message id, or with the sender's exception thrown in."""


def run_steps(steps: SendSteps[T], send: Callable[[str, str], str | None]) -> T:
    """Run ``steps`` to the end, sending each SMS it yields with ``send`` (in this thread)."""
    try:
        sms = next(steps)
        while True:
            try:
                message_id = send(sms.to, sms.body)
            except Exception as exc:
                sms = steps.throw(exc)
            else:
                sms = steps.send(message_id)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Started:
    """A verification whose code was sent."""

    auth_id: str
    recipient: str  # E.164
    expires_at: datetime
    attempts_left: int
    message_id: str | None = None


@dataclass(frozen=True)
class Verified:
    """A code that was right: it is consumed now."""

    auth_id: str
    recipient: str  # E.164


@dataclass(frozen=True)
class Pending:
    """A live code waiting to be checked (what the challenge page shows)."""

    auth_id: str
    recipient: str
    expires_at: datetime
    attempts_left: int


@dataclass(frozen=True)
class AuditEvent:
    """One thing that happened; never carries a code, a secret or a full phone number."""

    name: str  # started, sent, approved, failed, locked, rate_limited, send_failed, cancelled
    auth_id: str
    recipient: str | None = None  # masked
    reason: str | None = None
    detail: dict[str, object] = field(default_factory=dict)


class TimingFloor:
    """Answers a failed uniform check no sooner than the slowest kind of answer recently took.

    The same store work on every path leaves a small gap (a wrong guess on a live code also
    writes the code's row: ~10% on SQLite). Each kind's recent times are kept (the last
    ``size``), and every answer waits -- spinning, as sleeps overshoot by more than the gap --
    until the slowest kind's 75th percentile: most answers of every kind then take that long,
    so the medians meet (at the median the estimate's noise would favour the slowest kind).
    Per process.
    """

    def __init__(self, size: int = 64) -> None:
        self._recent: dict[str, deque[float]] = {}
        self._size = size
        self._floor = 0.0
        self._seen = 0
        self._lock = threading.Lock()

    def pad(self, kind: str, started: float) -> None:
        """Record how long ``kind`` took since ``started`` (perf_counter), then wait."""
        elapsed = time.perf_counter() - started
        with self._lock:
            self._recent.setdefault(kind, deque(maxlen=self._size)).append(elapsed)
            self._seen += 1
            if self._seen % 16 == 0:  # a median per answer would cost more than the gap
                self._floor = max((sorted(times)[len(times) * 3 // 4]
                                   for times in self._recent.values() if len(times) >= 8),
                                  default=0.0)
        deadline = started + self._floor
        if deadline - time.perf_counter() > 0.002:  # a stall: no busy wait that long
            time.sleep(deadline - time.perf_counter() - 0.001)
        while time.perf_counter() < deadline:
            pass


def iso_seconds(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def check_auth_id(auth_id: object) -> str:
    """The auth_id if it is a string of 1..120 characters, else InvalidAPIUsage."""
    if not isinstance(auth_id, str) or not 0 < len(auth_id) <= MAX_AUTH_ID_LENGTH:
        raise InvalidAPIUsage(
            f"'auth_id' must be a string of 1 to {MAX_AUTH_ID_LENGTH} characters"
        )
    if not auth_id.isprintable():
        raise InvalidAPIUsage("'auth_id' must not contain control characters")
    return auth_id


def _option(name: str, value: object, default: int, low: int, high: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidAPIUsage(f"'{name}' must be an integer from {low} to {high}")
    return value


class Verifier:
    """Start, check and cancel SMS verifications. Thread-safe; one per process is enough."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        sender: Sender | None = None,
        store: Store | None = None,
        on_event: Callable[[AuditEvent], None] | None = None,
    ) -> None:
        self.settings = settings or Settings.from_env()
        self.sender = sender or sender_from_settings(self.settings)
        self.store = store or Store(self.settings.database_url)
        self.store.create_schema()
        self.on_event = on_event
        self._keys = self.settings.secret_keys
        self.namespace = ""
        self._scope = ""  # prefix of every store key of this namespace ("" for the default)
        self._last_purge = 0.0
        self._purge_lock = threading.Lock()
        self._floor = TimingFloor()
        self._warn_if_long(self.settings.message_template)

    def namespaced(self, namespace: str) -> Verifier:
        """This verifier (same store, sender and settings) in a namespace of its own.

        Codes, locks, cooldowns and every budget of a namespace are apart from the default
        one's: the middleware mounts its API in ``"api"``, so nothing an API caller does
        to ``auth_id="alice"`` touches the logged-in user alice. An auth_id is stored as a
        digest there (namespace + digest fit the 120-character column); events still show it.
        """
        if not namespace.isidentifier():
            raise ValueError("a namespace is a short identifier, such as 'api'")
        other = copy.copy(self)
        other.namespace = namespace
        other._scope = f"{namespace}\x1e"  # auth_ids are printable: no id starts like this
        return other

    # -- public API -------------------------------------------------------------------------

    def start(
        self,
        auth_id: str,
        recipient: str | int,
        *,
        code_length: int | None = None,
        expiration: int | None = None,
        retries: int | None = None,
        message: str | None = None,
        client_address: str | None = None,
    ) -> Started:
        """Send a new code for ``auth_id`` by SMS; once sent, it replaces any pending one."""
        return run_steps(self.start_steps(
            auth_id, recipient, code_length=code_length, expiration=expiration,
            retries=retries, message=message, client_address=client_address,
        ), self.sender.send)

    def start_steps(
        self,
        auth_id: str,
        recipient: str | int,
        *,
        code_length: int | None = None,
        expiration: int | None = None,
        retries: int | None = None,
        message: str | None = None,
        client_address: str | None = None,
    ) -> SendSteps[Started]:
        """:meth:`start` in steps: the SMS is yielded instead of sent (see :func:`run_steps`).

        An event loop can then do the database work itself and send in a thread.
        """
        s = self.settings
        auth_id = check_auth_id(auth_id)
        number = normalise(recipient, s.allowed_regions, s.allowed_number_types)
        length = _option("code_length", code_length, s.code_length, 4, 10)
        lifetime = _option("expiration", expiration, s.code_expiration, 30, 3600)
        attempts = _option("retries", retries, s.retries_allowed, 1, 20)
        template = s.message_template
        if message is not None:
            template = self._custom_template(message, length)
        # Budgets count billed segments, not messages (the code is digits: any code will do).
        parts = segments(template.format(code="0" * length, org_name=s.org_name))

        key = self._key(auth_id)
        now = utcnow()
        self._maybe_purge(now)
        # No SMS for an auth_id locked by failed checks, then every budget it spends: in one
        # transaction, or with no budget to spend, a read.
        budgets = self._send_budgets(key, number, client_address, parts)
        if budgets:
            with self.store.transaction() as tx:
                refused = self._spend_send_budgets(key, budgets, now, tx)
        else:
            refused = self._locked(key, now)
        if refused is not None:
            self._refuse(refused[0], auth_id, number, refused[1], now)
        code = code_tools.generate_code(length)
        self._emit("started", auth_id, number)
        try:
            message_id = yield OutgoingSMS(number, template.format(code=code,
                                                                   org_name=s.org_name))
        except SendError as exc:
            if exc.status is not None:
                # The provider answered "no": nothing went out, so the budgets are given back.
                # After a timeout or a dropped connection the SMS may have gone: they stay spent.
                self._refund_send_budgets(budgets, now)
            elif s.resend_cooldown:
                self.store.reset(f"cooldown:{key}")  # the user may ask again at once
            self._emit("send_failed", auth_id, number, reason="SMSDeliveryFailed",
                       status=exc.status)
            raise SMSDeliveryFailed() from exc
        # Stored only now that the provider accepted it, so a failed send (or a worker killed
        # mid-send) leaves nothing to guess at, and a code costs one write. An earlier code
        # stays valid until this one replaces it.
        expires_at = now + timedelta(seconds=lifetime)
        digest = code_tools.digest(code, key, self._keys[0])
        self.store.put_code(CodeRow(key, number, digest, attempts, expires_at), now,
                            message_id)
        self._emit("sent", auth_id, number, message_id=message_id)
        return Started(auth_id, number, expires_at, attempts, message_id)

    def check(self, auth_id: str, code: str, *, client_address: str | None = None,
              uniform: bool | None = None) -> Verified:
        """Check ``code`` for ``auth_id``; the code is consumed on success.

        Raises UnknownAuthId, ExpiredAuthCode, InvalidAuthCode (with ``attempts_left``),
        RateLimited (the auth_id is locked after too many failures, or ``client_address``
        checked too often) or InvalidAPIUsage.

        ``uniform`` (default: the ``uniform_errors`` setting): do the same store work for an
        unknown, a locked and a live auth_id, and answer each no sooner than the slowest of
        them usually takes (:class:`TimingFloor`), so that timing does not tell them apart.
        """
        s = self.settings
        auth_id = check_auth_id(auth_id)
        if not code_tools.is_code_shaped(code):
            raise InvalidAPIUsage("'code' must be a string of 1 to 10 digits")
        uniform = s.uniform_errors if uniform is None else uniform
        key = self._key(auth_id)
        started = time.perf_counter()
        now = utcnow()
        if client_address is not None and s.address_check_limit:
            # Counted before anything else, so probing many auth_ids costs the prober too.
            budget = f"{self._scope}checks:{address_key(client_address)}"
            count, reset_at = self.store.hit(budget, s.address_check_window, now)
            if count > s.address_check_limit:
                self._refuse("client_address_checks", auth_id, None, reset_at, now)
        if not uniform and self.store.get_code(key) is None:
            # Nothing to guess at: answer from a read, without taking the write lock.
            code_tools.matches(code, key, "", self._keys)  # same digest work as a guess
            self._emit("failed", auth_id, reason="UnknownAuthId")
            raise UnknownAuthId()
        fail_key = f"failed:{key}"
        # A failure slot is taken first, atomically with the attempt: even 1,000 parallel
        # checks spread over fresh codes evaluate at most max_failed_checks guesses. Success
        # gives the slot back.
        failures, reset_at, row = self.store.take_attempt(
            key, fail_key, s.lockout_seconds, s.max_failed_checks, now, pad=uniform)
        # The same digest work on every path: against the row's digest, or against nothing.
        right = code_tools.matches(code, key, row.digest if row else "", self._keys)
        if failures > s.max_failed_checks:
            if uniform:
                self._floor.pad("locked", started)
            retry_after = int((reset_at - now).total_seconds()) + 1
            self._emit("locked", auth_id, reason="RateLimited", retry_after=retry_after)
            raise RateLimited("failed_checks", retry_after,
                              "Too many failed attempts; try again later.")
        if row is None:  # nothing to guess at (expired or used up): no failure
            # Uniform answers all look alike: no second read to tell why (purge deletes).
            if uniform:
                self._floor.pad("unknown", started)
            error = UnknownAuthId() if uniform else self._why_not_checkable(
                self.store.get_code(key), now)
            self._emit("failed", auth_id, reason=error.reason)
            raise error
        if right:
            # Two transactions, not one: checks lock the counter, then the code; taking them
            # the other way round here could deadlock on PostgreSQL.
            if self.store.delete_code(key, row.digest):
                self.store.reset(fail_key, also=f"locks:{key}")  # the escalation starts again
                self._emit("approved", auth_id, row.recipient)
                return Verified(auth_id, row.recipient)
            # A parallel request with the same right code consumed it first (single use), or
            # a new code replaced it: this guess evaluated nothing, so its slot is given back.
            self.store.hit(fail_key, s.lockout_seconds, now, amount=-1)
            self._emit("failed", auth_id, row.recipient, reason="UnknownAuthId")
            raise UnknownAuthId()
        # A wrong guess never deletes the code, even on its last attempt: a right guess that
        # took an earlier attempt may still be evaluating, and must be the one to consume it.
        # With no attempt left nobody can take another; a new start or purge removes it.
        if uniform:
            self._floor.pad("live", started)
        self._emit("failed", auth_id, row.recipient, reason="InvalidAuthCode",
                   attempts_left=row.attempts_left)
        if failures == s.max_failed_checks:
            until = self._lock(key, fail_key, now)
            self._emit("locked", auth_id, row.recipient, reason="failed_checks",
                       until=iso_seconds(until))
        raise InvalidAuthCode(attempts_left=row.attempts_left)

    def cancel(self, auth_id: str) -> bool:
        """Delete the pending code of ``auth_id``; True if there was one."""
        removed = self.store.delete_code(self._key(check_auth_id(auth_id)))
        if removed:
            self._emit("cancelled", auth_id)
        return removed

    def pending(self, auth_id: str) -> Pending | None:
        """The live, sent code waiting for ``auth_id``, if any (no secret in it)."""
        row = self.store.get_code(self._key(check_auth_id(auth_id)))
        if row is None or row.attempts_left <= 0 or row.expires_at <= utcnow():
            return None
        return Pending(auth_id, row.recipient, row.expires_at, row.attempts_left)

    def revoke(self, auth_id: str) -> datetime:
        """End every verified session of ``auth_id`` issued until now, on every host.

        Also drops its pending code. Returns the moment of revocation.
        """
        now = utcnow()
        key = self._key(check_auth_id(auth_id))
        self.store.revoke(key, now)
        self.store.delete_code(key)
        self._emit("revoked", auth_id)
        return now

    def revocations_since(self, since: datetime) -> list[tuple[str, datetime]]:
        """(auth_id, revoked_at) of every revocation after ``since``."""
        return self.store.revocations_since(since)

    def resend_wait(self, auth_id: str) -> int:
        """Seconds until ``auth_id`` may ask for a new code (0: now)."""
        now = utcnow()
        count, reset_at = self.store.peek(f"cooldown:{self._key(check_auth_id(auth_id))}", now)
        if not count or reset_at is None:
            return 0
        return max(0, int((reset_at - now).total_seconds() + 0.999))

    def purge(self) -> int:
        """Delete expired codes and counters now; returns how many rows went."""
        now = utcnow()
        # Revocations must outlive every session they could end; a day beyond the longest.
        return self.store.purge(now, now - timedelta(days=31))

    # -- internals --------------------------------------------------------------------------

    def _key(self, auth_id: str) -> str:
        """What the store knows ``auth_id`` by: itself, or in a namespace a digest of it."""
        if not self._scope:
            return auth_id
        return self._scope + hashlib.sha256(auth_id.encode()).hexdigest()

    def _custom_template(self, message: object, length: int) -> str:
        """A per-request message, if enabled, valid, and one SMS segment with its code."""
        if not self.settings.allow_custom_message:
            raise InvalidAPIUsage(
                "'message' is turned off here; the service's own message is sent "
                "(operators enable it with SMS2FA_ALLOW_CUSTOM_MESSAGE)")
        if not isinstance(message, str) or not 0 < len(message) <= 1000:
            raise InvalidAPIUsage("'message' must be a string of 1 to 1000 characters")
        try:
            template = check_template(message, "'message'")
        except ConfigurationError as exc:
            raise InvalidAPIUsage(str(exc)) from None
        if segments(template.format(code="0" * length, org_name=self.settings.org_name)) > 1:
            raise InvalidAPIUsage(
                "'message' must fit one SMS segment with its code filled in: 160 characters, "
                "or 70 with any character outside ASCII")
        return template

    def _send_budgets(
        self, key: str, number: str, client_address: str | None, parts: int = 1
    ) -> list[tuple[str, str, int, int, int]]:
        """(name, counter key, limit, window, amount) of every budget a send spends.

        ``parts``: the segments the message is billed as; the per-auth_id cooldown counts
        sends, the others segments.
        """
        s = self.settings
        scope = self._scope
        budgets: list[tuple[str, str, int, int, int]] = []
        if s.resend_cooldown:
            budgets.append(("resend_cooldown", f"cooldown:{key}", 1, s.resend_cooldown, 1))
        if s.recipient_send_limit:
            budgets.append(("recipient", f"{scope}recipient:{number}", s.recipient_send_limit,
                            s.recipient_send_window, parts))
        if s.address_send_limit and client_address is not None:
            budgets.append(("client_address",
                            f"{scope}address:{address_key(client_address)}",
                            s.address_send_limit, s.address_send_window, parts))
        if s.global_send_limit:
            budgets.append(("global", f"{scope}global", s.global_send_limit, 3600, parts))
        return budgets

    def _locked(self, key: str, now: datetime,
                tx: Cursor | None = None) -> tuple[str, datetime] | None:
        """("failed_checks", until when) if failed checks have locked ``key``."""
        failures, until = self.store.peek(f"failed:{key}", now, tx=tx)
        if failures >= self.settings.max_failed_checks and until is not None:
            return "failed_checks", until
        return None

    def _lock(self, key: str, fail_key: str, now: datetime) -> datetime:
        """Lock ``key`` after its last allowed failure: each lock twice the one before,
        from lockout_seconds up to lockout_max_seconds. Returns when it ends.

        The number of locks is remembered until a full lockout_max_seconds after the last
        one ends (or a right code), so waiting out one lock does not start over cheaply.
        """
        s = self.settings
        locks_key = f"locks:{key}"
        with self.store.transaction() as tx:
            locks, _ = self.store.hit(locks_key, s.lockout_max_seconds, now, tx=tx)
            seconds = min(s.lockout_seconds * 2 ** min(max(locks, 1) - 1, 20),
                          s.lockout_max_seconds)
            until = now + timedelta(seconds=seconds)
            self.store.extend(fail_key, until, tx=tx)
            self.store.extend(locks_key, until + timedelta(seconds=s.lockout_max_seconds),
                              tx=tx)
        return until

    def _spend_send_budgets(
        self, key: str, budgets: list[tuple[str, str, int, int, int]], now: datetime,
        tx: Cursor,
    ) -> tuple[str, datetime] | None:
        """Charge every budget in ``tx`` unless locked; the first refusal, with its end."""
        if (locked := self._locked(key, now, tx)) is not None:
            return locked
        for name, counter, limit, window, amount in budgets:
            count, reset_at = self.store.hit(counter, window, now, amount=amount, tx=tx)
            if count > limit:
                return name, reset_at
        return None

    def _refund_send_budgets(
        self, budgets: list[tuple[str, str, int, int, int]], now: datetime
    ) -> None:
        """Give back what a send the provider refused had spent: nothing was delivered."""
        with self.store.transaction() as tx:
            for _name, counter, _limit, window, amount in budgets:
                if counter.startswith("cooldown:"):
                    self.store.reset(counter, tx=tx)
                else:
                    self.store.hit(counter, window, now, amount=-amount, tx=tx)

    def _refuse(
        self, budget: str, auth_id: str, number: str | None, reset_at: datetime, now: datetime
    ) -> None:
        retry_after = int((reset_at - now).total_seconds()) + 1
        self._emit("rate_limited", auth_id, number, reason=budget, retry_after=retry_after)
        raise RateLimited(budget, retry_after)

    def _why_not_checkable(self, row: CodeRow | None, now: datetime) -> VerificationError:
        if row is None:
            return UnknownAuthId()
        if row.expires_at <= now:
            self.store.delete_code(row.auth_id, row.digest)
            return ExpiredAuthCode()
        # No attempts left: the guesses that took them are still being evaluated (one of them
        # may hold the right code and must be the one to consume it), or the last one was
        # killed. Deleting here would race them, so leave the row: it can no longer be guessed
        # at, and a new start replaces it or purge removes it when it expires.
        return UnknownAuthId()

    def _maybe_purge(self, now: datetime) -> None:
        """Purge expired rows once a minute per process, in a thread of its own: a purge
        takes as long as there is to delete, and this may run on an event loop."""
        if time.monotonic() - self._last_purge < PURGE_INTERVAL:
            return
        if not self._purge_lock.acquire(blocking=False):
            return  # one is running
        self._last_purge = time.monotonic()
        threading.Thread(target=self._purge_in_background, args=(now,), name="sms2fa-purge",
                         daemon=True).start()

    def _purge_in_background(self, now: datetime) -> None:
        try:
            self.store.purge(now, now - timedelta(days=31))
        except Exception as exc:  # the next one will try again; requests must not notice
            log.warning("sms2fa: purging expired rows failed: %s", type(exc).__name__)
        finally:
            self._purge_lock.release()

    def _warn_if_long(self, template: str) -> None:
        sample = template.format(code="0" * 10, org_name=self.settings.org_name)
        if segments(sample) > 1:
            log.warning("sms2fa: the SMS message needs %d segments (each one is billed)",
                        segments(sample))

    def _emit(self, name: str, auth_id: str, recipient: str | None = None,
              reason: str | None = None, **detail: object) -> None:
        # A failed send is the one event an operator must see without asking for INFO.
        level = logging.WARNING if name == "send_failed" else logging.INFO
        logging_on = log.isEnabledFor(level)
        if not logging_on and self.on_event is None:
            return  # a wrong guess is the hot path: build nothing nobody reads
        if self.namespace:
            detail["namespace"] = self.namespace
        event = AuditEvent(name, auth_id, mask(recipient) if recipient else None, reason, detail)
        if logging_on:
            log.log(level, "sms2fa event=%s auth_id=%r recipient=%s reason=%s %s", name,
                    auth_id, event.recipient, reason,
                    " ".join(f"{k}={v}" for k, v in detail.items()))
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:  # an audit hook must never break a verification
                log.exception("sms2fa: the on_event hook failed")
