"""Framework-neutral HTTP messages: the request/response pair the adapters translate.

Sans-IO: nothing here reads a socket or knows WSGI from ASGI. The adapters build a
:class:`Request`, hand it to the guard (or the API), and write the :class:`Response` back.
Beside the pair, the small pieces every answer is made of: JSON bodies read
(:func:`json_object`, :func:`only_keys`) and written (:func:`json_response`), the body bound
(:data:`MAX_BODY`, :func:`too_large`), the client's address behind proxies, and the one
mapping from engine errors to HTTP statuses (:func:`error_response`), shared by the API and
the guard's JSON flow.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qs

from .addresses import address_key
from .errors import (
    InvalidAPIUsage,
    RateLimited,
    SMSDeliveryFailed,
    StoreUnavailable,
    VerificationError,
)

MAX_BODY = 16 * 1024  # bytes; larger bodies are refused before they are read

_STATUS = {
    RateLimited: 429,
    SMSDeliveryFailed: 502,
    StoreUnavailable: 503,
}
_JSON_HEADERS = (
    ("content-type", "application/json"),
    ("cache-control", "no-store"),
    ("x-content-type-options", "nosniff"),
)


@dataclass
class Request:
    """What a handler needs of an HTTP request; headers are lower-case. ``path`` is relative
    to where the app is mounted, ``root_path`` is that mount (ASGI ``root_path``, WSGI
    ``SCRIPT_NAME``): every URL sent back to the client starts with it."""

    method: str
    path: str
    query_string: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    client: str | None = None
    scheme: str = "http"
    root_path: str = ""
    #: The host (and port) the framework trusts for this request -- Django's get_host(),
    #: WSGI's HTTP_HOST or SERVER_NAME:SERVER_PORT, ASGI's host header or scope["server"];
    #: "" when there is none. None: not given (the Host header is used).
    host: str | None = None
    #: Origins the framework itself trusts for this request (Django's CSRF_TRUSTED_ORIGINS).
    trusted_origins: tuple[str, ...] = ()
    #: The framework's own request this one was made from -- the object ``identify`` is
    #: given (werkzeug's, Starlette's, Django's) -- for the ``render`` hook's templates
    #: (``url_for``, the app's context); None when there is none.
    native: Any = field(default=None, repr=False, compare=False)

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(self.query_string, keep_blank_values=True)

    @property
    def media_type(self) -> str:
        """The Content-Type without its parameters, lower-case (the one parser of it)."""
        return self.header("content-type").partition(";")[0].strip().lower()

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name, default)


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)


def wire(response: Response, head: bool = False) -> tuple[list[tuple[str, str]], bytes]:
    """The headers (with Content-Length) and the body to write: the one place a HEAD
    answer loses its body -- its Content-Length stays that of the GET."""
    headers = [*response.headers, ("content-length", str(len(response.body)))]
    return headers, (b"" if head else response.body)


def json_response(
    status: int, data: Mapping[str, Any], headers: list[tuple[str, str]] | None = None
) -> Response:
    body = json.dumps(data, separators=(",", ":")).encode()
    return Response(status, body, [*_JSON_HEADERS, *(headers or [])])


def error_response(error: VerificationError) -> Response:
    """The one mapping from engine errors to HTTP."""
    status = _STATUS.get(type(error), 400)
    headers: list[tuple[str, str]] = []
    if isinstance(error, RateLimited):
        headers.append(("retry-after", str(error.retry_after)))
    return json_response(status, error.to_dict(), headers)


def too_large() -> Response:
    return json_response(413, {"message": "Request body too large.", "reason": "InvalidAPIUsage"})


def client_address(request: Request, trusted_proxies: int) -> str:
    """The client's address as a budget key, believing X-Forwarded-For only behind
    ``trusted_proxies`` proxies.

    Like werkzeug's ProxyFix: with N trusted proxies, the Nth address from the right is the
    one our outermost proxy saw; anything further left is whatever the client claimed. The
    result is parsed (:func:`~sms2fa_middleware.addresses.address_key`): an IPv4 address, an
    IPv6 /64, or ``"unknown"`` for a missing or malformed address -- never the raw text.
    """
    if trusted_proxies:
        forwarded = [a.strip() for a in request.header("x-forwarded-for").split(",") if a.strip()]
        if len(forwarded) >= trusted_proxies:
            return address_key(forwarded[-trusted_proxies])
    return address_key(request.client)


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refusing a repeated key (as a repeated query parameter is refused)."""
    data = dict(pairs)
    if len(data) != len(pairs):
        raise ValueError("duplicate key")
    return data


def json_object(request: Request) -> dict[str, Any]:
    """The request's body as a JSON object (duplicate keys refused), or InvalidAPIUsage."""
    ctype = request.media_type
    if ctype != "application/json" and not ctype.endswith("+json"):
        raise InvalidAPIUsage("Send a JSON body with 'Content-Type: application/json'")
    try:
        data = json.loads(request.body, object_pairs_hook=_unique_keys)
    except (ValueError, UnicodeDecodeError, RecursionError):
        # RecursionError: a small body of deeply nested arrays is malformed input, not a 500.
        raise InvalidAPIUsage("The request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise InvalidAPIUsage("The request body must be a JSON object")
    return data


def only_keys(
    data: Mapping[str, Any], required: tuple[str, ...], optional: tuple[str, ...]
) -> None:
    """InvalidAPIUsage, naming what is missing or unknown, unless ``data`` has every
    ``required`` key and no key beyond ``optional``."""
    missing = [k for k in required if k not in data]
    unknown = sorted(set(data) - set(required) - set(optional))
    if missing or unknown:
        parts = []
        if missing:
            parts.append("missing " + ", ".join(repr(k) for k in missing))
        if unknown:
            parts.append("unknown " + ", ".join(repr(k) for k in unknown))
        raise InvalidAPIUsage(
            f"Required arguments: {', '.join(repr(k) for k in required)}"
            + (f"; optional: {', '.join(repr(k) for k in optional)}" if optional else "")
            + f" ({'; '.join(parts)})"
        )
