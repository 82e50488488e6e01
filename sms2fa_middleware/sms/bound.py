"""Origin-bound one-time codes: the SMS's last line ``@example.com #123456`` that binds its
code to a site, so a browser offers it only there (WebOTP's ``navigator.credentials.get``;
Safari's and iOS's domain-bound codes; the ``autocomplete="one-time-code"`` field).

The line is added only where it costs nothing: a message that fitted N segments still fits
N, or the line is left off (the code still arrives; only the autofill hint is lost).
"""

from __future__ import annotations

import re

from .segments import segments

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
#: A DNS name as browsers parse the line (letters, digits, dots and hyphens): no port, no
#: IP literal, no underscore.
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_BOUND_LINE = re.compile(r"(?:^|\s)@[A-Za-z0-9.-]+ #\S+\s*$")


def otp_domain(host: str) -> str | None:
    """``host`` as the domain of a bound line (lower-case, no trailing dot), or None when it
    is no domain name: an IP address, a name with other characters, or too long."""
    name = host.strip().lower().rstrip(".")
    if not name or len(name) > 253 or not _DOMAIN.fullmatch(name):
        return None
    if name.rsplit(".", 1)[-1].isdigit():  # an IPv4 address (or a numeric TLD: none exist)
        return None
    return name


def bind(body: str, domain: str | None, code: str) -> str:
    """``body`` with the line ``@domain #code`` at its end, when ``domain`` is given, the
    body has no such line of its own, and the line adds no billed segment; else ``body``."""
    if not domain or _BOUND_LINE.search(body):
        return body
    line = f"@{domain} #{code}"
    for separator in ("\n\n", "\n"):  # a blank line first, as the formats' examples do
        bound = f"{body.rstrip()}{separator}{line}"
        if segments(bound) <= segments(body):
            return bound
    return body


__all__ = ["bind", "otp_domain"]
