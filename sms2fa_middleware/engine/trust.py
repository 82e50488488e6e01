"""Trusted browsers: "trust this browser for N days" after a right code.

A trusted browser is a row per browser (when, until when, its user agent cut short, the
coarse network it was trusted from, when last used) so the user can list and revoke them;
the browser holds a signed cookie naming its row (the guard's :mod:`~..guard.trust`). A new
login from it passes while the row exists and has not expired: revoking deletes the row, and
so does :meth:`Verifier.revoke` for all of a user's. Trusting and revoking are audited
(``browser_trusted``, ``browser_revoked``), and so is a login it let through
(``trusted_login``).
"""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..policy import Clock, Keys, check_auth_id
from ..store import Store, TrustedBrowserRow
from .audit import Audit

#: The stored user agent is cut to this many characters: enough to recognise a browser.
USER_AGENT_CHARS = 200


@dataclass(frozen=True)
class TrustedBrowser:
    """One trusted browser, as a user may see it (nothing in it opens anything)."""

    id: str
    created_at: datetime
    expires_at: datetime
    last_used: datetime
    user_agent: str
    network: str


def coarse_network(address: str | None) -> str:
    """The network an address is in, coarsely: an IPv4 /24 or an IPv6 /48 (``"unknown"``
    for anything else) -- enough to recognise "home" or "office", not to locate anyone."""
    text = (address or "").strip().strip("[]")
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return "unknown"
    prefix = 24 if network.version == 4 else 48
    if network.prefixlen < prefix:
        return "unknown"
    return str(network.supernet(new_prefix=prefix))


def _public(row: TrustedBrowserRow) -> TrustedBrowser:
    return TrustedBrowser(
        row.id, row.created_at, row.expires_at, row.last_used, row.user_agent, row.network
    )


class Trust:
    """Record, look up, list and forget trusted browsers."""

    def __init__(self, store: Store, keys: Keys, audit: Audit, clock: Clock) -> None:
        self.store, self.keys, self.audit, self.clock = store, keys, audit, clock

    def trust(
        self,
        auth_id: str,
        seconds: int,
        user_agent: str,
        address: str | None,
        recipient: str | None = None,
    ) -> TrustedBrowser:
        """Trust a browser of ``auth_id`` for ``seconds``; the new row (its id goes into the
        browser's cookie)."""
        if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds <= 0:
            raise ValueError("a browser is trusted for a positive number of seconds")
        key = self.keys.auth(check_auth_id(auth_id))
        now = self.clock.now()
        agent = "".join(c for c in user_agent if c.isprintable())[:USER_AGENT_CHARS]
        row = TrustedBrowserRow(
            secrets.token_urlsafe(18),
            key,
            now,
            now + timedelta(seconds=seconds),
            now,
            agent,
            coarse_network(address),
        )
        self.store.add_trusted_browser(row, now)
        self.audit.emit(
            "browser_trusted",
            auth_id,
            recipient,
            browser=row.id[:8],
            expires_at=row.expires_at.isoformat(timespec="seconds"),
            network=row.network,
        )
        return _public(row)

    def use(self, auth_id: str, browser_id: str, recipient: str | None = None) -> bool:
        """Whether ``browser_id`` is one of ``auth_id``'s trusted browsers now (and note the
        use): one write, so a revocation made anywhere is seen at once."""
        key = self.keys.auth(check_auth_id(auth_id))
        if not self.store.use_trusted_browser(key, browser_id, self.clock.now()):
            return False
        self.audit.emit("trusted_login", auth_id, recipient, browser=browser_id[:8])
        return True

    def listed(self, auth_id: str) -> list[TrustedBrowser]:
        """``auth_id``'s trusted browsers, the most recently trusted first."""
        key = self.keys.auth(check_auth_id(auth_id))
        return [_public(r) for r in self.store.trusted_browsers(key, self.clock.now())]

    def forget(self, auth_id: str, browser_id: str) -> bool:
        """Stop trusting one browser; True if it was trusted."""
        key = self.keys.auth(check_auth_id(auth_id))
        gone = self.store.delete_trusted_browser(key, browser_id)
        if gone:
            self.audit.emit("browser_revoked", auth_id, browser=browser_id[:8])
        return gone

    def forget_all(self, auth_id: str) -> int:
        """Stop trusting every browser of ``auth_id``; how many were."""
        key = self.keys.auth(check_auth_id(auth_id))
        gone = self.store.delete_trusted_browsers(key)
        if gone:
            self.audit.emit("browser_revoked", auth_id, browser="all", count=gone)
        return gone


__all__ = ["USER_AGENT_CHARS", "Trust", "TrustedBrowser", "coarse_network"]
