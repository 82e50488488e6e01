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
from starlette.responses import Response
from starlette.routing import Mount

from . import Identity, route_checks
from .asgi import STATE_KEY
from .guard.paths import route_warnings


def session_identify(
    auth_id_key: str,
    *,
    phone_key: str | None = None,
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
            raise RuntimeError(
                "session_identify needs Starlette's SessionMiddleware before SMS2FAMiddleware"
            )
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
    """Decorate a Starlette endpoint ``async def f(request)``: 403 unless the middleware
    verified the request (a page for a browser, JSON for anyone else)."""

    @functools.wraps(endpoint)
    async def wrapper(request: Request) -> Response:
        if _verified(request) is None:
            status, body, headers = route_checks.refusal_answer(
                request.url.path, request.headers.get("accept", "")
            )
            return Response(body, status, headers=headers)
        return await endpoint(request)

    return wrapper


def _entries(routes: Iterable[Any]) -> list[Any]:
    """``routes`` with FastAPI's included routers opened: since FastAPI 0.13x an
    ``include_router`` is one entry (``_IncludedRouter``, no ``path``) whose routes carry the
    prefixes only in FastAPI's route contexts (``fastapi.routing.iter_route_contexts``)."""
    routes = list(routes)
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # Starlette alone, or a FastAPI that lists every route itself
        return routes
    return list(iter_route_contexts(routes))


def _mounted_routes(route: Any, depth: int = 16) -> list[Any]:
    """The routes under a Mount or Host: its own, or those of the app it wraps (a FastAPI
    app inside middleware, followed through ``.app``)."""
    routes = getattr(route, "routes", None) or []
    app = getattr(route, "app", None)
    while not routes and app is not None and depth:
        routes, app = getattr(app, "routes", None) or [], getattr(app, "app", None)
        depth -= 1
    return list(routes)


def _walk(routes: Iterable[Any], base: str, unread: list[str]) -> list[str]:
    out: list[str] = []
    for route in _entries(routes):
        path = getattr(route, "path", None)
        mounted = hasattr(route, "routes")  # Mount, Host (a FastAPI route context passes on)
        if path is None:
            if mounted:  # a Host: its routes see the whole path
                out += _walk(_mounted_routes(route), base, unread)
            else:
                unread.append(type(getattr(route, "original_route", route)).__name__)
            continue
        full = base + re.sub(r"\{[^}]*\}", "x", path)
        if mounted or isinstance(route, Mount):
            inner = _mounted_routes(route)
            # an app whose routes cannot be read (StaticFiles): it serves what is below it
            out += _walk(inner, full, unread) if inner else [full.rstrip("/") + "/x"]
        else:
            out.append(full or "/")
    return out


def route_paths(routes: Iterable[Any], base: str = "") -> list[str]:
    """Sample paths for an app's routes, variables filled with ``x``: Mounts and Hosts
    followed, FastAPI's included routers (``APIRouter`` prefixes) opened."""
    return _walk(routes, base, [])


def check_routes(
    app: Any, protect: Iterable[str], exclude: Iterable[str] = (), public: Iterable[str] = ()
) -> list[str]:
    """Start-up check: log (and return) a warning for each route the patterns may leave open
    -- a near miss such as ``protect=["/admin/*"]`` with a route ``/admin``, see
    :func:`~sms2fa_middleware.guard.paths.route_warnings` -- unless ``exclude`` or
    ``public`` (routes deliberately open) matches it, for each protect pattern that matches
    no route, and for each route entry whose path cannot be read. ``app`` is a Starlette or
    FastAPI app (its ``routes``; included routers and Mounts followed)."""
    unread: list[str] = []
    paths = _walk(app.routes, "", unread)
    warnings = route_warnings(paths, protect, exclude, public)
    warnings += [
        f"a route entry of type {name} has no path: its routes were not checked"
        for name in dict.fromkeys(unread)
    ]
    return route_checks.logged(warnings)


__all__ = [
    "check_routes",
    "require_verified",
    "route_paths",
    "session_identify",
    "verified_required",
]
