"""Two tiny apps with the same routes -- one Flask (WSGI), one Starlette (ASGI) -- each wrapped
in its adapter's ``SMS2FAMiddleware`` and served for real on 127.0.0.1 in a background thread.

Routes (identical in both):

* ``/``, ``/public/x``          public pages
* ``/public/form``              (Flask) a page with a form that posts to ``/account``, and a
                                button that calls ``/api/data`` as htmx does (``HX-Request``,
                                ``HX-Current-URL``) and follows ``HX-Redirect`` as htmx does
* ``/login?user=NAME&next=P``   "logs in": sets a plain ``user`` cookie, 303 to ``safe_next(P)``
* ``/account`` (GET, POST)      protected HTML page naming the verified identity
* ``/account/headers?h=v``      protected; answers "ok" with the query's pairs as headers
* ``/api/data``                 protected JSON with the verified identity
* ``/api/health``               under a protected prefix but excluded
* ``/docs/{name}``              protected when it matches the glob ``/docs/*.pdf``, unless it
                                also matches the excluded glob ``/docs/free-*.pdf``
* ``/logout`` (POST)            revokes the user's verified sessions through the middleware
* ``/logout/device`` (POST)     revokes this session only, through the middleware found on
                                the request (``environ`` / ``request.state``)
* ``/account/mine``             protected; the app's own login check first: 401 with its
                                own body and ``WWW-Authenticate: Bearer`` when anonymous
* ``/ws``, ``/public/ws``       websockets, protected and not (Starlette only)

Frameworks: ``flask``, ``starlette`` (a plain wrapper) and ``starlette-stack`` (Starlette's
``middleware=[Middleware(SMS2FAMiddleware, ...)]``).

Who is asking comes from an ``X-User`` header or the ``user`` cookie, looked up in a ``users``
dict (user -> phone number) that the test owns and may change.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

PROTECT = ["/account", "/api", "/ws", "/docs/*.pdf"]
EXCLUDE = ["/api/health", "/docs/free-*.pdf"]
LOGIN_URL = "/login"

Users = MutableMapping[str, str]

# What htmx does with HX-Redirect (a full-page client-side redirect), in a few lines of its
# own: the library is not a Python package, and the header's meaning is all that is tested.
FORM_PAGE = """<!doctype html><title>Form</title>
<form method="post" action="/account"><textarea name="note" id="note"></textarea>
<button type="submit" id="send">Post</button></form>
<button id="htmx" type="button">Refresh data</button>
<script>
document.getElementById("htmx").onclick = async function () {
  const answer = await fetch("/api/data", {headers: {"HX-Request": "true",
                                                     "HX-Current-URL": location.href}});
  const target = answer.headers.get("HX-Redirect");
  if (target) { window.location.href = target; }
};
</script>"""


def make_identify(users: Users) -> Callable[[Any], Any]:
    """identify() for both frameworks: werkzeug and starlette requests both have these."""
    from sms2fa_middleware import Identity

    def identify(request: Any) -> Identity | None:
        user = request.headers.get("x-user") or request.cookies.get("user")
        number = users.get(user) if user else None
        return Identity(user, number) if number else None

    return identify


def _identity_dict(identity: Any) -> dict[str, Any] | None:
    return (
        None if identity is None else {"auth_id": identity.auth_id, "recipient": identity.recipient}
    )


def flask_app(users: Users, settings: Any, **options: Any) -> tuple[Any, Any]:
    """(the WSGI app to serve, the middleware)."""
    from flask import Flask, jsonify, make_response, redirect, request

    from sms2fa_middleware.guard import safe_next
    from sms2fa_middleware.wsgi import ENVIRON_KEY, SMS2FAMiddleware

    app = Flask("sms2fa_test_flask")

    @app.get("/")
    def home() -> str:
        return "home"

    @app.get("/public/x")
    def public() -> str:
        return "public x"

    @app.get("/public/form")
    def form() -> str:
        return FORM_PAGE

    @app.get("/login")
    def login() -> Any:
        response = make_response(redirect(safe_next(request.args.get("next")), 303))
        user = request.args.get("user")
        if user in users:
            response.set_cookie("user", user)
        return response

    @app.post("/logout")
    def logout() -> Any:
        user = request.headers.get("x-user") or request.cookies.get("user")
        if user:
            middleware.revoke(user)
        return redirect("/", 303)

    @app.post("/logout/device")
    def logout_device() -> Any:
        response = make_response(redirect("/", 303))
        for name, value in request.environ["sms2fa.middleware"].revoke_session(request):
            response.headers.add(name, value)
        return response

    @app.get("/account/mine")
    def mine() -> Any:
        if not (request.headers.get("x-user") or request.cookies.get("user")):
            return jsonify({"detail": "Not authenticated"}), 401, {"WWW-Authenticate": "Bearer"}
        return f"mine of {request.environ[ENVIRON_KEY].auth_id}"

    @app.route("/account", methods=["GET", "POST"])
    def account() -> str:
        return f"account of {request.environ[ENVIRON_KEY].auth_id}"

    @app.get("/account/headers")
    def headers() -> Any:
        response = make_response("ok")
        for name, value in request.args.items():
            response.headers[name] = value
        return response

    @app.get("/api/data")
    def data() -> Any:
        return jsonify(_identity_dict(request.environ[ENVIRON_KEY]))

    @app.get("/api/health")
    def health() -> Any:
        return jsonify({"ok": True, "identity": _identity_dict(request.environ.get(ENVIRON_KEY))})

    @app.get("/docs/<name>")
    def docs(name: str) -> Any:
        return jsonify({"doc": name, "identity": _identity_dict(request.environ.get(ENVIRON_KEY))})

    # ``render_with``: a hook made from this app (``flask_render``), which needs the app first.
    render_with = options.pop("render_with", None)
    if render_with is not None:
        options["render"] = render_with(app)
    options = {
        "protect": PROTECT,
        "exclude": EXCLUDE,
        "identify": make_identify(users),
        "login_url": LOGIN_URL,
        **options,
    }
    middleware = SMS2FAMiddleware(app.wsgi_app, settings, **options)
    app.wsgi_app = middleware  # type: ignore[method-assign]
    return app, middleware


def starlette_app(
    users: Users, settings: Any, lifespan_log: list[str], stack: bool = False, **options: Any
) -> tuple[Any, Any]:
    """(the ASGI app to serve, the middleware); ``lifespan_log`` records start-up/shut-down.

    ``stack``: add the middleware as ``Middleware(SMS2FAMiddleware, ...)`` in Starlette's own
    list rather than wrapping the app."""
    import anyio
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse
    from starlette.routing import Route, WebSocketRoute
    from starlette.websockets import WebSocket

    from sms2fa_middleware.asgi import SMS2FAMiddleware
    from sms2fa_middleware.guard import safe_next

    def identity_of(request: Any) -> Any:
        return getattr(request.state, "sms2fa", None)

    async def home(request: Request) -> PlainTextResponse:
        return PlainTextResponse("home")

    async def public(request: Request) -> PlainTextResponse:
        return PlainTextResponse("public x")

    async def login(request: Request) -> RedirectResponse:
        response = RedirectResponse(safe_next(request.query_params.get("next")), 303)
        user = request.query_params.get("user")
        if user in users:
            response.set_cookie("user", user)
        return response

    async def logout(request: Request) -> RedirectResponse:
        user = request.headers.get("x-user") or request.cookies.get("user")
        if user:
            await anyio.to_thread.run_sync(middleware.revoke, user)
        return RedirectResponse("/", 303)

    async def logout_device(request: Request) -> RedirectResponse:
        found = request.state.sms2fa_middleware
        headers = await anyio.to_thread.run_sync(found.revoke_session, request)
        response = RedirectResponse("/", 303)
        for name, value in headers:
            response.headers.append(name, value)
        return response

    async def mine(request: Request) -> Any:
        if not (request.headers.get("x-user") or request.cookies.get("user")):
            return JSONResponse(
                {"detail": "Not authenticated"}, 401, headers={"WWW-Authenticate": "Bearer"}
            )
        return PlainTextResponse(f"mine of {request.state.sms2fa.auth_id}")

    async def account(request: Request) -> PlainTextResponse:
        return PlainTextResponse(f"account of {request.state.sms2fa.auth_id}")

    async def headers(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok", headers=dict(request.query_params))

    async def data(request: Request) -> JSONResponse:
        return JSONResponse(_identity_dict(request.state.sms2fa))

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True, "identity": _identity_dict(identity_of(request))})

    async def docs(request: Request) -> JSONResponse:
        return JSONResponse(
            {"doc": request.path_params["name"], "identity": _identity_dict(identity_of(request))}
        )

    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        identity = identity_of(websocket)
        await websocket.send_text(f"hello {identity.auth_id if identity else 'nobody'}")
        await websocket.close()

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        lifespan_log.append("startup")
        yield
        lifespan_log.append("shutdown")

    routes = [
        Route("/", home),
        Route("/public/x", public),
        Route("/login", login),
        Route("/logout", logout, methods=["POST"]),
        Route("/logout/device", logout_device, methods=["POST"]),
        Route("/account/mine", mine),
        Route("/account", account, methods=["GET", "POST"]),
        Route("/account/headers", headers),
        Route("/api/data", data),
        Route("/api/health", health),
        Route("/docs/{name}", docs),
        WebSocketRoute("/ws", ws),
        WebSocketRoute("/public/ws", ws),
    ]
    options = {
        "protect": PROTECT,
        "exclude": EXCLUDE,
        "identify": make_identify(users),
        "login_url": LOGIN_URL,
        **options,
    }
    if not stack:  # a plain wrapper
        middleware = SMS2FAMiddleware(
            Starlette(routes=routes, lifespan=lifespan), settings, **options
        )
        return middleware, middleware
    # Starlette's own middleware list; build the stack now to find our instance in it.
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(SMS2FAMiddleware, settings=settings, **options)],
    )
    app.middleware_stack = app.build_middleware_stack()
    node: Any = app.middleware_stack
    while not isinstance(node, SMS2FAMiddleware):
        node = node.app
    middleware = node
    return app, middleware


@dataclass
class Site:
    """One app served on 127.0.0.1; ``stop()`` ends it."""

    framework: str
    url: str
    middleware: Any
    users: Users
    lifespan_log: list[str] = field(default_factory=list)
    _stop: Callable[[], None] = lambda: None

    def stop(self) -> None:
        self._stop()
        self.middleware.verifier.store.dispose()


def serve(
    framework: str, settings: Any, users: Users, behind_proxy: bool = False, **options: Any
) -> Site:
    """Build ``framework``'s app around ``settings`` and serve it in a background thread.

    ``behind_proxy``: the server believes ``X-Forwarded-Proto`` from 127.0.0.1 (werkzeug's
    ProxyFix around the app; uvicorn's ``proxy_headers``), as when a TLS proxy runs on the same
    host. Otherwise it does not: uvicorn trusts loopback proxies by default, so we turn that off.
    """
    if framework == "flask":
        return _serve_flask(settings, users, behind_proxy, **options)
    if framework == "starlette":
        return _serve_starlette(settings, users, behind_proxy, **options)
    if framework == "starlette-stack":
        return _serve_starlette(settings, users, behind_proxy, stack=True, **options)
    raise ValueError(framework)


def _serve_flask(settings: Any, users: Users, behind_proxy: bool, **options: Any) -> Site:
    from werkzeug.middleware.proxy_fix import ProxyFix
    from werkzeug.serving import make_server

    app, middleware = flask_app(users, settings, **options)
    if behind_proxy:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_proto=1)  # type: ignore[method-assign]
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(5)

    return Site("flask", f"http://127.0.0.1:{server.port}", middleware, users, _stop=stop)


def _serve_starlette(
    settings: Any, users: Users, behind_proxy: bool, stack: bool = False, **options: Any
) -> Site:
    import uvicorn

    log: list[str] = []
    app, middleware = starlette_app(users, settings, log, stack, **options)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=2,
        proxy_headers=behind_proxy,
        forwarded_allow_ips="127.0.0.1",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)

    def stop() -> None:
        server.should_exit = True
        thread.join(5)
        sock.close()

    name = "starlette-stack" if stack else "starlette"
    return Site(name, f"http://127.0.0.1:{port}", middleware, users, log, stop)
