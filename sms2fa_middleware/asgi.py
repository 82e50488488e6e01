"""ASGI adapter: a pure ASGI middleware for Starlette, FastAPI and any ASGI app.

Works both as ``app.add_middleware(SMS2FAMiddleware, protect=[...], identify=...)`` /
``Middleware(SMS2FAMiddleware, ...)`` and as a plain wrapper ``SMS2FAMiddleware(app, ...)``.

Pass-through and a valid verified cookie are decided inline, without I/O; everything that
touches the database or the SMS provider runs in a worker thread, so the event loop never
blocks. Lifespan scopes and websockets to unprotected paths pass straight through; a websocket
to a protected path without a verified session is refused (HTTP 403 before the handshake).
The verified identity is in ``scope["state"]["sms2fa"]`` (``request.state.sms2fa``).

With Starlette's SessionMiddleware, list it *before* this one so ``request.session`` is
ready when ``identify`` runs.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

from anyio import to_thread
from starlette.requests import HTTPConnection
from starlette.requests import Request as StarletteRequest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import Identity
from .asgi_io import read_request, send_response
from .guard import PASS, PROTECTED, GuardedApp, private_raw_headers
from .guard.paths import asgi_route_path
from .http import too_large

Identify = Callable[[StarletteRequest], "Identity | Awaitable[Identity | None] | None"]

STATE_KEY = "sms2fa"


class SMS2FAMiddleware(GuardedApp[ASGIApp, Identify]):
    """Demand a verified SMS second factor on the ``protect``ed paths of an ASGI app."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        # Starlette routes the path relative to root_path (a Mount, uvicorn --root-path).
        path = asgi_route_path(scope) if scope.get("root_path") else scope["path"]
        kind = self._kinds.get(path)
        if kind is None:
            kind = self.guard.remember(path, path)
        if kind == PASS:
            await self.app(scope, receive, send)  # the hot path: one dict lookup
            return
        guard = self.guard
        try:
            identity = guard.identity(await self._identity(scope, receive))
        except Exception as exc:  # a bug in identify, or a value that is no identity
            request = await read_request(scope, receive, path=path, read_body=False)
            assert request is not None  # no body is read, so never too large
            response = guard.identify_failed(request, exc)
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1011})
            else:
                await send_response(send, response, head=scope["method"] == "HEAD")
            return
        if kind == PROTECTED:
            if guard.revocations_stale():
                await to_thread.run_sync(guard.refresh_revocations)
            https = scope.get("scheme") in ("https", "wss")
            if guard.is_verified(_cookie_header(scope), https, identity):
                scope.setdefault("state", {})[STATE_KEY] = identity
                if guard.private_responses and scope["type"] == "http":
                    await self.app(scope, receive, _private(send))
                else:
                    await self.app(scope, receive, send)
                return
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            request = await read_request(scope, receive, path=path, read_body=False)
            assert request is not None  # no body is read for a refusal, so never too large
            response = await to_thread.run_sync(guard.deny, request, identity)
            await send_response(send, response, head=scope["method"] == "HEAD")
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        request = await read_request(scope, receive, path=path)
        if request is None:
            await send_response(send, too_large())
            return
        response = await to_thread.run_sync(guard.handle_prefix, request, identity)
        await send_response(send, response, head=scope["method"] == "HEAD")

    async def _identity(self, scope: Scope, receive: Receive) -> Identity | None:
        connection = (StarletteRequest(scope, receive) if scope["type"] == "http"
                      else HTTPConnection(scope))
        result = self.identify(connection)  # type: ignore[arg-type]  # websockets: no Request
        if result is None or type(result) is Identity:  # the usual answers: skip the probe
            return result
        if inspect.isawaitable(result):
            return await result
        return result


def _private(send: Send) -> Send:
    """``send`` that marks the app's response private (Vary: Cookie and Cache-Control:
    private, see :func:`~sms2fa_middleware.guard.private_raw_headers`)."""

    # Not a coroutine function: it hands back send's own awaitable, one frame fewer per
    # message. The start message gets a new headers list; the app's own list is left alone.
    def private_send(message: Message) -> Awaitable[None]:
        if message["type"] == "http.response.start":
            message["headers"] = private_raw_headers(message.get("headers", ()))
        return send(message)

    return private_send


def _cookie_header(scope: Scope) -> str:
    for key, value in scope["headers"]:
        if key == b"cookie":
            return str(value.decode("latin-1"))
    return ""


__all__ = ["STATE_KEY", "Identity", "SMS2FAMiddleware"]
