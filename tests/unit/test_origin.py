"""The challenge posts' Origin check compares scheme, host and port with the host the
framework itself trusts (WSGI: HTTP_HOST, else SERVER_NAME:SERVER_PORT; ASGI: the host
header, else ``scope["server"]``), plus the ``trusted_origins`` option for a proxy that
rewrites Host and for sibling hosts. A refused JSON post is a JSON 403 that says why.

The WSGI and ASGI middleware are called in-process with the environ or scope a server
builds (one without Host cannot be sent through most HTTP clients); Django has its own
file (test_django_origin.py).
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sms2fa_middleware import Identity, Settings
from sms2fa_middleware.asgi import SMS2FAMiddleware as AsgiMiddleware
from sms2fa_middleware.guard import Guard
from sms2fa_middleware.guard.csrf import origin_ok
from sms2fa_middleware.guard.origins import TrustedOrigins
from sms2fa_middleware.messages import Request
from sms2fa_middleware.testing import FakeFlowroute
from sms2fa_middleware.wsgi import SMS2FAMiddleware as WsgiMiddleware
from tests.support import SECRET

ALICE = "+12065550123"
CHALLENGE = "/sms2fa/challenge"
#: A wrong code when none is pending: past the Origin check it is a 400, before it a 403.
PROBE = json.dumps({"code": "0000000"}).encode()


@pytest.fixture
def settings(tmp_path: Path, fake_flowroute: FakeFlowroute) -> Settings:
    return Settings(
        secret_key=SECRET,
        database_url=f"sqlite:///{tmp_path / 'o.db'}",
        **fake_flowroute.settings_kwargs(),
    )


# -- the check, sans-IO ---------------------------------------------------------------------


def _post(origin: str, scheme: str = "http", host: str | None = "x.test", **fields: Any) -> Request:
    return Request(
        "POST", CHALLENGE, headers={"origin": origin}, scheme=scheme, host=host, **fields
    )


@pytest.mark.parametrize(
    ("origin", "scheme", "host", "ok"),
    [
        ("http://x.test", "http", "x.test", True),  # same origin
        ("http://X.TEST", "http", "x.test", True),  # host names ignore case
        ("https://x.test", "http", "x.test", False),  # scheme mismatch
        ("http://x.test", "https", "x.test", False),
        ("http://x.test:80", "http", "x.test", True),  # default port, either way
        ("https://x.test", "https", "x.test:443", True),
        ("http://x.test:8000", "http", "x.test", False),  # another port
        ("http://x.test:8000", "http", "x.test:8000", True),
        ("http://[::1]:8000", "http", "[::1]:8000", True),
        ("http://x.test.evil", "http", "x.test", False),
        ("http://x.test/", "http", "x.test", False),  # no Origin has a path
        ("http://u@x.test", "http", "x.test", False),
        ("http://x.test:port", "http", "x.test", False),
        ("null", "http", "x.test", False),
        ("http://x.test", "http", "", False),  # the adapter knows no host
    ],
)
def test_the_origin_is_compared_by_scheme_host_and_port(
    origin: str, scheme: str, host: str, ok: bool
) -> None:
    assert origin_ok(_post(origin, scheme, host)) is ok


def test_the_trusted_host_wins_over_the_host_header() -> None:
    """What the adapter trusts (``request.host``) is compared, not a Host header it did not
    vouch for; a request built without ``host`` falls back to its Host header."""
    request = Request(
        "POST",
        CHALLENGE,
        headers={"origin": "http://evil.test", "host": "evil.test"},
        host="x.test",
    )
    assert not origin_ok(request)
    assert origin_ok(
        Request("POST", CHALLENGE, headers={"origin": "http://x.test", "host": "x.test"})
    )


def test_trusted_origins_exact_and_wildcard() -> None:
    trusted = TrustedOrigins.parse(
        ["https://app.example.com", "https://*.example.org", "http://side.test:8080"]
    )
    internal = {"host": "10.0.0.5:8000"}  # what the proxy passed on as Host
    for origin, ok in [
        ("https://app.example.com", True),
        ("https://app.example.com:443", True),
        ("http://app.example.com", False),  # scheme is part of it
        ("https://evil.example.com", False),
        ("https://example.org", True),  # as Django: the domain itself
        ("https://a.b.example.org", True),
        ("https://example.org.evil", False),
        ("https://badexample.org", False),
        ("https://a.example.org:8443", False),  # the port too
        ("http://side.test:8080", True),
        ("http://side.test", False),
    ]:
        assert origin_ok(_post(origin, **internal), trusted) is ok, origin


@pytest.mark.parametrize(
    "bad",
    [
        "app.example.com",
        "https://",
        "https://a.test/path",
        "ftp://a.test",
        "https://*.",
        "https://a.test:x",
    ],
)
def test_a_malformed_trusted_origin_is_a_configuration_error(settings: Settings, bad: str) -> None:
    with pytest.raises(ValueError, match="trusted_origins"):
        Guard(settings, protect=["/account"], trusted_origins=[bad])
    with pytest.raises(TypeError):  # and a typo in the keyword is one too
        Guard(settings, protect=["/account"], trusted_origin=["https://a.test"])


# -- WSGI ----------------------------------------------------------------------------------


def _wsgi_app(settings: Settings, **options: Any) -> WsgiMiddleware:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response("200 OK", [("content-type", "text/plain")])
        return [b"app"]

    return WsgiMiddleware(
        app,
        settings,
        identify=lambda request: Identity("alice", ALICE),
        protect=["/account"],
        **options,
    )


def _wsgi_post(
    app: WsgiMiddleware,
    origin: str,
    *,
    scheme: str = "http",
    server: tuple[str, str] = ("x.test", "80"),
    host: str | None = None,
    path: str = CHALLENGE,
    body: bytes = PROBE,
    content_type: str = "application/json",
    extra: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One request as a WSGI server passes it (PEP 3333); HTTP_HOST only when ``host``."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": server[0],
        "SERVER_PORT": server[1],
        "SERVER_PROTOCOL": "HTTP/1.0",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_ACCEPT": "application/json",
        "HTTP_ORIGIN": origin,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scheme,
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        **(extra or {}),
    }
    if host is not None:
        environ["HTTP_HOST"] = host
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc: Any = None) -> Any:
        answer["status"], answer["headers"] = int(status.split()[0]), headers
        return lambda data: None

    body_out = b"".join(app(environ, start_response))
    return answer["status"], {k.lower(): v for k, v in answer["headers"]}, body_out


def _refused(status: int, body: bytes) -> bool:
    if status != 403:
        assert status == 400, body  # past the Origin check: no code is pending
        return False
    assert json.loads(body)["reason"] == "OriginRejected", body
    return True


def test_wsgi_same_origin_passes_and_another_scheme_does_not(settings: Settings) -> None:
    app = _wsgi_app(settings)
    status, headers, body = _wsgi_post(app, "http://x.test", host="x.test")
    assert not _refused(status, body)
    status, headers, body = _wsgi_post(app, "https://x.test", host="x.test")
    assert _refused(status, body)
    assert headers["content-type"] == "application/json"
    assert "expired" not in json.loads(body)["message"]  # not the HTML form's sentence


def test_wsgi_without_http_host_uses_server_name_and_port(settings: Settings) -> None:
    """PEP 3333's URL reconstruction: no HTTP_HOST (an HTTP/1.0 client), SERVER_NAME and
    SERVER_PORT are the host."""
    app = _wsgi_app(settings)
    assert not _refused(*_wsgi_post(app, "http://x.test:8000", server=("x.test", "8000"))[::2])
    assert not _refused(*_wsgi_post(app, "http://x.test", server=("x.test", "80"))[::2])
    assert _refused(*_wsgi_post(app, "http://x.test", server=("x.test", "8000"))[::2])
    assert _refused(*_wsgi_post(app, "http://evil.test", server=("x.test", "8000"))[::2])
    assert not _refused(*_wsgi_post(app, "http://[::1]:8000", server=("::1", "8000"))[::2])


def test_wsgi_proxy_rewritten_host_needs_trusted_origins(settings: Settings) -> None:
    """nginx's default passes the upstream address as Host: the browser's Origin is the
    public one, and only ``trusted_origins`` says it is ours."""
    behind_proxy = {"host": "127.0.0.1:8000", "server": ("127.0.0.1", "8000")}
    public = "https://app.example.com"
    assert _refused(*_wsgi_post(_wsgi_app(settings), public, **behind_proxy)[::2])
    trusting = _wsgi_app(settings, trusted_origins=[public])
    assert not _refused(*_wsgi_post(trusting, public, **behind_proxy)[::2])
    assert _refused(*_wsgi_post(trusting, "https://evil.example.com", **behind_proxy)[::2])
    wildcard = _wsgi_app(settings, trusted_origins="https://*.example.com")
    assert not _refused(*_wsgi_post(wildcard, public, **behind_proxy)[::2])
    assert _refused(*_wsgi_post(wildcard, "http://app.example.com", **behind_proxy)[::2])


def _cookie_header(headers: Iterable[tuple[str, str]]) -> str:
    return "; ".join(v.split(";", 1)[0] for k, v in headers if k.lower() == "set-cookie")


def test_wsgi_challenge_form_behind_a_proxy_with_trusted_origins(
    settings: Settings, fake_flowroute: FakeFlowroute
) -> None:
    """The HTML form's check is the same one: its post from the public origin is kept."""
    public = "https://app.example.com"
    app = _wsgi_app(settings, trusted_origins=[public], cookie_secure=False)
    page: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc: Any = None) -> Any:
        page["status"], page["headers"] = status, headers
        return lambda data: None

    html = b"".join(
        app(
            {
                "REQUEST_METHOD": "GET",
                "SCRIPT_NAME": "",
                "PATH_INFO": CHALLENGE,
                "QUERY_STRING": "",
                "SERVER_NAME": "127.0.0.1",
                "SERVER_PORT": "8000",
                "HTTP_HOST": "127.0.0.1:8000",
                "HTTP_ACCEPT": "text/html",
                "wsgi.url_scheme": "http",
                "wsgi.input": io.BytesIO(),
                "wsgi.errors": sys.stderr,
            },
            start_response,
        )
    ).decode()
    assert page["status"].startswith("200"), html[:300]
    token = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert token is not None
    form = f"csrf_token={token.group(1)}&next=%2Faccount&code=0000000".encode()
    cookies = {"HTTP_COOKIE": _cookie_header(page["headers"]), "HTTP_ACCEPT": "text/html"}
    for origin, ok in ((public, True), ("https://evil.example.com", False)):
        status, _, body = _wsgi_post(
            app,
            origin,
            host="127.0.0.1:8000",
            body=form,
            content_type="application/x-www-form-urlencoded",
            extra=cookies,
        )
        # Kept: the page again with "wrong code" (400); refused: 403.
        assert status == (400 if ok else 403), body[:300]


# -- ASGI ----------------------------------------------------------------------------------


def _asgi_app(settings: Settings, **options: Any) -> AsgiMiddleware:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"app"})

    return AsgiMiddleware(
        app,
        settings,
        identify=lambda request: Identity("alice", ALICE),
        protect=["/account"],
        **options,
    )


def _asgi_post(
    app: AsgiMiddleware,
    origin: str,
    *,
    scheme: str = "http",
    host: str | None = None,
    server: tuple[str, int | None] | None = ("x.test", 80),
) -> tuple[int, bytes]:
    """One request as an ASGI server passes it; a host header only when ``host``."""
    headers = [
        (b"origin", origin.encode()),
        (b"content-type", b"application/json"),
        (b"accept", b"application/json"),
        (b"content-length", str(len(PROBE)).encode()),
    ]
    if host is not None:
        headers.append((b"host", host.encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.0",
        "method": "POST",
        "scheme": scheme,
        "path": CHALLENGE,
        "raw_path": CHALLENGE.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": server,
    }
    sent: list[dict[str, Any]] = []
    chunks = iter([{"type": "http.request", "body": PROBE, "more_body": False}])

    async def receive() -> dict[str, Any]:
        return next(chunks, {"type": "http.disconnect"})

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


@pytest.fixture
def asgi(settings: Settings) -> Iterator[Callable[..., AsgiMiddleware]]:
    yield lambda **options: _asgi_app(settings, **options)


def test_asgi_host_header_scheme_and_trusted_origins(asgi: Callable[..., AsgiMiddleware]) -> None:
    app = asgi()
    assert not _refused(*_asgi_post(app, "http://x.test", host="x.test"))
    assert _refused(*_asgi_post(app, "https://x.test", host="x.test"))
    assert _refused(*_asgi_post(app, "https://app.example.com", host="127.0.0.1:8000"))
    trusting = asgi(trusted_origins=["https://app.example.com"])
    assert not _refused(*_asgi_post(trusting, "https://app.example.com", host="127.0.0.1:8000"))


def test_asgi_without_a_host_header_uses_scope_server(asgi: Callable[..., AsgiMiddleware]) -> None:
    app = asgi()
    assert not _refused(*_asgi_post(app, "http://x.test:8000", server=("x.test", 8000)))
    assert not _refused(*_asgi_post(app, "https://x.test", scheme="https", server=("x.test", 443)))
    assert not _refused(*_asgi_post(app, "http://[::1]:8000", server=("::1", 8000)))
    assert _refused(*_asgi_post(app, "http://x.test", server=("x.test", 8000)))
    assert _refused(*_asgi_post(app, "http://x.test", server=None))  # nothing to compare
    assert _refused(*_asgi_post(app, "http://x.test", server=("/run/app.sock", None)))
