"""Slow clients against a real server: connections that trickle request headers, a byte at a
time, while ``/health`` is probed on fresh connections. Used by the tests and ``bench/``."""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from .servers import free_port, wait_until_up

# A request line and a header that never ends: the headers are never complete.
OPENING = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


@dataclass
class TrickleResult:
    opened: int = 0  # connections that connected and took the opening bytes
    closed_after: list[float] = field(default_factory=list)  # seconds until the server closed
    health: list[float | None] = field(default_factory=list)  # latency, None: no answer

    def closed_within(self, seconds: float) -> int:
        return sum(1 for t in self.closed_after if t <= seconds)

    @property
    def health_failures(self) -> int:
        return sum(1 for t in self.health if t is None)

    @property
    def health_worst(self) -> float:
        answered = [t for t in self.health if t is not None]
        return max(answered) if answered else float("nan")


def probe_health(base: str, timeout: float = 2.0) -> float | None:
    """Seconds for ``GET /health`` on a fresh connection, or None when it got no 200."""
    host, _, port = base.removeprefix("http://").partition(":")
    started = time.monotonic()
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
    except OSError:
        return None
    return time.monotonic() - started if answer.startswith(b"HTTP/1.1 200") else None


def trickle(
    base: str, connections: int, duration: float, interval: float = 1.0, probe_every: float = 0.5
) -> TrickleResult:
    """Open ``connections`` that each send one more header byte every ``interval`` seconds,
    for ``duration`` seconds (or until the server closed them all), probing ``/health``
    meanwhile. Stops by itself; closes what is left."""
    host, _, port = base.removeprefix("http://").partition(":")
    result = TrickleResult()
    started = time.monotonic()
    open_socks: dict[socket.socket, float] = {}
    for _ in range(connections):
        try:
            sock = socket.create_connection((host, int(port)), timeout=2)
            sock.sendall(OPENING)
        except OSError:
            continue
        sock.setblocking(False)
        open_socks[sock] = time.monotonic()
        result.opened += 1

    stop = threading.Event()

    def probes() -> None:
        while not stop.is_set():
            result.health.append(probe_health(base))
            stop.wait(probe_every)

    prober = threading.Thread(target=probes, daemon=True)
    prober.start()
    try:
        while open_socks and time.monotonic() - started < duration:
            for sock, since in list(open_socks.items()):
                if _closed_by_server(sock):
                    result.closed_after.append(time.monotonic() - since)
                    del open_socks[sock]
                    sock.close()
            time.sleep(interval)
    finally:
        stop.set()
        prober.join(timeout=5)
        for sock in open_socks:
            sock.close()
    return result


def _closed_by_server(sock: socket.socket) -> bool:
    """Send the next header byte; True once the server closed the connection."""
    try:
        while sock.recv(4096):  # a 408 before the close: read it away
            pass
        return True  # recv returned b"": closed
    except BlockingIOError:
        pass
    except OSError:
        return True
    try:
        sock.send(b"a")
    except BlockingIOError:
        pass
    except OSError:
        return True
    return False


def _limit_files(limit: int) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))


@contextmanager
def serve_limited(
    env: Mapping[str, str], open_files: int, args: tuple[str, ...] = (), log_path: str | None = None
) -> Iterator[str]:
    """``sms2fa serve --dev`` (one worker) with its open-file limit lowered to
    ``open_files``; yields its base URL, stops it afterwards."""
    port = free_port()
    out = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "sms2fa_middleware", "serve", "--dev", "--port", str(port), *args],
        env={**os.environ, **env},
        stdout=out,
        stderr=subprocess.STDOUT,
        preexec_fn=lambda: _limit_files(open_files),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base + "/health", process, log_path=log_path)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if log_path:
            out.close()  # type: ignore[union-attr]
