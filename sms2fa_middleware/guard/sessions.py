"""Verified sessions: the signed cookie, the per-process cache of verified cookies, and
revocations (this device, or every device of a user).

A protected request with a valid cookie costs one HMAC-SHA256 and a dict lookup -- no
database round trip. Revocations are read from the store at most every
``revocation_interval`` seconds, which bounds how late a revocation made on another host
takes effect (one made here takes effect at once).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone

from .. import Identity
from ..engine import Verifier
from ..errors import StoreUnavailable
from .cookies import Cookies, cookie_value

VERIFIED_CACHE_SIZE = 10_000  # verified cookies remembered per process
VERIFIED_CACHE_HEADER = 1024  # longest Cookie header remembered (10,000 of them: 10 MB)
#: A revocation of one session (one device) is stored as a revocation of this + its id.
SESSION_REVOKED = "sms2fa-session:"
#: A session id as :meth:`SessionSigner.issue` makes them (``secrets.token_urlsafe(12)``).
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{16}")


class SessionSigner:
    """The verified-session cookie: ``<issued ms, hex>.<session id>.<signature>``.

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
        self._macs = []
        for k in keys:
            mac = hmac.new(hmac.new(k.encode(), b"sms2fa-session", hashlib.sha256).digest(),
                           digestmod=hashlib.sha256)
            mac.update(scope)
            self._macs.append(mac)

    def _sign(self, mac: hmac.HMAC, head: str, identity: Identity) -> str:
        m = mac.copy()
        m.update(f"{head}\x00{identity.auth_id}\x00{identity.recipient}".encode())
        return base64.urlsafe_b64encode(m.digest()).decode().rstrip("=")

    def issue(self, identity: Identity, issued_ms: int) -> str:
        head = f"{issued_ms:x}.{secrets.token_urlsafe(12)}"
        return f"{head}.{self._sign(self._macs[0], head, identity)}"

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

    def __init__(self, verifier: Verifier, cookies: Cookies, audience: str,
                 remember_for: int, revocation_interval: float) -> None:
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
        self._refresh_lock = threading.Lock()

    def issue(self, identity: Identity) -> str:
        """A fresh cookie value (a new session id: no fixation)."""
        return self.signer.issue(identity, int(time.time() * 1000))

    def set_cookie(self, https: bool, identity: Identity) -> tuple[str, str]:
        """The Set-Cookie header of a fresh verified session."""
        return self.cookies.set(https, self._names[https], self.issue(identity),
                                self.remember_for)

    def is_verified(self, cookie_header: str, https: bool, identity: Identity | None) -> bool:
        """Whether the request carries a live verified session for ``identity``. No I/O."""
        if identity is None or identity.recipient is None or not cookie_header:
            return False
        # Keyed by the whole Cookie header (short ones: memory stays bounded): a hit skips
        # even finding our cookie in it. Another cookie that changes on every request (or a
        # long header) just costs the HMAC each time.
        key = (cookie_header, https, identity.auth_id, identity.recipient)
        issued = self._verified.get(key)
        if issued is None:
            value = cookie_value(cookie_header, self._names[https])
            if value is None:
                return False
            issued = self.signer.verify(value, identity)
            if issued is None or self._session_revoked(value):
                return False
            if len(cookie_header) <= VERIFIED_CACHE_HEADER:
                if len(self._verified) >= VERIFIED_CACHE_SIZE:
                    self._verified.clear()
                # Only signatures that verified are remembered, keyed by all the HMAC proved
                # it for: a hit proves exactly what the HMAC proved, for a dict lookup.
                self._verified[key] = issued
                if self._session_revoked(value):  # revoked meanwhile: its clear() ran first
                    self._verified.pop(key, None)
                    return False
        now_ms = time.time() * 1000
        if issued + self.remember_for * 1000 < now_ms or issued > now_ms + 60_000:
            return False
        revoked = self._revoked.get(identity.auth_id)
        return revoked is None or issued > revoked

    def revocations_stale(self) -> bool:
        return time.monotonic() >= self._next_refresh

    def refresh_revocations(self) -> None:
        """Read revocations made on any host since the last look (blocking; cheap)."""
        if not self._refresh_lock.acquire(blocking=False):
            return
        try:
            # Look back a little further than needed: other hosts' clocks may lag ours.
            since = self._revocations_seen - timedelta(seconds=60)
            for auth_id, at in self.verifier.revocations_since(since):
                self._learn(auth_id, int(at.timestamp() * 1000))
                self._revocations_seen = max(self._revocations_seen, at)
            horizon = (time.time() - self.remember_for) * 1000
            for revoked in (self._revoked, self._revoked_sessions):
                # list(): revoke() may add to the dict from another thread meanwhile.
                for key in [k for k, at in list(revoked.items()) if at < horizon]:
                    revoked.pop(key, None)
            self._next_refresh = time.monotonic() + self.revocation_interval
        except StoreUnavailable:
            self._next_refresh = time.monotonic() + 1.0
        finally:
            self._refresh_lock.release()

    def _learn(self, key: str, at_ms: int) -> None:
        """Remember a revocation: of one session, or of all of an auth_id's."""
        if key.startswith(SESSION_REVOKED):
            sid = key[len(SESSION_REVOKED):]
            if sid not in self._revoked_sessions:
                self._revoked_sessions[sid] = at_ms
                self._verified.clear()  # hits skip the session check: drop them all
        elif at_ms > self._revoked.get(key, 0):
            self._revoked[key] = at_ms

    def _session_revoked(self, value: str) -> bool:
        return bool(self._revoked_sessions) and value.split(".", 2)[1] in self._revoked_sessions

    def revoke(self, auth_id: str) -> None:
        """End ``auth_id``'s verified sessions here at once, and on every host within
        ``revocation_interval`` seconds."""
        at = self.verifier.revoke(auth_id)
        self._learn(auth_id, int(at.timestamp() * 1000))

    def revoke_session(self, value: str) -> None:
        """End the one session whose cookie value this is ("log out this device"), here at
        once and on every host within ``revocation_interval`` seconds."""
        parts = value.split(".")
        if len(parts) != 3 or not _SESSION_ID.fullmatch(parts[1]):
            # No session of ours: nothing to end, and nothing of the client's choosing is
            # written to the store (a long or odd id would make the logout itself fail).
            return
        key = SESSION_REVOKED + parts[1]
        self._learn(key, int(self.verifier.revoke(key).timestamp() * 1000))


__all__ = ["SessionSigner", "Sessions"]
