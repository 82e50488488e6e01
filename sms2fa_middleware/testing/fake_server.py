"""The fake's HTTP/1.1 server: threads, kept-alive connections, injected faults on the wire.
What to answer comes from the :class:`~.fake_flowroute.FakeFlowroute` it serves."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import socketserver
import threading
from email.message import Message
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import urlsplit

from .flowroute_rules import MEDIA_TYPE, Reply, error


class FakeFlowroute(Protocol):
    """What the server asks of the fake it serves (``fake_flowroute.FakeFlowroute``)."""

    stopping: threading.Event

    def arrived(self) -> tuple[float, bool, tuple[int, str | None] | None]: ...
    def left(self) -> None: ...
    def counted(self) -> None: ...
    def process(self, method: str, path: str, headers: Message, raw: bytes) -> Reply: ...


log = logging.getLogger("sms2fa.testing")

_MAX_BODY = 1 << 20
_METHODS = ("GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")


class Server(ThreadingHTTPServer):
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
    server: Server

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
        delay, drop, failure = fake.arrived()
        try:
            self._answer(fake, raw, problem, delay, drop, failure)
        finally:
            fake.left()

    def _answer(
        self,
        fake: FakeFlowroute,
        raw: bytes,
        problem: Reply | None,
        delay: float,
        drop: bool,
        failure: tuple[int, str | None] | None,
    ) -> None:
        if delay and fake.stopping.wait(delay):
            self._drop()
            return
        if drop:
            self._drop()
            return
        if failure is not None:
            status, retry_after = failure
            headers = {"Retry-After": retry_after} if retry_after is not None else None
            reply = error(status, "injected failure", headers)
        elif problem is not None:
            reply = problem
        else:
            reply = fake.process(self.command, urlsplit(self.path).path, self.headers, raw)
        self._send(reply)

    def _read_body(self) -> tuple[bytes, Reply | None]:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            return b"", error(411, "send the body with a Content-Length")
        length_header = self.headers.get("Content-Length", "0")
        try:
            length = int(length_header)
        except ValueError:
            self.close_connection = True
            return b"", error(400, "bad Content-Length")
        if length < 0 or length > _MAX_BODY:
            self.close_connection = True
            return b"", error(413, "the body is too large")
        return self.rfile.read(length), None

    def _send(self, reply: Reply) -> None:
        data = json.dumps(reply.document).encode("utf-8")
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", MEDIA_TYPE)
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
        self.server.fake.counted()
        self.close_connection = True
        self._send(error(code, message or explain or HTTPStatus(code).phrase))


for _method in _METHODS:
    setattr(_Handler, f"do_{_method}", _Handler._dispatch)
