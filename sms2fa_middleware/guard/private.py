"""Responses only this user may see: ``Vary: Cookie`` and ``Cache-Control: private`` added
to what a verified request's app answers (``private_responses=True``), so that no shared
cache keeps one user's page for another. Headers that tell a CDN alone how to cache
(``CDN-Cache-Control``, RFC 9213, and its vendor forms, ``Surrogate-Control``,
``Edge-Control``) take precedence over ``Cache-Control`` there, so they are dropped."""

from __future__ import annotations

import functools
from collections.abc import Iterable, MutableMapping


@functools.lru_cache(maxsize=256)  # an app sends the same few values again and again
def _private(vary: str | None, cache_control: str | None) -> tuple[str, str]:
    """Vary and Cache-Control for a response only this user may see: ``Cookie`` added to
    Vary, ``private`` to Cache-Control (``public`` and ``s-maxage`` dropped). What is already
    as strict (``no-store``, ``private``, ``Vary: *``) stays as the app set it."""
    if vary is None:
        vary = "Cookie"
    elif not any(v.strip().lower() in ("cookie", "*") for v in vary.split(",")):
        vary = f"{vary}, Cookie"
    if cache_control is None:
        return vary, "private"
    directives = [d.strip() for d in cache_control.split(",") if d.strip()]
    names = [d.lower() for d in directives]  # private="Set-Cookie" is not the whole response
    if "no-store" in names or "private" in names:
        return vary, cache_control
    kept = [
        d
        for d in directives
        if d.partition("=")[0].strip().lower() not in ("public", "s-maxage", "private")
    ]
    return vary, ", ".join(["private", *kept])


def _merged(pairs: Iterable[tuple[str, str]]) -> tuple[str, str]:
    """Vary and Cache-Control, made private, from the app's (lower-case name, value) pairs
    of those two headers (repeated ones joined, as HTTP reads them)."""
    found: dict[str, str] = {}
    for name, value in pairs:
        found[name] = f"{found[name]}, {value}" if name in found else value
    return _private(found.get("vary"), found.get("cache-control"))


#: Cache directives for CDNs only, which a CDN follows before Cache-Control: dropped.
CDN_ONLY = frozenset(
    {
        "cdn-cache-control",
        "cloudflare-cdn-cache-control",
        "vercel-cdn-cache-control",
        "surrogate-control",
        "edge-control",
    }
)
_MERGED_STR = frozenset({"vary", "cache-control"})
_TAKEN_STR = _MERGED_STR | CDN_ONLY
_PRIVATE_STR = (("Vary", "Cookie"), ("Cache-Control", "private"))


def private_headers(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """WSGI response headers, made private (see :func:`_private`)."""
    kept = [pair for pair in headers if pair[0].lower() not in _TAKEN_STR]
    if len(kept) == len(headers):  # the usual case: the app set none of them
        kept += _PRIVATE_STR
        return kept
    vary, cache_control = _merged((n.lower(), v) for n, v in headers if n.lower() in _MERGED_STR)
    kept += (("Vary", vary), ("Cache-Control", cache_control))
    return kept


def make_private(headers: MutableMapping[str, str]) -> None:
    """A case-insensitive header mapping (Django's ``response.headers``), made private in
    place (see :func:`_private`). Repeated headers are already joined in such a mapping."""
    for name in CDN_ONLY:
        headers.pop(name, None)
    headers["Vary"], headers["Cache-Control"] = _private(
        headers.get("vary"), headers.get("cache-control")
    )


_MERGED = frozenset({b"vary", b"cache-control"})
_TAKEN = _MERGED | {name.encode() for name in CDN_ONLY}
_PRIVATE_RAW = ((b"vary", b"Cookie"), (b"cache-control", b"private"))


def private_raw_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """ASGI response headers, made private (see :func:`_private`)."""
    if not isinstance(headers, list):
        headers = list(headers)
    kept = [pair for pair in headers if pair[0].lower() not in _TAKEN]
    if len(kept) == len(headers):  # the usual case: the app set none of them
        kept += _PRIVATE_RAW
        return kept
    vary, cache_control = _merged(
        (n.lower().decode("latin-1"), v.decode("latin-1"))
        for n, v in headers
        if n.lower() in _MERGED
    )
    kept += ((b"vary", vary.encode("latin-1")), (b"cache-control", cache_control.encode("latin-1")))
    return kept


__all__ = ["CDN_ONLY", "make_private", "private_headers", "private_raw_headers"]
