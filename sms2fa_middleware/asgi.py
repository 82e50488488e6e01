"""ASGI adapter: a pure ASGI middleware for Starlette, FastAPI and any ASGI app.

Works both as ``app.add_middleware(SMS2FAMiddleware, protect=[...], identify=...)`` /
``Middleware(SMS2FAMiddleware, ...)`` and as a plain wrapper ``SMS2FAMiddleware(app, ...)``.

Pass-through and a valid verified cookie are decided inline, without I/O; everything that
touches the database or the SMS provider runs in a worker thread
(:mod:`~sms2fa_middleware.threads`: a pool for sends of its own), so the event loop never
blocks. Lifespan scopes and websockets to unprotected paths pass straight through; a websocket
to a protected path without a verified session is refused (HTTP 403 before the handshake).
The verified identity is in ``scope["state"]["sms2fa"]`` (``request.state.sms2fa``), and the
middleware itself in ``scope["state"]["sms2fa_middleware"]`` on every request (for a logout
view: ``request.state.sms2fa_middleware.revoke_session(request)``). A sync ``identify`` runs
in a worker thread, never on the event loop; an async one is awaited.

With Starlette's SessionMiddleware, list it *before* this one so ``request.session`` is
ready when ``identify`` runs.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import HTTPConnection
from starlette.requests import Request as StarletteRequest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import Identity
from .asgi_io import read_request, request_from_scope, send_response
from .guard import PASS, RULED, Guard, GuardedApp, private_raw_headers
from .guard.paths import app_root_paths, asgi_route_path
from .guard.rendering import LOOP
from .guard.rules import PLAIN, Need, WhenFailed
from .messages import too_large
from .settings import Settings
from .threads import SENDS, WORK

Identify = Callable[[StarletteRequest], "Identity | Awaitable[Identity | None] | None"]

STATE_KEY = "sms2fa"
MIDDLEWARE_KEY = "sms2fa_middleware"


class SMS2FAMiddleware(GuardedApp[ASGIApp, Identify]):
    """Demand a verified SMS second factor on the ``protect``ed paths of an ASGI app."""

    def __init__(
        self,
        app: ASGIApp,
        settings: Settings | None = None,
        *,
        identify: Identify,
        guard: Guard | None = None,
        **options: Any,
    ) -> None:
        super().__init__(app, settings, identify=identify, guard=guard, **options)
        # An app that sets its own root path (FastAPI(root_path="/api")) writes it into the
        # scope after we classified: Starlette then routes the path minus that root. Every
        # reading is classified once, into the same remembered kind (fail closed).
        self.paths.add_root_paths(app_root_paths(app))
        # Decided once: a sync identify runs in a worker thread (it may touch an ORM or a
        # session store that blocks), an async one is awaited on the loop.
        self._identify_async = _is_async(identify)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        try:  # request.state.sms2fa_middleware, for logout views
            scope["state"][MIDDLEWARE_KEY] = self
        except KeyError:  # servers since the ASGI lifespan-state extension always send one
            scope["state"] = {MIDDLEWARE_KEY: self}
        # Starlette routes the path relative to root_path (a Mount, uvicorn --root-path).
        path = asgi_route_path(scope) if scope.get("root_path") else scope["path"]
        kind = self._kinds.get(path)
        if kind is None:
            kind = self._remember(path, path)
        if kind == PASS:
            await self.app(scope, receive, send)  # the hot path: one dict lookup
            return
        need = PLAIN
        if kind == RULED:  # a rule that says more than its path: the method decides
            # A websocket's handshake is a GET.
            kind, need = self._demand(path, path, scope.get("method", "GET"))
            if kind == PASS:
                await self.app(scope, receive, send)
                return
        await self._guarded(scope, receive, send, path, kind, need)

    async def _guarded(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        path: str,
        kind: int,
        need: Need = PLAIN,
    ) -> None:
        guard = self.guard
        identity, failure = None, None
        connection = (
            StarletteRequest(scope, receive) if scope["type"] == "http" else HTTPConnection(scope)
        )
        try:
            identity = guard.identity(await self._identity(connection))
            if need.pending:  # rules with a `when`: ask them about this request
                need = need.resolve(
                    [await _asked(rule.when, connection, identity) for rule in need.pending]
                )
        except Exception as exc:  # a bug in identify or a `when`, or a value that is no identity
            failure = exc
        if guard.revocations_stale():
            await WORK.run(guard.refresh_revocations)
        verdict = guard.decide(
            kind,
            identity,
            failure,
            _cookie_header(scope),
            scope.get("scheme") in ("https", "wss"),
            need,
        )
        if verdict.to_app:
            scope["state"][STATE_KEY] = verdict.identity
            if scope["type"] == "http" and (verdict.private or verdict.cookie):
                send = _private(send, verdict.private, verdict.cookie)
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":  # no HTTP answer on a websocket: close it
            await send({"type": "websocket.close", "code": verdict.close_code})
        else:
            request = (
                await read_request(scope, receive, path=path)
                if verdict.reads_body
                else request_from_scope(scope, path)
            )
            if request is None:
                response = too_large()
            else:
                request.native = connection  # the pages' templates get the app's request
                token = LOOP.set(asyncio.get_running_loop())  # an async render runs here
                try:
                    response = await SENDS.run(guard.answer, verdict, request)
                finally:
                    LOOP.reset(token)
            await send_response(send, response, head=scope["method"] == "HEAD")

    async def _identity(self, connection: HTTPConnection) -> Identity | None:
        if self._identify_async:
            return await self.identify(connection)  # type: ignore[arg-type,misc,no-any-return]
        result = await WORK.run(self.identify, connection)
        if inspect.isawaitable(result):  # a sync callable that hands back a coroutine
            return await result
        return result


async def _asked(when: Any, connection: HTTPConnection, identity: Identity | None) -> bool:
    """A rule's ``when`` asked about a request: an async one awaited, a sync one in a worker
    thread (as ``identify``: it may read a database)."""
    try:
        if _is_async(when):
            return bool(await when(connection, identity))
        result = await WORK.run(when, connection, identity)
        if inspect.isawaitable(result):
            result = await result
        return bool(result)
    except Exception as exc:
        raise WhenFailed(when) from exc


def _is_async(identify: Any) -> bool:
    return inspect.iscoroutinefunction(identify) or inspect.iscoroutinefunction(
        getattr(identify, "__call__", None)  # noqa: B004 (an object with async __call__)
    )


def _private(send: Send, private: bool = True, cookie: tuple[str, str] | None = None) -> Send:
    """``send`` that marks the app's response private (Vary: Cookie and Cache-Control:
    private, see :func:`~sms2fa_middleware.guard.private_raw_headers`) and/or adds the
    renewed session cookie."""
    extra = [] if cookie is None else [(cookie[0].encode(), cookie[1].encode("latin-1"))]

    # Not a coroutine function: it hands back send's own awaitable, one frame fewer per
    # message. The start message gets a new headers list; the app's own list is left alone.
    def private_send(message: Message) -> Awaitable[None]:
        if message["type"] == "http.response.start":
            headers = message.get("headers", ())
            if private:
                headers = private_raw_headers(headers)
            message["headers"] = [*headers, *extra] if extra else headers
        return send(message)

    return private_send


def _cookie_header(scope: Scope) -> str:
    """Every ``cookie`` header, joined: HTTP/2 clients may split cookies over several
    (RFC 9113, 8.2.3), and HTTP/1.1 clients may send two."""
    found = b""
    for key, value in scope["headers"]:
        if key == b"cookie":
            found = found + b"; " + value if found else value
    return found.decode("latin-1")


__all__ = ["MIDDLEWARE_KEY", "STATE_KEY", "Identity", "SMS2FAMiddleware"]
