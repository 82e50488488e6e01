"""``protect`` rules: ``methods`` and ``max_age`` (step-up), decided in the guard's one
decision, over WSGI (werkzeug's test client), ASGI (Starlette's TestClient) and Django; API
clients get RFC 9470's ``insufficient_user_authentication`` challenge with ``max_age``."""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from sms2fa_middleware import Identity, Settings
from sms2fa_middleware.guard import PASS, PROTECTED, RULED, Guard, GuardOptions, Rule
from sms2fa_middleware.guard.decision import Answer, Verdict
from sms2fa_middleware.testing import FakeFlowroute

ALICE = Identity("alice", "+12065551234")
PROTECT: list[Any] = [
    "/account",
    {"path": "/account/delete", "methods": ["POST", "DELETE"], "max_age": 300},
    Rule("/reports", methods=frozenset({"POST"})),
]
TEN_MINUTES_MS = 10 * 60 * 1000
PAGE = {"accept": "text/html,application/xhtml+xml"}
API = {"accept": "application/json"}


def identify(request: Any) -> Identity | None:
    return ALICE if request.headers.get("x-user") == "alice" else None


def wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response("200 OK", [("content-type", "text/plain")])
    return [f"app {environ['REQUEST_METHOD']} {environ['PATH_INFO']}".encode()]


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send(
        {"type": "http.response.body", "body": f"app {scope['method']} {scope['path']}".encode()}
    )


class Browser:
    """One test client (werkzeug or Starlette's), the same few calls on both."""

    def __init__(self, kind: str, settings: Settings) -> None:
        self.kind = kind
        if kind == "wsgi":
            from werkzeug.test import Client

            from sms2fa_middleware.wsgi import SMS2FAMiddleware as Wsgi

            self.middleware: Any = Wsgi(wsgi_app, settings, protect=PROTECT, identify=identify)
            self.client: Any = Client(self.middleware)
            self.origin = "http://localhost"
        else:
            from starlette.testclient import TestClient

            from sms2fa_middleware.asgi import SMS2FAMiddleware as Asgi

            self.middleware = Asgi(asgi_app, settings, protect=PROTECT, identify=identify)
            self.client = TestClient(self.middleware, follow_redirects=False)
            self.origin = "http://testserver"
        self.guard: Guard = self.middleware.guard

    def verified(self, ago_ms: int) -> None:
        """A verified-session cookie for alice whose code was entered ``ago_ms`` ago."""
        value = self.guard.signer.issue(ALICE, int(time.time() * 1000) - ago_ms)
        name = self.guard.cookie_for(False)
        if self.kind == "wsgi":
            self.client.set_cookie(name, value, path="/")
        else:
            self.client.cookies.set(name, value, path="/")

    def call(
        self,
        method: str,
        url: str,
        headers: dict[str, str] | None = None,
        data: dict[str, str] | None = None,
    ) -> tuple[int, Any, str]:
        headers = {"x-user": "alice", **(headers or {})}
        if self.kind == "wsgi":
            response = self.client.open(url, method=method, headers=headers, data=data)
            return response.status_code, response.headers, response.get_data(as_text=True)
        response = self.client.request(method, url, headers=headers, data=data)
        return response.status_code, response.headers, response.text


@pytest.fixture(params=["wsgi", "asgi"])
def browser(request: pytest.FixtureRequest, sms2fa_settings: Settings) -> Browser:
    return Browser(request.param, sms2fa_settings)


def _location_path(headers: Any) -> str:
    location = headers["location"]
    return re.sub(r"^https?://[^/]+", "", location)


def test_step_up_on_a_post_only_rule(browser: Browser, fake_flowroute: FakeFlowroute) -> None:
    browser.verified(TEN_MINUTES_MS)
    # A session verified 10 minutes ago opens /account, and GETs /account/delete (the
    # rule is POST/DELETE only; the plain /account pattern still protects it).
    assert browser.call("GET", "/account", PAGE)[0] == 200
    assert browser.call("GET", "/account/delete", PAGE)[2] == "app GET /account/delete"
    assert not fake_flowroute.messages

    # POST /account/delete demands a code at most 300 s old: the challenge again.
    form = {"confirm": "yes"}
    status, headers, _ = browser.call(
        "POST",
        "/account/delete",
        {**PAGE, "referer": f"{browser.origin}/account", "origin": browser.origin},
        form,
    )
    assert status == 303
    challenge = _location_path(headers)
    assert challenge.startswith("/sms2fa/challenge?max_age=300&next=%2Faccount"), challenge
    code = fake_flowroute.last_code(ALICE.recipient or "")

    # The page is shown (the old session does not skip it) and its form keeps max_age.
    status, _, page = browser.call("GET", challenge, PAGE)
    assert status == 200, page
    assert 'action="/sms2fa/challenge?max_age=300"' in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token is not None
    status, headers, _ = browser.call(
        "POST",
        "/sms2fa/challenge?max_age=300",
        {**PAGE, "origin": browser.origin},
        {"csrf_token": token.group(1), "next": "/account", "code": code},
    )
    assert status == 303 and _location_path(headers) == "/account"  # 303 back, not re-posted

    # A fresh cookie was issued: the delete now goes through.
    status, _, body = browser.call(
        "POST", "/account/delete", {**PAGE, "origin": browser.origin}, form
    )
    assert (status, body) == (200, "app POST /account/delete")


def test_wrong_code_on_step_up_shows_the_page_again(
    browser: Browser, fake_flowroute: FakeFlowroute
) -> None:
    browser.verified(TEN_MINUTES_MS)
    status, headers, _ = browser.call("DELETE", "/account/delete", PAGE)
    assert status == 303
    _, _, page = browser.call("GET", _location_path(headers), PAGE)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token is not None
    code = fake_flowroute.last_code(ALICE.recipient or "")
    wrong = "0" * len(code) if code != "0" * len(code) else "1" * len(code)
    status, _, page = browser.call(
        "POST",
        "/sms2fa/challenge?max_age=300",
        {**PAGE, "origin": browser.origin},
        {"csrf_token": token.group(1), "next": "/account", "code": wrong},
    )
    assert status == 400 and 'name="code"' in page  # not a redirect back to the app


def test_recent_session_passes_the_max_age_rule(browser: Browser) -> None:
    browser.verified(60_000)  # a minute ago: within 300 s
    status, _, body = browser.call("POST", "/account/delete", API)
    assert (status, body) == (200, "app POST /account/delete")


def test_get_to_a_post_only_rule_passes_unverified(browser: Browser) -> None:
    # Anonymous too: a GET to a methods=["POST"] rule never reaches the guard.
    for headers in (PAGE, {**API, "x-user": ""}):
        status, _, body = browser.call("GET", "/reports", headers)
        assert (status, body) == (200, "app GET /reports")
    status, _, _ = browser.call("HEAD", "/reports", API)
    assert status == 200
    status, _, _ = browser.call("POST", "/reports", API)  # POST: protected, not verified
    assert status == 401


def test_api_client_gets_the_rfc_9470_challenge(
    browser: Browser, fake_flowroute: FakeFlowroute
) -> None:
    browser.verified(TEN_MINUTES_MS)
    status, headers, body = browser.call("POST", "/account/delete", API)
    assert status == 401
    challenges = (
        headers.getlist("www-authenticate")
        if browser.kind == "wsgi"
        else headers.get_list("www-authenticate")
    )
    assert 'SMS2FA challenge="/sms2fa/challenge"' in challenges
    bearer = [c for c in challenges if c.startswith("Bearer ")]
    assert bearer == [
        'Bearer error="insufficient_user_authentication", '
        'error_description="More recent authentication is required", '
        "max_age=300"
    ], challenges
    data = json.loads(body)
    assert data["max_age"] == 300 and data["reason"] == "VerificationRequired"
    assert data["challenge"].startswith("/sms2fa/challenge?max_age=300")
    assert not fake_flowroute.messages  # an API client asks for its code itself


# -- the decision, as a table ------------------------------------------------------------


@pytest.fixture(scope="module")
def guard(tmp_path_factory: pytest.TempPathFactory) -> Guard:
    url = f"sqlite:///{tmp_path_factory.mktemp('rules') / 'r.db'}"
    settings = Settings(
        secret_key="rules-tests-" * 4, database_url=url, sms_backend="console", development=True
    )
    return Guard(
        settings,
        protect=[
            "/account",
            {"path": "/account/delete", "methods": ["POST", "DELETE"], "max_age": 300},
            {"path": "/account/*", "methods": ["DELETE"], "max_age": 60},  # stricter, DELETE only
            {"path": "/reports", "methods": ["POST"]},
            {"path": "/admin", "max_age": 600},
        ],
        exclude=["/admin/open"],
    )


# Ages clear of the rules' bounds (60, 300, 600 s): the clock moves while the test runs.
COOKIE_AGES = {
    "none": None,
    "fresh": 0,
    "30 s": 30_000,
    "2 minutes": 120_000,
    "9 minutes": 540_000,
    "20 minutes": 1_200_000,
}


def _expected(
    path: str, method: str, who: Identity | None, age: int | None
) -> tuple[bool, int | None]:
    """(to the app, the max_age a DENY carries), by the rules as the README states them."""
    rules: list[tuple[frozenset[str] | None, int | None]] = []
    if path.startswith("/account"):
        rules.append((None, None))
    if path == "/account/delete":
        rules.append((frozenset({"POST", "DELETE"}), 300))
    if path.startswith("/account/"):
        rules.append((frozenset({"DELETE"}), 60))
    if path == "/reports":
        rules.append((frozenset({"POST"}), None))
    if path.startswith("/admin") and path != "/admin/open":
        rules.append((None, 600))
    covering = [
        a for m, a in rules if m is None or method in m or (method == "HEAD" and "GET" in m)
    ]
    if not covering:
        return True, None
    ages = [a for a in covering if a is not None]
    max_age = min(ages) if ages else None
    if who is None or age is None:
        return False, None
    if max_age is not None and age > max_age * 1000:
        return False, max_age
    return True, None


def test_decision_table(guard: Guard) -> None:
    paths = [
        "/",
        "/account",
        "/account/delete",
        "/account/other",
        "/reports",
        "/admin",
        "/admin/x",
        "/admin/open",
    ]
    methods = ["GET", "HEAD", "POST", "DELETE", "PUT"]
    checked = 0
    name = guard.cookie_for(True)
    for path, method, who, age in itertools.product(paths, methods, (None, ALICE), COOKIE_AGES):
        issued = COOKIE_AGES[age]
        cookie = (
            ""
            if issued is None
            else f"{name}={guard.signer.issue(ALICE, int(time.time() * 1000) - issued)}"
        )
        kind = guard.remember(path, path)
        max_age = None
        if kind == RULED:
            kind, max_age = guard.demand(path, path, method)
        if kind == PASS:
            verdict = Verdict(True)  # the adapter hands it to the app unread
        else:
            assert kind == PROTECTED
            verdict = guard.decide(kind, who, None, cookie, True, max_age)
        to_app, deny_age = _expected(path, method, who, None if who is None else issued)
        if to_app:
            assert verdict.to_app, (path, method, who, age)
        else:
            assert verdict == Verdict(False, who, answer=Answer.DENY, max_age=deny_age), (
                path,
                method,
                who,
                age,
                verdict,
            )
        checked += 1
    assert checked == 8 * 5 * 2 * 6


def test_hot_path_is_one_lookup_for_unruled_paths(guard: Guard) -> None:
    assert guard.remember("/elsewhere", "/elsewhere") == PASS
    assert guard.kinds["/elsewhere"] == PASS and "/elsewhere" not in guard.paths.demands
    assert guard.remember("/reports", "/reports") == RULED
    assert guard.demand("/reports", "/reports", "GET") == (PASS, None)
    assert guard.demand("/reports", "/reports", "POST") == (PROTECTED, None)


def test_rules_from_a_mapping_and_their_errors() -> None:
    options = GuardOptions.from_mapping(
        {"protect": ["/a", {"path": "/b", "methods": "post", "max_age": 30}, {"path": "/c"}]}
    )
    assert options.protect == ("/a", "/c")  # a rule that says no more than a path is one
    assert options.rules == (Rule("/b", frozenset({"POST"}), 30),)
    assert GuardOptions(protect=[Rule("/x", max_age=5)]).rules == (Rule("/x", None, 5),)
    for bad in (
        {"path": "/b", "max_age": 0},
        {"path": "/b", "max_age": "5"},
        {"path": "/b", "methods": []},
        {"methods": ["GET"]},
        {"path": "/b", "method": ["GET"]},
        5,
    ):
        with pytest.raises(ValueError):
            GuardOptions(protect=["/a", bad])


# -- Django: the example project, a POST-only step-up rule on /account ---------------------


def test_django_step_up(request: pytest.FixtureRequest, fake_flowroute: FakeFlowroute) -> None:
    pytest.importorskip("django")
    from tests.support.django_example import ALICE as DJANGO_ALICE
    from tests.support.django_example import ALICE_PHONE, FORM, HTML, MARKER, PASSWORD
    from tests.support.django_example import csrf as _csrf
    from tests.support.django_example import form_body as _form

    configure = request.getfixturevalue("sms2fa")
    configure(protect=["/account", {"path": "/account", "methods": ["POST"], "max_age": 300}])
    from django.contrib.auth import get_user_model
    from django.test import Client

    from sms2fa_middleware.django.conf import installed

    client = Client()
    client.login(username=DJANGO_ALICE, password=PASSWORD)
    guard = installed().guard
    user = get_user_model().objects.get(username=DJANGO_ALICE)
    client.cookies[guard.cookie_for(False)] = guard.signer.issue(
        Identity(str(user.pk), ALICE_PHONE), int(time.time() * 1000) - TEN_MINUTES_MS
    )

    page = client.get("/account/", headers=HTML)
    assert page.status_code == 200 and MARKER in page.text  # verified 10 minutes ago: fine
    api = client.post("/account/", headers={"accept": "application/json"})
    assert api.status_code == 401 and api.json()["max_age"] == 300
    assert "insufficient_user_authentication" in str(api.headers)
    posted = client.post(
        "/account/",
        _form({"note": "x"}),
        FORM,
        headers={**HTML, "host": "testserver", "referer": "http://testserver/account/"},
    )
    assert posted.status_code == 303
    assert posted["location"] == "/sms2fa/challenge?max_age=300&next=%2Faccount%2F"
    challenge = client.get(posted["location"], headers=HTML)
    assert challenge.status_code == 200
    done = client.post(
        "/sms2fa/challenge?max_age=300",
        _form(
            {
                "csrf_token": _csrf(challenge.text),
                "next": "/account/",
                "code": fake_flowroute.last_code(ALICE_PHONE),
            }
        ),
        FORM,
        headers=HTML,
    )
    assert done.status_code == 303 and done["location"] == "/account/"
    again = client.post("/account/", _form({"note": "x"}), FORM, headers=HTML)
    assert again.status_code == 200 and MARKER in again.text


def test_assume_verified_counts_as_a_fresh_code(guard: Guard) -> None:
    from sms2fa_middleware.testing import assume_verified

    name = guard.cookie_for(True)
    old = f"{name}={guard.signer.issue(ALICE, int(time.time() * 1000) - TEN_MINUTES_MS)}"
    assert not guard.decide(PROTECTED, ALICE, None, old, True, 300).to_app
    with assume_verified():
        assert guard.decide(PROTECTED, ALICE, None, old, True, 300).to_app
