"""Protected paths hold against every router (issue 10).

A table of raw request targets -- sent over a socket exactly as written -- runs against real
servers: gunicorn (sync) and werkzeug's server in front of Flask, Flask under werkzeug's
DispatcherMiddleware, uvicorn in front of Starlette plainly, with ``--root-path`` and inside a
``Mount``. The user is logged in but never verified. For every spelling, either the app does
not route it to a protected view, or the middleware demanded verification: the protected
views' marker (path_apps.py) never appears. A Hypothesis test checks the same property
in-process against the Flask and Starlette routers, and unit tests pin the path rules.
"""

from __future__ import annotations

import asyncio
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sms2fa_middleware import Settings
from sms2fa_middleware.guard.paths import (
    PathPatterns,
    asgi_route_path,
    normalize,
    readings,
    route_warnings,
    wsgi_route_path,
)
from tests.support import ROOT, SECRET, path_apps
from tests.support.path_apps import MARKER, METHODS, PROTECTED_VIEWS, marker
from tests.support.servers import free_port, launch

# Raw request targets; "{m}" is where the guarded app is mounted ("", "/app", "/sub"),
# "{h}" the server's host:port (absolute-form targets).
SPELLINGS = [
    "{m}/account",
    "{m}//account",
    "{m}///account",
    "{m}/%2Faccount",
    "{m}/%2F%2Faccount",
    "{m}/%2faccount",
    "{m}/account/",
    "{m}/account//",
    "{m}//account/",
    "{m}/./account",
    "{m}/public/../account",
    "{m}/public/%2E%2E/account",
    "{m}/public/..%2Faccount",
    "{m}/public%2F..%2Faccount",
    "{m}/%2E/account",
    "{m}/account/.",
    "{m}/x/./../account",
    "{m}/%61ccount",
    "{m}/acc%6Funt",
    "{m}/%61%63%63%6F%75%6E%74",
    "{m}/%2561ccount",
    "{m}/%252Faccount",
    "{m}/ACCOUNT",
    "{m}/Account",
    "{m}/account;x=1",
    "{m}/account;",
    "{m}/;x/account",
    "{m}/account%3Bx",
    "{m}/\\account",
    "{m}/%5Caccount",
    "{m}/public\\..\\account",
    "{m}/public%5C..%5Caccount",
    "{m}/account%00",
    "{m}/account%00.html",
    "{m}/account%20",
    "{m}/account?next=/",
    "{m}/account#frag",
    "http://{h}{m}/account",
    "http://{h}{m}//account",
    "http://evil.example{m}/account",
    "{m}//admin/users",
    "{m}/admin//users",
    "{m}/admin/./users",
    "{m}/%2Fadmin/users",
    "{m}/admin%2Fusers",
    "{m}/admin/users/",
    "{m}/admin/users;",
    "{m}/caf%C3%A9",
    "{m}/caf%c3%a9",
    "{m}//caf%C3%A9",
    "{m}/caf%C3%A9/",
    "{m}/café",
    "{m}/caf%E9",
    "{m}/cafe%CC%81",
    "{m}/%E6%95%B0%E6%8D%AE",
    "{m}//%E6%95%B0%E6%8D%AE",
    "{m}/数据",
    "{m}/reports",
    "{m}/reports/",
    "{m}//reports",
    "{m}/account/helpers/delete",
    "{m}//account/helpers/delete",
    "{m}/account/help/../helpers/delete",
    "{m}/account/help%2F..%2Fhelpers/delete",
]
ALL_METHODS_ON = ["{m}/account", "{m}//account", "{m}/%2Faccount", "{m}/caf%C3%A9"]
CASES = [("GET", s) for s in SPELLINGS] + [
    (method, s) for s in ALL_METHODS_ON for method in METHODS if method != "GET"
]


@dataclass
class Server:
    name: str
    port: int
    mount: str  # where the guarded app sits, as the client spells it


# name -> (python -m args with {port}, the mount the client sees)
SERVERS: dict[str, tuple[list[str], str]] = {
    "gunicorn": (
        ["gunicorn", "-w", "1", "-b", "127.0.0.1:{port}", "tests.support.path_apps:flask_app()"],
        "",
    ),
    "werkzeug": (["tests.support.path_apps", "werkzeug", "{port}"], ""),
    "gunicorn-dispatcher": (
        [
            "gunicorn",
            "-w",
            "1",
            "-b",
            "127.0.0.1:{port}",
            "tests.support.path_apps:dispatched_flask_app()",
        ],
        "/app",
    ),
    "uvicorn": (
        ["uvicorn", "--factory", "--port", "{port}", "tests.support.path_apps:starlette_app"],
        "",
    ),
    "uvicorn-root-path": (
        [
            "uvicorn",
            "--factory",
            "--port",
            "{port}",
            "--root-path",
            "/api",
            "tests.support.path_apps:starlette_app",
        ],
        "",
    ),
    "uvicorn-mount": (
        [
            "uvicorn",
            "--factory",
            "--port",
            "{port}",
            "tests.support.path_apps:mounted_starlette_app",
        ],
        "/sub",
    ),
}


@pytest.fixture(scope="module", params=list(SERVERS))
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    """One real server per kind, shared by this module's tests (console SMS, SQLite)."""
    args, mount = SERVERS[request.param]
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="sms2fa-paths-") as tmp:
        env = {
            "SMS2FA_SECRET_KEY": SECRET,
            "SMS2FA_SMS_BACKEND": "console",
            "SMS2FA_DATABASE_URL": f"sqlite:///{Path(tmp) / 'paths.db'}",
        }
        argv = [a.replace("{port}", str(port)) for a in args]
        with launch(argv, env, port, path=f"{mount}/public", log_path=Path(tmp) / "log", cwd=ROOT):
            yield Server(request.param, port, mount)


def raw_request(
    port: int, method: str, target: str, accept: str = "application/json", user: str = "alice"
) -> bytes:
    """Send ``target`` byte for byte (UTF-8 where not ASCII) as a logged-in, unverified
    user's request (``user=""``: anonymous); the whole raw response."""
    who = f"X-User: {user}\r\n" if user else ""
    head = (
        f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{who}"
        f"Accept: {accept}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode("utf-8"))
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def leaked_views(response: bytes) -> list[str]:
    text = response.decode("latin-1")
    return [view for view in PROTECTED_VIEWS if marker(view) in text]


def test_the_marker_is_seen_on_open_views(server: Server) -> None:
    """Sanity: the check below can see a view's marker (here on views that are not
    protected), so its silence on protected views means something."""
    for path, name in (("/public", "public"), ("/account/help", "help")):
        response = raw_request(server.port, "GET", f"{server.mount}{path}")
        assert marker(name).encode() in response, (server.name, path, response[:300])


def test_no_spelling_reaches_a_protected_view_unverified(server: Server) -> None:
    assert len(SPELLINGS) >= 40
    host = f"127.0.0.1:{server.port}"
    leaks = []
    for method, spelling in CASES:
        target = spelling.replace("{m}", server.mount).replace("{h}", host)
        response = raw_request(server.port, method, target)
        if leaked_views(response):
            status_line = response.split(b"\r\n", 1)[0]
            leaks.append(f"{method} {target} -> {status_line!r}")
    assert not leaks, f"{server.name}: protected views ran without verification:\n" + "\n".join(
        leaks
    )


def test_plain_protected_paths_demand_verification(server: Server) -> None:
    """The canonical spellings get the middleware's answer, 401 VerificationRequired."""
    for path in path_apps.PROTECTED_ROUTES:
        target = server.mount + quote(path)
        response = raw_request(server.port, "GET", target)
        assert response.startswith(b"HTTP/1.1 401"), (server.name, target, response[:200])
        assert b"VerificationRequired" in response


# Where each server's app lives as the browser sees it (the root path): a proxy in front of
# "uvicorn --root-path /api" strips /api, so its requests arrive without it.
ROOTS = {
    "gunicorn": "",
    "werkzeug": "",
    "gunicorn-dispatcher": "/app",
    "uvicorn": "",
    "uvicorn-root-path": "/api",
    "uvicorn-mount": "/sub",
}


def _location(response: bytes) -> str:
    for line in response.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        name, _, value = line.decode("latin-1").partition(":")
        if name.lower() == "location":
            return value.strip()
    raise AssertionError(response[:300])


def test_redirects_start_at_the_apps_root_path(server: Server) -> None:
    """Behind a Mount, DispatcherMiddleware or --root-path, the challenge, its form and the
    login redirect stay inside the app (they once went to /sms2fa/... at the host's root)."""
    root = ROOTS[server.name]
    html = "text/html,application/xhtml+xml"
    first = raw_request(server.port, "GET", f"{server.mount}/account?tab=2", accept=html)
    assert first.startswith(b"HTTP/1.1 303"), (server.name, first[:300])
    location = _location(first)
    next_url = quote(f"{root}/account?tab=2", safe="")
    assert location == f"{root}/sms2fa/challenge?next={next_url}", server.name
    page = raw_request(server.port, "GET", server.mount + location[len(root) :], accept=html)
    assert page.startswith(b"HTTP/1.1 200"), (server.name, page[:300])
    assert f'action="{root}/sms2fa/challenge"'.encode() in page
    assert f'action="{root}/sms2fa/challenge/resend"'.encode() in page
    assert f'name="next" value="{root}/account?tab=2"'.encode() in page
    anonymous = raw_request(server.port, "GET", f"{server.mount}/account", accept=html, user="")
    assert _location(anonymous) == f"{root}/login?next={quote(root + '/account', safe='')}"


# -- in-process: Hypothesis against the Flask and Starlette routers ----------------------------

_SETTINGS = None


def _settings() -> Settings:
    global _SETTINGS
    if _SETTINGS is None:
        tmp = tempfile.mkdtemp(prefix="sms2fa-paths-")
        _SETTINGS = Settings(
            secret_key=SECRET,
            sms_backend="console",
            database_url=f"sqlite:///{Path(tmp) / 'paths.db'}",
        )
    return _SETTINGS


@st.composite
def spellings(draw: st.DrawFn) -> str:
    """A decoded path (what a server hands the app) that some router could read as a
    protected route: slashes doubled, dot segments, backslashes, ';' parameters, trailing
    slashes, a second layer of percent-encoding, control characters."""
    route = draw(st.sampled_from(list(path_apps.PROTECTED_ROUTES)))
    out = ""
    for segment in route.strip("/").split("/"):
        out += draw(st.sampled_from(["/", "//", "///", "\\", "/./", "/x/../", "/.//", "/;p/"]))
        if draw(st.booleans()):
            i = draw(st.integers(0, len(segment) - 1))
            segment = segment[:i] + quote(segment[i], safe="") + segment[i + 1 :]
        out += segment
        out += draw(st.sampled_from(["", "", ";a=b", "\x00", "%2F", "/.", "/"]))
    return out + draw(st.sampled_from(["", "/", "//", "/.", "/x/.."]))


def _call_wsgi(app: Any, path: str) -> bytes:
    from werkzeug.test import EnvironBuilder

    environ = EnvironBuilder(path="/", headers={"X-User": "alice"}).get_environ()
    environ["PATH_INFO"] = path.encode("utf-8").decode("latin-1")  # PEP 3333
    out: list[bytes] = []
    body = app(
        environ,
        lambda status, headers, exc_info=None: out.append(
            f"{status} {headers}".encode("latin-1", "replace")
        ),
    )
    return b"".join([*out, *body])


def _call_asgi(app: Any, path: str, root_path: str = "") -> bytes:
    scope = {
        "type": "http",
        "method": "GET",
        "path": root_path + path,
        "root_path": root_path,
        "raw_path": (root_path + path).encode("utf-8", "surrogatepass"),
        "query_string": b"",
        "headers": [(b"x-user", b"alice")],
        "scheme": "http",
        "server": ("127.0.0.1", 80),
        "client": ("127.0.0.1", 1),
        "http_version": "1.1",
        "state": {},
    }
    out: list[bytes] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        out.append(repr(message.get("headers", "")).encode() + message.get("body", b""))

    asyncio.run(app(scope, receive, send))
    return b"".join(out)


@pytest.fixture(scope="module")
def flask_guarded() -> Any:
    return path_apps.make_flask(settings=_settings())


@pytest.fixture(scope="module")
def starlette_guarded() -> Any:
    return path_apps.make_starlette(settings=_settings())


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(path=spellings())
def test_property_flask_router(flask_guarded: Any, path: str) -> None:
    assert not leaked_views(_call_wsgi(flask_guarded, path)), path


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(path=spellings(), root=st.sampled_from(["", "/api"]))
def test_property_starlette_router(starlette_guarded: Any, path: str, root: str) -> None:
    assert not leaked_views(_call_asgi(starlette_guarded, path, root)), (root, path)


def test_the_routers_do_route_odd_spellings() -> None:
    """The property above is not vacuous: unguarded, the routers run protected views for
    odd spellings (werkzeug strips leading slashes and merges repeated ones)."""
    flask_open = path_apps.make_flask(guarded=False)
    assert leaked_views(_call_wsgi(flask_open, "//account")) == ["account"]
    assert leaked_views(_call_wsgi(flask_open, "/reports/")) == ["reports"]
    starlette_open = path_apps.make_starlette(guarded=False)
    assert leaked_views(_call_asgi(starlette_open, "/account", "/api")) == ["account"]


# -- unit tests of the rules -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/account", {"/account"}),
        ("//account/", {"/account"}),
        ("/x/../account/.", {"/account"}),
        ("/%61ccount", {"/%61ccount", "/account"}),
        ("/\\account", {"/\\account", "/account"}),
        ("/account;x=1/y", {"/account;x=1/y", "/account/y"}),
        ("/account\x00.html", {"/account\x00.html", "/account.html", "/account"}),
        ("http://h/account", {"/http:/h/account", "/account"}),
        ("../../account", {"/account"}),
    ],
)
def test_readings(path: str, expected: set[str]) -> None:
    assert readings(path) == expected


def test_invalid_utf8_has_both_readings() -> None:
    path = wsgi_route_path("/caf\xe9")  # PATH_INFO for the bytes /caf\xe9: not UTF-8
    assert readings(path) == {"/caf\ufffd", "/café"}
    assert wsgi_route_path("/caf\xc3\xa9") == "/café"


def test_asgi_route_path_strips_root_path_as_starlette_does() -> None:
    assert asgi_route_path({"path": "/api/account", "root_path": "/api"}) == "/account"
    assert asgi_route_path({"path": "/api", "root_path": "/api"}) == "/"
    assert asgi_route_path({"path": "/apix/account", "root_path": "/api"}) == "/apix/account"
    assert asgi_route_path({"path": "/other", "root_path": "/api"}) == "/other"


@pytest.mark.parametrize(
    ("pattern", "yes", "no"),
    [
        ("/admin", ["/admin", "/admin/x", "/admin/x/y"], ["/administrator", "/", "/adm"]),
        ("/reports/", ["/reports", "/reports/2024"], ["/reportsx"]),
        ("/", ["/", "/anything/at/all"], []),
        ("/admin/*", ["/admin/x", "/admin/x/y"], ["/admin", "/adminx/y"]),
        ("/docs/*.pdf", ["/docs/a.pdf", "/docs/a.pdf/raw"], ["/docs/a.txt", "/docs/x/a.pdf"]),
        ("/docs/**/*.pdf", ["/docs/a.pdf", "/docs/x/y/a.pdf"], ["/docs/a.txt"]),
        ("/a/**", ["/a", "/a/b/c"], ["/ab"]),
        ("/u/?", ["/u/1", "/u/1/x"], ["/u/12", "/u"]),
        ("/v[12]/x", ["/v1/x", "/v2/x/y"], ["/v3/x"]),
        ("/v[!12]/x", ["/v3/x"], ["/v1/x", "/v//x"]),
        ("/docs//*.pdf", ["/docs/a.pdf"], ["/docs"]),
    ],
)
def test_patterns_match_whole_segments(pattern: str, yes: list[str], no: list[str]) -> None:
    patterns = PathPatterns([pattern])
    for path in yes:
        assert patterns.match(normalize(path)), (pattern, path)
    for path in no:
        assert not patterns.match(normalize(path)), (pattern, path)


def test_patterns_are_written_decoded() -> None:
    with pytest.raises(ValueError, match="decoded"):
        PathPatterns(["/caf%C3%A9"])
    assert PathPatterns(["/docs//*.pdf"]).literals == ("/docs/",)


def test_exclude_is_segment_aware_too() -> None:
    from sms2fa_middleware.guard import PASS, PROTECTED, Guard

    guard = Guard(_settings(), protect=["/account"], exclude=["/account/help"])
    assert guard.classify("/account/help") == PASS
    assert guard.classify("/account/help/faq") == PASS
    assert guard.classify("/account/helpers/delete") == PROTECTED
    assert guard.classify("/account/help/../delete") == PROTECTED
    assert guard.classify("/administrator") == PASS


def test_route_warnings() -> None:
    warnings = route_warnings(["/", "/admin", "/admin/x", "/public"], ["/admin/*", "/acount"])
    assert any("'/admin' is not protected" in w for w in warnings)
    assert any("'/acount' matches no route" in w for w in warnings)
    assert route_warnings(["/account", "/account/help"], ["/account"], ["/account/help"]) == []


def test_route_warnings_for_flask_and_starlette_apps() -> None:
    from flask import Flask
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount, Route

    from sms2fa_middleware.flask import check_routes as check_flask
    from sms2fa_middleware.starlette import check_routes as check_starlette

    flask = Flask("sms2fa_check")
    flask.add_url_rule("/admin", "admin", lambda: "a")
    flask.add_url_rule("/admin/<int:uid>", "user", lambda uid: "u")
    assert check_flask(flask, ["/admin/*"]) == [
        "route '/admin' is not protected, though protect has '/admin/*', which protects "
        "'/admin/x'; protect it too, or declare it public"
    ]

    async def view(request: Any) -> PlainTextResponse:
        return PlainTextResponse("x")

    star = Starlette(
        routes=[Route("/admin", view), Mount("/admin", routes=[Route("/{uid}", view)])]
    )
    assert check_starlette(star, ["/admin/*"]) == [
        "route '/admin' is not protected, though protect has '/admin/*', which protects "
        "'/admin/x'; protect it too, or declare it public"
    ]
    assert check_starlette(star, ["/admin"]) == []


# -- the route-level checks: a route the patterns miss fails closed ------------------------------


def test_flask_view_decorator_refuses_what_the_middleware_did_not_verify() -> None:
    from flask import Flask

    from sms2fa_middleware.flask import verified_required
    from sms2fa_middleware.wsgi import SMS2FAMiddleware

    app = Flask("sms2fa_decorated")

    @app.get("/account/settings")
    @verified_required
    def settings_view() -> str:
        return marker("account")

    @app.get("/missed")
    @verified_required
    def missed() -> str:  # its path is in no protect pattern
        return marker("account")

    app.wsgi_app = SMS2FAMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, _settings(), protect=["/account"], identify=path_apps.identify
    )
    client = app.test_client()
    assert client.get("/account/settings", headers={"X-User": "alice"}).status_code == 401
    missed_response = client.get("/missed", headers={"X-User": "alice"})
    assert missed_response.status_code == 403
    assert MARKER not in missed_response.get_data(as_text=True)


def test_starlette_decorator_and_dependency_refuse_what_the_middleware_did_not_verify() -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from sms2fa_middleware.asgi import SMS2FAMiddleware
    from sms2fa_middleware.starlette import require_verified, verified_required

    @verified_required
    async def missed(request: Request) -> PlainTextResponse:
        return PlainTextResponse(marker("account"))

    async def missed_too(request: Request) -> PlainTextResponse:
        require_verified(request)
        return PlainTextResponse(marker("account"))

    app = SMS2FAMiddleware(
        Starlette(routes=[Route("/missed", missed), Route("/missed-too", missed_too)]),
        _settings(),
        protect=["/account"],
        identify=path_apps.identify,
    )
    with TestClient(app) as client:
        for path in ("/missed", "/missed-too"):
            response = client.get(path, headers={"X-User": "alice"})
            assert response.status_code == 403, path
            assert MARKER not in response.text
