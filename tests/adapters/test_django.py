"""Django: the example project (examples/django_app) with ``sms2fa_middleware.django``.

In-process with Django's test ``Client`` (sync) and ``AsyncClient`` (async: identify reads
the database through ``request.user``, which Django refuses on the event loop), then over
real servers -- uvicorn (ASGI) and gunicorn (sync WSGI) -- with SQLite files for Django's
database and the store, and FakeFlowroute for the texts: log in, get challenged, read the
code, post it, reach the page, log out (which revokes). Raw request-target spellings
against the real servers never reach the protected view unverified.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from sms2fa_middleware import Identity, Settings
from sms2fa_middleware.testing import FakeFlowroute
from tests.support import SECRET
from tests.support.django_example import (
    ALICE,
    ALICE_PHONE,
    BOB,
    BOB_PHONE,
    CAROL,
    CAROL_PHONE,
    FORM,
    HTML,
    MARKER,
    PASSWORD,
    Server,
    csrf,
    form_body,
    log_in,
    verify,
)

pytest.importorskip("django")


# -- in-process: Django's test clients ---------------------------------------------------------


def test_sync_client_full_flow_and_logout_revokes(
    sms2fa: Any, fake_flowroute: FakeFlowroute
) -> None:
    from django.test import Client

    client = Client()
    anonymous = client.get("/account/", headers=HTML)
    assert anonymous.status_code == 303
    assert anonymous["location"] == "/login/?next=%2Faccount%2F"

    login = client.post("/login/", {"username": ALICE, "password": PASSWORD, "next": "/account/"})
    assert login.status_code == 302 and login["location"] == "/account/"
    challenge = client.get("/account/", headers=HTML)
    assert challenge.status_code == 303
    assert challenge["location"] == "/sms2fa/challenge?next=%2Faccount%2F"
    api = client.get("/account/", headers={"accept": "application/json"})
    assert api.status_code == 401 and api.json()["reason"] == "VerificationRequired"

    page = client.get(challenge["location"], headers=HTML)  # no route in urls.py for it
    assert page.status_code == 200 and 'name="code"' in page.text
    done = client.post(
        "/sms2fa/challenge",
        form_body(
            {
                "csrf_token": csrf(page.text),
                "next": "/account/",
                "code": fake_flowroute.last_code(ALICE_PHONE),
            }
        ),
        FORM,
        headers=HTML,
    )
    assert done.status_code == 303 and done["location"] == "/account/"

    account = client.get("/account/", headers=HTML)
    assert account.status_code == 200 and MARKER in account.text
    assert "private" in account["cache-control"] and "Cookie" in account["vary"]

    assert client.post("/logout/").status_code == 302
    client.login(username=ALICE, password=PASSWORD)  # the verified cookie is still in the jar
    again = client.get("/account/", headers=HTML)
    assert again.status_code == 303 and again["location"].startswith("/sms2fa/challenge")


def _verified_request(client: Any, fake_flowroute: FakeFlowroute) -> Any:
    """Log ``client`` in as alice, pass the challenge form with the texted code, and return
    the request of the account page it then reaches."""
    client.login(username=ALICE, password=PASSWORD)
    page = client.get(client.get("/account/", headers=HTML)["location"], headers=HTML)
    client.post(
        "/sms2fa/challenge",
        form_body(
            {
                "csrf_token": csrf(page.text),
                "next": "/account/",
                "code": fake_flowroute.last_code(ALICE_PHONE),
            }
        ),
        FORM,
        headers=HTML,
    )
    account = client.get("/account/", headers=HTML)
    assert account.status_code == 200
    return account.wsgi_request


def test_revoke_through_the_middleware_on_the_request(
    sms2fa: Any, fake_flowroute: FakeFlowroute
) -> None:
    """request.sms2fa_middleware.revoke(user.pk): e.g. after a phone number change."""
    from django.test import Client

    client = Client()
    request = _verified_request(client, fake_flowroute)
    assert request.sms2fa == Identity(str(request.user.pk), ALICE_PHONE)
    request.sms2fa_middleware.revoke(request.user.pk)
    assert client.get("/account/", headers=HTML).status_code == 303


def test_revoke_session_forgets_this_device_only(
    sms2fa: Any, fake_flowroute: FakeFlowroute
) -> None:
    """request.sms2fa_middleware.revoke_session(request, response): this browser's verified
    session ends (even while it still sends the cookie) and its cookie is deleted on the
    response; another device of the same user stays verified."""
    from django.http import HttpResponse
    from django.test import Client

    from sms2fa_middleware.testing import mark_verified

    this, other = Client(), Client()
    other.login(username=ALICE, password=PASSWORD)
    request = _verified_request(this, fake_flowroute)
    middleware = request.sms2fa_middleware
    mark_verified(other, middleware.guard, Identity(request.user.pk, ALICE_PHONE))
    assert other.get("/account/", headers=HTML).status_code == 200

    response = middleware.revoke_session(request, HttpResponse("forgotten"))
    deleted = response.cookies["sms2fa"]
    assert deleted.value == "" and str(deleted["max-age"]) == "0"
    assert this.get("/account/", headers=HTML).status_code == 303  # the old cookie: refused
    assert other.get("/account/", headers=HTML).status_code == 200


@pytest.mark.parametrize("identify", [None, "tests.support.django_example.orm_identify"])
def test_async_client_full_flow_identify_off_the_loop(
    sms2fa: Any, fake_flowroute: FakeFlowroute, identify: str | None
) -> None:
    """Under ASGI a sync identify that reads the database (request.user, or its own query)
    runs in a thread: on the event loop Django would raise SynchronousOnlyOperation."""
    from django.test import AsyncClient

    if identify is not None:
        sms2fa(identify=identify)

    async def flow() -> None:
        client = AsyncClient()
        login = await client.post("/login/", {"username": ALICE, "password": PASSWORD})
        assert login.status_code == 302
        challenge = await client.get("/account/", headers=HTML)
        assert challenge.status_code == 303, challenge.content[:300]
        page = await client.get(challenge["location"], headers=HTML)
        assert page.status_code == 200
        done = await client.post(
            "/sms2fa/challenge",
            form_body(
                {
                    "csrf_token": csrf(page.text),
                    "next": "/account/",
                    "code": fake_flowroute.last_code(ALICE_PHONE),
                }
            ),
            FORM,
            headers=HTML,
        )
        assert done.status_code == 303 and done["location"] == "/account/"
        account = await client.get("/account/", headers=HTML)
        assert account.status_code == 200 and MARKER in account.text

        assert (await client.post("/logout/")).status_code == 302  # alogout's signal
        await client.post("/login/", {"username": ALICE, "password": PASSWORD})
        again = await client.get("/account/", headers=HTML)
        assert again.status_code == 303 and "/sms2fa/challenge" in again["location"]

    asyncio.run(flow())


def test_the_view_decorator_refuses_what_the_patterns_miss(sms2fa: Any) -> None:
    """protect=[...] misses /account/: the decorated view fails closed (403)."""
    from django.test import AsyncClient, Client

    sms2fa(protect=["/elsewhere"])
    client = Client()
    client.login(username=ALICE, password=PASSWORD)
    refused = client.get("/account/", headers=HTML)
    assert refused.status_code == 403 and MARKER not in refused.text
    assert refused["content-type"].startswith("text/html")  # a page for a browser
    assert client.get("/account/").json()["reason"] == "VerificationRequired"

    async def async_view() -> None:
        from django.http import HttpResponse
        from django.test import RequestFactory

        from sms2fa_middleware.django import verified_required

        @verified_required
        async def view(request: Any) -> HttpResponse:
            return HttpResponse("ran")

        request = RequestFactory().get("/x")
        assert (await view(request)).status_code == 403
        request.sms2fa = Identity("1", ALICE_PHONE)
        assert (await view(request)).content == b"ran"
        assert (await AsyncClient().get("/account/")).status_code == 403

    asyncio.run(async_view())


def test_no_phone_on_file_and_anonymous_api_client(
    sms2fa: Any, fake_flowroute: FakeFlowroute
) -> None:
    from django.test import Client

    anonymous = Client().get("/account/", headers={"accept": "application/json"})
    assert anonymous.status_code == 401 and anonymous.json()["reason"] == "LoginRequired"
    client = Client()
    client.login(username="nophone", password=PASSWORD)
    page = client.get("/account/", headers=HTML)
    assert page.status_code == 403 and "No phone number on file" in page.text
    assert fake_flowroute.messages == []


def test_anonymous_app_lets_the_app_answer_anonymous_requests(
    sms2fa: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """anonymous="app": nobody logged in reaches the app (here the view's own decorator
    refuses, 403), sync and async; a logged-in user is still challenged."""
    from django.test import AsyncClient, Client

    sms2fa(anonymous="app")
    with caplog.at_level(logging.WARNING, logger="sms2fa"):
        anonymous = Client().get("/account/", headers=HTML)
    assert anonymous.status_code == 403 and MARKER not in anonymous.text
    assert "needs SMS verification" in anonymous.text  # the route-level refusal's page
    assert "view for '/account/' ran without a verified session" in caplog.text

    async def async_anonymous() -> int:
        return (await AsyncClient().get("/account/", headers=HTML)).status_code

    assert asyncio.run(async_anonymous()) == 403
    client = Client()
    client.login(username=ALICE, password=PASSWORD)
    challenged = client.get("/account/", headers=HTML)
    assert challenged.status_code == 303 and "/sms2fa/challenge" in challenged["location"]


def test_a_failing_identify_is_a_500_that_tells_nothing(
    sms2fa: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from django.test import Client

    sms2fa(identify="tests.support.django_example.raising_identify")
    with caplog.at_level(logging.ERROR, "sms2fa"):
        response = Client().get("/account/", headers={"accept": "application/json"})
    assert response.status_code == 500 and response.json()["reason"] == "InternalError"
    assert "secret-detail" not in response.text and "secret-detail" not in caplog.text
    assert "RuntimeError" in caplog.text


def test_a_large_body_under_the_prefix_is_refused(sms2fa: Any) -> None:
    from django.test import Client

    client = Client()
    client.login(username=ALICE, password=PASSWORD)
    response = client.post("/sms2fa/challenge", b"x" * 20_000, content_type="text/plain")
    assert response.status_code == 413


def test_a_verified_page_is_kept_out_of_shared_caches(sms2fa: Any) -> None:
    """The app's own Cache-Control: public / Vary are made private, not replaced."""
    import time

    from django.http import HttpResponse
    from django.test import RequestFactory

    from sms2fa_middleware.django import SMS2FAMiddleware

    who = Identity("1", ALICE_PHONE)
    sms2fa(identify=lambda request: who)

    def view(request: Any) -> HttpResponse:
        response = HttpResponse("page")
        response["Cache-Control"] = "public, max-age=60"
        response["Vary"] = "Accept-Encoding"
        response["CDN-Cache-Control"] = "max-age=3600"  # a CDN follows it first: dropped
        response["Surrogate-Control"] = "max-age=3600"
        return response

    middleware = SMS2FAMiddleware(view)
    cookie = middleware.guard.signer.issue(who, int(time.time() * 1000))
    response = middleware(RequestFactory().get("/account/", HTTP_COOKIE=f"sms2fa={cookie}"))
    assert response.status_code == 200 and response.content == b"page"
    assert "private" in response["Cache-Control"] and "public" not in response["Cache-Control"]
    assert "max-age=60" in response["Cache-Control"]
    assert response["Vary"] == "Accept-Encoding, Cookie"
    assert "CDN-Cache-Control" not in response and "Surrogate-Control" not in response


def test_verified_responses_get_the_same_cache_headers_on_every_adapter(sms2fa: Any) -> None:
    """One header policy: a verified page's ``public, s-maxage=600, max-age=60`` becomes the
    same private headers on WSGI, ASGI and Django, sync and async (Django used to keep
    s-maxage)."""
    import time

    from django.http import HttpResponse
    from django.test import RequestFactory
    from starlette.testclient import TestClient
    from werkzeug.test import Client as WerkzeugClient

    from sms2fa_middleware.asgi import SMS2FAMiddleware as ASGIMiddleware
    from sms2fa_middleware.django import SMS2FAMiddleware
    from sms2fa_middleware.wsgi import SMS2FAMiddleware as WSGIMiddleware

    app_headers = [
        ("Cache-Control", "public, s-maxage=600, max-age=60"),
        ("Vary", "Accept-Encoding"),
        ("Content-Type", "text/plain"),
    ]
    who = Identity("1", ALICE_PHONE)
    sms2fa(identify=lambda request: who)

    def view(request: Any) -> HttpResponse:
        response = HttpResponse("page")
        for name, value in app_headers:
            response[name] = value
        return response

    async def async_view(request: Any) -> HttpResponse:
        return view(request)

    def wsgi_app(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", list(app_headers))
        return [b"page"]

    async def asgi_app(scope: Any, receive: Any, send: Any) -> None:
        raw = [(n.lower().encode(), v.encode()) for n, v in app_headers]
        await send({"type": "http.response.start", "status": 200, "headers": raw})
        await send({"type": "http.response.body", "body": b"page"})

    django_sync = SMS2FAMiddleware(view)
    guard = django_sync.guard
    cookie = f"sms2fa={guard.signer.issue(who, int(time.time() * 1000))}"
    seen = {}
    answer = django_sync(RequestFactory().get("/account/", HTTP_COOKIE=cookie))
    seen["django"] = (answer.status_code, answer["Cache-Control"], answer["Vary"])
    answer = asyncio.run(
        SMS2FAMiddleware(async_view)(RequestFactory().get("/account/", HTTP_COOKIE=cookie))
    )
    seen["django async"] = (answer.status_code, answer["Cache-Control"], answer["Vary"])
    wsgi = WSGIMiddleware(wsgi_app, guard=guard, identify=lambda request: who)
    got = WerkzeugClient(wsgi, use_cookies=False).get("/account/", headers={"Cookie": cookie})
    seen["wsgi"] = (got.status_code, got.headers.get("Cache-Control"), got.headers.get("Vary"))
    assert got.status_code == 200, (got.status_code, got.get_data()[:300])
    asgi = ASGIMiddleware(asgi_app, guard=guard, identify=lambda request: who)
    got = TestClient(asgi).get("/account/", headers={"Cookie": cookie})  # no lifespan
    seen["asgi"] = (got.status_code, got.headers["cache-control"], got.headers["vary"])
    assert set(seen.values()) == {(200, "private, max-age=60", "Accept-Encoding, Cookie")}, seen


def test_misconfiguration_is_caught_at_start_up(sms2fa: Any) -> None:
    from django.core.exceptions import ImproperlyConfigured
    from django.test import override_settings

    from sms2fa_middleware.django import SMS2FAMiddleware

    sms2fa(phone_attribute="mobile")
    with pytest.raises(ImproperlyConfigured, match="mobile"):
        SMS2FAMiddleware(lambda request: None)
    sms2fa(protect_these=["/account"])
    with pytest.raises(ImproperlyConfigured, match="protect_these"):
        SMS2FAMiddleware(lambda request: None)
    sms2fa()
    with (
        override_settings(MIDDLEWARE=["sms2fa_middleware.django.SMS2FAMiddleware"]),
        pytest.raises(ImproperlyConfigured, match="AuthenticationMiddleware"),
    ):
        SMS2FAMiddleware(lambda request: None)


def test_check_routes_reads_the_url_patterns(sms2fa: Any) -> None:
    from sms2fa_middleware.django import check_routes, route_paths

    assert {"/", "/login/", "/logout/", "/account/"} <= set(route_paths())
    assert check_routes() == []  # the example's own SMS2FA["protect"]
    warnings = check_routes(protect=["/acount", "/account/*"])
    assert any("'/acount' matches no route" in w for w in warnings)
    assert any("'/account/' is not protected" in w for w in warnings)


def test_origin_is_checked_against_the_host_django_trusts(sms2fa: Any) -> None:
    """The JSON challenge post's Origin is compared with ``request.get_host()`` and the
    request's scheme (the test client sends no Host: Django uses SERVER_NAME), and with
    CSRF_TRUSTED_ORIGINS and SMS2FA['trusted_origins'] for a proxy that rewrites Host."""
    from django.test import Client, override_settings

    clients: list[Any] = []

    def logged_in() -> None:  # a client loads the middleware (and SMS2FA) once
        clients.append(Client())
        clients[-1].login(username=ALICE, password=PASSWORD)

    def post(origin: str, **headers: str) -> int:
        """400 past the Origin check (no code is pending), 403 when it refuses."""
        answer = clients[-1].post(
            "/sms2fa/challenge",
            {"code": "0000000"},
            content_type="application/json",
            headers={"accept": "application/json", "origin": origin, **headers},
        )
        if answer.status_code == 403:
            assert answer.json()["reason"] == "OriginRejected", answer.content
        else:  # the guard's answer, not Django's
            assert answer.json()["reason"] == "UnknownAuthId", answer.content
        return int(answer.status_code)

    logged_in()
    assert post("http://testserver") == 400  # Django's own CSRF accepts it too
    assert post("https://testserver") == 403  # another scheme is another origin
    assert post("http://evil.test") == 403
    public = "https://app.example.com"
    proxied = {"host": "127.0.0.1:8000"}  # nginx's default: the upstream address
    assert post(public, **proxied) == 403
    with override_settings(CSRF_TRUSTED_ORIGINS=["https://*.example.com"]):
        assert post(public, **proxied) == 400
        assert post("http://app.example.com", **proxied) == 403
    sms2fa(trusted_origins=[public])
    logged_in()
    assert post(public, **proxied) == 400
    assert post("https://other.example.com", **proxied) == 403
    sms2fa()
    logged_in()
    with override_settings(
        USE_X_FORWARDED_HOST=True,
        SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"),
        ALLOWED_HOSTS=["app.example.com"],
    ):
        assert (
            post(public, x_forwarded_host="app.example.com", x_forwarded_proto="https", **proxied)
            == 400
        )


# -- real servers: uvicorn (ASGI) and gunicorn (sync WSGI) -----------------------------------


def test_real_server_full_flow_and_logout(django_server: Server) -> None:
    browser = log_in(django_server)
    account = verify(django_server, browser)
    assert account.status_code == 200 and MARKER in account.text, django_server.name

    token = csrf(account.text, "csrfmiddlewaretoken")
    out = browser.post(
        django_server.base + "/logout/",
        data={"csrfmiddlewaretoken": token},
        headers={**HTML, "referer": django_server.base + "/account/"},
        allow_redirects=False,
    )
    assert out.status_code == 302
    assert not any(c.name == "sms2fa" for c in browser.cookies)  # the logout deleted it
    again = log_in(django_server)
    after = again.get(django_server.base + "/account/", headers=HTML, allow_redirects=False)
    assert after.status_code == 303 and MARKER not in after.text


@pytest.mark.slow
def test_real_server_logout_then_login_again_needs_a_new_code_on_every_worker(
    django_server: Server,
) -> None:
    """Issue: with 2 workers, logging out (LogoutView) and straight back in opened the page
    with no code on most requests for up to 5 s. Replaying the old verified cookie after a
    new login: 0 of 200 requests over 2 workers reach the page."""
    from concurrent.futures import ThreadPoolExecutor

    browser = log_in(django_server, CAROL)
    assert verify(django_server, browser, CAROL_PHONE).status_code == 200
    old = browser.cookies.get("sms2fa")
    assert old
    account = browser.get(django_server.base + "/account/", headers=HTML, allow_redirects=False)
    out = browser.post(
        django_server.base + "/logout/",
        allow_redirects=False,
        data={"csrfmiddlewaretoken": csrf(account.text, "csrfmiddlewaretoken")},
        headers={**HTML, "referer": django_server.base + "/account/"},
    )
    assert out.status_code == 302
    again = log_in(django_server, CAROL)
    cookie = "; ".join([*(f"{c.name}={c.value}" for c in again.cookies), f"sms2fa={old}"])

    def reached(_: int) -> bool:
        page = requests.get(
            django_server.base + "/account/",
            headers={**HTML, "cookie": cookie},
            allow_redirects=False,
            timeout=10,
        )
        assert page.status_code in (200, 303), page.status_code
        return page.status_code == 200 or MARKER in page.text

    with ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(reached, range(200))) == 0, django_server.name


# Raw request targets, as security/test_path_spellings.py sends them; Django routes "account/".
SPELLINGS = [
    "/account/",
    "/account",
    "//account/",
    "///account/",
    "/%2Faccount/",
    "/%2faccount/",
    "/account//",
    "/./account/",
    "/public/../account/",
    "/public/%2E%2E/account/",
    "/public/..%2Faccount/",
    "/%2E/account/",
    "/account/./",
    "/%61ccount/",
    "/acc%6Funt/",
    "/%2561ccount/",
    "/ACCOUNT/",
    "/account;x=1/",
    "/account%3B/",
    "/\\account/",
    "/%5Caccount/",
    "/account%2F",
    "/account/%00",
    "/account%00/",
    "/account/?next=/",
    "http://{h}/account/",
    "http://{h}//account/",
    "http://evil.example/account/",
]
METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"]


def _raw(port: int, method: str, target: str, cookie: str) -> bytes:
    head = (
        f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: {cookie}\r\n"
        "Accept: application/json\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode("utf-8"))
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_raw_spellings_never_reach_the_account_view_unverified(django_server: Server) -> None:
    verified = log_in(django_server, BOB)  # bob: the flow test's resend cooldown is alice's
    assert verify(django_server, verified, BOB_PHONE).status_code == 200
    cookie = "; ".join(f"{c.name}={c.value}" for c in verified.cookies)
    # Sanity: the marker is visible to this check when the middleware lets the request in.
    assert MARKER.encode() in _raw(django_server.port, "GET", "/account/", cookie)

    unverified = log_in(django_server, BOB)  # logged in, a session of its own, never verified
    cookie = "; ".join(f"{c.name}={c.value}" for c in unverified.cookies)
    host = f"127.0.0.1:{django_server.port}"
    leaks = []
    for spelling in SPELLINGS:
        for method in METHODS if spelling in SPELLINGS[:6] else ["GET"]:
            target = spelling.replace("{h}", host)
            response = _raw(django_server.port, method, target, cookie)
            if MARKER.encode() in response:
                status_line = response.split(b"\r\n", 1)[0]
                leaks.append(f"{method} {target} -> {status_line!r}")
    assert not leaks, f"{django_server.name}: the account view ran unverified:\n" + "\n".join(leaks)


def test_under_a_script_name_the_path_info_is_protected(
    sms2fa: Any, fake_flowroute: FakeFlowroute
) -> None:
    """Mounted at /app (SCRIPT_NAME): Django routes path_info (/account/), so that is what
    the patterns must see -- matching request.path (/app/account/) would let the view run
    unchallenged. Every URL sent back starts with /app; the flow ends on the view."""
    from django.test import Client

    client = Client(SCRIPT_NAME="/app")
    client.login(username=ALICE, password=PASSWORD)
    challenge = client.get("/account/", headers=HTML)
    assert challenge.status_code == 303, challenge.content[:300]
    assert challenge["location"] == "/app/sms2fa/challenge?next=%2Fapp%2Faccount%2F"
    assert client.get("/account/", headers={"accept": "application/json"}).status_code == 401
    page = client.get("/sms2fa/challenge", {"next": "/app/account/"}, headers=HTML)
    assert page.status_code == 200 and 'action="/app/sms2fa/challenge"' in page.text
    done = client.post(
        "/sms2fa/challenge",
        form_body(
            {
                "csrf_token": csrf(page.text),
                "next": "/app/account/",
                "code": fake_flowroute.last_code(ALICE_PHONE),
            }
        ),
        FORM,
        headers=HTML,
    )
    assert done.status_code == 303 and done["location"] == "/app/account/"
    account = client.get("/account/", headers=HTML)
    assert account.status_code == 200 and MARKER in account.text


@pytest.mark.server
@pytest.mark.postgres
def test_sessions_fail_closed_while_revocations_cannot_be_read(
    sms2fa: Any, fake_flowroute: FakeFlowroute
) -> None:
    """As on WSGI and ASGI: once the database is away for longer than revocation_interval,
    a verified session (which may have been revoked on another host meanwhile) gets 503 with
    Retry-After, and passes again once revocations can be read."""
    import time

    from django.test import Client

    from sms2fa_middleware.testing import mark_verified
    from tests.support.databases import private_postgres
    from tests.support.tcp_proxy import PausableProxy

    with private_postgres("django_outage") as url:
        proxy, proxied = PausableProxy.to(url)
        sms2fa(
            settings=Settings(
                secret_key=SECRET, database_url=proxied, **fake_flowroute.settings_kwargs()
            ),
            revocation_interval=0.5,
        )
        client = Client()
        client.login(username=ALICE, password=PASSWORD)
        first = client.get("/account/", headers=HTML)  # finds the middleware on the request
        middleware = first.wsgi_request.sms2fa_middleware
        mark_verified(client, middleware.guard, Identity(first.wsgi_request.user.pk, ALICE_PHONE))
        assert client.get("/account/", headers=HTML).status_code == 200
        proxy.stop()
        time.sleep(1.7)  # past revocation_interval and its second of slack: cannot read
        refused = client.get("/account/", headers=HTML)
        assert refused.status_code == 503 and refused["retry-after"], refused.content[:300]
        proxy.resume()
        time.sleep(1.2)  # a failed read is retried a second later
        assert client.get("/account/", headers=HTML).status_code == 200
        proxy.stop()
        middleware.guard.verifier.store.dispose()


# -- the testing helpers with Django's test client ----------------------------------------------


def test_mark_verified_with_django_client(sms2fa: Any) -> None:
    """mark_verified(client, SMS2FAMiddleware, identity): the guard the current SMS2FA builds
    (the class, the test Client itself or a middleware instance name it)."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    from sms2fa_middleware.django import SMS2FAMiddleware
    from sms2fa_middleware.testing import mark_verified

    alice = get_user_model().objects.get(username=ALICE)
    for app in (SMS2FAMiddleware, "client", SMS2FAMiddleware(lambda request: None)):
        client = Client()
        client.force_login(alice)
        assert client.get("/account/", headers=HTML).status_code == 303
        mark_verified(
            client, client if app == "client" else app, Identity(alice.pk, alice.phone_number)
        )
        account = client.get("/account/", headers=HTML)
        assert account.status_code == 200 and MARKER in account.text


def test_assume_verified_phone_with_django_for_a_user_without_one(
    sms2fa: Any, fake_flowroute: FakeFlowroute
) -> None:
    from django.test import Client

    from sms2fa_middleware.testing import assume_verified

    client = Client()
    client.login(username="nophone", password=PASSWORD)
    with assume_verified():  # without phone=: still "no phone on file"
        assert client.get("/account/", headers=HTML).status_code == 403
    with assume_verified(phone="+12065550100"):
        account = client.get("/account/", headers=HTML)
        assert account.status_code == 200 and MARKER in account.text
        assert account.wsgi_request.sms2fa.recipient == "+12065550100"
    assert client.get("/account/", headers=HTML).status_code == 403
    assert fake_flowroute.messages == []


#: SMS2FA as a project's settings module has it: one dict, Settings.from_env() at build time.
FROM_ENV = {"protect": ["/account"], "login_url": "/login/"}


@pytest.fixture
def sms2fa_from_env(project: None, sms2fa_env: dict[str, str]) -> Iterator[None]:
    """The same SMS2FA dict in every test; this test's fake and store in the environment."""
    from django.test import override_settings

    with override_settings(SMS2FA=FROM_ENV):
        yield


def _challenged_code(fake: FakeFlowroute) -> str:
    """Log alice in with a new Client and get challenged: the code ``fake`` received."""
    from django.test import Client

    client = Client()
    client.login(username=ALICE, password=PASSWORD)
    assert client.get("/account/", headers=HTML).status_code == 303
    return fake.last_code(ALICE_PHONE)


@pytest.mark.parametrize("run", ["first", "second"])
def test_each_tests_fake_receives_its_codes(
    sms2fa_from_env: None, fake_flowroute: FakeFlowroute, run: str
) -> None:
    """Two tests, two FakeFlowroutes, one SMS2FA dict: the guard is rebuilt for each."""
    assert _challenged_code(fake_flowroute)
    assert len(fake_flowroute.messages) == 1


def test_a_changed_environment_or_reset_rebuilds_the_guard(
    sms2fa_from_env: None,
    fake_flowroute: FakeFlowroute,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """Without any signal: a new fake in the environment is seen by the next Client; and
    reset() makes the next one read the settings afresh."""
    from sms2fa_middleware.django import installed, reset

    assert _challenged_code(fake_flowroute)
    with FakeFlowroute() as second:
        for name, value in second.settings_env().items():
            monkeypatch.setenv(name, value)
        # A store of its own too: in the first one alice's code is still waiting.
        monkeypatch.setenv("SMS2FA_DATABASE_URL", f"sqlite:///{tmp_path / 'second.db'}")
        assert _challenged_code(second) and len(fake_flowroute.messages) == 1
    before = installed()
    assert installed() is before
    reset()
    assert installed() is not before


def test_a_multipart_challenge_post_from_the_django_client_verifies(
    sms2fa: Any, fake_flowroute: FakeFlowroute
) -> None:
    """Django's client posts a dict as multipart/form-data, as a browser may: it verifies."""
    from django.test import Client

    client = Client()
    client.login(username=ALICE, password=PASSWORD)
    page = client.get(client.get("/account/", headers=HTML)["location"], headers=HTML)
    done = client.post(
        "/sms2fa/challenge",
        {
            "csrf_token": csrf(page.text),
            "next": "/account/",
            "code": fake_flowroute.last_code(ALICE_PHONE),
        },
        headers=HTML,
    )
    assert done.status_code == 303 and done["location"] == "/account/"
    assert MARKER in client.get("/account/", headers=HTML).text


def test_a_refused_form_post_says_why(sms2fa: Any) -> None:
    """An unreadable body or another site's Origin is said so, not 'form has expired'."""
    from django.test import Client

    client = Client()
    client.login(username=ALICE, password=PASSWORD)
    page = client.get(client.get("/account/", headers=HTML)["location"], headers=HTML)
    fields = {"csrf_token": csrf(page.text), "next": "/account/", "code": "000000"}
    unreadable = client.post("/sms2fa/challenge", form_body(fields), "text/plain", headers=HTML)
    assert unreadable.status_code == 400 and "could not be read" in unreadable.text
    broken = client.post(
        "/sms2fa/challenge", b"--x\r\nno parts", "multipart/form-data", headers=HTML
    )
    assert broken.status_code == 400 and "could not be read" in broken.text
    cross = client.post(
        "/sms2fa/challenge",
        form_body(fields),
        FORM,
        headers={**HTML, "origin": "https://evil.example"},
    )
    assert cross.status_code == 403 and "another site" in cross.text
    stale = client.post(
        "/sms2fa/challenge", form_body({**fields, "csrf_token": "x"}), FORM, headers=HTML
    )
    assert stale.status_code == 403 and "expired" in stale.text
