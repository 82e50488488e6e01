"""The Verifier: start, check and cancel verifications -- the whole policy, and no HTTP."""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable
from datetime import datetime

from ..policy import Clock, Keys, SystemClock, check_auth_id, live, seconds_until
from ..settings import Settings
from ..sms import Sender, SendError, segments, sender_from_settings
from ..store import Store
from ..store.aio import InlineStore, resolve
from .audit import Audit, AuditEvent
from .checking import Checks
from .numbers import NumberChanges
from .recovery import Recovery
from .results import Pending, SendWait, Started, Verified
from .sending import Purger, Sends, StartOptions
from .spent import Spent
from .timing import TimingFloor, wait
from .trust import Trust, TrustedBrowser

log = logging.getLogger("sms2fa")


class AutoSchema:
    """Creates the tables on first use, once per process, unless told not to."""

    def __init__(self, store: Store, auto: bool) -> None:
        self.store = store
        self.missing = auto  # read on every call: an attribute, no lock
        self._lock = threading.Lock()

    def create(self) -> None:
        self.store.create_schema()
        self.missing = False

    def ensure(self) -> None:
        with self._lock:
            if self.missing:
                self.create()


class Verifier:
    """Start, check and cancel SMS verifications. Thread-safe; one per process is enough.

    Creating one does no database work. The tables are created by :meth:`create_schema`
    (``sms2fa migrate``), or, unless ``auto_schema=False``, on first use. ``clock``: where
    the policy reads the time (tests pass a fake one). :class:`AsyncVerifier` is the twin
    for event loops.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        sender: Sender | None = None,
        store: Store | None = None,
        on_event: Callable[[AuditEvent], None] | None = None,
        clock: Clock | None = None,
        auto_schema: bool = True,
    ) -> None:
        self.settings = settings or Settings.from_env()
        self.sender = sender or sender_from_settings(self.settings)
        self.store = store or Store(self.settings.database_url)
        self.clock: Clock = clock or SystemClock()
        self.schema = AutoSchema(self.store, auto_schema)  # shared by namespaced copies
        self.floor = TimingFloor()
        self.spent = Spent()  # refusals the store made, until they end: shared by namespaces
        self._purger = Purger(self.store)
        self._scope(on_event, "")
        sample = self.settings.message_template.format(
            code="0" * 10, org_name=self.settings.org_name
        )
        if segments(sample) > 1:
            log.warning(
                "sms2fa: the SMS message needs %d segments (each one is billed)", segments(sample)
            )

    def _scope(self, on_event: Callable[[AuditEvent], None] | None, namespace: str) -> None:
        self.namespace = namespace
        # auth_ids are printable: no default-namespace key starts like a scoped one.
        self.keys = Keys(f"{namespace}\x1e" if namespace else "")
        self.audit = Audit(on_event, namespace)
        # The start and check steps are coroutines; over the sync store they never suspend,
        # and resolve() runs each to its end in this thread (see store/aio.py).
        inline = InlineStore(self.store)
        self.sends = Sends(
            self.settings, inline, self.keys, self.audit, self.clock, self._purger, self.spent
        )
        self.checks = Checks(self.settings, inline, self.keys, self.audit, self.clock, self.spent)
        self.recovery = Recovery(
            self.settings, self.store, self.keys, self.audit, self.clock, self.checks
        )
        self.trust = Trust(self.store, self.keys, self.audit, self.clock)
        self.numbers = NumberChanges(self.settings, self.store, self.keys, self.audit)

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
        other._scope(self.audit.on_event, namespace)
        return other

    def create_schema(self) -> None:
        """Create the tables if missing. Idempotent; safe from several workers at once."""
        self.schema.create()

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
        otp_domain: str | None = None,
        binding: str | None = None,
    ) -> Started:
        """Send a new code for ``auth_id`` by SMS; once sent, it replaces any pending one.
        ``otp_domain``: end the SMS with ``@otp_domain #code`` (browsers' autofill, bound to
        that site) when the line adds no billed segment. ``binding``: the code verifies only
        by a :meth:`check` given the same binding (the guard passes the asking browser's
        challenge nonce); a check with another one, or none, is a wrong guess."""
        self._ready()
        plan = resolve(
            self.sends.prepare(
                auth_id,
                recipient,
                StartOptions(
                    code_length, expiration, retries, message, client_address, otp_domain, binding
                ),
            )
        )
        try:
            message_id = self.sender.send(plan.to, plan.body)
        except SendError as exc:
            resolve(self.sends.failed(plan, exc))
        return resolve(self.sends.sent(plan, message_id))

    def check(
        self,
        auth_id: str,
        code: str,
        *,
        client_address: str | None = None,
        uniform: bool | None = None,
        binding: str | None = None,
    ) -> Verified:
        """Check ``code`` for ``auth_id``; the code is consumed on success. ``binding``: as
        given to :meth:`start` (a bound code is wrong without it).

        Raises UnknownAuthId, ExpiredAuthCode, InvalidAuthCode (with ``attempts_left``),
        RateLimited (the auth_id is locked after too many failures, or ``client_address``
        checked too often) or InvalidAPIUsage.

        ``uniform`` (default: the ``uniform_errors`` setting): do the same store work for an
        unknown, a locked and a live auth_id, and answer each no sooner than the slowest of
        them usually takes (:class:`~.timing.TimingFloor`), so timing does not tell them apart.
        A lock (or a spent client-address budget) this process learned from the store is
        answered from memory until it ends (:mod:`.spent`), padded alike.
        """
        self._ready()
        result = resolve(self.checks.check(auth_id, code, client_address, uniform, binding))
        if (deadline := result.deadline(self.floor)) is not None:
            wait(deadline)
        return result.settle()

    def new_recovery_codes(self, auth_id: str) -> list[str]:
        """Make ``auth_id`` a new set of single-use recovery codes (the old set stops working)
        and return them, to show once: only their keyed digests are kept."""
        self._ready()
        return self.recovery.generate(auth_id)

    def recovery_codes_left(self, auth_id: str) -> int:
        """How many unused recovery codes ``auth_id`` has."""
        self._ready()
        return self.recovery.remaining(auth_id)

    def use_recovery_code(self, auth_id: str, code: str, *, recipient: str | None = None) -> int:
        """Spend one recovery code of ``auth_id``; how many are left. A wrong one is a failed
        check (the same lock as SMS codes): raises InvalidAuthCode, RateLimited or
        InvalidAPIUsage. ``recipient``: text it a notice of the use (no code in it)."""
        self._ready()
        return self.recovery.use(auth_id, code, recipient, self.sender)

    def trust_browser(
        self,
        auth_id: str,
        seconds: int,
        *,
        user_agent: str = "",
        address: str | None = None,
        recipient: str | None = None,
    ) -> TrustedBrowser:
        """Trust a browser of ``auth_id`` for ``seconds`` (after a right code): the new
        trusted browser, whose ``id`` the browser's signed cookie carries."""
        self._ready()
        return self.trust.trust(auth_id, seconds, user_agent, address, recipient)

    def use_trusted_browser(
        self, auth_id: str, browser_id: str, *, recipient: str | None = None
    ) -> bool:
        """Whether ``browser_id`` is one of ``auth_id``'s trusted browsers, unexpired and not
        revoked (its last use is noted)."""
        self._ready()
        return self.trust.use(auth_id, browser_id, recipient)

    def trusted_browsers(self, auth_id: str) -> list[TrustedBrowser]:
        """``auth_id``'s trusted browsers, the most recently trusted first."""
        self._ready()
        return self.trust.listed(auth_id)

    def forget_browser(self, auth_id: str, browser_id: str) -> bool:
        """Stop trusting one browser of ``auth_id``; True if it was trusted."""
        self._ready()
        return self.trust.forget(auth_id, browser_id)

    def forget_browsers(self, auth_id: str) -> int:
        """Stop trusting every browser of ``auth_id``; how many were."""
        self._ready()
        return self.trust.forget_all(auth_id)

    def number_changed(self, auth_id: str, old: str, new: str) -> int:
        """``auth_id``'s phone number went from ``old`` to ``new`` (E.164; the app stored
        it): its recovery codes stop working (how many there were is returned), ``old`` is
        texted a notice of the change (no code in it; in the language spoken now), and the
        event ``number_changed`` is emitted. Call :meth:`revoke` too, which ends its
        sessions and trusted browsers (the middleware's ``{prefix}/phone`` does both)."""
        self._ready()
        return self.numbers.changed(auth_id, old, new, self.sender)

    def cancel(self, auth_id: str) -> bool:
        """Delete the pending code of ``auth_id``; True if there was one."""
        removed = self.store.delete_code(self._key(auth_id))
        if removed:
            self.audit.emit("cancelled", auth_id)
        return removed

    def pending(self, auth_id: str) -> Pending | None:
        """The live, sent code waiting for ``auth_id``, if any (no secret in it)."""
        row = self.store.get_code(self._key(auth_id))
        if row is None or not live(row.attempts_left, row.expires_at, self.clock.now()):
            return None
        return Pending(auth_id, row.recipient, row.expires_at, row.attempts_left)

    def revoke(self, auth_id: str, *, browsers: bool = True) -> datetime:
        """End every verified session of ``auth_id`` issued until now, on every host.

        Also drops its pending code and (unless ``browsers=False``: a logout keeps them) its
        trusted browsers. Returns the moment of revocation.
        """
        key = self._key(auth_id)
        now = self.clock.now()
        self.store.revoke(key, now)
        self.store.delete_code(key)
        if browsers:
            self.trust.forget_all(auth_id)
        self.audit.emit("revoked", auth_id)
        return now

    def revoke_session(self, session_id: str) -> datetime:
        """End one verified session (one device) issued until now, on every host; stored
        apart from auth_ids' revocations (see :meth:`Keys.session`). Returns the moment."""
        self._ready()
        now = self.clock.now()
        self.store.revoke(Keys.session(session_id), now)
        return now

    def revocations_since(self, since: datetime) -> list[tuple[str, datetime]]:
        """(auth_id, revoked_at) of every revocation after ``since``."""
        self._ready()
        return self.store.revocations_since(since)

    def end_cooldown(self, auth_id: str) -> bool:
        """Lift ``auth_id``'s resend cooldown if no code is waiting (the last one was used,
        or is spent): the next code is a new one, not a resend of it. True if lifted. The
        other budgets still count; the guard calls it only for a user who has just
        verified (a new number's first code after the step-up's)."""
        key = self._key(auth_id)
        if self.pending(auth_id) is not None:
            return False
        self.store.reset(Keys.cooldown(key))
        self.spent.forget(Keys.cooldown(key))  # a refusal remembered here ends with it
        return True

    def resend_wait(self, auth_id: str) -> int:
        """Seconds until ``auth_id`` may ask for a new code (0: now)."""
        key = self._key(auth_id)
        now = self.clock.now()
        count, reset_at = self.store.peek(Keys.cooldown(key), now)
        return seconds_until(reset_at, now) if count else 0

    def send_wait(
        self,
        auth_id: str,
        recipient: str | int,
        *,
        client_address: str | None = None,
        otp_domain: str | None = None,
    ) -> SendWait | None:
        """Whether :meth:`start` with these arguments would be refused now (RateLimited),
        by which budget and for how many seconds -- the longest refusing one, so a retry
        after that many seconds goes through unless others spend the budgets meanwhile.
        None: it would not be refused. Nothing is spent."""
        self._ready()
        return resolve(
            self.sends.wait(
                auth_id,
                recipient,
                StartOptions(client_address=client_address, otp_domain=otp_domain),
            )
        )

    def purge(self) -> int:
        """Delete expired codes and counters now; returns how many rows went."""
        self._ready()
        return self._purger.purge(self.clock.now())

    def _ready(self) -> None:
        """Make the tables first, if this verifier is to (see ``auto_schema``)."""
        if self.schema.missing:
            self.schema.ensure()

    def _key(self, auth_id: str) -> str:
        """The store's key of a valid ``auth_id``, the tables made first if they are to be."""
        key = self.keys.auth(check_auth_id(auth_id))
        self._ready()
        return key
