"""Apps for tests/security/test_path_spellings.py: every view answers with a marker naming
itself, so a test can tell from the raw response whether a protected view ran. Served by
real servers as subprocesses in the repository's directory
(``gunicorn tests.support.path_apps:flask_app``,
``uvicorn tests.support.path_apps:starlette_app``,
``python -m tests.support.path_apps werkzeug PORT``), configured from the environment
(Settings.from_env).

Protected views deliberately skip the route-level check and never read the identity: a
request that reaches one has walked around the middleware, and the marker shows it.
"""

from __future__ import annotations

import sys
from typing import Any

MARKER = "SMS2FA-TEST-VIEW:"
PROTECT = ["/account", "/admin", "/café", "/数据", "/reports/"]
EXCLUDE = ["/account/help"]
#: route (Flask/Starlette spelling, no variables) -> view name, protected or not
PROTECTED_ROUTES = {
    "/account": "account",
    "/admin/users": "users",
    "/café": "cafe",
    "/数据": "cjk",
    "/reports": "reports",
    "/account/helpers/delete": "helpers",
}
OPEN_ROUTES = {"/public": "public", "/account/help": "help"}
PROTECTED_VIEWS = sorted(PROTECTED_ROUTES.values())
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def identify(request: Any) -> Any:
    """Logged in (``X-User: alice``), never verified in these tests."""
    from sms2fa_middleware import Identity

    user = request.headers.get("x-user")
    return Identity(user, "+12065550100") if user == "alice" else None


def marker(name: str) -> str:
    return f"{MARKER}{name}"


def make_flask(guarded: bool = True, settings: Any = None) -> Any:
    """A Flask app with the routes above, its wsgi_app wrapped in the middleware."""
    from flask import Flask

    from sms2fa_middleware import Settings
    from sms2fa_middleware.wsgi import SMS2FAMiddleware

    app = Flask("sms2fa_path_apps")

    def view(name: str) -> Any:
        def answer() -> Any:
            return marker(name), 200, {"x-view": marker(name)}

        answer.__name__ = name
        return answer

    for route, name in {**PROTECTED_ROUTES, **OPEN_ROUTES}.items():
        app.add_url_rule(
            route, view_func=view(name), methods=METHODS, strict_slashes=route != "/reports"
        )
    if guarded:
        app.wsgi_app = SMS2FAMiddleware(  # type: ignore[method-assign]
            app.wsgi_app,
            settings or Settings.from_env(),
            protect=PROTECT,
            exclude=EXCLUDE,
            identify=identify,
            login_url="/login",
        )
    return app


def make_starlette(guarded: bool = True, settings: Any = None) -> Any:
    """A Starlette app with the routes above, wrapped in the middleware."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from sms2fa_middleware import Settings
    from sms2fa_middleware.asgi import SMS2FAMiddleware

    def view(name: str) -> Any:
        async def answer(request: Request) -> PlainTextResponse:
            return PlainTextResponse(marker(name), headers={"x-view": marker(name)})

        return answer

    routes = [
        Route(route, view(name), methods=METHODS)
        for route, name in {**PROTECTED_ROUTES, **OPEN_ROUTES}.items()
    ]
    app = Starlette(routes=routes)
    if not guarded:
        return app
    return SMS2FAMiddleware(
        app,
        settings or Settings.from_env(),
        protect=PROTECT,
        exclude=EXCLUDE,
        identify=identify,
        login_url="/login",
    )


def flask_app() -> Any:
    """For gunicorn: ``gunicorn 'tests.support.path_apps:flask_app()'``."""
    return make_flask()


def dispatched_flask_app() -> Any:
    """The guarded Flask app under werkzeug's DispatcherMiddleware at ``/app``; an empty
    Flask app (every path a 404) at ``/``."""
    from flask import Flask
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    return DispatcherMiddleware(Flask("sms2fa_outer"), {"/app": make_flask()})


def starlette_app() -> Any:
    """For uvicorn (``--factory``), plain or with ``--root-path``."""
    return make_starlette()


def mounted_starlette_app() -> Any:
    """The guarded Starlette app inside a ``Mount("/sub")`` of an app with no other route."""
    from starlette.applications import Starlette
    from starlette.routing import Mount

    return Starlette(routes=[Mount("/sub", app=make_starlette())])


def fastapi_root_path_app(added: bool = False) -> Any:
    """For uvicorn (``--factory``): ``FastAPI(root_path="/api")`` with ``/users/me``
    protected and ``/public`` open, wrapped as the README shows (``SMS2FAMiddleware(api,
    ...)``), or with ``added=True`` through ``api.add_middleware``. FastAPI writes its root
    path into the scope inside its own ``__call__`` and routes the path minus it, so both
    ``/api/users/me`` and ``/users/me`` reach the endpoint."""
    from fastapi import FastAPI
    from fastapi.responses import PlainTextResponse

    from sms2fa_middleware import Settings
    from sms2fa_middleware.asgi import SMS2FAMiddleware

    api = FastAPI(root_path="/api")

    @api.get("/users/me")
    def me() -> PlainTextResponse:
        return PlainTextResponse(marker("me"))

    @api.get("/public")
    def public() -> PlainTextResponse:
        return PlainTextResponse(marker("public"))

    options: dict[str, Any] = {
        "protect": ["/users/me"],
        "identify": identify,
        "login_url": "/login",
    }
    if added:
        api.add_middleware(
            SMS2FAMiddleware,
            settings=Settings.from_env(),  # type: ignore[arg-type]
            **options,
        )
        return api
    return SMS2FAMiddleware(api, Settings.from_env(), **options)


def fastapi_root_path_added() -> Any:
    """:func:`fastapi_root_path_app` with the middleware added by ``api.add_middleware``."""
    return fastapi_root_path_app(added=True)


if __name__ == "__main__":  # python -m path_apps werkzeug PORT
    from werkzeug.serving import run_simple

    run_simple("127.0.0.1", int(sys.argv[2]), flask_app(), threaded=True)
