"""Starlette and FastAPI conveniences: ``identify`` from Starlette's session
(:func:`session_identify`), a route-level check that double-checks the middleware, and a
start-up check of the app's routes against the patterns.

Defence in depth: the middleware decides which requests need a verified session; a route
that also checks refuses (403) any request the middleware did not verify -- so a route that
the ``protect`` patterns miss fails closed instead of open::

    @verified_required                                 # Starlette
    async def account(request): ...

    @app.get("/account")                               # FastAPI
    async def account(who: Identity = Depends(require_verified)): ...
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount

from . import Identity, route_checks
from .asgi import STATE_KEY


def session_identify(
    auth_id_key: str, *, phone_key: str | None = None,
    phone: Callable[[Any], str | None] | None = None,
) -> Callable[[HTTPConnection], Identity | None]:
    """``identify`` from Starlette's ``request.session`` (SessionMiddleware, listed before
    ours): ``Identity(session[auth_id_key], <phone>)``, None when the key is missing. The
    phone is ``session[phone_key]``, or ``phone(auth_id)`` (sync: the middleware runs it in
    a worker thread, so it may query a database); give one of them."""
    if (phone_key is None) == (phone is None):
        raise TypeError("session_identify: give phone_key= or phone=, one of them")

    def identify(connection: HTTPConnection) -> Identity | None:
        if "session" not in connection.scope:
            raise RuntimeError("session_identify needs Starlette's SessionMiddleware before "
                               "SMS2FAMiddleware")
        session = connection.session
        auth_id = session.get(auth_id_key)
        if auth_id is None:
            return None
        number = session.get(phone_key) if phone_key is not None else phone(auth_id)  # type: ignore[misc]
        return Identity(auth_id, number)

    return identify


def _verified(connection: HTTPConnection) -> Identity | None:
    return connection.scope.get("state", {}).get(STATE_KEY)  # type: ignore[no-any-return]


def require_verified(connection: HTTPConnection) -> Identity:
    """The verified Identity, or HTTPException 403: a FastAPI dependency
    (``Depends(require_verified)``), or call it first thing in any endpoint."""
    identity = _verified(connection)
    if identity is None:
        raise HTTPException(403, detail=route_checks.refusal(connection.url.path)["message"])
    return identity


def verified_required(
    endpoint: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    """Decorate a Starlette endpoint ``async def f(request)``: 403 JSON unless the
    middleware verified the request."""

    @functools.wraps(endpoint)
    async def wrapper(request: Request) -> Response:
        if _verified(request) is None:
            return JSONResponse(route_checks.refusal(request.url.path), 403,
                                headers={"cache-control": "no-store"})
        return await endpoint(request)

    return wrapper


def route_paths(routes: Iterable[Any], base: str = "") -> list[str]:
    """Sample paths for an app's routes (Mounts followed), variables filled with ``x``."""
    out: list[str] = []
    for route in routes:
        path = getattr(route, "path", None)
        if path is None:
            continue
        full = base + re.sub(r"\{[^}]*\}", "x", path)
        if isinstance(route, Mount) and route.routes:
            out += route_paths(route.routes, full)
        else:
            out.append(full or "/")
    return out


def check_routes(app: Any, protect: Iterable[str], exclude: Iterable[str] = ()) -> list[str]:
    """Start-up check: log (and return) a warning for each route the patterns may leave open
    -- e.g. ``protect=["/admin/*"]`` with a route ``/admin`` -- and for each protect pattern
    that matches no route. ``app`` is a Starlette or FastAPI app (its ``routes``)."""
    return route_checks.report(route_paths(app.routes), protect, exclude)


__all__ = ["check_routes", "require_verified", "route_paths", "session_identify",
           "verified_required"]
