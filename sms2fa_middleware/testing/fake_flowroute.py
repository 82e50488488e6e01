"""FakeFlowroute: a local Flowroute v2.1 Messaging API, its inbox and its injected faults.
See the package docstring for what it checks and how the faults apply."""

from __future__ import annotations

import re
import threading
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from email.message import Message
from types import TracebackType

from .fake_server import Server
from .flowroute_rules import MESSAGES_PATH, NANP, Account, Reply, check_request


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


def _digits(number: str) -> str:
    digits = number[1:] if number.startswith("+") else number
    if not digits.isdigit():
        raise ValueError(f"not a phone number: {number!r} (use '+12065551234' or '12065551234')")
    return digits


class _Inbox:
    """What the fake received: the accepted messages and the request counts."""

    _lock: threading.Lock

    def __init__(self) -> None:
        self._messages: list[FakeMessage] = []
        self._requests_seen = 0
        self._in_flight = 0
        self._most_in_flight = 0

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

    def left(self) -> None:
        """A request was answered (or dropped)."""
        with self._lock:
            self._in_flight -= 1

    def counted(self) -> None:
        """Count a request that http.server refused before the fake saw it."""
        with self._lock:
            self._requests_seen += 1

    def _count_arrival(self) -> None:
        """Count a request that arrived. Call with the lock held."""
        self._requests_seen += 1
        self._in_flight += 1
        self._most_in_flight = max(self._most_in_flight, self._in_flight)


class _Faults:
    """Injected faults, each kind from its own queue: a delay, a drop, a failure."""

    _lock: threading.Lock

    def __init__(self) -> None:
        self._failures: deque[tuple[int, str | None]] = deque()
        self._delays: deque[float] = deque()
        self._drops = 0
        self._delay = 0.0

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

    def _take_faults(self) -> tuple[float, bool, tuple[int, str | None] | None]:
        """The next request's faults: (delay, drop, failure). Call with the lock held."""
        delay = self._delays.popleft() if self._delays else self._delay
        drop = self._drops > 0
        if drop:
            self._drops -= 1
        failure = self._failures.popleft() if self._failures and not drop else None
        return delay, drop, failure


class FakeFlowroute(_Inbox, _Faults):
    """A local Flowroute v2.1 Messaging API on ``127.0.0.1`` (a free port unless given).

    Thread-safe; usable as a context manager. See the package docstring for what it checks.
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
        if not NANP.fullmatch(number):
            raise ValueError("number must be 11 North American digits, e.g. '12065550100'")
        _Inbox.__init__(self)
        _Faults.__init__(self)
        self.access_key = access_key
        self.secret_key = secret_key
        self.number = number
        self._port = port
        self._lock = threading.Lock()
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self.stopping = threading.Event()

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> FakeFlowroute:
        """Start serving in a background thread; return self."""
        with self._lock:
            if self._server is not None:
                raise RuntimeError("FakeFlowroute is already running")
            self.stopping = threading.Event()
            server = Server(self, ("127.0.0.1", self._port))
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
            self.stopping.set()
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

    # -- the server side (called from the handler threads) ---------------------------------

    def arrived(self) -> tuple[float, bool, tuple[int, str | None] | None]:
        """Count a request and take its faults: (delay, drop, failure)."""
        with self._lock:
            self._count_arrival()
            return self._take_faults()

    def process(self, method: str, path: str, headers: Message, raw: bytes) -> Reply:
        """Answer one well-formed HTTP request the way the real API would."""
        account = Account(self.access_key, self.secret_key, self.number)
        attributes = check_request(method, path, headers, raw, account)
        if isinstance(attributes, Reply):
            return attributes
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
        return Reply(
            202,
            {
                "data": {
                    "id": message.id,
                    "type": "message",
                    "links": {"self": f"{base}{MESSAGES_PATH}/{message.id}"},
                }
            },
        )
