"""The challenge forms' CSRF defence: an Origin check, and a token bound to the user and to
a random nonce kept in a cookie (double submit, signed).

JSON posts carry no token: ``Content-Type: application/json`` forces a CORS preflight, so
only the Origin check applies to them.
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Iterable

from itsdangerous import BadSignature, URLSafeTimedSerializer

from ..messages import Request
from .cookies import Cookies, cookie_value
from .origins import NONE_TRUSTED, TrustedOrigins, origin_allowed

CSRF_MAX_AGE = 3600
_NONCE = re.compile(r"[A-Za-z0-9_-]{22,64}")


def origin_ok(request: Request, trusted: TrustedOrigins = NONE_TRUSTED) -> bool:
    """False for a cross-origin post (:func:`.origins.origin_allowed`): the Origin must be
    the request's own scheme, host and port, or a trusted origin."""
    return origin_allowed(request, trusted)


class Csrf:
    """Tokens for the challenge forms, and their check."""

    def __init__(
        self, keys: Iterable[str], cookies: Cookies, trusted: TrustedOrigins = NONE_TRUSTED
    ) -> None:
        # itsdangerous signs with the last key and accepts all: ours rotate first-is-newest.
        self._serializer = URLSafeTimedSerializer(list(keys)[::-1], salt="sms2fa-csrf")
        self.cookies = cookies
        self.trusted = trusted

    def nonce(self, request: Request) -> tuple[str, tuple[str, str] | None]:
        """The request's nonce, or a new one with the Set-Cookie header that keeps it."""
        https = request.scheme == "https"
        nonce = cookie_value(request.header("cookie"), self.cookies.csrf(https)) or ""
        if _NONCE.fullmatch(nonce):
            return nonce, None
        nonce = secrets.token_urlsafe(24)
        return nonce, self.cookies.set(https, self.cookies.csrf(https), nonce, CSRF_MAX_AGE)

    def token(self, auth_id: str, nonce: str) -> str:
        return str(self._serializer.dumps([auth_id, nonce]))

    def ok(self, request: Request, auth_id: str, token: str) -> bool:
        """Whether a form post came from our own page for this user."""
        if not origin_ok(request, self.trusted):
            return False
        nonce = cookie_value(request.header("cookie"), self.cookies.csrf(request.scheme == "https"))
        if not nonce or not token:
            return False
        try:
            signed_auth_id, signed_nonce = self._serializer.loads(token, max_age=CSRF_MAX_AGE)
        except (BadSignature, ValueError, TypeError):
            return False
        return hmac.compare_digest(str(signed_nonce), nonce) and signed_auth_id == auth_id


__all__ = ["CSRF_MAX_AGE", "Csrf", "origin_ok"]
