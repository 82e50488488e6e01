"""Test helpers for your app's tests, and :class:`FakeFlowroute`, a real HTTP server that
answers like Flowroute v2.1.

Testing an app that has the middleware installed (this module is a pytest plugin: installing
the package gives pytest its fixtures):

- :func:`mark_verified` gives a test client (Flask/werkzeug, Starlette/FastAPI ``TestClient``,
  httpx, requests, Django ``Client``) a real verified-session cookie for an identity, signed
  exactly as the middleware signs it after a right code -- so the test skips the SMS round
  trip but nothing else;
- the ``sms2fa_settings`` fixture (:func:`settings_for_tests`) builds ``Settings`` that send
  through a started FakeFlowroute and keep their state in a temporary SQLite file; the
  ``sms2fa_env`` fixture sets the same in the environment, for app factories that call
  ``Settings.from_env()`` (``create_app()`` and ``create_app(test_config)`` both build);
- the ``sms2fa_assume_verified`` fixture (:func:`assume_verified`) counts every request whose
  ``identify`` names a user with a phone as verified, for tests that make their own clients.

The fake: use it in your own tests instead of patching HTTP: point the library at
``fake.url`` (or give a subprocess ``fake.settings_env()``), let your app send a code, then
read it back with ``fake.last_code(number)``. The ``fake_flowroute`` pytest fixture yields a
started one.

The fake is stricter than the documentation needs the real API to be, so that a client that
passes here is right there too. For ``POST /v2.1/messages`` it checks, in this order:

- 401 ``Unauthorized``: HTTP Basic credentials other than the fake's access/secret key;
- 415 ``Unsupported Media Type``: a ``Content-Type`` other than ``application/vnd.api+json``
  (``; charset=utf-8`` is allowed, nothing else; plain ``application/json`` is refused);
- 400 ``Bad Request``: a body that is not UTF-8 JSON, not an object, or (JSON:API form) whose
  ``data`` / ``data.attributes`` are not objects or whose ``data.type`` is not ``"message"``;
  the flat form ``{"to", "from", "body"}`` is accepted too;
- 422 ``Unprocessable Entity``: ``to`` / ``from`` missing or not 11-digit North American
  digits (``12065551234``: no ``+``, no separators), ``body`` missing, not a string or blank,
  an unknown attribute, or a badly typed ``is_mms`` / ``media_urls`` / ``dlr_callback``;
- 403 ``Forbidden``: ``from`` is not the fake account's number.

Any other path answers 404, any other method on the path 405 (``Allow: POST``), every error
with a JSON:API body ``{"errors": [{"id", "status", "title", "detail"}]}``. A message that
passes is recorded and answered ``202`` with ``{"data": {"id": "mdr2-<32 hex>", ...}}``.

Injected faults apply to the next requests whatever their path, each kind from its own
queue: first a delay (:meth:`FakeFlowroute.delay_next` or the standing
:attr:`FakeFlowroute.delay`), then a drop (:meth:`~FakeFlowroute.drop_next`: the connection is
closed without an answer and nothing is recorded), else a failure
(:meth:`~FakeFlowroute.fail_next`). A delayed request that is valid is still recorded, as the
real service would still send it after the client gave up.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import json
import logging
import os
import re
import secrets
import socket
import socketserver
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import Message
from http import HTTPStatus
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import TYPE_CHECKING, Any
from unittest import mock
from urllib.parse import urlsplit

from . import Identity
from .settings import Settings, env_name

if TYPE_CHECKING:
    from .guard import Guard

try:
    import pytest
except ImportError:  # pragma: no cover - the helpers work without pytest
    pytest = None  # type: ignore[assignment]

__all__ = ["FakeFlowroute", "FakeMessage", "NoCodeError", "assume_verified", "find_guard",
           "mark_verified", "settings_for_tests", "verified_cookie"]

log = logging.getLogger("sms2fa.testing")

_MEDIA_TYPE = "application/vnd.api+json"
_MESSAGES_PATH = "/v2.1/messages"
_NANP = re.compile(r"1[2-9][0-9]{2}[2-9][0-9]{6}")
_ATTRIBUTES = frozenset({"to", "from", "body", "is_mms", "media_urls", "dlr_callback"})
_MAX_BODY = 1 << 20
_METHODS = ("GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")


@dataclass(frozen=True)
class FakeMessage:
    """One message the fake accepted. Numbers are digits only, as sent (``12065551234``)."""

    id: str
    to: str
    from_: str
    body: str
    time: datetime


class NoCodeError(AssertionError, LookupError):
    """:meth:`FakeFlowroute.last_code` found no code (an AssertionError and a LookupError)."""


@dataclass
class _Reply:
    """What the fake answers one request with."""

    status: int
    document: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


#: Titles as Flowroute writes them; Python's own phrases change (3.13 renamed 422 to
#: "Unprocessable Content"), the provider's do not.
_TITLES = {422: "Unprocessable Entity", 413: "Request Entity Too Large"}


def _error(status: int, detail: str, headers: dict[str, str] | None = None) -> _Reply:
    try:
        title = _TITLES.get(status) or HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    error = {"id": str(uuid.uuid4()), "status": status, "title": title, "detail": detail}
    return _Reply(status, {"errors": [error]}, headers or {})


def _digits(number: str) -> str:
    digits = number[1:] if number.startswith("+") else number
    if not digits.isdigit():
        raise ValueError(f"not a phone number: {number!r} (use '+12065551234' or '12065551234')")
    return digits


class FakeFlowroute:
    """A local Flowroute v2.1 Messaging API on ``127.0.0.1`` (a free port unless given).

    Thread-safe; usable as a context manager. See the module docstring for what it checks.
    """

    def __init__(
        self,
        access_key: str = "fake-access",
        secret_key: str = "fake-secret",  # noqa: S107 - a test double's own key
        number: str = "12065550100",
        *,
        port: int = 0,
    ) -> None:
        if not access_key or ":" in access_key or not secret_key:
            raise ValueError("access_key (without ':') and secret_key must be non-empty")
        if not _NANP.fullmatch(number):
            raise ValueError("number must be 11 North American digits, e.g. '12065550100'")
        self.access_key = access_key
        self.secret_key = secret_key
        self.number = number
        self._port = port
        self._lock = threading.Lock()
        self._messages: list[FakeMessage] = []
        self._requests_seen = 0
        self._in_flight = 0
        self._most_in_flight = 0
        self._failures: deque[tuple[int, str | None]] = deque()
        self._delays: deque[float] = deque()
        self._drops = 0
        self._delay = 0.0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> FakeFlowroute:
        """Start serving in a background thread; return self."""
        with self._lock:
            if self._server is not None:
                raise RuntimeError("FakeFlowroute is already running")
            self._stopping = threading.Event()
            server = _Server(self, ("127.0.0.1", self._port))
            self._server = server
            self._thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.01},  # stop() waits up to this long
                name=f"FakeFlowroute:{server.server_port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every open connection (idempotent)."""
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
            self._stopping.set()
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.close_connections()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> FakeFlowroute:
        if self._server is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self._server is not None else "stopped"
        return f"<FakeFlowroute {where}>"

    @property
    def port(self) -> int:
        """The port it listens on (once started)."""
        server = self._server
        if server is None:
            raise RuntimeError("FakeFlowroute is not running; call start() first")
        return server.server_port

    @property
    def url(self) -> str:
        """The API base to configure, e.g. ``http://127.0.0.1:PORT/v2.1``."""
        return f"http://127.0.0.1:{self.port}/v2.1"

    def settings_env(self) -> dict[str, str]:
        """Environment variables that make ``Settings.from_env()`` send through this fake."""
        return {
            "FLOWROUTE_ACCESS_KEY": self.access_key,
            "FLOWROUTE_SECRET_KEY": self.secret_key,
            "FLOWROUTE_NUMBER": self.number,
            "SMS2FA_FLOWROUTE_URL": self.url,
            "SMS2FA_SMS_BACKEND": "flowroute",
        }

    def settings_kwargs(self) -> dict[str, str]:
        """Keyword arguments that make ``Settings(...)`` send through this fake."""
        return {
            "flowroute_access_key": self.access_key,
            "flowroute_secret_key": self.secret_key,
            "flowroute_number": self.number,
            "flowroute_url": self.url,
            "sms_backend": "flowroute",
        }

    # -- what it received ------------------------------------------------------------------

    @property
    def messages(self) -> list[FakeMessage]:
        """A copy of every accepted message, oldest first."""
        with self._lock:
            return list(self._messages)

    @property
    def most_in_flight(self) -> int:
        """The most requests this fake was answering at the same moment."""
        with self._lock:
            return self._most_in_flight

    @property
    def requests_seen(self) -> int:
        """How many requests arrived, whatever their fate (faults and errors included)."""
        with self._lock:
            return self._requests_seen

    def messages_to(self, number: str) -> list[FakeMessage]:
        """The accepted messages to ``number`` (``+12065551234`` or ``12065551234``)."""
        digits = _digits(number)
        return [m for m in self.messages if m.to == digits]

    def last_code(self, number: str, length: int | None = None) -> str:
        """The code in the last message to ``number``: its last run of 4-10 digits (exactly
        ``length`` digits when given), as a string, leading zeros kept.

        Raises :class:`NoCodeError` when nothing was sent there or the message holds no code.
        """
        if length is not None and not 1 <= length <= 32:
            raise ValueError("length must be between 1 and 32")
        sent = self.messages_to(number)
        if not sent:
            raise NoCodeError(
                f"no message was sent to {number} ({len(self.messages)} message(s) in all)"
            )
        run = f"{{{length}}}" if length is not None else "{4,10}"
        codes = re.findall(rf"(?<![0-9])[0-9]{run}(?![0-9])", sent[-1].body)
        if not codes:
            raise NoCodeError(
                f"the last message to {number} holds no {length or '4-10'}-digit code: "
                f"{sent[-1].body!r}"
            )
        return str(codes[-1])

    def clear(self) -> None:
        """Forget the recorded messages and the request counts (faults stay)."""
        with self._lock:
            self._messages.clear()
            self._requests_seen = 0
            self._most_in_flight = self._in_flight

    # -- fault injection -------------------------------------------------------------------

    def fail_next(
        self, status: int, *, count: int = 1, retry_after: float | str | None = None
    ) -> None:
        """Answer the next ``count`` requests with ``status`` and a JSON:API error body, and a
        ``Retry-After`` header when given (numbers as seconds, strings verbatim)."""
        if not 400 <= status <= 599:
            raise ValueError("status must be an HTTP error status (400-599)")
        if count < 1:
            raise ValueError("count must be at least 1")
        header: str | None
        if retry_after is None or isinstance(retry_after, str):
            header = retry_after
        elif float(retry_after).is_integer():
            header = str(int(retry_after))
        else:
            header = str(float(retry_after))
        with self._lock:
            self._failures.extend([(status, header)] * count)

    def delay_next(self, seconds: float, count: int = 1) -> None:
        """Hold the next ``count`` requests ``seconds`` before handling them."""
        if seconds < 0 or count < 1:
            raise ValueError("seconds must be >= 0 and count >= 1")
        with self._lock:
            self._delays.extend([float(seconds)] * count)

    @property
    def delay(self) -> float:
        """A standing delay, in seconds, for every request without a queued one."""
        with self._lock:
            return self._delay

    @delay.setter
    def delay(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("delay must be >= 0")
        with self._lock:
            self._delay = float(seconds)

    def drop_next(self, count: int = 1) -> None:
        """Close the connection of the next ``count`` requests without answering them."""
        if count < 1:
            raise ValueError("count must be at least 1")
        with self._lock:
            self._drops += count

    def reset_faults(self) -> None:
        """Cancel every queued fault and the standing delay."""
        with self._lock:
            self._failures.clear()
            self._delays.clear()
            self._drops = 0
            self._delay = 0.0

    # -- the server side (called from the handler threads) ---------------------------------

    def _arrived(self) -> tuple[float, bool, tuple[int, str | None] | None]:
        """Count a request and take its faults: (delay, drop, failure)."""
        with self._lock:
            self._requests_seen += 1
            self._in_flight += 1
            self._most_in_flight = max(self._most_in_flight, self._in_flight)
            delay = self._delays.popleft() if self._delays else self._delay
            drop = self._drops > 0
            if drop:
                self._drops -= 1
            failure = self._failures.popleft() if self._failures and not drop else None
        return delay, drop, failure

    def _left(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _counted(self) -> None:
        with self._lock:
            self._requests_seen += 1

    def _process(self, method: str, path: str, headers: Message, raw: bytes) -> _Reply:
        """Answer one well-formed HTTP request the way the real API would."""
        if path != _MESSAGES_PATH:
            return _error(404, f"no such resource: {path}")
        if method != "POST":
            return _error(405, f"{method} is not allowed here", {"Allow": "POST"})
        if not self._authorised(headers.get("Authorization")):
            return _error(
                401,
                "Missing or invalid credentials: use HTTP Basic with the access key and "
                "secret key",
                {"WWW-Authenticate": 'Basic realm="Flowroute API"'},
            )
        content_type = headers.get("Content-Type")
        if not _jsonapi_media_type(content_type):
            return _error(415, f"Content-Type must be {_MEDIA_TYPE}, got {content_type!r}")
        try:
            document = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return _error(400, "the body is not valid UTF-8 JSON")
        if not isinstance(document, dict):
            return _error(400, "the body must be a JSON object")
        if "data" in document:
            data = document["data"]
            if not isinstance(data, dict) or not isinstance(data.get("attributes"), dict):
                return _error(400, "'data' must be an object with an 'attributes' object")
            if data.get("type") != "message":
                return _error(400, "'data.type' must be \"message\"")
            attributes: dict[str, Any] = data["attributes"]
        else:
            attributes = document
        problem = _check_attributes(attributes)
        if problem:
            return _error(422, problem)
        if attributes["from"] != self.number:
            return _error(403, "'from' is not a number on this account")
        message = FakeMessage(
            id="mdr2-" + uuid.uuid4().hex,
            to=attributes["to"],
            from_=attributes["from"],
            body=attributes["body"],
            time=datetime.now(timezone.utc),
        )
        with self._lock:
            self._messages.append(message)
            server = self._server
        base = f"http://127.0.0.1:{server.server_port}" if server else ""
        return _Reply(202, {"data": {
            "id": message.id,
            "type": "message",
            "links": {"self": f"{base}{_MESSAGES_PATH}/{message.id}"},
        }})

    def _authorised(self, header: str | None) -> bool:
        scheme, _, encoded = (header or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        user, colon, password = decoded.partition(b":")
        # Both comparisons always run, so the timing tells nothing about which one failed.
        good_user = hmac.compare_digest(user, self.access_key.encode("utf-8"))
        good_password = hmac.compare_digest(password, self.secret_key.encode("utf-8"))
        return bool(colon) and good_user and good_password


def _jsonapi_media_type(value: str | None) -> bool:
    if not value:
        return False
    media_type, *params = value.split(";")
    if media_type.strip().lower() != _MEDIA_TYPE:
        return False
    for param in params:
        name, _, val = param.partition("=")
        if name.strip().lower() != "charset" or val.strip().strip('"').lower() != "utf-8":
            return False
    return True


def _check_attributes(attributes: dict[str, Any]) -> str | None:
    """Why the message attributes are unacceptable (422), or None."""
    unknown = sorted(set(attributes) - _ATTRIBUTES)
    if unknown:
        return f"unknown attribute(s): {', '.join(unknown)}"
    for name in ("to", "from"):
        value = attributes.get(name)
        if not isinstance(value, str) or not _NANP.fullmatch(value):
            return f"'{name}' must be an 11-digit number like \"12065551234\" (digits only)"
    body = attributes.get("body")
    if not isinstance(body, str) or not body.strip():
        return "'body' must be a non-empty string"
    if not isinstance(attributes.get("is_mms", False), bool):
        return "'is_mms' must be a boolean"
    media_urls = attributes.get("media_urls", [])
    if not isinstance(media_urls, list) or not all(isinstance(u, str) for u in media_urls):
        return "'media_urls' must be a list of URLs"
    callback = attributes.get("dlr_callback")
    if callback is not None and not (
        isinstance(callback, str) and callback.startswith(("http://", "https://"))
    ):
        return "'dlr_callback' must be an http(s) URL"
    return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's backlog of 5 drops connects under a burst; the client then waits ~1 s
    # for the SYN to be re-sent.
    request_queue_size = 128

    def __init__(self, fake: FakeFlowroute, address: tuple[str, int]) -> None:
        self.fake = fake
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the FQDN of the host, which can hang on a
        # machine with slow DNS; a loopback fake needs no name.
        socketserver.TCPServer.server_bind(self)
        self.server_name = "127.0.0.1"
        self.server_port = int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("FakeFlowroute: error on a connection", exc_info=True)

    def close_connections(self) -> None:
        """Cut the kept-alive connections too, or their threads would go on answering."""
        with self.connections_lock:
            connections = list(self.connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeFlowroute/2.1"
    sys_version = ""
    timeout = 60  # idle keep-alive connections end after this
    disable_nagle_algorithm = True  # headers and body go in two writes
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            with self.server.connections_lock:
                self.server.connections.discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("FakeFlowroute: " + format, *args)

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        fake = self.server.fake
        raw, problem = self._read_body()
        delay, drop, failure = fake._arrived()
        try:
            self._answer(fake, raw, problem, delay, drop, failure)
        finally:
            fake._left()

    def _answer(self, fake: FakeFlowroute, raw: bytes, problem: _Reply | None, delay: float,
                drop: bool, failure: tuple[int, str | None] | None) -> None:
        if delay and fake._stopping.wait(delay):
            self._drop()
            return
        if drop:
            self._drop()
            return
        if failure is not None:
            status, retry_after = failure
            headers = {"Retry-After": retry_after} if retry_after is not None else None
            reply = _error(status, "injected failure", headers)
        elif problem is not None:
            reply = problem
        else:
            reply = fake._process(self.command, urlsplit(self.path).path, self.headers, raw)
        self._send(reply)

    def _read_body(self) -> tuple[bytes, _Reply | None]:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            return b"", _error(411, "send the body with a Content-Length")
        length_header = self.headers.get("Content-Length", "0")
        try:
            length = int(length_header)
        except ValueError:
            self.close_connection = True
            return b"", _error(400, "bad Content-Length")
        if length < 0 or length > _MAX_BODY:
            self.close_connection = True
            return b"", _error(413, "the body is too large")
        return self.rfile.read(length), None

    def _send(self, reply: _Reply) -> None:
        data = json.dumps(reply.document).encode("utf-8")
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", _MEDIA_TYPE)
            self.send_header("Content-Length", str(len(data)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            self.wfile.flush()
        except OSError:  # the client gave up (e.g. its read timed out)
            self.close_connection = True

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Errors raised by http.server itself (bad request line, unknown method) in JSON:API."""
        self.server.fake._counted()
        self.close_connection = True
        self._send(_error(code, message or explain or HTTPStatus(code).phrase))


for _method in _METHODS:
    setattr(_Handler, f"do_{_method}", _Handler._dispatch)



# -- helpers for the tests of an app that has the middleware installed -----------------------

def settings_for_tests(database: str | os.PathLike[str], fake: FakeFlowroute | None = None,
                       **overrides: Any) -> Settings:
    """Settings for one test: a fresh random secret key, state in the SQLite file
    ``database``, and codes sent through ``fake`` (a started :class:`FakeFlowroute`) -- or,
    without one, printed by the console backend. Keyword arguments override any value."""
    values: dict[str, Any] = {"secret_key": secrets.token_urlsafe(32),
                              "database_url": f"sqlite:///{os.fspath(database)}"}
    values.update(fake.settings_kwargs() if fake is not None else {"sms_backend": "console"})
    values.update(overrides)
    return Settings(**values)


def find_guard(app: object) -> Guard:
    """The :class:`~sms2fa_middleware.guard.Guard` of the SMS2FAMiddleware in ``app``: the
    middleware itself (WSGI or ASGI), a Flask app whose ``wsgi_app`` it wraps, a Starlette or
    FastAPI app that lists it in its middleware, or any wrapper that keeps the app it wraps in
    ``.app``. Raises LookupError when there is none."""
    from .guard import Guard, GuardedApp

    seen: set[int] = set()
    node: Any = app
    while node is not None and id(node) not in seen:
        seen.add(id(node))
        if isinstance(node, Guard):
            return node
        if isinstance(node, GuardedApp):
            return node.guard
        if hasattr(node, "build_middleware_stack") and hasattr(node, "middleware_stack"):
            # Starlette builds its middleware on the first request. Building it now, and
            # keeping it as Starlette itself would, finds the very instance that will serve.
            if node.middleware_stack is None:
                node.middleware_stack = node.build_middleware_stack()
            node = node.middleware_stack
            continue
        node = getattr(node, "wsgi_app", None) or getattr(node, "app", None)
    raise LookupError(f"no SMS2FAMiddleware in this {type(app).__name__}; pass the middleware "
                      "or the app it wraps")


def verified_cookie(app: object, identity: Identity | tuple[Any, Any], *,
                    https: bool = False) -> tuple[str, str]:
    """``(name, value)`` of the verified-session cookie that the middleware in ``app`` would
    set right now after ``identity`` entered a right code: signed with its key, bound to its
    cookie name, prefix and audience and to the identity (normalised as an ``identify``
    answer is: an int auth_id, a national-format number). ``https`` picks the name the
    middleware reads on https (``__Host-`` prefixed unless a cookie domain is set)."""
    guard = find_guard(app)
    who = guard.identity(identity)
    if who is None or who.recipient is None:
        raise ValueError("a verified session needs an identity with a phone number")
    return guard.cookie_for(https), guard.signer.issue(who, int(time.time() * 1000))


def mark_verified(client: Any, app: object, identity: Identity | tuple[Any, Any], *,
                  https: bool | None = None) -> None:
    """Make ``client`` verified for ``identity`` on the middleware in ``app`` (see
    :func:`find_guard`), as if it had just entered a right code: it gets a real
    verified-session cookie (:func:`verified_cookie`). Requests still go through
    ``identify`` and the middleware, so they pass only while ``identify`` names this
    identity -- e.g. after the test logs in as that user -- and a revoke (logout) ends the
    session as it would a real one.

    ``client``: a Flask/werkzeug test client, a Starlette/FastAPI ``TestClient`` or any httpx
    client, a ``requests.Session``, or a Django ``Client``/``AsyncClient``. With ``https``
    left None the cookie is set under both names, for http and for https requests.
    """
    for secure in (False, True) if https is None else (https,):
        name, value = verified_cookie(app, identity, https=secure)
        _set_cookie(client, name, value)


def _set_cookie(client: Any, name: str, value: str) -> None:
    cookies = getattr(client, "cookies", None)
    if isinstance(cookies, SimpleCookie):  # Django's Client and AsyncClient
        cookies[name] = value
    elif cookies is not None and hasattr(cookies, "set"):  # httpx (TestClient), requests
        cookies.set(name, value, path="/")
    elif hasattr(client, "set_cookie"):  # werkzeug's Client (Flask's test_client())
        client.set_cookie(name, value, path="/")
    else:
        raise TypeError(f"cannot set a cookie on a {type(client).__name__}; give a werkzeug, "
                        "httpx, requests or Django test client")


@contextlib.contextmanager
def assume_verified() -> Iterator[None]:
    """While open, every SMS2FAMiddleware in this process counts a protected request as
    verified when its ``identify`` names a user with a phone number: no cookie, no code. For
    tests that make their own clients (``TestClient(app)`` in each test), where
    :func:`mark_verified` has no client to mark. Anonymous requests and users without a
    phone are answered as before; revocations are not seen (test logout with
    :func:`mark_verified`)."""
    from .guard import Guard

    def is_verified(self: Guard, cookie_header: str, https: bool,
                    identity: Identity | None) -> bool:
        return identity is not None and identity.recipient is not None

    with mock.patch.object(Guard, "is_verified", is_verified):
        yield


if pytest is not None:

    @pytest.fixture
    def fake_flowroute() -> Iterator[FakeFlowroute]:
        """A started :class:`FakeFlowroute`, stopped after the test."""
        with FakeFlowroute() as fake:
            yield fake

    @pytest.fixture
    def sms2fa_settings(tmp_path_factory: pytest.TempPathFactory,
                        fake_flowroute: FakeFlowroute) -> Settings:
        """:func:`settings_for_tests`: a random key, a temporary SQLite file, and codes sent
        to this test's ``fake_flowroute``. Pass it to the middleware, or to your app factory."""
        return settings_for_tests(tmp_path_factory.mktemp("sms2fa") / "sms2fa.db",
                                  fake_flowroute)

    @pytest.fixture
    def sms2fa_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory,
                   fake_flowroute: FakeFlowroute) -> dict[str, str]:
        """The same as ``sms2fa_settings``, in the environment (undone after the test), so
        that an app factory calling ``Settings.from_env()`` builds in tests -- with or
        without a test config. Returns the variables it set."""
        database = tmp_path_factory.mktemp("sms2fa") / "sms2fa.db"
        env = {**fake_flowroute.settings_env(),
               env_name("secret_key"): secrets.token_urlsafe(32),
               env_name("database_url"): f"sqlite:///{database}"}
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return env

    @pytest.fixture
    def sms2fa_assume_verified() -> Iterator[None]:
        """:func:`assume_verified` for one test: users with a phone count as verified."""
        with assume_verified():
            yield
