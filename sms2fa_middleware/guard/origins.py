"""Which ``Origin`` a post may come from: the request's own origin (its scheme and the host
the framework trusts), or one of the trusted origins (the ``trusted_origins`` option,
Django's ``CSRF_TRUSTED_ORIGINS``).

Origins are compared as (scheme, host, port), the port made explicit: ``http://x`` and
``http://x:80`` are one origin, ``https://x`` and ``http://x`` are two. A trusted origin may
name every subdomain as Django does: ``https://*.example.com`` matches ``example.com`` and any
name under it, on the port it gives (443 here).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..messages import Request

#: (scheme, lower-case host without brackets, port)
Origin = tuple[str, str, int]

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _host_port(scheme: str, netloc: str) -> tuple[str, int] | None:
    """``netloc`` ("host", "host:port", "[::1]:8000") as (host, port), or None if malformed."""
    if not netloc or "@" in netloc:
        return None
    try:
        split = urlsplit(f"//{netloc}")
        port = split.port
    except ValueError:  # a port that is no number, an unclosed IPv6 bracket
        return None
    host = split.hostname
    if not host:
        return None
    return host, port if port is not None else _DEFAULT_PORTS[scheme]


def parse_origin(value: str) -> Origin | None:
    """An ``Origin`` header (``scheme://host[:port]``) as an :data:`Origin`; None for ``null``
    or anything else that is not an http(s) origin."""
    try:
        split = urlsplit(value.strip())
    except ValueError:
        return None
    scheme = split.scheme.lower()
    if scheme not in _DEFAULT_PORTS or split.path or split.query or split.fragment:
        return None
    hp = _host_port(scheme, split.netloc)
    return None if hp is None else (scheme, *hp)


def own_origin(request: Request) -> Origin | None:
    """The request's own origin: its scheme and the host its adapter trusts
    (``request.host``; a request built without one falls back to its Host header)."""
    host = request.host if request.host is not None else request.header("host")
    scheme = request.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        return None
    hp = _host_port(scheme, host.strip())
    return None if hp is None else (scheme, *hp)


@dataclass(frozen=True)
class TrustedOrigins:
    """Origins trusted besides the request's own: exact ones and ``*.`` subdomain ones."""

    exact: frozenset[Origin] = frozenset()
    #: (scheme, parent domain, port): the domain itself and every name under it.
    subdomains: frozenset[Origin] = frozenset()

    @classmethod
    def parse(cls, values: Iterable[str], *, strict: bool = True) -> TrustedOrigins:
        """From strings like ``https://app.example.com`` or ``https://*.example.com``.
        ``strict``: a malformed one is a ValueError naming it (a setting's typo); else it is
        skipped (a framework's own setting, which the framework checks itself)."""
        exact: set[Origin] = set()
        subdomains: set[Origin] = set()
        for value in values:
            text = str(value).strip()
            scheme, sep, rest = text.partition("://")
            wildcard = sep and rest.startswith("*.")
            parsed = parse_origin(f"{scheme}://{rest[2:]}" if wildcard else text)
            if parsed is None:
                if strict:
                    raise ValueError(
                        f"trusted_origins: {value!r} is not an origin such as "
                        "'https://app.example.com' or 'https://*.example.com'"
                    )
                continue
            (subdomains if wildcard else exact).add(parsed)
        return cls(frozenset(exact), frozenset(subdomains))

    def allows(self, origin: Origin) -> bool:
        if origin in self.exact:
            return True
        scheme, host, port = origin
        return any(
            scheme == s and port == p and (host == parent or host.endswith("." + parent))
            for s, parent, p in self.subdomains
        )


#: No origin trusted besides the request's own.
NONE_TRUSTED = TrustedOrigins()


@functools.lru_cache(maxsize=32)
def _framework_trusted(values: tuple[str, ...]) -> TrustedOrigins:
    return TrustedOrigins.parse(values, strict=False)


def origin_allowed(request: Request, trusted: TrustedOrigins = NONE_TRUSTED) -> bool:
    """False for a cross-origin post: an Origin that is neither the request's own origin
    (scheme, host and port) nor a trusted one; ``null`` (what a sandboxed frame, a data: URL
    or a cross-origin redirect sends: never this site's own); or an Origin with no host to
    compare it with. A request without Origin passes: browsers send it on every POST, so
    its absence is no browser's cross-site request."""
    value = request.header("origin")
    if not value:
        return True
    origin = parse_origin(value)
    if origin is None:
        return False
    if origin == own_origin(request) or trusted.allows(origin):
        return True
    return bool(request.trusted_origins) and _framework_trusted(
        tuple(request.trusted_origins)
    ).allows(origin)


__all__ = [
    "NONE_TRUSTED",
    "Origin",
    "TrustedOrigins",
    "origin_allowed",
    "own_origin",
    "parse_origin",
]
