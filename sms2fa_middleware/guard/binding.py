"""Codes bound to the asking browser (OWASP ASVS 5.0 6.6.2): a code the guard sends for a
browser's challenge verifies only in that browser, so a code phished or forwarded cannot be
consumed by another session of the same user.

The browser holds a random challenge nonce in an HttpOnly cookie (``sms2fa_challenge``); the
engine folds it into the code's keyed digest (``binding``), so no column and no query. A
check from a browser without the nonce, or with another one, is a wrong guess.
"""

from __future__ import annotations

import re
import secrets

from ..messages import Request
from .cookies import Cookies, cookie_value

#: The cookie outlives any code (code_expiration is at most an hour); sending refreshes it.
CHALLENGE_MAX_AGE = 3600
_NONCE = re.compile(r"[A-Za-z0-9_-]{22,64}")
#: What a check binds to when the request has no nonce: never issued, so matches no code.
NO_BINDING = "-"


class Binding:
    """Reads and issues the challenge nonce."""

    def __init__(self, cookies: Cookies) -> None:
        self.cookies = cookies

    def held(self, request: Request) -> str | None:
        """The request's challenge nonce, if it carries a well-formed one."""
        name = self.cookies.challenge(request.scheme == "https")
        nonce = cookie_value(request.header("cookie"), name) or ""
        return nonce if _NONCE.fullmatch(nonce) else None

    def for_check(self, request: Request) -> str:
        """The binding a check uses: the nonce, or one no code is bound to."""
        return self.held(request) or NO_BINDING

    def for_send(self, request: Request) -> tuple[str, tuple[str, str]]:
        """The nonce a code for this request is bound to (the browser's, or a new one), and
        the Set-Cookie header that keeps it as long as the code can live."""
        https = request.scheme == "https"
        nonce = self.held(request) or secrets.token_urlsafe(24)
        return nonce, self.cookies.set(
            https, self.cookies.challenge(https), nonce, CHALLENGE_MAX_AGE
        )


__all__ = ["CHALLENGE_MAX_AGE", "NO_BINDING", "Binding"]
