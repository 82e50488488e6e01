"""The start-up route audit: warnings only for near misses of a protect pattern, routes
declared public, FastAPI's included routers enumerated, and ``sms2fa check-routes`` with an
exit status for CI. (Django's URLconf audit: adapters/test_django_routing.py.)"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from sms2fa_middleware.guard.paths import near_miss, route_warnings
from sms2fa_middleware.starlette import check_routes as check_starlette
from tests.support import ROOT

EXAMPLE_DJANGO = ROOT / "examples" / "django_app"

CATALOG = [
    "/",
    "/catalog",
    "/catalog/books",
    "/catalog/book/x",
    "/catalog/authors",
    "/catalog/author/x",
    "/catalog/book/create",
    "/catalog/book/x/update",
    "/catalog/author/create",
    "/catalog/author/x/update",
    "/admin",
    "/admin/users/x",
]


@pytest.mark.parametrize(
    ("pattern", "route", "protected"),
    [
        ("/admin/*", "/admin", "/admin/x"),  # the area's own page
        ("/admin/**/*", "/admin", "/admin/x"),
        ("/api/*/admin/*", "/api/v1/admin", "/api/v1/admin/x"),
        ("/u/??", "/u", "/u/xx"),
        ("/files/secret-*.pdf", "/files/secret-notes", "/files/secret-x.pdf"),  # literal head
        ("/v[12]/x", "/v3/x", "/v1/x"),
        ("/report[0-9]", "/reports", "/report0"),
    ],
)
def test_a_near_miss_is_reported(pattern: str, route: str, protected: str) -> None:
    assert near_miss(pattern, route) == protected


@pytest.mark.parametrize(
    ("pattern", "route"),
    [
        ("/catalog/*/create", "/catalog/books"),  # beside the match: no reading of it
        ("/catalog/*/create", "/catalog"),
        ("/catalog/*/*/update", "/catalog/book/x"),
        ("/docs/*.pdf", "/docs"),  # a listing, not the PDFs
        ("/v[12]/x", "/videos"),
        ("/admin/?", "/admin/users"),
        ("/admin", "/administrator"),  # plain patterns cover all below
        ("/*", "/"),  # the home page
    ],
)
def test_what_is_no_near_miss(pattern: str, route: str) -> None:
    assert near_miss(pattern, route) is None


def test_public_pages_beside_a_protected_glob_are_not_reported() -> None:
    protect = ["/catalog/*/create", "/catalog/*/*/update", "/admin"]
    assert route_warnings(CATALOG, protect) == []
    warnings = route_warnings(CATALOG, ["/catalog/*/create", "/admin/*"])
    assert warnings == [
        "route '/admin' is not protected, though protect has '/admin/*', "
        "which protects '/admin/x'; protect it too, or declare it public"
    ]
    assert route_warnings(CATALOG, ["/catalog/*/create", "/admin/*"], public=["/admin"]) == []
    # public silences the warning only: a protected route still counts as a match
    assert route_warnings(["/admin/x"], ["/admin/*"], public=["/admin"]) == []


def flask_app(protect: list[str] | None = None) -> Any:
    from flask import Blueprint, Flask

    app = Flask("sms2fa_audit")
    for rule in (
        "/",
        "/catalog/",
        "/catalog/books/",
        "/catalog/book/<int:pk>",
        "/catalog/book/create/",
        "/catalog/book/<int:pk>/update/",
    ):
        app.add_url_rule(rule, rule, lambda **kw: "x")
    admin = Blueprint("admin", "admin", url_prefix="/admin")
    admin.add_url_rule("/", "index", lambda: "x")
    admin.add_url_rule("/users/<int:uid>", "user", lambda uid: "x")
    app.register_blueprint(admin)
    return app


def test_flask_routes_and_blueprints() -> None:
    from sms2fa_middleware.flask import check_routes

    app = flask_app()
    assert check_routes(app, ["/catalog/*/create", "/catalog/*/*/update", "/admin"]) == []
    assert check_routes(app, ["/catalog/*/create", "/admin/*"]) == [
        "route '/admin/' is not protected, though protect has '/admin/*', which protects "
        "'/admin/x'; protect it too, or declare it public"
    ]
    assert check_routes(app, ["/catalog/*/create", "/admin/*"], public=["/admin"]) == []


def fastapi_app() -> Any:
    from fastapi import APIRouter, FastAPI
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount, Route

    async def view(request: Any) -> PlainTextResponse:
        return PlainTextResponse("x")

    app = FastAPI()
    catalog = APIRouter(prefix="/catalog")
    for path in ("/", "/books", "/book/{pk}", "/book/create", "/book/{pk}/update"):
        catalog.add_api_route(path, lambda: "x", methods=["GET"])
    admin = APIRouter(prefix="/admin")
    admin.add_api_route("", lambda: "x", methods=["GET"])
    users = APIRouter(prefix="/users")
    users.add_api_route("/{uid}", lambda uid: "x", methods=["GET"])
    admin.include_router(users)  # nested: /admin/users/{uid}
    app.include_router(catalog)
    app.include_router(admin, prefix="/v2")  # /v2/admin, /v2/admin/users/{uid}
    app.mount("/files", Mount("", routes=[Route("/report", view)]))
    app.mount("/static", view)  # an app whose routes cannot be read: what is below it
    return app


def test_fastapi_included_routers_are_enumerated() -> None:
    from sms2fa_middleware.starlette import check_routes, route_paths

    app = fastapi_app()
    assert {
        "/catalog/",
        "/catalog/books",
        "/catalog/book/x/update",
        "/v2/admin",
        "/v2/admin/users/x",
        "/files/report",
    } <= set(route_paths(app.routes))
    assert (
        check_routes(app, ["/catalog/*/create", "/catalog/*/*/update", "/v2/admin", "/files"]) == []
    )
    assert check_routes(app, ["/catalog/*/create", "/v2/admin/*"]) == [
        "route '/v2/admin' is not protected, though protect has '/v2/admin/*', which "
        "protects '/v2/admin/x'; protect it too, or declare it public"
    ]
    assert check_routes(app, ["/static/*"]) == []  # /static itself is not its route


def test_a_route_entry_without_a_path_is_reported_not_skipped() -> None:
    from starlette.applications import Starlette
    from starlette.routing import BaseRoute

    class Opaque(BaseRoute):  # what FastAPI's _IncludedRouter looked like to the old check
        pass

    app = Starlette(routes=[Opaque()])
    assert check_starlette(app, ["/admin"]) == [
        "protect pattern '/admin' matches no route",
        "a route entry of type Opaque has no path: its routes were not checked",
    ]


# -- sms2fa check-routes: the exit status CI reads -----------------------------------------------

APPS = """
    import sys
    sys.path.insert(0, {root!r})
    from tests.adapters.test_route_checks import fastapi_app, flask_app
    from sms2fa_middleware import Settings
    from sms2fa_middleware.asgi import SMS2FAMiddleware as ASGI
    from sms2fa_middleware.wsgi import SMS2FAMiddleware as WSGI

    settings = Settings(secret_key="k" * 32, database_url="sqlite:///" + {db!r},
                        sms_backend="console")
    flask = flask_app()
    flask.wsgi_app = WSGI(flask.wsgi_app, settings, identify=lambda env: None,
                          protect=["/catalog/*/create", "/admin/*"])
    fastapi = fastapi_app()
    wrapped = ASGI(fastapi, settings, identify=lambda scope: None,
                   protect=["/catalog/*/create", "/catalog/*/*/update", "/v2/admin"])
"""


def check_routes_cli(
    *args: str,
    cwd: Path,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    import os

    environ = {k: v for k, v in os.environ.items() if not k.startswith("SMS2FA_")}
    environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), environ.get("PYTHONPATH", "")])
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "sms2fa_middleware", "check-routes", *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def apps_dir(tmp_path: Path) -> Path:
    (tmp_path / "audit_apps.py").write_text(
        textwrap.dedent(APPS).format(root=str(ROOT), db=str(tmp_path / "sms2fa.db"))
    )
    return tmp_path


@pytest.mark.server
def test_cli_exit_status_for_flask(apps_dir: Path) -> None:
    # the protect patterns come from the SMS2FAMiddleware around flask.wsgi_app
    done = check_routes_cli("audit_apps:flask", cwd=apps_dir)
    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines() == [
        "route '/admin/' is not protected, though protect has '/admin/*', which protects "
        "'/admin/x'; protect it too, or declare it public"
    ]
    done = check_routes_cli("audit_apps:flask", "--public", "/admin", cwd=apps_dir)
    assert (done.returncode, done.stdout) == (0, ""), done.stderr


@pytest.mark.server
def test_cli_exit_status_for_fastapi(apps_dir: Path) -> None:
    done = check_routes_cli("audit_apps:wrapped", cwd=apps_dir)
    assert (done.returncode, done.stdout) == (0, ""), done.stderr
    done = check_routes_cli("audit_apps:fastapi", "--protect", "/v2/admin/*", cwd=apps_dir)
    assert done.returncode == 1, done.stderr
    assert "route '/v2/admin' is not protected" in done.stdout
    done = check_routes_cli("audit_apps:fastapi", cwd=apps_dir)  # no patterns anywhere
    assert done.returncode == 2 and "--protect" in done.stderr
    done = check_routes_cli("no_such_module:app", cwd=apps_dir)
    assert done.returncode == 2 and "no_such_module" in done.stderr
    (apps_dir / "exits.py").write_text("import sys\nsys.exit('SECRET_KEY is not set')\n")
    done = check_routes_cli("exits:app", cwd=apps_dir)  # its status 1 would read as warnings
    assert done.returncode == 2 and "SECRET_KEY is not set" in done.stderr


@pytest.mark.server
def test_cli_exit_status_for_django(tmp_path: Path) -> None:
    env = {
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "DJANGO_DB_PATH": str(tmp_path / "django.db"),
        "SMS2FA_DATABASE_URL": f"sqlite:///{tmp_path / 'sms2fa.db'}",
    }
    done = check_routes_cli("project.wsgi:application", cwd=EXAMPLE_DJANGO, env=env)
    assert (done.returncode, done.stdout) == (0, ""), done.stderr  # the example's SMS2FA
    done = check_routes_cli(
        "project.asgi:application", "--protect", "/account/*", cwd=EXAMPLE_DJANGO, env=env
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout.startswith("route '/account/' is not protected")
