"""Start real servers (``sms2fa serve`` and friends) on free ports for end-to-end tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import requests

STARTED = "Application startup complete"  # what uvicorn logs once a worker is ready


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(
    url: str,
    process: subprocess.Popen[bytes],
    timeout: float = 30.0,
    log_path: str | Path | None = None,
) -> None:
    """Until ``url`` answers; raises if ``process`` exits first or time runs out (with the
    server's log, when there is one)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}{_log(log_path)}")
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:  # not listening yet, or too busy starting up
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not come up in {timeout}s{_log(log_path)}")


def _log(log_path: str | Path | None) -> str:
    return f":\n{Path(log_path).read_text(errors='replace')}" if log_path else ""


def wait_for_workers(log_path: str | Path, count: int, timeout: float = 30.0) -> str:
    """Until ``count`` workers have logged their startup, or ``timeout``; the log's text."""
    deadline = time.monotonic() + timeout
    while True:
        text = Path(log_path).read_text(errors="replace")
        if text.count(STARTED) >= count or time.monotonic() >= deadline:
            return text
        time.sleep(0.1)


@contextmanager
def launch(
    args: list[str],
    env: Mapping[str, str],
    port: int,
    path: str = "/openapi.json",
    log_path: str | Path | None = None,
    cwd: str | Path | None = None,
    inherit_env: bool = True,
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Run ``python -m <args>`` in ``cwd``; yield (its base URL, the process) once ``path``
    answers; stop it afterwards. ``env`` is added to this process's environment, or with
    ``inherit_env=False`` is the whole environment. Output goes to ``log_path``, if given."""
    full_env = {**os.environ, **env} if inherit_env else dict(env)
    out = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", *args], env=full_env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base + path, process, log_path=log_path)
        yield base, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if log_path:
            out.close()  # type: ignore[union-attr]


@contextmanager
def running(
    args: list[str],
    env: Mapping[str, str],
    port: int,
    path: str = "/openapi.json",
    log_path: str | Path | None = None,
    cwd: str | Path | None = None,
    inherit_env: bool = True,
) -> Iterator[str]:
    """:func:`launch`, yielding only the base URL."""
    with launch(args, env, port, path, log_path, cwd, inherit_env) as (base, _):
        yield base


@contextmanager
def serve_process(
    env: Mapping[str, str], workers: int = 1, log_path: str | Path | None = None, prefix: str = "/"
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``sms2fa serve --workers N`` with ``env``; yields (the base URL, the parent process)
    once it answers and, when its output goes to ``log_path``, every worker has logged its
    startup (or 30 s have passed: the log tells)."""
    port = free_port()
    args = [
        "sms2fa_middleware",
        "serve",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--prefix",
        prefix,
    ]
    probe = (prefix.rstrip("/") or "") + "/openapi.json"
    with launch(args, env, port, probe, log_path) as started:
        if log_path:
            wait_for_workers(log_path, workers)
        yield started


@contextmanager
def serve(
    env: Mapping[str, str], workers: int = 1, log_path: str | Path | None = None, prefix: str = "/"
) -> Iterator[str]:
    """:func:`serve_process`, yielding only the base URL."""
    with serve_process(env, workers, log_path, prefix) as (base, _):
        yield base


@contextmanager
def uvicorn_thread(app: object) -> Iterator[str]:
    """An ASGI app served by a real uvicorn in a thread of this process, on a free port."""
    import threading

    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_level="warning",
            lifespan="off",  # type: ignore[arg-type]
            timeout_graceful_shutdown=2,
        )
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    try:
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(5)
        sock.close()
