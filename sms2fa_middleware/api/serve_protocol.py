"""uvicorn's HTTP protocol with a deadline for request headers and a bound on connections.

uvicorn waits for a request's headers as long as the client keeps sending bytes: a client
sending one header byte a second holds its connection (and a file descriptor) for as long as
it likes, and a few hundred such clients exhaust a modest open-file limit, after which nobody,
``/health`` included, gets in. ``sms2fa serve`` therefore runs uvicorn with
:class:`DeadlineHTTPProtocol`:

- **a header deadline**: from the moment a connection opens, or a response on it is
  complete, the client has ``SMS2FA_SERVE_HEADER_TIMEOUT`` seconds (default 10) to finish the
  next request's headers. Then the connection is closed (with a 408 if it had started one).
  The body has its own deadline in the service
  (:data:`~sms2fa_middleware.api.service.BODY_TIMEOUT`).
- **a bound on connections** per worker: ``SMS2FA_SERVE_MAX_CONNECTIONS`` (default 1000),
  never more than the open-file limit leaves room for. A new connection over the bound
  closes the oldest connection that is waiting for headers (or idle between requests), so a
  flood of slow clients cannot keep a fresh request out; if every connection is busy with a
  request, the new one is closed instead.

The settings come from the environment because uvicorn builds the protocol itself, in each
worker process.
"""

from __future__ import annotations

import asyncio
import functools
import os
import resource
from typing import Any

from uvicorn.protocols.http.auto import AutoHTTPProtocol

from ..errors import ConfigurationError

HEADER_TIMEOUT_ENV = "SMS2FA_SERVE_HEADER_TIMEOUT"
MAX_CONNECTIONS_ENV = "SMS2FA_SERVE_MAX_CONNECTIONS"
#: Seconds a client has to finish a request's headers.
HEADER_TIMEOUT = 10.0
#: Connections a worker keeps open at most (fewer when the open-file limit is low).
MAX_CONNECTIONS = 1000
#: File descriptors left for everything else a worker opens: the database, threads' SQLite
#: connections, the SMS provider, the event loop.
RESERVED_FILES = 64

_TIMED_OUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
    b"connection: close\r\ncontent-length: 69\r\n\r\n"
    b'{"message":"The request did not arrive in time.","reason":"Timeout"}\n'
)


def connection_bound(configured: int) -> int:
    """``configured``, lowered so that the connections fit the open-file limit with
    :data:`RESERVED_FILES` to spare (and at least 8)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return configured
    return max(8, min(configured, soft - RESERVED_FILES))


@functools.lru_cache(maxsize=1)
def limits() -> tuple[float, int]:
    """(header deadline in seconds, connection bound) for this process, from the
    environment (read once)."""
    timeout = read_limits(os.environ.get(HEADER_TIMEOUT_ENV), os.environ.get(MAX_CONNECTIONS_ENV))
    return timeout[0], connection_bound(timeout[1])


def read_limits(header_timeout: str | None, max_connections: str | None) -> tuple[float, int]:
    """The two limits from their text (None: the default); a ConfigurationError naming the
    variable and the option when one is not a number or out of range."""
    timeout = _number(
        header_timeout, HEADER_TIMEOUT, float, HEADER_TIMEOUT_ENV, "--header-timeout", 0.1, 300
    )
    bound = _number(
        max_connections,
        MAX_CONNECTIONS,
        int,
        MAX_CONNECTIONS_ENV,
        "--max-connections",
        1,
        1_000_000,
    )
    return float(timeout), int(bound)


def _number(
    text: str | None,
    default: float,
    kind: type[float] | type[int],
    variable: str,
    option: str,
    low: float,
    high: float,
) -> float:
    if not text:
        return default
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise ConfigurationError(f"{variable} ({option}) must be a number from {low:g} to {high:g}")
    return value


class DeadlineHTTPProtocol(AutoHTTPProtocol):  # type: ignore[misc,valid-type]
    """uvicorn's own HTTP protocol (httptools, else h11) with the header deadline and the
    connection bound described in this module."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._armed_for: object = None  # the request cycle that was current when armed
        self._partial = False  # bytes of a request arrived while waiting

    def _waiting(self) -> dict[DeadlineHTTPProtocol, None]:
        """This worker's connections waiting for headers, oldest first."""
        state = self.server_state
        waiting: dict[DeadlineHTTPProtocol, None] | None = getattr(state, "sms2fa_waiting", None)
        if waiting is None:
            waiting = {}
            state.sms2fa_waiting = waiting
        return waiting

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        bound = limits()[1]
        if len(self.connections) >= bound:
            waiting = self._waiting()
            if not waiting:  # every connection is busy with a request: refuse this one
                transport.close()
                return
            next(iter(waiting))._expire()  # the oldest slow or idle one makes room
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self.transport is None:  # refused in connection_made: nothing was set up
            return
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._deadline is not None:
            self._partial = True
        super().data_received(data)
        if self._deadline is not None and (
            self.cycle is not self._armed_for or self.transport.get_protocol() is not self
        ):
            self._disarm()  # the headers are complete (or a websocket took over)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # Unless a pipelined request already started, the next one's headers are due.
        if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
            self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._armed_for = self.cycle
        self._partial = False
        self._deadline = self.loop.call_later(limits()[0], self._expire)
        self._waiting()[self] = None

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
            self._waiting().pop(self, None)

    def _expire(self) -> None:
        """Close the connection: its headers did not arrive in time (or room was needed)."""
        self._disarm()
        if not self.transport.is_closing():
            if self._partial:
                self.transport.write(_TIMED_OUT)
            self.transport.close()


__all__ = [
    "HEADER_TIMEOUT",
    "MAX_CONNECTIONS",
    "DeadlineHTTPProtocol",
    "connection_bound",
    "limits",
    "read_limits",
]
