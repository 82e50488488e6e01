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
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone

from .. import Identity
from ..engine import Verifier
from ..errors import StoreUnavailable
from ..policy import SESSION_REVOCATION
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


class SessionSigner:
    """The verified-session cookie: ``<issued ms, hex>.<session id>.<signature>``.

    The session id is 16 random characters and a 16-character tag, a MAC of them under a key
    of its own: a logout ("this device") can tell an id we made from a made-up one without
    knowing whose session it is. Ids of 16 characters (no tag: issued by 0.1) still verify.

    The signature is HMAC-SHA256 over the audience, the issue time, the session id, the
    auth_id and the phone number (E.164) -- which never appear in the cookie. The audience
    (the guard passes its cookie name, its prefix and its ``audience`` option) is fed to each
    key's HMAC once, here: a cookie signed for another app that shares the secret is refused,
    at no cost per request. We sign by hand rather than with itsdangerous because this check
    runs on every protected request, and one raw HMAC is far cheaper than
    ``TimestampSigner.unsign`` (bench/verified.py measures it).
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

    def issue(self, identity: Identity, issued_ms: int) -> str:
        random = secrets.token_urlsafe(12)
        head = f"{issued_ms:x}.{random}{self._tag(self._id_macs[0], random)}"
        return f"{head}.{self._sign(self._macs[0], head, identity)}"

    def session_id(self, value: str) -> str | None:
        """The session id of a cookie value if we made it (its tag verifies: no need to
        know whose it is), else None -- a made-up id is never stored as a revocation."""
        parts = value.split(".")
        if len(parts) != 3 or not _SESSION_ID.fullmatch(parts[1]):
            return None
        random, tag = parts[1][:_ID_RANDOM], parts[1][_ID_RANDOM:]
        ok = False
        for mac in self._id_macs:
            ok |= hmac.compare_digest(self._tag(mac, random), tag)
        return parts[1] if ok else None

    def verify(self, value: str, identity: Identity) -> int | None:
        """The issue time (ms) if ``value`` was issued for ``identity``, else None."""
        head, _, signature = value.rpartition(".")
        issued, _, _sid = head.partition(".")
        if not signature or not _sid:
            return None
        ok = False
        for mac in self._macs:
            ok |= hmac.compare_digest(self._sign(mac, head, identity), signature)
        if not ok:
            return None
        try:
            return int(issued, 16)
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
        self._verified: dict[tuple[str, bool, str, str], int] = {}
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

    def issue(self, identity: Identity) -> str:
        """A fresh cookie value (a new session id: no fixation)."""
        return self.signer.issue(identity, int(time.time() * 1000))

    def set_cookie(self, https: bool, identity: Identity) -> tuple[str, str]:
        """The Set-Cookie header of a fresh verified session."""
        return self.cookies.set(https, self._names[https], self.issue(identity), self.remember_for)

    def is_verified(self, cookie_header: str, https: bool, identity: Identity | None) -> bool:
        """Whether the request carries a live verified session for ``identity``. No I/O.
        False for every session while revocations are unknown (see :meth:`held_back`)."""
        return self.verified_at(cookie_header, https, identity) is not None

    def verified_at(self, cookie_header: str, https: bool, identity: Identity | None) -> int | None:
        """When (ms since the epoch) the live verified session the request carries for
        ``identity`` was issued -- the code was entered then -- or None (as
        :meth:`is_verified`). No I/O; the issue time is what the signature check read."""
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

    def _valid(self, cookie_header: str, https: bool, identity: Identity | None) -> int | None:
        """The issue time of the live session in the header for ``identity``, or None."""
        if identity is None or identity.recipient is None or not cookie_header:
            return None
        # Keyed by the whole Cookie header (short ones: memory stays bounded): a hit skips
        # even finding our cookie in it. Another cookie that changes on every request (or a
        # long header) just costs the HMAC each time.
        key = (cookie_header, https, identity.auth_id, identity.recipient)
        issued = self._verified.get(key)
        if issued is None:
            value, issued = self._signed(cookie_header, https, identity)
            if value is None or issued is None or self._session_revoked(value):
                return None
            if len(cookie_header) <= VERIFIED_CACHE_HEADER:
                if len(self._verified) >= VERIFIED_CACHE_SIZE:
                    self._verified.clear()
                # Only signatures that verified are remembered, keyed by all the HMAC proved
                # it for: a hit proves exactly what the HMAC proved, for a dict lookup.
                self._verified[key] = issued
                if self._session_revoked(value):  # revoked meanwhile: its clear() ran first
                    self._verified.pop(key, None)
                    return None
        now_ms = time.time() * 1000
        if issued + self.remember_for * 1000 < now_ms or issued > now_ms + 60_000:
            return None
        revoked = self._revoked.get(identity.auth_id)
        return issued if revoked is None or issued > revoked else None

    def _signed(
        self, cookie_header: str, https: bool, identity: Identity
    ) -> tuple[str | None, int | None]:
        """(value, issue time) of the newest of our cookies signed for ``identity`` and not
        revoked: another cookie of the same name (planted by a sibling subdomain, which a
        browser sends first when its Path is longer) must not hide the real one, nor an old
        one (another Domain or Path) a fresh one that a step-up challenge just set."""
        found: tuple[str | None, int | None] = (None, None)
        for value in cookie_values(cookie_header, self._names[https]):
            issued = self.signer.verify(value, identity)
            if (
                issued is not None
                and not self._session_revoked(value)
                and (found[1] is None or issued > found[1])
            ):
                found = value, issued
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
            horizon = (time.time() - self.remember_for) * 1000
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

    def revoke(self, auth_id: str) -> None:
        """End ``auth_id``'s verified sessions here at once, and on every worker and host
        before its next request (the store's signal; without it, within
        ``revocation_interval`` seconds). Here it holds even when the store cannot be
        written -- and then StoreUnavailable is raised: other hosts do not know."""
        self._learn(auth_id, int(time.time() * 1000))
        at = self.verifier.revoke(auth_id)
        self._learn(auth_id, int(at.timestamp() * 1000))

    def revoke_sessions(self, values: Iterable[str]) -> None:
        """End the sessions whose cookie values these are ("log out this device"), here at
        once and on every worker and host as :meth:`revoke` says. Values that are no
        session of ours (their id's tag does not verify) are ignored: nothing of a client's
        choosing is written to the store. Like :meth:`revoke`, it raises StoreUnavailable
        when the store cannot be written, after ending the sessions here."""
        ids = [sid for sid in map(self.signer.session_id, values) if sid is not None]
        now_ms = int(time.time() * 1000)
        for sid in ids:
            self._learn_session(sid, now_ms)
        for sid in ids:
            self.verifier.revoke_session(sid)


__all__ = ["SessionSigner", "Sessions"]
