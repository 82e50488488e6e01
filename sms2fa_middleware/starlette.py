"""Starlette and FastAPI conveniences: ``identify`` from Starlette's session
(:func:`session_identify`), a route-level check that double-checks the middleware, a
start-up check of the app's routes against the patterns, and the middleware's pages made
with the app's ``Jinja2Templates`` (:func:`jinja2_render`).

Defence in depth: the middleware decides which requests need a verified session; a route
that also checks refuses (403) any request the middleware did not verify -- so a route that
the ``protect`` patterns miss fails closed instead of open::

    @verified_required                                 # Starlette
    async def account(request): ...

    @app.get("/account")                               # FastAPI
    async def account(who: Identity = Depends(require_verified)): ...

Both take a ``max_age`` of the route's own -- ``@verified_required(max_age=300)``,
``Depends(require_verified(max_age=300))`` -- and a session whose code is older gets the
step-up a rule's ``max_age`` gets: a browser the challenge, an API client 401 with RFC 9470's
``WWW-Authenticate: Bearer error="insufficient_user_authentication", ..., max_age=300``.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, overload

from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.routing import Mount

from . import Identity, route_checks, text
from .asgi import MIDDLEWARE_KEY, STATE_KEY, SMS2FAMiddleware
from .asgi_io import request_from_scope
from .guard.decision import Verdict
from .guard.paths import asgi_route_path, route_warnings
from .guard.rendering import LOOP
from .guard.rule_checks import method_warnings
from .messages import Request as SansIORequest
from .messages import Response as SansIOResponse
from .pages import Render, chosen_pages, template_values
from .threads import SENDS


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


def _stale(
    connection: HTTPConnection, identity: Identity, max_age: int
) -> tuple[SMS2FAMiddleware, SansIORequest, Verdict] | None:
    """None when the code of the session the middleware verified is at most ``max_age``
    seconds old; else what answers the step-up (no I/O)."""
    middleware = _middleware(connection)
    if middleware is None:  # verified by whom? Fail closed.
        raise _refused(connection)
    request = _sans_io(connection)
    verdict = middleware.guard.step_up(request, identity, max_age)
    return None if verdict is None else (middleware, request, verdict)


def _middleware(connection: HTTPConnection) -> SMS2FAMiddleware | None:
    """The middleware the request went through (None: none of ours)."""
    found = connection.scope.get("state", {}).get(MIDDLEWARE_KEY)
    return found if isinstance(found, SMS2FAMiddleware) else None


def _sans_io(connection: HTTPConnection) -> SansIORequest:
    """The request as the guard reads it (no body), the app's request kept for the pages."""
    scope = connection.scope
    made = request_from_scope(scope, asgi_route_path(scope) if scope.get("root_path") else None)
    made.native = connection
    return made


def _refused(connection: HTTPConnection) -> HTTPException:
    """The 403 as an HTTPException, its detail in the request's language."""
    middleware = _middleware(connection)
    options = middleware.options if middleware is not None else None
    with text.speaking(route_checks.spoken(_sans_io(connection), options)):
        return HTTPException(403, detail=route_checks.refusal(connection.url.path)["message"])


async def _refusal_page(request: Request) -> Response:
    """The 403 for a Starlette endpoint: the page for a browser (the ``render`` hook may
    run: in a worker thread, an async one on this loop), JSON for anyone else."""
    middleware = _middleware(request)
    options = middleware.options if middleware is not None else None
    token = LOOP.set(asyncio.get_running_loop())
    try:
        status, body, headers = await SENDS.run(
            route_checks.refusal_answer,
            request.url.path,
            request.headers.get("accept", ""),
            _sans_io(request),
            options,
        )
    finally:
        LOOP.reset(token)
    return Response(body, status, headers=headers)


def _verified_identity(connection: HTTPConnection) -> Identity:
    """The verified Identity, or HTTPException 403: a FastAPI dependency
    (``Depends(require_verified)``), or call it first thing in any endpoint."""
    identity = _verified(connection)
    if identity is None:
        raise _refused(connection)
    return identity


def _as_exception(response: SansIOResponse) -> HTTPException:
    """The step-up answer as an HTTPException (what a dependency can raise): its status and
    headers (two ``WWW-Authenticate`` challenges joined into one, as HTTP allows), the
    message as ``detail``."""
    headers: dict[str, str] = {}
    for name, value in response.headers:
        key = name.lower()
        if key == "content-type":
            continue
        if key in headers and key != "set-cookie":  # a second challenge: one list
            headers[key] = f"{headers[key]}, {value}"
        else:
            headers.setdefault(key, value)  # the one cookie a step-up sets (its notice)
    return HTTPException(response.status, detail=text.needs_verification(), headers=headers)


@overload
def require_verified(connection: HTTPConnection) -> Identity: ...


@overload
def require_verified(*, max_age: int) -> Callable[[HTTPConnection], Identity]: ...


def require_verified(
    connection: HTTPConnection | None = None, *, max_age: int | None = None
) -> Any:
    """The verified Identity, or HTTPException 403: a FastAPI dependency
    (``Depends(require_verified)``), or call it first thing in any endpoint.

    ``require_verified(max_age=300)`` is a dependency that also asks for a code entered at
    most 300 s ago: an older session gets the step-up as an HTTPException (a browser: 303 to
    the challenge, a code sent; an API client: 401 with RFC 9470's ``WWW-Authenticate``).
    It is sync, so FastAPI runs it in a worker thread (it may send a code); from an async
    Starlette endpoint, use :func:`verified_required` instead."""
    if connection is not None:
        return _verified_identity(connection)
    age = route_checks.checked_max_age(max_age)
    if age is None:
        return _verified_identity

    def require_recent(connection: HTTPConnection) -> Identity:
        identity = _verified_identity(connection)
        stale = _stale(connection, identity, age)
        if stale is not None:
            middleware, request, verdict = stale
            raise _as_exception(middleware.guard.answer(verdict, request))
        return identity

    return require_recent


# FastAPI reads a dependency's parameters from its signature: it must see the connection
# only (max_age would become a query parameter).
require_verified.__signature__ = inspect.signature(_verified_identity)  # type: ignore[attr-defined]

Endpoint = Callable[[Request], Awaitable[Response]]


@overload
def verified_required(endpoint: Endpoint) -> Endpoint: ...


@overload
def verified_required(*, max_age: int | None = None) -> Callable[[Endpoint], Endpoint]: ...


def verified_required(endpoint: Endpoint | None = None, *, max_age: int | None = None) -> Any:
    """Decorate a Starlette endpoint ``async def f(request)``: 403 JSON unless the
    middleware verified the request. ``@verified_required(max_age=300)`` also asks for a
    code entered at most 300 s ago: an older session gets the step-up a rule's ``max_age``
    gets (the answer, which may send a code, runs off the event loop)."""
    age = route_checks.checked_max_age(max_age)
    if endpoint is None:
        return functools.partial(verified_required, max_age=age)
    view = endpoint

    @functools.wraps(view)
    async def wrapper(request: Request) -> Response:
        identity = _verified(request)
        if identity is None:
            return await _refusal_page(request)
        if age is not None:
            try:
                stale = _stale(request, identity, age)
            except HTTPException:  # verified, but by no middleware we know: fail closed
                return await _refusal_page(request)
            if stale is not None:
                middleware, sans_io, verdict = stale
                token = LOOP.set(asyncio.get_running_loop())
                try:
                    answer = await SENDS.run(middleware.guard.answer, verdict, sans_io)
                finally:
                    LOOP.reset(token)
                out = Response(answer.body, answer.status)
                out.raw_headers = [
                    (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers
                ]
                out.raw_headers.append((b"content-length", str(len(answer.body)).encode()))
                return out
        return await view(request)

    return wrapper


def jinja2_render(
    templates: Any,
    *,
    layout: str | None = None,
    pages: Iterable[str] | None = None,
    app: Any = None,
) -> Render:
    """A ``render`` hook that makes the middleware's pages with the app's
    ``Jinja2Templates`` (its environment, globals such as ``url_for``, and its context
    processors)::

        templates = Jinja2Templates(directory="templates")
        Middleware(SMS2FAMiddleware, ..., render=jinja2_render(templates, layout="base.html"))

    Each page is ``sms2fa/<page>.html`` from the app's templates, else the package's
    (:data:`~sms2fa_middleware.pages.JINJA2_TEMPLATES`), which extend ``layout`` (the app's
    base template, with blocks ``title`` and ``content``; default the package's
    ``sms2fa/base.html``); ``request`` is Starlette's. ``pages``: only these pages (default
    all); the others are the built-in pages. ``app``: the app whose routes ``url_for``
    names, when the middleware wraps it from outside (``SMS2FAMiddleware(app, ...)``: the
    request has met no app yet); inside ``middleware=[...]`` it needs none. With an
    environment made with ``enable_async=True`` the page renders on the event loop."""
    from .jinja import page_template, with_package_templates

    wanted = chosen_pages(pages)
    env = with_package_templates(templates.env)
    processors = list(getattr(templates, "context_processors", ()))

    def values_for(context: Mapping[str, Any]) -> dict[str, Any]:
        values = template_values(context, layout)
        native = values.get("request")
        if isinstance(native, Request):
            scope = native.scope
            if app is not None and "router" not in scope and "app" not in scope:
                native = values["request"] = Request({**scope, "app": app})
            for processor in processors:
                values.update(processor(native))
        return values

    if env.is_async:

        async def render_async(page: str, context: Mapping[str, Any]) -> str | None:
            if page not in wanted:
                return None
            return await page_template(env, page).render_async(values_for(context))

        return render_async

    def render(page: str, context: Mapping[str, Any]) -> str | None:
        if page not in wanted:
            return None
        return page_template(env, page).render(values_for(context))

    return render


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


def _walk(
    routes: Iterable[Any], base: str, unread: list[str]
) -> list[tuple[str, frozenset[str] | None]]:
    """Each route's sample path and the methods it answers (None: it does not say)."""
    out: list[tuple[str, frozenset[str] | None]] = []
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
            out += _walk(inner, full, unread) if inner else [(full.rstrip("/") + "/x", None)]
        else:
            methods = getattr(route, "methods", None)  # None: a WebSocketRoute, an endpoint
            out.append((full or "/", None if methods is None else frozenset(methods)))
    return out


def route_paths(routes: Iterable[Any], base: str = "") -> list[str]:
    """Sample paths for an app's routes, variables filled with ``x``: Mounts and Hosts
    followed, FastAPI's included routers (``APIRouter`` prefixes) opened."""
    return [path for path, _ in _walk(routes, base, [])]


def route_methods(routes: Iterable[Any]) -> dict[str, frozenset[str] | None]:
    """Each sample path of :func:`route_paths` and the methods its routes answer (None when
    one of them does not say: a Mount's app, a WebSocketRoute, a Route without methods)."""
    return _merged(_walk(routes, "", []))


def _merged(walked: list[tuple[str, frozenset[str] | None]]) -> dict[str, frozenset[str] | None]:
    found: dict[str, frozenset[str] | None] = {}
    for path, methods in walked:
        known = found.get(path, frozenset())
        found[path] = None if methods is None or known is None else known | methods
    return found


def check_routes(
    app: Any, protect: Iterable[str], exclude: Iterable[str] = (), public: Iterable[str] = ()
) -> list[str]:
    """Start-up check: log (and return) a warning for each route the patterns may leave open
    -- a near miss such as ``protect=["/admin/*"]`` with a route ``/admin``, see
    :func:`~sms2fa_middleware.guard.paths.route_warnings` -- unless ``exclude`` or
    ``public`` (routes deliberately open) matches it, for each protect pattern or rule that
    matches no route, for each route whose methods (``route.methods``) a rule covers only in
    part and each rule whose routes answer none of its methods
    (:func:`~sms2fa_middleware.guard.rule_checks.method_warnings`), and for each route entry
    whose path cannot be read. ``app`` is a Starlette or FastAPI app (its ``routes``;
    included routers and Mounts followed)."""
    unread: list[str] = []
    walked = _walk(app.routes, "", unread)
    protect = [protect] if isinstance(protect, str) else list(protect)
    warnings = route_warnings([path for path, _ in walked], protect, exclude, public)
    warnings += method_warnings(_merged(walked), protect, exclude, public)
    warnings += [
        f"a route entry of type {name} has no path: its routes were not checked"
        for name in dict.fromkeys(unread)
    ]
    return route_checks.logged(warnings)


__all__ = [
    "check_routes",
    "jinja2_render",
    "require_verified",
    "route_methods",
    "route_paths",
    "session_identify",
    "verified_required",
]
