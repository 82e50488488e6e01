"""The guard's cookies: their names (``__Host-`` when the browser will enforce it), their
attributes (HttpOnly, SameSite=Lax, Secure, Domain), and reading one from a Cookie header.

Five cookies share a base name: the verified session (``sms2fa``), the challenge form's
CSRF nonce (``sms2fa_csrf``), a one-time status for the next page (``sms2fa_flash``),
the challenge nonce the browser's codes are bound to (``sms2fa_challenge``) and a trusted
browser's mark (``sms2fa_trusted``, only with ``trust_browser_for``).
"""

from __future__ import annotations


def cookie_value(header: str, name: str) -> str | None:
    """The value of cookie ``name`` in a Cookie header (fast: no full parse)."""
    if name not in header:
        return None
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value.strip('"')
    return None


def cookie_values(header: str, name: str) -> list[str]:
    """Every value of cookie ``name`` in a Cookie header, in the order sent. A browser sends
    several cookies of one name when they differ in Domain or Path -- one may have been
    planted by a sibling subdomain (cookie tossing) -- and lists the longer Path first."""
    if name not in header:
        return []
    found = []
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            found.append(value.strip('"'))
    return found


class Cookies:
    """Names and Set-Cookie values for one guard's cookies."""

    def __init__(self, name: str, domain: str | None = None, secure: bool | None = None) -> None:
        self.name = name
        self.domain = domain
        self.secure = secure  # None: Secure exactly when the request came over HTTPS
        self._session = (self._name(False), self._name(True))

    def _name(self, https: bool) -> str:
        secure = https if self.secure is None else self.secure
        if secure and self.domain is None:
            return "__Host-" + self.name
        return self.name

    def session(self, https: bool) -> str:
        """The verified-session cookie's name."""
        return self._session[https]

    def csrf(self, https: bool) -> str:
        return self._helper(https) + "_csrf"

    def flash(self, https: bool) -> str:
        return self._helper(https) + "_flash"

    def challenge(self, https: bool) -> str:
        """The challenge nonce a sent code is bound to (:mod:`.binding`)."""
        return self._helper(https) + "_challenge"

    def trusted(self, https: bool) -> str:
        """A trusted browser's signed mark (:mod:`.trust`): one host's, like the helpers."""
        return self._helper(https) + "_trusted"

    def _helper(self, https: bool) -> str:
        # The challenge's own cookies are set and read by one host only, so they keep
        # ``__Host-`` (no Domain: a sibling subdomain cannot plant one) even when
        # ``cookie_domain`` shares the session cookie.
        secure = https if self.secure is None else self.secure
        return "__Host-" + self.name if secure else self.name

    def set(self, https: bool, name: str, value: str, max_age: int) -> tuple[str, str]:
        """A Set-Cookie header; ``max_age=0`` deletes the cookie."""
        secure = https if self.secure is None else self.secure
        parts = [f"{name}={value}", "Path=/", f"Max-Age={max_age}", "HttpOnly", "SameSite=Lax"]
        if secure:
            parts.append("Secure")
        if self.domain and not name.startswith("__Host-"):
            parts.append(f"Domain={self.domain}")
        return ("set-cookie", "; ".join(parts))

    def delete(self, https: bool, name: str) -> tuple[str, str]:
        return self.set(https, name, "", max_age=0)

    def sessions_in(self, header: str) -> tuple[list[str], list[tuple[str, str]]]:
        """Every verified-session value in a Cookie header, under each name it may have,
        and the Set-Cookie headers that delete them ("log out this device")."""
        values, deletions = [], []
        for https in (False, True) if self.secure is None else (self.secure,):
            name = self.session(https)
            found = cookie_values(header, name)
            if found:
                values += found  # every one of the name: one may be planted, any may be ours
                deletions.append(self.delete(https, name))
        return values, deletions


__all__ = ["Cookies", "cookie_value", "cookie_values"]
