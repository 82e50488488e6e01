"""The guard's small answers and URLs: safe ``next`` targets, redirects built from the
app's root path, and the plain pages (forbidden, unavailable, failed identify), made by the
request's renderer (:mod:`.rendering`)."""

from __future__ import annotations

import re
from urllib.parse import quote, unquote, urlencode, urlsplit

from .. import text
from ..errors import StoreUnavailable
from ..messages import Request, Response, json_response
from .rendering import PAGE_HEADERS, app_url, message_page

_NOT_URL_SAFE = re.compile(r"[^\x21-\x7e]+")


def safe_next(target: str | None) -> str:
    """``target`` if it is a same-origin relative path, else ``"/"``.

    Refuses ``//host``, ``/\\host``, ``https:host``, ``javascript:``, percent-encoded
    slashes and backslashes, and control characters: anything a browser could resolve to
    another origin.
    """
    if not target or not target.startswith("/"):
        return "/"
    decoded = unquote(target)
    if any(c in decoded for c in "\\\r\n\t\0") or any(ord(c) < 32 for c in decoded):
        return "/"
    if target.startswith("//") or decoded.startswith("//"):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    # A Location header is latin-1 on the wire: percent-encode (UTF-8) anything not ASCII.
    return _NOT_URL_SAFE.sub(lambda m: quote(m.group(0), safe=""), target)


def with_next(url: str, next_url: str) -> str:
    """``url?next=...`` (or ``&next=``), ``next_url`` made safe."""
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}{urlencode({'next': safe_next(next_url)})}"


def request_target(request: Request) -> str:
    """Where the request was going, as the client spelt it from the host's root: the root
    path, the path (quoted again: it was decoded, so "%3F" would become "?" and "é" a
    latin-1 error) and the query."""
    path = quote(request.path, safe="/:@!$&'()*+,;=~")
    query = f"?{request.query_string}" if request.query_string else ""
    return f"{request.root_path.rstrip('/')}{path}{query}"


def came_from(request: Request) -> str:
    """The page a browser request came from -- ``HX-Current-URL`` or ``Referer`` -- when it
    is on this site (its host is ours), else the app's root."""
    host = request.header("host")
    for header in ("hx-current-url", "referer"):
        parts = urlsplit(request.header(header))
        if parts.netloc and parts.netloc == host and parts.path.startswith("/"):
            return safe_next(parts.path + (f"?{parts.query}" if parts.query else ""))
    return request.root_path.rstrip("/") + "/"


def redirect(location: str, *headers: tuple[str, str]) -> Response:
    """303 See Other, never cached."""
    return Response(303, b"", [("location", location), ("cache-control", "no-store"), *headers])


def is_navigation(request: Request) -> bool:
    return request.method in ("GET", "HEAD") and wants_html(request)


def wants_html(request: Request) -> bool:
    return "text/html" in request.header("accept")


def is_htmx(request: Request) -> bool:
    return request.header("hx-request") == "true"


#: The headers a browser marks a speculative load with, and the value that says so:
#: ``Sec-Purpose: prefetch`` (or ``prefetch;prerender``, Chromium's speculation rules),
#: ``Purpose: prefetch`` (older Chromium, Safari), ``X-Moz: prefetch`` (Firefox),
#: ``X-Purpose: preview`` (Safari's previews).
_SPECULATIVE = (
    ("sec-purpose", "prefetch"),
    ("purpose", "prefetch"),
    ("x-moz", "prefetch"),
    ("x-purpose", "preview"),
)


def is_speculative(request: Request) -> bool:
    """A prefetch or prerender: the browser guessed, no person asked for the page yet. The
    first token of the header's value decides (``prefetch;prerender`` is a prefetch too)."""
    for name, token in _SPECULATIVE:
        value = request.header(name)
        if value and re.split(r"[;,\s]", value.strip(), maxsplit=1)[0].lower() == token:
            return True
    return False


def unavailable(request: Request, error: StoreUnavailable) -> Response:
    """503: an HTML page for a browser, JSON for everyone else."""
    if not is_navigation(request):
        return json_response(503, error.to_dict(), [("retry-after", "5")])
    return message_page(
        request,
        "unavailable",
        503,
        text.unavailable_title(),
        text.unavailable(),
        headers=[("retry-after", "5")],
    )


def forbidden(
    request: Request | None = None, sentence: str | None = None, status: int = 403
) -> Response:
    """The page for a form that cannot be taken: by default 403, "this form has expired or
    did not come from this site" (``sentence``: what else was wrong with it)."""
    title = text.forbidden_title()
    return message_page(request, "forbidden", status, title, sentence or text.forbidden())


def internal_error(request: Request) -> Response:
    """A 500 that tells nothing (HTML for a browser, JSON for everyone else)."""
    if not wants_html(request):
        return json_response(500, {"message": text.internal_error(), "reason": "InternalError"})
    return message_page(request, "error", 500, text.failed_title(), text.identify_failed())


def not_found() -> Response:
    return json_response(404, {"message": text.not_found(), "reason": "NotFound"})


__all__ = [
    "PAGE_HEADERS",
    "app_url",
    "came_from",
    "forbidden",
    "internal_error",
    "is_htmx",
    "is_navigation",
    "is_speculative",
    "redirect",
    "request_target",
    "safe_next",
    "unavailable",
    "wants_html",
    "with_next",
]
