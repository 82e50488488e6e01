"""Verified sessions: the signed cookie, the per-process cache of verified cookies, and
revocations (this device, or every device of a user).

A protected request with a valid cookie costs one HMAC-SHA256 and a dict lookup -- no
database round trip. Revocations are read from the store when the store's revocation signal
says one was made (a shared counter on one SQLite host, ``LISTEN/NOTIFY`` on PostgreSQL:
reading it is no query), and at least every ``revocation_interval`` seconds, which bounds how
late a revocation takes effect if the signal is lost (one made here takes effect at once).
When they cannot be read (the store is away), no session is accepted once what this process
knows is older than that bound: it fails closed rather than accept a session that may have
been revoked meanwhile.

Idle time (``idle``) costs no database write either: the cookie carries a signed last-seen
time, and a verified request whose last-seen is a minute old or more gets the cookie again
with a new one (:meth:`Sessions.touch`; the adapters set it on the app's response).

Wall-clock times come from the verifier's clock (``Verifier(clock=...)``; tests move it).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone
from typing import NamedTuple

from .. import Identity
from ..engine import Verifier
from ..errors import StoreUnavailable
from ..policy import SESSION_REVOCATION, Clock, SystemClock
from .cookies import Cookies, cookie_values

VERIFIED_CACHE_SIZE = 10_000  # verified cookies remembered per process
VERIFIED_CACHE_HEADER = 1024  # longest Cookie header remembered (10,000 of them: 10 MB)
#: How 0.1 stored a session's revocation (in the auth_ids' key space: rows it wrote are read
#: as both kinds, so neither an old logout nor such an auth_id's revocation is lost).
LEGACY_SESSION_REVOKED = "sms2fa-session:"
#: How long a request waits for another thread's refresh once what it knows is too old.
REFRESH_WAIT = 5.0
#: Slack beyond ``revocation_interval`` before sessions are refused: a request that found
#: revocations fresh a moment before they fell due, or a refresh that takes a little
#: while, must not turn into a 503 while the store is fine.
REFRESH_GRACE = 1.0
#: A session id as :meth:`SessionSigner.issue` makes them: 16 random characters and a
#: 16-character tag (a MAC of them), so a logout can tell our ids from made-up ones.
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{32}")
_ID_RANDOM = 16
_UNSEEN = object()  # no revocation token read yet: differs from every token
#: A verified request re-issues the cookie with a new last-seen time when the one it
#: carries is at least this old (ms): at most one Set-Cookie a minute per session.
TOUCH_EVERY_MS = 60_000


def wall_ms(clock: Clock) -> Callable[[], float]:
    """The time in ms since the epoch, read from ``clock`` (the real clock read directly:
    this runs on every protected request)."""
    if type(clock) is SystemClock:
        return lambda: time.time() * 1000
    return lambda: clock.now().timestamp() * 1000


class Session(NamedTuple):
    """A live verified session found in a request: its cookie ``value``, when the code was
    entered (``issued``, ms) and when the session was last seen (``seen``, ms: the cookie's
    last-seen, else ``issued``)."""

    value: str
    issued: int
    seen: int

    def meets(self, max_age: int | None, idle: int | None, now_ms: float) -> bool:
        """Whether the code is at most ``max_age`` s old and the session was used within
        the last ``idle`` s (None: no bound)."""
        return (max_age is None or self.issued >= now_ms - max_age * 1000) and (
            idle is None or self.seen >= now_ms - idle * 1000
        )


class SessionSigner:
    """The verified-session cookie: ``<issued ms, hex>.<session id>.<signature>``, or
    ``<issued>.<session id>.<last seen ms, hex>.<signature>`` once :meth:`Sessions.touch`
    renewed its last-seen time (the same session: same id, same issue time).

    The session id is 16 random characters and a 16-character tag, a MAC of them under a key
    of its own: a logout ("this device") can tell an id we made from a made-up one without
    knowing whose session it is. Ids of 16 characters (no tag: issued by 0.1) still verify.

    The signature is HMAC-SHA256 over the audience, the issue time, the session id, the
    last-seen time (when there is one), the auth_id and the phone number (E.164) -- which
    never appear in the cookie. The audience (the guard passes its cookie name, its prefix
    and its ``audience`` option) is fed to each key's HMAC once, here: a cookie signed for
    another app that shares the secret is refused, at no cost per request. We sign by hand
    rather than with itsdangerous because this check runs on every protected request, and
    one raw HMAC is far cheaper than ``TimestampSigner.unsign`` (bench/verified.py
    measures it).
    """

    def __init__(self, keys: Iterable[str], audience: str = "") -> None:
        # Length-prefixed: no audience can run on into the text signed after it.
        scope = f"{len(audience)}:{audience}\x00".encode()
        self._macs: list[hmac.HMAC] = []
        self._id_macs: list[hmac.HMAC] = []  # a second key per secret: the session id's own tag
        for k in keys:
            for purpose, macs in (
                (b"sms2fa-session", self._macs),
                (b"sms2fa-session-id", self._id_macs),
            ):
                mac = hmac.new(
                    hmac.new(k.encode(), purpose, hashlib.sha256).digest(), digestmod=hashlib.sha256
                )
                mac.update(scope)
                macs.append(mac)

    def _sign(self, mac: hmac.HMAC, head: str, identity: Identity) -> str:
        m = mac.copy()
        m.update(f"{head}\x00{identity.auth_id}\x00{identity.recipient}".encode())
        return base64.urlsafe_b64encode(m.digest()).decode().rstrip("=")

    def _tag(self, mac: hmac.HMAC, random: str) -> str:
        m = mac.copy()
        m.update(random.encode())
        return base64.urlsafe_b64encode(m.digest()[:12]).decode()

    def issue(
        self,
        identity: Identity,
        issued_ms: int,
        seen_ms: int | None = None,
        session_id: str | None = None,
    ) -> str:
        """A cookie value: a new session (a fresh id), or ``session_id``'s again with a
        last-seen time ``seen_ms``."""
        if session_id is None:
            random = secrets.token_urlsafe(12)
            session_id = random + self._tag(self._id_macs[0], random)
        head = f"{issued_ms:x}.{session_id}"
        if seen_ms is not None:
            head += f".{seen_ms:x}"
        return f"{head}.{self._sign(self._macs[0], head, identity)}"

    def session_id(self, value: str) -> str | None:
        """The session id of a cookie value if we made it (its tag verifies: no need to
        know whose it is), else None -- a made-up id is never stored as a revocation."""
        parts = value.split(".")
        if len(parts) not in (3, 4) or not _SESSION_ID.fullmatch(parts[1]):
            return None
        random, tag = parts[1][:_ID_RANDOM], parts[1][_ID_RANDOM:]
        ok = False
        for mac in self._id_macs:
            ok |= hmac.compare_digest(self._tag(mac, random), tag)
        return parts[1] if ok else None

    def verify(self, value: str, identity: Identity) -> int | None:
        """The issue time (ms) if ``value`` was issued for ``identity``, else None."""
        times = self.times(value, identity)
        return None if times is None else times[0]

    def times(self, value: str, identity: Identity) -> tuple[int, int] | None:
        """(issued, last seen) in ms if ``value`` was issued for ``identity``, else None;
        last seen is the issue time in a cookie that carries none."""
        head, _, signature = value.rpartition(".")
        issued, _, rest = head.partition(".")
        if not signature or not rest:
            return None
        ok = False
        for mac in self._macs:
            ok |= hmac.compare_digest(self._sign(mac, head, identity), signature)
        if not ok:
            return None
        _sid, _, seen = rest.partition(".")
        try:
            at = int(issued, 16)
            return at, int(seen, 16) if seen else at
        except ValueError:
            return None


class Sessions:
    """Which requests carry a live verified session, and ending sessions."""

    def __init__(
        self,
        verifier: Verifier,
        cookies: Cookies,
        audience: str,
        remember_for: int,
        revocation_interval: float,
    ) -> None:
        self.verifier = verifier
        self.cookies = cookies
        self.signer = SessionSigner(verifier.settings.secret_keys, audience)
        self.remember_for = remember_for
        self.revocation_interval = revocation_interval
        self._names = (cookies.session(False), cookies.session(True))
        self._revoked: dict[str, int] = {}  # auth_id -> revoked at (ms)
        self._revoked_sessions: dict[str, int] = {}  # session id -> revoked at (ms)
        self._verified: dict[tuple[str, bool, str, str], Session] = {}
        #: The wall clock in ms (the verifier's clock: tests move it).
        self.now_ms = wall_ms(verifier.clock)
        self._real_clock = type(verifier.clock) is SystemClock  # read inline: a call less
        self._revocations_seen = datetime.now(timezone.utc) - timedelta(seconds=remember_for)
        self._next_refresh = 0.0
        # Sessions are accepted until this moment (monotonic): the start of the last good
        # read of revocations plus revocation_interval and REFRESH_GRACE. Until a first read
        # is tried (a guard used without an adapter) there is nothing to go stale; from then
        # until one succeeds, nothing is known and no session is accepted.
        self._trusted_until = math.inf
        self._loaded = False
        self._failing = False  # the last read failed: the store is away, waiting is futile
        self._refresh_lock = threading.Lock()
        # The store's revocation signal: when its token moves, a revocation was made (here or
        # on another worker or host) and is read before the next session is accepted.
        self._token = verifier.store.revocation_signal.token
        self._seen_token: object = _UNSEEN  # the token when the last good read started

    def issue(self, identity: Identity, after_ms: int | None = None) -> str:
        """A fresh cookie value (a new session id: no fixation); ``after_ms``: issued later
        than that moment (a revocation just made, which ends sessions issued until then)."""
        issued = int(self.now_ms())
        if after_ms is not None:
            issued = max(issued, after_ms + 1)
        return self.signer.issue(identity, issued)

    def set_cookie(
        self, https: bool, identity: Identity, after_ms: int | None = None
    ) -> tuple[str, str]:
        """The Set-Cookie header of a fresh verified session (``after_ms``: see :meth:`issue`)."""
        value = self.issue(identity, after_ms)
        return self.cookies.set(https, self._names[https], value, self.remember_for)

    def touch(
        self, session: Session, https: bool, identity: Identity, now_ms: float
    ) -> tuple[str, str] | None:
        """The Set-Cookie header that renews ``session``'s last-seen time to now -- the same
        session id and issue time, the rest of its lifetime -- or None when the last-seen it
        carries is less than a minute old (idle time is tracked to the minute)."""
        if now_ms - session.seen < TOUCH_EVERY_MS:
            return None
        session_id = self.signer.session_id(session.value)
        left = (session.issued + self.remember_for * 1000 - now_ms) // 1000
        if session_id is None or left <= 0:  # a 0.1 id (no tag), or about to expire anyway
            return None
        value = self.signer.issue(identity, session.issued, int(now_ms), session_id)
        return self.cookies.set(https, self._names[https], value, int(left))

    def is_verified(self, cookie_header: str, https: bool, identity: Identity | None) -> bool:
        """Whether the request carries a live verified session for ``identity``. No I/O.
        False for every session while revocations are unknown (see :meth:`held_back`)."""
        return self.verified_at(cookie_header, https, identity) is not None

    def verified_at(self, cookie_header: str, https: bool, identity: Identity | None) -> int | None:
        """When (ms since the epoch) the live verified session the request carries for
        ``identity`` was issued -- the code was entered then -- or None (as
        :meth:`is_verified`). No I/O; the issue time is what the signature check read."""
        session = self.session(cookie_header, https, identity)
        return None if session is None else session.issued

    def session(self, cookie_header: str, https: bool, identity: Identity | None) -> Session | None:
        """The live verified session the request carries for ``identity``, or None (as
        :meth:`is_verified`). No I/O."""
        if time.monotonic() >= self._trusted_until:
            return None
        return self._valid(cookie_header, https, identity)

    def held_back(self, cookie_header: str, https: bool, identity: Identity | None) -> bool:
        """Whether the request carries a session that would be accepted, but is not because
        revocations could not be read lately (the store is away): the answer is a 503."""
        return (
            time.monotonic() >= self._trusted_until
            and self._valid(cookie_header, https, identity) is not None
        )

    def _valid(self, cookie_header: str, https: bool, identity: Identity | None) -> Session | None:
        """The live session in the header for ``identity``, or None."""
        if identity is None or identity.recipient is None or not cookie_header:
            return None
        # Keyed by the whole Cookie header (short ones: memory stays bounded): a hit skips
        # even finding our cookie in it. Another cookie that changes on every request (or a
        # long header) just costs the HMAC each time.
        key = (cookie_header, https, identity.auth_id, identity.recipient)
        session = self._verified.get(key)
        if session is None:
            session = self._signed(cookie_header, https, identity)
            if session is None or self._session_revoked(session.value):
                return None
            if len(cookie_header) <= VERIFIED_CACHE_HEADER:
                if len(self._verified) >= VERIFIED_CACHE_SIZE:
                    self._verified.clear()
                # Only signatures that verified are remembered, keyed by all the HMAC proved
                # it for: a hit proves exactly what the HMAC proved, for a dict lookup.
                self._verified[key] = session
                if self._session_revoked(session.value):  # revoked meanwhile: its clear()
                    self._verified.pop(key, None)  # ran first
                    return None
        issued = session.issued
        now_ms = time.time() * 1000 if self._real_clock else self.now_ms()
        if issued + self.remember_for * 1000 < now_ms or issued > now_ms + 60_000:
            return None
        revoked = self._revoked.get(identity.auth_id)
        return session if revoked is None or issued > revoked else None

    def _signed(self, cookie_header: str, https: bool, identity: Identity) -> Session | None:
        """The newest of our cookies signed for ``identity`` and not revoked (the latest
        code; of one session, the latest last-seen): another cookie of the same name (planted
        by a sibling subdomain, which a browser sends first when its Path is longer) must not
        hide the real one, nor an old one (another Domain or Path) a fresh one that a step-up
        challenge just set."""
        found: Session | None = None
        for value in cookie_values(cookie_header, self._names[https]):
            times = self.signer.times(value, identity)
            if (
                times is not None
                and not self._session_revoked(value)
                and (found is None or times > (found.issued, found.seen))
            ):
                found = Session(value, *times)
        return found

    def revocations_stale(self) -> bool:
        """Whether revocations must be read before deciding: the interval is up, or the
        store signals a revocation not read yet. No I/O (a clock and a memory read)."""
        return time.monotonic() >= self._next_refresh or (
            self._token() != self._seen_token and not self._failing
        )

    def refresh_revocations(self) -> None:
        """Read revocations made on any host since the last look (blocking; cheap). When
        the read fails, sessions stop being accepted once what is known is older than
        ``revocation_interval`` and a second (fail closed); it is retried a second later.
        (A signal alone does not fail closed: PostgreSQL's also moves when its listener
        reconnects, which says nothing was revoked.)"""
        started = time.monotonic()
        token = self._token()  # before the read: a revocation signalled during it is reread
        if not self._loaded:
            self._trusted_until = -math.inf  # a first read is under way: nothing known yet
        if not self._refresh_lock.acquire(blocking=False):
            # Another thread is reading. Wait for it only when what we know is too old to
            # go on with, or a revocation was signalled, and the store was fine last time:
            # then its result decides (bounded: a hung read must not hang us; during an
            # outage the answer is a 503 at once).
            signalled = token != self._seen_token
            if self._failing or not (started >= self._trusted_until or signalled):
                return
            if not self._refresh_lock.acquire(timeout=REFRESH_WAIT):
                return
            if not signalled or self._seen_token == token or self._failing:  # its read
                # covered ours, or failed (then retrying at once is futile)
                self._refresh_lock.release()
                return
            # Its read began before the revocation we saw was signalled: read again.
        try:
            # Look back a little further than needed: other hosts' clocks may lag ours.
            since = self._revocations_seen - timedelta(seconds=60)
            for key, at in self.verifier.revocations_since(since):
                self._learn(key, int(at.timestamp() * 1000))
                self._revocations_seen = max(self._revocations_seen, at)
            horizon = self.now_ms() - self.remember_for * 1000
            for revoked in (self._revoked, self._revoked_sessions):
                # list(): revoke() may add to the dict from another thread meanwhile.
                for key in [k for k, at in list(revoked.items()) if at < horizon]:
                    revoked.pop(key, None)
            # Every revocation made before `started` is known now (give or take the clocks).
            self._loaded, self._failing = True, False
            self._seen_token = token
            self._next_refresh = started + self.revocation_interval
            self._trusted_until = self._next_refresh + REFRESH_GRACE
        except StoreUnavailable:
            self._failing = True
            self._next_refresh = time.monotonic() + 1.0
        finally:
            self._refresh_lock.release()

    def _learn(self, key: str, at_ms: int) -> None:
        """Remember a revocation: of one session, or of all of an auth_id's."""
        if key.startswith(SESSION_REVOCATION):
            self._learn_session(key[len(SESSION_REVOCATION) :], at_ms)
            return
        if key.startswith(LEGACY_SESSION_REVOKED):
            self._learn_session(key[len(LEGACY_SESSION_REVOKED) :], at_ms)
        if at_ms > self._revoked.get(key, 0):
            self._revoked[key] = at_ms

    def _learn_session(self, session_id: str, at_ms: int) -> None:
        if session_id not in self._revoked_sessions:
            self._revoked_sessions[session_id] = at_ms
            self._verified.clear()  # hits skip the session check: drop them all

    def _session_revoked(self, value: str) -> bool:
        if not self._revoked_sessions:
            return False
        parts = value.split(".", 2)
        return len(parts) > 1 and parts[1] in self._revoked_sessions

    def revoke(self, auth_id: str, browsers: bool = True) -> int:
        """End ``auth_id``'s verified sessions here at once, and on every worker and host
        before its next request (the store's signal; without it, within
        ``revocation_interval`` seconds); the moment (ms) sessions issued until then end.
        Here it holds even when the store cannot be written -- and then StoreUnavailable
        is raised: other hosts do not know."""
        self._learn(auth_id, int(self.now_ms()))
        at = self.verifier.revoke(auth_id, browsers=browsers)
        self._learn(auth_id, int(at.timestamp() * 1000))
        return self._revoked.get(auth_id, 0)

    def revoke_sessions(self, values: Iterable[str]) -> None:
        """End the sessions whose cookie values these are ("log out this device"), here at
        once and on every worker and host as :meth:`revoke` says. Values that are no
        session of ours (their id's tag does not verify) are ignored: nothing of a client's
        choosing is written to the store. Like :meth:`revoke`, it raises StoreUnavailable
        when the store cannot be written, after ending the sessions here."""
        ids = [sid for sid in map(self.signer.session_id, values) if sid is not None]
        now_ms = int(self.now_ms())
        for sid in ids:
            self._learn_session(sid, now_ms)
        for sid in ids:
            self.verifier.revoke_session(sid)


__all__ = ["TOUCH_EVERY_MS", "Session", "SessionSigner", "Sessions", "wall_ms"]
