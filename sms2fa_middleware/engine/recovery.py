"""Recovery codes: a set of single-use codes for when no text arrives.

A set is ``RECOVERY_COUNT`` random codes, shown once and stored as keyed digests (the SMS
codes' HMAC, with its own binding so the two never stand in for each other); making a new
set voids the old one. Using one is one conditional DELETE (single use across workers and
hosts), and every guess first takes a slot of the same failed-check counter as SMS codes,
so recovery guesses count toward the same lock. Each use is audited (``recovery_used``) and
texted to the number as a notice that carries no code.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime

from .. import text
from ..errors import InvalidAPIUsage, InvalidAuthCode
from ..policy import Clock, Keys, check_auth_id
from ..settings import Settings
from ..sms import Sender, SendError
from ..store import Store
from ..store.aio import resolve
from .audit import Audit
from .checking import Checks
from .codes import digest

log = logging.getLogger("sms2fa")

RECOVERY_COUNT = 10
#: No 0/o, 1/l/i: read off paper and typed without doubt. 31 symbols, 10 of them: ~49 bits.
ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
LENGTH = 10
#: Folded into the digest: a recovery code's digest never equals an SMS code's.
BINDING = "recovery"


def new_code() -> str:
    """One recovery code as shown: ``xxxxx-xxxxx``."""
    raw = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    return f"{raw[:5]}-{raw[5:]}"


def normalise(code: object) -> str | None:
    """A typed code without spaces, dashes or case; None if it cannot be one."""
    if not isinstance(code, str) or len(code) > 4 * LENGTH:
        return None
    raw = "".join(code.split()).replace("-", "").lower()
    if len(raw) != LENGTH or any(c not in ALPHABET for c in raw):
        return None
    return raw


class Recovery:
    """Make, count and use recovery codes."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        keys: Keys,
        audit: Audit,
        clock: Clock,
        checks: Checks,
    ) -> None:
        self.settings, self.store, self.keys = settings, store, keys
        self.audit, self.clock, self.checks = audit, clock, checks

    def generate(self, auth_id: str) -> list[str]:
        """A new set for ``auth_id`` (the old one stops working); the codes, to show once."""
        key = self.keys.auth(check_auth_id(auth_id))
        shown = [new_code() for _ in range(RECOVERY_COUNT)]
        secret = self.settings.secret_keys[0]
        digests = [digest(normalise(c) or "", key, secret, BINDING) for c in shown]
        self.store.put_recovery_codes(key, digests, self.clock.now())
        self.audit.emit("recovery_generated", auth_id, count=RECOVERY_COUNT)
        return shown

    def remaining(self, auth_id: str) -> int:
        """How many unused recovery codes ``auth_id`` has."""
        return self.store.count_recovery_codes(self.keys.auth(check_auth_id(auth_id)))

    def use(self, auth_id: str, code: str, recipient: str | None, sender: Sender) -> int:
        """Spend ``code``; the number of codes left. Raises InvalidAPIUsage (not shaped like
        one), InvalidAuthCode (wrong: a failed check) or RateLimited (locked)."""
        s = self.settings
        auth_id = check_auth_id(auth_id)
        raw = normalise(code)
        if raw is None:
            raise InvalidAPIUsage("'recovery_code' must be a recovery code (xxxxx-xxxxx)")
        key = self.keys.auth(auth_id)
        now = self.clock.now()
        failed = Keys.failed(key)
        if (until := self.checks.spent.until(failed, now)) is not None:
            raise self.checks.locked(auth_id, until, now, remembered=True)  # no store work
        # A failure slot first, as an SMS check takes one: parallel guesses never evaluate
        # more than max_failed_checks, and SMS and recovery guesses share the lock.
        failures, reset_at = self.store.hit(failed, s.lockout_seconds, now)
        if failures > s.max_failed_checks:
            self.store.hit(failed, s.lockout_seconds, now, amount=-1)
            self.checks.spent.remember(failed, reset_at, now)
            raise self.checks.locked(auth_id, reset_at, now)
        digests = [digest(raw, key, k, BINDING) for k in s.secret_keys]
        if not self.store.use_recovery_code(key, digests):
            return self._wrong(auth_id, key, recipient, failures, now)
        self.store.reset(failed, also=Keys.locks(key))
        self.checks.spent.forget(failed)  # a lock that came meanwhile is lifted, here at once
        left = self.store.count_recovery_codes(key)
        self.audit.emit("recovery_used", auth_id, recipient, remaining=left)
        if recipient is not None:
            self._notify(auth_id, recipient, left, sender)
        return left

    def _wrong(
        self, auth_id: str, key: str, recipient: str | None, failures: int, now: datetime
    ) -> int:
        s = self.settings
        self.audit.emit("failed", auth_id, recipient, reason="InvalidRecoveryCode")
        if failures == s.max_failed_checks:
            until = resolve(self.checks.lock(key, now))  # its store is the sync one
            self.audit.emit(
                "locked",
                auth_id,
                recipient,
                reason="failed_checks",
                until=until.isoformat(timespec="seconds"),
            )
        raise InvalidAuthCode(attempts_left=max(0, s.max_failed_checks - failures))

    def _notify(self, auth_id: str, recipient: str, left: int, sender: Sender) -> None:
        """Text the number that a recovery code was used: no code in it. A failed notice
        does not undo the sign-in (the code is spent); it is audited."""
        body = text.recovery_used_notice(self.settings.org_name, left)
        try:
            sender.send(recipient, body)
        except SendError as exc:
            self.audit.emit("send_failed", auth_id, recipient, reason="RecoveryNotice")
            log.warning("sms2fa: the recovery notice was not sent (%s)", type(exc).__name__)


__all__ = ["ALPHABET", "RECOVERY_COUNT", "Recovery", "new_code", "normalise"]
