"""Start real servers (``sms2fa serve`` and friends) on free ports for end-to-end tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import requests


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not come up in {timeout}s")


@contextmanager
def running(args: list[str], env: Mapping[str, str], port: int, path: str = "/openapi.json",
            log_path: str | None = None) -> Iterator[str]:
    """Run ``python -m <args>`` with ``env`` added; yield its base URL; stop it afterwards."""
    full_env = {**os.environ, **env}
    out = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115
    process = subprocess.Popen([sys.executable, "-m", *args], env=full_env,
                               stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base + path, process)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if log_path:
            out.close()  # type: ignore[union-attr]


@contextmanager
def serve(env: Mapping[str, str], workers: int = 1, log_path: str | None = None,
          prefix: str = "/") -> Iterator[str]:
    """``sms2fa serve --workers N`` with ``env``; yields the base URL."""
    port = free_port()
    args = ["sms2fa_middleware", "serve", "--port", str(port), "--workers", str(workers),
            "--prefix", prefix]
    probe = (prefix.rstrip("/") or "") + "/openapi.json"
    with running(args, env, port, probe, log_path) as base:
        yield base
