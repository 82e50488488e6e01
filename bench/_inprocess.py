"""In-process drivers shared by passthrough.py and verified.py: apps, no-op wrappers, timers."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable
from typing import Any

PATH = "/hello"  # not under /account (protected) nor /sms2fa (the prefix)


# -- the floor: a no-op pure wrapper -----------------------------------------------------------


class NoopWSGI:
    """A path check, then the app."""

    def __init__(self, app: Any, prefixes: tuple[str, ...] = ("/account", "/sms2fa")) -> None:
        self.app = app
        self.prefixes = prefixes

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO", "").startswith(self.prefixes):
            raise AssertionError("not on this benchmark's path")
        return self.app(environ, start_response)


class NoopASGI:
    """A path check, then ``await app(...)``."""

    def __init__(self, app: Any, prefixes: tuple[str, ...] = ("/account", "/sms2fa")) -> None:
        self.app = app
        self.prefixes = prefixes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"].startswith(self.prefixes):
            raise AssertionError("not on this benchmark's path")
        await self.app(scope, receive, send)


# -- apps and drivers ---------------------------------------------------------------------------


def flask_app(path: str = PATH) -> Any:
    """A one-route Flask app answering "ok" at ``path``; returns its WSGI callable."""
    from flask import Flask

    app = Flask(__name__)  # a module Flask can locate, whatever else is on sys.path

    @app.route(path)
    def hello() -> str:
        return "ok"

    return app.wsgi_app  # what a user wraps: app.wsgi_app = SMS2FAMiddleware(app.wsgi_app, ...)


def starlette_app(path: str = PATH) -> Any:
    """A one-route Starlette app answering "ok" at ``path``."""
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def hello(request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")

    return Starlette(routes=[Route(path, hello)])


def wsgi_environ(path: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    from werkzeug.test import EnvironBuilder

    builder = EnvironBuilder(path=path, headers=list((headers or {}).items()))
    try:
        return dict(builder.get_environ())
    finally:
        builder.close()


def asgi_scope(path: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    raw = [(b"host", b"localhost")] + [
        (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()
    ]
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": raw,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
        "state": {},  # uvicorn (0.24+) and Starlette's TestClient send the lifespan state
    }


class WSGIDriver:
    """Calls app(environ, start_response) directly and drains the body, like a server would."""

    def __init__(self, environ: dict[str, Any]) -> None:
        self.environ = environ
        self.status = ""

    def start_response(self, status: str, headers: Any, exc_info: Any = None) -> Any:
        self.status = status
        return None

    def check(self, app: Any) -> bytes:
        body = app(dict(self.environ), self.start_response)
        data = b"".join(body)
        if hasattr(body, "close"):
            body.close()
        return data

    def time(self, app: Any, calls: int) -> float:
        environ, start_response = self.environ, self.start_response
        copy = dict
        t0 = time.perf_counter()
        for _ in range(calls):
            body = app(copy(environ), start_response)
            for _chunk in body:
                pass
            close = getattr(body, "close", None)
            if close is not None:
                close()
        return (time.perf_counter() - t0) / calls


class ASGIDriver:
    """Drives an ASGI app with a minimal scope/receive/send inside one asyncio loop."""

    def __init__(self, scope: dict[str, Any], loop: asyncio.AbstractEventLoop) -> None:
        self.scope = scope
        self.loop = loop

    @staticmethod
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    @staticmethod
    async def send(message: dict[str, Any]) -> None:
        return None

    def check(self, app: Any) -> tuple[int, bytes]:
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        self.loop.run_until_complete(app(dict(self.scope), self.receive, send))
        status = next(m["status"] for m in sent if m["type"] == "http.response.start")
        body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        return status, body

    def time(self, app: Any, calls: int) -> float:
        async def run() -> float:
            scope, receive, send = self.scope, self.receive, self.send
            copy = dict
            t0 = time.perf_counter()
            for _ in range(calls):
                await app(copy(scope), receive, send)
            return (time.perf_counter() - t0) / calls

        return self.loop.run_until_complete(run())


def best_of(
    variants: dict[str, Any], timer: Callable[[Any, int], float], calls: int, rounds: int
) -> dict[str, float]:
    """Best (lowest) seconds per call of each variant; rounds interleave the variants."""
    for app in variants.values():  # warm up: imports, caches, Starlette's middleware stack
        timer(app, max(200, calls // 10))
    best = {name: float("inf") for name in variants}
    for _ in range(rounds):
        for name, app in variants.items():
            gc.collect()  # each batch starts from the same heap state
            best[name] = min(best[name], timer(app, calls))
    return best
