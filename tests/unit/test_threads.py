"""The one thread hop (:mod:`sms2fa_middleware.threads`): results, errors, the thread limit,
context variables, forks, and who uses which pool."""

from __future__ import annotations

import asyncio
import contextvars
import os
import signal
import threading
import time
from typing import Any

import pytest

from sms2fa_middleware import Identity, Settings, Verifier
from sms2fa_middleware.engine import AsyncVerifier
from sms2fa_middleware.threads import SENDS, WORK, Threads
from tests.support import SECRET


def test_results_and_errors_come_back_to_the_awaiting_task() -> None:
    threads = Threads(limit=2)

    def fail() -> None:
        raise ValueError("from the thread")

    async def main() -> int:
        with pytest.raises(ValueError, match="from the thread"):
            await threads.run(fail)
        return await threads.run(sum, [1, 2, 3])

    assert asyncio.run(main()) == 6


def test_calls_run_in_parallel_up_to_the_limit_and_no_further() -> None:
    threads = Threads(limit=3)
    lock = threading.Lock()
    running = [0]
    most = [0]

    def slow(i: int) -> int:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return i

    async def main() -> list[int]:
        return await asyncio.gather(*(threads.run(slow, i) for i in range(12)))

    assert asyncio.run(main()) == list(range(12))
    assert most[0] == 3  # in parallel, and never more than the limit


def test_a_call_sees_the_callers_context_variables() -> None:
    """As with ``asyncio.to_thread``: an identify that reads a request-scoped variable (a
    tracing span, a locale) sees the value its request set."""
    threads = Threads(limit=2)
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id")

    async def one(name: str) -> str:
        request_id.set(name)
        return await threads.run(request_id.get)

    async def main() -> list[str]:
        return await asyncio.gather(*(one(f"r{i}") for i in range(8)))

    assert asyncio.run(main()) == [f"r{i}" for i in range(8)]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_a_forked_child_starts_threads_of_its_own() -> None:
    """A pool used before a fork (gunicorn --preload, a server's master) still answers in the
    child, which has none of the parent's threads."""
    threads = Threads(limit=2)
    assert asyncio.run(threads.run(sum, [1, 2])) == 3  # the parent's thread is running
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only if the call comes back
        code = 2
        try:
            code = 0 if asyncio.run(threads.run(sum, [3, 4])) == 7 else 1
        finally:
            os._exit(code)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail("the forked child's call never came back")


class _RecordingSender:
    def __init__(self) -> None:
        self.threads: list[str] = []

    def send(self, to: str, body: str) -> str:
        self.threads.append(threading.current_thread().name)
        return "message-1"


def test_the_async_engine_sends_in_the_send_pool(tmp_path: Any) -> None:
    """AsyncVerifier's default hop is the package's: sends in SENDS' threads, apart from the
    store work, so a slow provider cannot hold the threads the store work needs."""
    sender = _RecordingSender()
    verifier = Verifier(
        Settings(
            secret_key=SECRET, database_url=f"sqlite:///{tmp_path / 'a.db'}", sms_backend="console"
        ),
        sender=sender,
    )
    try:
        asyncio.run(AsyncVerifier(verifier).start("u1", "+12065550123"))
    finally:
        verifier.store.dispose()
    assert sender.threads and sender.threads[0].startswith(f"{SENDS.name}-")


def test_the_asgi_middleware_runs_a_sync_identify_in_the_work_pool(tmp_path: Any) -> None:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from sms2fa_middleware.asgi import SMS2FAMiddleware

    seen: list[str] = []

    def identify(request: Any) -> Identity:
        seen.append(threading.current_thread().name)
        return Identity("alice", "+12065550123")

    async def home(request: Any) -> PlainTextResponse:
        return PlainTextResponse("home")

    settings = Settings(
        secret_key=SECRET, database_url=f"sqlite:///{tmp_path / 'm.db'}", sms_backend="console"
    )
    app = SMS2FAMiddleware(
        Starlette(routes=[Route("/account", home)]),
        settings,
        identify=identify,
        protect=["/account"],
    )
    with TestClient(app) as client:
        client.get("/account", headers={"Accept": "text/html"}, follow_redirects=False)
    assert seen and seen[0].startswith(f"{WORK.name}-")
