"""Framework-neutral HTTP: the request/response pair the adapters translate, and the API.

Sans-IO: nothing here reads a socket or knows WSGI from ASGI. The adapters build a
:class:`Request`, call a handler, and write the :class:`Response` back. This is also the one
place where engine errors become HTTP statuses.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qs

from .addresses import address_key
from .engine import AsyncVerifier, Started, Verified, Verifier
from .errors import (
    ExpiredAuthCode,
    InvalidAPIUsage,
    InvalidAuthCode,
    RateLimited,
    SMSDeliveryFailed,
    StoreUnavailable,
    UnknownAuthId,
    VerificationError,
)
from .phones import mask
from .policy import retry_after

log = logging.getLogger("sms2fa")

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


def json_response(status: int, data: Mapping[str, Any],
                  headers: list[tuple[str, str]] | None = None) -> Response:
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


def only_keys(data: Mapping[str, Any], required: tuple[str, ...],
              optional: tuple[str, ...]) -> None:
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


class FailedAuthorizations:
    """Wrong API tokens, counted per client address in the store (every worker and host
    shares the count, ``SMS2FA_FAILED_AUTH_LIMIT`` per ``SMS2FA_FAILED_AUTH_WINDOW``).

    Past the limit an address is refused (429) whatever token it sends, so a guesser cannot
    tell a right token from a wrong one by the answer. A right token costs no store work
    unless this process has seen that address send a wrong one while its window lasts: the
    backend that holds the token pays nothing.
    """

    REMEMBERED = 4096  # addresses this process keeps in mind, the oldest forgotten first

    def __init__(self, verifier: Verifier) -> None:
        self.verifier = verifier
        self.limit = verifier.settings.failed_auth_limit
        self.window = verifier.settings.failed_auth_window
        self._failed: dict[str, datetime] = {}  # address -> when its window ends

    def count(self, address: str) -> None:
        """Count one wrong token from ``address``; RateLimited when it is over the limit."""
        if not self.limit:
            return
        v = self.verifier
        v.schema.ensure()
        now = v.clock.now()
        count, reset_at = v.store.hit(v.keys.failed_auth(address), self.window, now)
        self._failed.pop(address, None)
        self._failed[address] = reset_at
        if len(self._failed) > self.REMEMBERED:
            del self._failed[next(iter(self._failed))]
        if count > self.limit:
            if count == self.limit + 1:
                log.warning("sms2fa: too many wrong API tokens from one client address; "
                            "refusing it for %ss", retry_after(reset_at, now))
            raise RateLimited("failed_authorization", retry_after(reset_at, now))

    def refuse_if_over(self, address: str) -> None:
        """RateLimited when ``address`` (which sent the right token) is over the limit."""
        until = self._failed.get(address)
        if until is None:
            return
        v = self.verifier
        now = v.clock.now()
        if until <= now:
            self._failed.pop(address, None)
            return
        count, reset_at = v.store.peek(v.keys.failed_auth(address), now)
        if count > self.limit and reset_at is not None:
            raise RateLimited("failed_authorization", retry_after(reset_at, now))


@dataclass(frozen=True)
class EngineCall:
    """An engine method a request asks for, its arguments, and how its result answers."""

    method: str  # "start" or "check": the same name on Verifier and AsyncVerifier
    arguments: dict[str, Any]
    render: Callable[[Any], Response]


def _created(started: Started) -> Response:
    return json_response(200, {
        "message": "Success: Verification code created.",
        "auth_id": started.auth_id,
        "expires_at": iso(started.expires_at),
        "attempts_left": started.attempts_left,
    })


def _checked(verified: Verified) -> Response:
    return json_response(200, {
        "authenticated": True,
        "auth_id": verified.auth_id,
        "message": "Success: Authorization code verified.",
        # Which number proved it: a relying party must check that it is its user's.
        "sent_to": mask(verified.recipient),
    })


def _internal_error() -> Response:
    log.exception("sms2fa: unexpected error in the API")
    return json_response(500, {"message": "Internal error.", "reason": "InternalError"})


class VerificationAPI:
    """The original service's API: ``POST /`` creates, ``GET /`` and ``POST /check`` check.

    ``path`` given to :meth:`handle` is relative to wherever the API is mounted.
    """

    CREATE_OPTIONS = ("code_length", "expiration", "retries", "message")

    def __init__(
        self,
        verifier: Verifier,
        *,
        token: str | None = None,
        uniform_errors: bool | None = None,
    ) -> None:
        self.verifier = verifier
        self.token = token if token is not None else verifier.settings.api_token
        self.uniform_errors = (
            verifier.settings.uniform_errors if uniform_errors is None else uniform_errors
        )
        self.trusted_proxies = verifier.settings.trusted_proxies
        self.failed_auth = FailedAuthorizations(verifier)

    def handle(self, request: Request, path: str) -> Response:
        """Answer one API request. Never raises; never answers HTML."""
        try:
            routed = self._route(request, path)
            if isinstance(routed, Response):
                return routed
            return routed.render(getattr(self.verifier, routed.method)(**routed.arguments))
        except VerificationError as exc:
            return error_response(self._uniform(exc))
        except Exception:
            return _internal_error()

    async def handle_async(self, request: Request, path: str,
                           engine: AsyncVerifier) -> Response:
        """:meth:`handle` on an event loop: the engine's work is awaited on ``engine`` (the
        async twin of this API's verifier)."""
        try:
            routed = self._route(request, path)
            if isinstance(routed, Response):
                return routed
            return routed.render(await getattr(engine, routed.method)(**routed.arguments))
        except VerificationError as exc:
            return error_response(self._uniform(exc))
        except Exception:
            return _internal_error()

    def _route(self, request: Request, path: str) -> Response | EngineCall:
        """The response, or the engine call that will make it."""
        path = path or "/"
        if path == "/openapi.json" and request.method in ("GET", "HEAD"):
            from .openapi import openapi_document

            return json_response(200, openapi_document())
        if path not in ("/", "/check"):
            return json_response(404, {"message": "Not found.", "reason": "NotFound"})
        allowed = ("GET", "POST") if path == "/" else ("POST",)
        if request.method not in allowed:
            return json_response(
                405, {"message": "Method not allowed.", "reason": "MethodNotAllowed"},
                [("allow", ", ".join(allowed))],
            )
        if self.token is not None:
            address = client_address(request, self.trusted_proxies)
            if not self._authorized(request):
                self.failed_auth.count(address)  # RateLimited once over the budget
                return json_response(
                    401, {"message": "A valid bearer token is required.",
                          "reason": "Unauthorized"},
                    [("www-authenticate", 'Bearer realm="sms2fa"')],
                )
            self.failed_auth.refuse_if_over(address)
        if request.method == "POST" and path == "/":
            return self._create(request)
        if path == "/check":
            data = json_object(request)
            only_keys(data, ("auth_id", "code"), ())
            return self._check(data["auth_id"], data["code"], request)
        query = request.query
        if set(query) - {"auth_id", "code"} or any(len(query.get(k, [])) != 1
                                                     for k in ("auth_id", "code")):
            raise InvalidAPIUsage("Required arguments: 'auth_id' (str), 'code' (digits)")
        return self._check(query["auth_id"][0], query["code"][0], request)

    def _authorized(self, request: Request) -> bool:
        scheme, _, given = request.header("authorization").partition(" ")
        assert self.token is not None
        return scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), self.token.encode()
        )

    def _create(self, request: Request) -> EngineCall:
        data = json_object(request)
        only_keys(data, ("auth_id", "recipient"), self.CREATE_OPTIONS)
        return EngineCall("start", {
            "auth_id": data["auth_id"], "recipient": data["recipient"],
            "code_length": data.get("code_length"), "expiration": data.get("expiration"),
            "retries": data.get("retries"), "message": data.get("message"),
            "client_address": self._budget_address(request),
        }, _created)

    def _budget_address(self, request: Request) -> str | None:
        """The address the per-address budgets count, or None for none.

        A caller holding the API token is a relying party's backend: its own address says
        nothing about the person asking, and one backend would exhaust a per-address budget
        meant for one person. It is counted only when a trusted proxy names the client.
        """
        if self.token is not None and not self.trusted_proxies:
            return None
        return client_address(request, self.trusted_proxies)

    def _check(self, auth_id: Any, code: Any, request: Request) -> EngineCall:
        return EngineCall("check", {
            "auth_id": auth_id, "code": code, "uniform": self.uniform_errors,
            "client_address": self._budget_address(request),
        }, _checked)

    def _uniform(self, error: VerificationError) -> VerificationError:
        """With uniform errors on, unknown, expired, wrong and locked answer alike."""
        if not self.uniform_errors:
            return error
        if isinstance(error, (UnknownAuthId, ExpiredAuthCode, InvalidAuthCode)) or (
            isinstance(error, RateLimited) and error.budget == "failed_checks"
        ):
            return InvalidAuthCode("Invalid or expired code", attempts_left=0)
        return error
