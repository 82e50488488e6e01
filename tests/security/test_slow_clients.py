"""``sms2fa serve`` survives slow clients: request headers have a deadline, connections a
bound, so trickling connections neither stay open nor keep ``/health`` out."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from sms2fa_middleware.api.serve_protocol import connection_bound, read_limits
from sms2fa_middleware.errors import ConfigurationError
from tests.support.servers import serve
from tests.support.slow_clients import OPENING, probe_health, serve_limited, trickle

pytestmark = pytest.mark.slow


def _closed_within(sock: socket.socket, seconds: float) -> float | None:
    """Keep trickling header bytes; the seconds until the server closed, or None."""
    sock.setblocking(False)
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        try:
            if not sock.recv(4096):
                return time.monotonic() - started
        except BlockingIOError:
            pass
        except OSError:
            return time.monotonic() - started
        try:
            sock.send(b"a")
        except BlockingIOError:
            pass
        except OSError:
            return time.monotonic() - started
        time.sleep(0.25)
    return None


def test_two_hundred_trickling_connections_neither_stay_nor_keep_health_out(tmp_path: Path) -> None:
    # 200 open files: the trickling connections alone would use them all up.
    with serve_limited(
        {"SMS2FA_DATA_DIR": str(tmp_path)},
        open_files=200,
        args=("--header-timeout", "2"),
        log_path=str(tmp_path / "log"),
    ) as base:
        result = trickle(base, connections=200, duration=15, interval=0.5, probe_every=0.25)
    assert result.opened == 200
    assert len(result.health) >= 4
    assert result.health_failures == 0, result.health
    assert result.health_worst < 1.0
    # Every trickler was closed by the server: at the deadline, or earlier to make room.
    assert result.closed_within(2 + 3) == 200, sorted(result.closed_after)[-5:]


def test_a_kept_alive_connection_that_trickles_its_next_request_is_closed(tmp_path: Path) -> None:
    env = {"SMS2FA_DATA_DIR": str(tmp_path), "SMS2FA_SERVE_HEADER_TIMEOUT": "1"}
    with serve_limited(env, open_files=1024) as base:
        port = int(base.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            # The deadline is for headers: a body that comes later, in its own time, is fine.
            body = b'{"auth_id": "u1", "code": "123456"}'
            sock.sendall(
                b"POST /check HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n"
            )
            time.sleep(1.6)
            sock.sendall(body)
            assert sock.recv(4096).startswith(b"HTTP/1.1 400")
            sock.sendall(OPENING)  # the next request starts, and never finishes its headers
            closed = _closed_within(sock, 10)
    assert closed is not None and closed < 1 + 3


def test_the_deadline_holds_in_every_worker(tmp_path: Path) -> None:
    env = {
        "SMS2FA_DATA_DIR": str(tmp_path),
        "SMS2FA_DEVELOPMENT": "1",
        "SMS2FA_SERVE_HEADER_TIMEOUT": "1",
    }
    with serve(env, workers=2, log_path=tmp_path / "log") as base:
        port = int(base.rsplit(":", 1)[1])
        socks = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(6)]
        try:
            for sock in socks:
                sock.sendall(OPENING)
            times = [_closed_within(sock, 10) for sock in socks]
            assert probe_health(base) is not None
        finally:
            for sock in socks:
                sock.close()
    assert all(t is not None for t in times), times


@pytest.mark.parametrize(("timeout", "bound"), [("0", None), ("x", None), (None, "0")])
def test_bad_limits_are_configuration_errors(timeout: str | None, bound: str | None) -> None:
    with pytest.raises(ConfigurationError, match="SMS2FA_SERVE_"):
        read_limits(timeout, bound)


def test_the_bound_leaves_room_in_the_open_file_limit() -> None:
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert connection_bound(10**6) <= max(8, soft - 64)
