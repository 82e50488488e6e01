"""The guard's small answers and URLs: safe ``next`` targets, redirects built from the
app's root path, and the plain pages (forbidden, unavailable, failed identify)."""

from __future__ import annotations

import re
from html import escape
from urllib.parse import quote, unquote, urlencode, urlsplit

from .. import text
from ..errors import StoreUnavailable
from ..messages import Request, Response, json_response

PAGE_HEADERS = (
    ("content-type", "text/html; charset=utf-8"),
    ("cache-control", "no-store"),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "same-origin"),
)
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


def app_url(request: Request, url: str) -> str:
    """``url`` as the client must ask for it: an app-relative path (``/login``) gets the
    app's root path in front (a Mount, ``--root-path``, SCRIPT_NAME); anything else (an
    absolute URL, ``//host/x``) is left as given."""
    if url.startswith("/") and not url.startswith("//"):
        return request.root_path.rstrip("/") + url
    return url


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


#: The plain pages' look: readable on a 320 px phone (long words such as a user agent wrap
#: rather than scroll sideways) and in the reader's colour scheme (the browser's own light or
#: dark colours, so the contrast is the browser's, not ours to get wrong).
_PLAIN_STYLE = (
    "<style>:root{color-scheme:light dark}body{font:16px/1.5 system-ui,sans-serif;"
    "max-width:40rem;margin:0 auto;padding:1rem;overflow-wrap:anywhere}</style>"
)


def html_start(title: str) -> str:
    """The start of a plain page up to ``<body>``: the request's language and direction, a
    phone-width viewport, the light/dark colour scheme, and ``title`` (text)."""
    return (
        f'<!doctype html><html {text.html_attributes()}><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="robots" content="noindex"><title>{escape(title)}</title>{_PLAIN_STYLE}'
        f"</head><body>"
    )


def page(status: int, title: str, body_html: str, *headers: tuple[str, str]) -> Response:
    """A minimal HTML page: ``title`` is text, ``body_html`` is ready-made HTML (put in the
    page's ``<main>``)."""
    html = f"{html_start(title)}<main>{body_html}</main></body></html>"
    return Response(status, html.encode(), [*PAGE_HEADERS, *headers])


def titled(title: str, sentence: str) -> str:
    """A plain page's body: its title as the heading (what a screen reader jumps to) and
    one sentence."""
    return f"<h1>{escape(title)}</h1><p>{escape(sentence)}</p>"


def unavailable(request: Request, error: StoreUnavailable) -> Response:
    """503: an HTML page for a browser, JSON for everyone else."""
    if not is_navigation(request):
        return json_response(503, error.to_dict(), [("retry-after", "5")])
    title = text.unavailable_title()
    return page(503, title, titled(title, text.unavailable()), ("retry-after", "5"))


def forbidden() -> Response:
    title = text.forbidden_title()
    return page(403, title, titled(title, text.forbidden()))


def internal_error(request: Request) -> Response:
    """A 500 that tells nothing (HTML for a browser, JSON for everyone else)."""
    if not wants_html(request):
        return json_response(500, {"message": text.internal_error(), "reason": "InternalError"})
    title = text.failed_title()
    return page(500, title, titled(title, text.identify_failed()))


def not_found() -> Response:
    return json_response(404, {"message": text.not_found(), "reason": "NotFound"})


__all__ = [
    "PAGE_HEADERS",
    "app_url",
    "came_from",
    "forbidden",
    "html_start",
    "internal_error",
    "is_htmx",
    "is_navigation",
    "is_speculative",
    "page",
    "redirect",
    "request_target",
    "safe_next",
    "titled",
    "unavailable",
    "wants_html",
    "with_next",
]
