"""Trusted browsers in the guard (``trust_browser_for``): the signed ``sms2fa_trusted``
cookie a browser gets when its user ticks "Trust this browser" with a right code, and the
new login it passes without a code.

The cookie is ``<browser id>.<expires, s hex>.<signature>``; the signature is HMAC-SHA256
(a key of its own per secret) over the guard's audience, the id, the expiry, the auth_id and
the number (E.164), which are not in it: a cookie of another user, or of the same user
before a change of number, verifies for nobody. It opens nothing alone: the store's row must
still exist (revoking deletes it) and be unexpired -- read once, when a protected request
comes without a verified session, never on every request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable

from .. import Identity
from ..engine import Verifier
from ..engine.trust import TrustedBrowser
from ..messages import Request, client_address
from .cookies import Cookies, cookie_values
from .sessions import Sessions

_ID = re.compile(r"[A-Za-z0-9_-]{16,32}")


class TrustSigner:
    """Signs and reads the trusted-browser cookie's value."""

    def __init__(self, keys: Iterable[str], audience: str) -> None:
        scope = f"{len(audience)}:{audience}\x00".encode()
        self._macs: list[hmac.HMAC] = []
        for k in keys:
            key = hmac.new(k.encode(), b"sms2fa-trusted-browser", hashlib.sha256).digest()
            mac = hmac.new(key, digestmod=hashlib.sha256)
            mac.update(scope)
            self._macs.append(mac)

    def _sign(self, mac: hmac.HMAC, head: str, identity: Identity) -> str:
        m = mac.copy()
        m.update(f"{head}\x00{identity.auth_id}\x00{identity.recipient}".encode())
        return base64.urlsafe_b64encode(m.digest()).decode().rstrip("=")

    def issue(self, browser_id: str, expires_s: int, identity: Identity) -> str:
        head = f"{browser_id}.{expires_s:x}"
        return f"{head}.{self._sign(self._macs[0], head, identity)}"

    def read(self, value: str, identity: Identity, now_s: float) -> str | None:
        """The browser id if ``value`` was issued for ``identity`` and has not expired."""
        head, _, signature = value.rpartition(".")
        browser_id, _, expires = head.partition(".")
        if not signature or not _ID.fullmatch(browser_id):
            return None
        ok = False
        for mac in self._macs:
            ok |= hmac.compare_digest(self._sign(mac, head, identity), signature)
        try:
            return browser_id if ok and int(expires, 16) > now_s else None
        except ValueError:
            return None


class GuardTrust:
    """Trusting this browser after a right code, and the new login it then passes."""

    def __init__(
        self,
        verifier: Verifier,
        cookies: Cookies,
        sessions: Sessions,
        audience: str,
        seconds: int | None,
        trusted_proxies: int,
    ) -> None:
        self.verifier = verifier
        self.cookies = cookies
        self.sessions = sessions
        self.seconds = seconds or 0
        self.trusted_proxies = trusted_proxies
        self.signer = TrustSigner(verifier.settings.secret_keys, audience)

    @property
    def enabled(self) -> bool:
        return self.seconds > 0

    @property
    def days(self) -> int:
        """What the page's box says (a whole number of days, at least one)."""
        return max(1, round(self.seconds / 86400)) if self.enabled else 0

    def trust(self, request: Request, identity: Identity) -> tuple[str, str]:
        """Record this browser as trusted (a right code was just entered with the box
        ticked); the Set-Cookie header of its mark."""
        browser = self.verifier.trust_browser(
            identity.auth_id,
            self.seconds,
            user_agent=request.header("user-agent"),
            address=client_address(request, self.trusted_proxies),
            recipient=identity.recipient,
        )
        https = request.scheme == "https"
        value = self.signer.issue(browser.id, int(browser.expires_at.timestamp()), identity)
        return self.cookies.set(https, self.cookies.trusted(https), value, self.seconds)

    def held(self, request: Request, identity: Identity) -> str | None:
        """The id of the trusted browser this request's cookie names for ``identity`` (its
        signature and expiry checked; the store not asked), or None."""
        if not self.enabled:
            return None
        name = self.cookies.trusted(request.scheme == "https")
        now = self.sessions.now_ms() / 1000
        for value in cookie_values(request.header("cookie"), name):
            browser_id = self.signer.read(value, identity, now)
            if browser_id is not None:
                return browser_id
        return None

    def login(self, request: Request, identity: Identity) -> tuple[str, str] | None:
        """A fresh verified session's Set-Cookie header when this browser is one of
        ``identity``'s trusted ones (one store write: a revoked or expired row fails);
        else None, and the challenge goes on as ever."""
        browser_id = self.held(request, identity)
        if browser_id is None or not self.verifier.use_trusted_browser(
            identity.auth_id, browser_id, recipient=identity.recipient
        ):
            return None
        return self.sessions.set_cookie(request.scheme == "https", identity)

    def listed(self, identity: Identity) -> list[TrustedBrowser]:
        return self.verifier.trusted_browsers(identity.auth_id)


__all__ = ["GuardTrust", "TrustSigner"]
