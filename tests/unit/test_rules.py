"""``protect`` rules: ``methods``, ``max_age`` (step-up), ``idle`` and ``when``, decided in
the guard's one decision, over WSGI (werkzeug's test client), ASGI (Starlette's TestClient)
and Django; API clients get RFC 9470's ``insufficient_user_authentication`` challenge with
``max_age``. Time moves through the verifier's clock (``Verifier(clock=...)``, which the
guard's sessions read too), never by sleeping."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from sms2fa_middleware import Identity, Settings, Verifier
from sms2fa_middleware.guard import PASS, PROTECTED, RULED, Guard, GuardOptions, Rule
from sms2fa_middleware.guard.decision import Answer, Verdict
from sms2fa_middleware.guard.rules import PLAIN, Need
from sms2fa_middleware.store import Store
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
    """One test client (werkzeug or Starlette's), the same few calls on both. ``guard``: a
    ready-made Guard (a fake clock, a counting store), else one from ``settings``."""

    def __init__(
        self,
        kind: str,
        settings: Settings | None = None,
        guard: Guard | None = None,
        protect: list[Any] | None = None,
    ) -> None:
        self.kind = kind
        options: dict[str, Any] = (
            {"guard": guard} if guard is not None else {"protect": protect or PROTECT}
        )
        if kind == "wsgi":
            from werkzeug.test import Client

            from sms2fa_middleware.wsgi import SMS2FAMiddleware as Wsgi

            self.middleware: Any = Wsgi(wsgi_app, settings, identify=identify, **options)
            self.client: Any = Client(self.middleware)
            self.origin = "http://localhost"
        else:
            from starlette.testclient import TestClient

            from sms2fa_middleware.asgi import SMS2FAMiddleware as Asgi

            self.middleware = Asgi(asgi_app, settings, identify=identify, **options)
            self.client = TestClient(self.middleware, follow_redirects=False)
            self.origin = "http://testserver"
        self.guard: Guard = self.middleware.guard
        self._clients: dict[str, Any] = {}  # ASGI: one TestClient per client address

    def verified(self, ago_ms: int) -> None:
        """A verified-session cookie for alice whose code was entered ``ago_ms`` ago (by
        the guard's clock)."""
        value = self.guard.signer.issue(ALICE, int(self.guard.sessions.now_ms()) - ago_ms)
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
        remote: str | None = None,
        json_body: Any = None,
    ) -> tuple[int, Any, str]:
        """One request (as alice unless ``x-user`` says otherwise), from ``remote`` (the
        client address) when given."""
        headers = {"x-user": "alice", **(headers or {})}
        if self.kind == "wsgi":
            response = self.client.open(
                url,
                method=method,
                headers=headers,
                data=data,
                json=json_body,
                environ_overrides={"REMOTE_ADDR": remote} if remote else None,
            )
            return response.status_code, response.headers, response.get_data(as_text=True)
        client = self.client
        if remote is not None:
            from starlette.testclient import TestClient

            if remote not in self._clients:
                self._clients[remote] = TestClient(
                    self.middleware, follow_redirects=False, client=(remote, 50000)
                )
            client = self._clients[remote]
        response = client.request(method, url, headers=headers, data=data, json=json_body)
        return response.status_code, response.headers, response.text

    def set_cookies(self, headers: Any) -> list[str]:
        """The Set-Cookie headers of a response."""
        if self.kind == "wsgi":
            return list(headers.getlist("set-cookie"))
        return list(headers.get_list("set-cookie"))


@pytest.fixture(params=["wsgi", "asgi"])
def browser(request: pytest.FixtureRequest, sms2fa_settings: Settings) -> Browser:
    return Browser(request.param, sms2fa_settings)


def _location_path(headers: Any) -> str:
    location = headers["location"]
    return re.sub(r"^https?://[^/]+", "", location)


def test_step_up_on_a_post_only_rule(browser: Browser, fake_flowroute: FakeFlowroute) -> None:
    """A session verified 10 minutes ago opens /account but is challenged on POST
    /account/delete (max_age=300). After the code the browser gets a 303 back to the page
    the post came from -- the post is not re-sent -- and posting again goes through."""
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
        need = PLAIN
        if kind == RULED:
            kind, need = guard.demand(path, path, method)
        if kind == PASS:
            verdict = Verdict(True)  # the adapter hands it to the app unread
        else:
            assert kind == PROTECTED
            verdict = guard.decide(kind, who, None, cookie, True, need)
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
    assert guard.demand("/reports", "/reports", "GET") == (PASS, Need(False))
    assert guard.demand("/reports", "/reports", "POST") == (PROTECTED, Need())


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
    assert not guard.decide(PROTECTED, ALICE, None, old, True, Need(max_age=300)).to_app
    with assume_verified():
        assert guard.decide(PROTECTED, ALICE, None, old, True, Need(max_age=300)).to_app


# -- idle, when, and step-up by the JSON flow, on a clock the test moves -------------------


class FakeClock:
    """The verifier's clock -- and so the guard's sessions' -- moved by hand."""

    def __init__(self) -> None:
        self.at = datetime.now(timezone.utc)

    def now(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


#: The Store's domain operations; those that write (a transaction is opened to write).
STORE_CALLS = (
    "put_code",
    "delete_code",
    "take_attempt",
    "hit",
    "reset",
    "extend",
    "revoke",
    "purge",
    "get_code",
    "peek",
    "revocations_since",
    "transaction",
)
STORE_WRITES = frozenset(STORE_CALLS) - {"get_code", "peek", "revocations_since"}


class CountingStore(Store):
    """A real Store (the test's SQLite file or PostgreSQL database) that counts the calls
    of its domain operations, by name."""

    def __init__(self, database_url: str) -> None:
        super().__init__(database_url)
        self.calls: Counter[str] = Counter()

    def writes(self) -> int:
        return sum(n for name, n in self.calls.items() if name in STORE_WRITES)


def _counting(name: str) -> Callable[..., Any]:
    def method(self: CountingStore, *args: Any, **kwargs: Any) -> Any:
        self.calls[name] += 1
        return getattr(Store, name)(self, *args, **kwargs)

    method.__name__ = name
    return method


for _name in STORE_CALLS:
    setattr(CountingStore, _name, _counting(_name))

IDLE_PROTECT: list[Any] = [
    "/account",
    {"path": "/account/settings", "idle": 900},
    {"path": "/account/delete", "methods": ["POST"], "max_age": 300},
]
Timed = Callable[..., tuple[Browser, FakeClock, CountingStore]]


@pytest.fixture(params=["wsgi", "asgi"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def timed() -> Any:
    """Builds (a Browser, its clock, its counting store) for an adapter, settings and
    protect entries; the stores are closed after the test."""
    stores: list[CountingStore] = []

    def build(
        kind: str, settings: Settings, protect: list[Any], **options: Any
    ) -> tuple[Browser, FakeClock, CountingStore]:
        clock, store = FakeClock(), CountingStore(settings.database_url)
        stores.append(store)
        verifier = Verifier(settings, store=store, clock=clock)
        guard = Guard(verifier=verifier, protect=protect, **options)
        return Browser(kind, guard=guard), clock, store

    yield build
    for store in stores:
        store.dispose()


def _post_code(browser: Browser, challenge: str, next_url: str, code: str) -> tuple[int, Any]:
    """Open the challenge page, then post ``code`` with its token: (status, headers)."""
    status, _, page = browser.call("GET", challenge, PAGE)
    assert status == 200, page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    action = re.search(r'<form[^>]*action="([^"]+)"', page)
    assert token is not None and action is not None
    status, headers, _ = browser.call(
        "POST",
        action.group(1).replace("&amp;", "&"),
        {**PAGE, "origin": browser.origin},
        {"csrf_token": token.group(1), "next": next_url, "code": code},
    )
    return status, headers


def test_idle_session_unused_16_minutes_is_challenged(
    kind: str,
    make_settings: Callable[..., Settings],
    fake_flowroute: FakeFlowroute,
    timed: Timed,
) -> None:
    """idle=900 on /account/settings: a session unused for 16 minutes is challenged there
    (the page says why); the right code sends the browser back (303) to the page, which
    opens. On SQLite and on PostgreSQL."""
    browser, clock, _ = timed(kind, make_settings(), IDLE_PROTECT)
    browser.verified(0)
    assert browser.call("GET", "/account/settings", PAGE)[2] == "app GET /account/settings"
    clock.advance(15 * 60 - 1)  # just within idle: still verified
    assert browser.call("GET", "/account/settings", PAGE)[0] == 200

    clock.advance(16 * 60)
    status, headers, _ = browser.call("GET", "/account/settings", PAGE)
    assert status == 303
    challenge = _location_path(headers)
    assert challenge == "/sms2fa/challenge?idle=900&next=%2Faccount%2Fsettings", challenge
    _, _, page = browser.call("GET", challenge, PAGE)
    assert "You have been away for more than 15 minutes" in page
    code = fake_flowroute.last_code(ALICE.recipient or "")
    status, headers = _post_code(browser, challenge, "/account/settings", code)
    assert status == 303 and _location_path(headers) == "/account/settings"
    assert browser.call("GET", "/account/settings", PAGE)[2] == "app GET /account/settings"


def test_idle_session_used_every_5_minutes_for_an_hour(
    kind: str, sms2fa_settings: Settings, fake_flowroute: FakeFlowroute, timed: Timed
) -> None:
    """Used every 5 minutes for an hour, an idle=900 session is never challenged, and the
    verified path writes nothing to the store: the cookie's signed last-seen is renewed
    (a Set-Cookie on the app's response) at most once a minute. The renewal does not
    make the code younger: max_age still counts from when it was entered."""
    browser, clock, store = timed(kind, sms2fa_settings, IDLE_PROTECT)
    browser.verified(0)
    assert browser.call("GET", "/account/settings", PAGE)[0] == 200
    store.calls.clear()
    name = browser.guard.cookie_for(False)
    for step in range(12):
        clock.advance(5 * 60)
        status, headers, body = browser.call("GET", "/account/settings", PAGE)
        assert (status, body) == (200, "app GET /account/settings"), step
        renewed = browser.set_cookies(headers)
        assert len(renewed) == 1 and renewed[0].startswith(f"{name}="), renewed
        assert len(renewed[0].split(";")[0].split(".")) == 4  # issued.id.last-seen.signature
        assert "HttpOnly" in renewed[0] and "SameSite=Lax" in renewed[0]
        left = int(re.search(r"Max-Age=(\d+)", renewed[0]).group(1))  # type: ignore[union-attr]
        # The session's lifetime is not extended (a second's slack: ms rounded down).
        assert 0 <= 12 * 3600 - (step + 1) * 300 - step * 30 - left <= 1, left
        clock.advance(30)  # within the minute: the cookie is not sent again
        status, headers, _ = browser.call("GET", "/account", PAGE)
        assert status == 200 and browser.set_cookies(headers) == []
    assert store.writes() == 0, store.calls
    assert set(store.calls) <= {"revocations_since"}, store.calls  # the backstop read only
    assert not fake_flowroute.messages

    # Active for an hour, but the code is an hour old: a max_age=300 rule still steps up.
    status, headers, _ = browser.call("POST", "/account/delete", API)
    assert status == 401 and "max_age=300" in str(headers)


def test_idle_api_client_gets_a_plain_401_with_idle(
    kind: str, sms2fa_settings: Settings, timed: Timed
) -> None:
    browser, clock, _ = timed(kind, sms2fa_settings, IDLE_PROTECT)
    browser.verified(0)
    clock.advance(16 * 60)
    status, headers, body = browser.call("GET", "/account/settings", API)
    data = json.loads(body)
    assert status == 401 and data["idle"] == 900 and "max_age" not in data
    assert data["challenge"] == "/sms2fa/challenge?idle=900&next=%2Faccount%2Fsettings"
    assert "insufficient_user_authentication" not in str(headers)  # RFC 9470 has no idle


def test_the_middleware_idle_and_the_strictest_rule(
    sms2fa_settings: Settings, timed: Timed
) -> None:
    """``idle=600`` on the middleware applies to every protected path; a rule's smaller
    idle wins where it matches, a larger one does not loosen it."""
    protect = [
        "/account",
        {"path": "/account/settings", "idle": 900},
        {"path": "/account/keys", "idle": 120},
    ]
    browser, clock, _ = timed("wsgi", sms2fa_settings, protect, idle=600)
    guard = browser.guard
    cookie = f"{guard.cookie_for(False)}={guard.signer.issue(ALICE, int(guard.sessions.now_ms()))}"

    def to_app(path: str) -> bool:
        kind = guard.remember(path, path)
        need = guard.demand(path, path, "GET")[1] if kind == RULED else PLAIN
        return guard.decide(PROTECTED, ALICE, None, cookie, False, need).to_app

    clock.advance(3 * 60)
    assert to_app("/account") and to_app("/account/settings") and not to_app("/account/keys")
    clock.advance(8 * 60)  # 11 minutes unused: past the middleware's 600
    assert not to_app("/account") and not to_app("/account/settings")


def outside_office(request: Any, identity: Identity | None) -> bool:
    """A ``when``: the rule applies outside the office network (10.1.0.0/16). The client
    address as each framework gives it: werkzeug, Django, Starlette."""
    import ipaddress

    if hasattr(request, "remote_addr"):
        address = request.remote_addr
    elif hasattr(request, "META"):
        address = request.META.get("REMOTE_ADDR")
    else:
        address = request.client.host if request.client else None
    try:
        return ipaddress.ip_address(address or "") not in ipaddress.ip_network("10.1.0.0/16")
    except ValueError:
        return True  # no address, or not an IP: not the office


async def outside_office_async(request: Any, identity: Identity | None) -> bool:
    return outside_office(request, identity)


def broken_when(request: Any, identity: Identity | None) -> bool:
    raise RuntimeError("a bug in a when")


@pytest.mark.parametrize(
    "when", ["tests.unit.test_rules.outside_office", "tests.unit.test_rules:outside_office_async"]
)
def test_when_exempts_the_office_network(
    kind: str, sms2fa_settings: Settings, fake_flowroute: FakeFlowroute, when: str
) -> None:
    """A rule whose ``when`` (a dotted path; sync or async) exempts 10.1.0.0/16: from there
    an unverified request goes to the app; from anywhere else it is challenged."""
    browser = Browser(kind, sms2fa_settings, protect=[{"path": "/admin", "when": when}])
    for headers in (PAGE, API, {**API, "x-user": ""}):
        status, _, body = browser.call("GET", "/admin", headers, remote="10.1.2.3")
        assert (status, body) == (200, "app GET /admin"), headers
    status, _, body = browser.call("GET", "/admin", API, remote="203.0.113.9")
    assert status == 401 and json.loads(body)["reason"] == "VerificationRequired"
    status, headers, _ = browser.call("GET", "/admin", PAGE, remote="203.0.113.9")
    assert status == 303
    assert _location_path(headers) == "/sms2fa/challenge?next=%2Fadmin"
    assert fake_flowroute.messages  # a code was sent to the one outside
    status, _, _ = browser.call("GET", "/admin", {**API, "x-user": ""}, remote="203.0.113.9")
    assert status == 401  # anonymous outside: log in first


def test_when_that_raises_fails_closed(
    kind: str, sms2fa_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    browser = Browser(kind, sms2fa_settings, protect=[Rule("/admin", when=broken_when)])
    status, _, body = browser.call("GET", "/admin", API)
    assert status == 500 and "a bug in a when" not in body
    # Logged for the developer: which when, what it raised and where (not its message).
    assert (
        "the when of a protect rule (tests.unit.test_rules.broken_when) raised RuntimeError"
        in caplog.text
    )
    assert 'raise RuntimeError("a bug in a when")' in caplog.text


def test_when_rules_from_a_mapping_and_the_strictest() -> None:
    options = GuardOptions.from_mapping(
        {
            "protect": [
                {"path": "/a", "when": "tests.unit.test_rules.outside_office", "idle": 60},
                {"path": "/a", "methods": ["POST"], "max_age": 300, "idle": 900},
                {"path": "/a", "max_age": 600},
            ],
            "idle": 3600,
        }
    )
    assert options.idle == 3600 and options.rules[0].when is outside_office
    from sms2fa_middleware.guard.paths import PathPolicy

    paths = PathPolicy((), (), "/sms2fa", options.rules)
    assert paths.remember("/a", "/a") == RULED
    kind, need = paths.demand("/a", "/a", "POST")
    assert (kind, need.max_age, need.idle, len(need.pending)) == (PROTECTED, 300, 900, 1)
    assert need.resolve([True]) == Need(True, 300, 60)  # the when-true rule's idle: smaller
    assert need.resolve([False]) == Need(True, 300, 900)
    only_when = GuardOptions(protect=[{"path": "/b", "when": outside_office}]).rules
    paths = PathPolicy((), (), "/sms2fa", only_when)
    paths.remember("/b", "/b")
    kind, need = paths.demand("/b", "/b", "GET")
    assert kind == PROTECTED and not need.protected and need.pending  # the guard must ask
    assert not need.resolve([False]).protected and need.resolve([True]).protected
    for bad in (
        {"path": "/b", "idle": 0},
        {"path": "/b", "idle": True},
        {"path": "/b", "when": "no_such_module_here.f"},
        {"path": "/b", "when": "tests.unit.test_rules.NO_SUCH_NAME"},
        {"path": "/b", "when": 5},
    ):
        with pytest.raises(ValueError):
            GuardOptions(protect=[bad])
    with pytest.raises(ValueError):
        GuardOptions(protect=["/a"], idle=-5)


def test_api_client_completes_step_up_by_the_json_flow(
    browser: Browser, fake_flowroute: FakeFlowroute
) -> None:
    """An API client verified 10 minutes ago gets RFC 9470's challenge with max_age=300 on
    POST /account/delete, asks for a code, posts it as JSON, and the delete goes through
    with the fresh cookie (its client re-sends the call)."""
    browser.verified(TEN_MINUTES_MS)
    status, headers, body = browser.call("POST", "/account/delete", API)
    assert status == 401 and "max_age=300" in str(headers)
    assert json.loads(body)["challenge"].startswith("/sms2fa/challenge?max_age=300")
    origin = {**API, "origin": browser.origin}
    status, _, body = browser.call("POST", "/sms2fa/challenge/send", origin, json_body={})
    assert status == 200, body
    code = fake_flowroute.last_code(ALICE.recipient or "")
    status, headers, body = browser.call(
        "POST", "/sms2fa/challenge", origin, json_body={"code": code}
    )
    assert status == 200 and json.loads(body)["verified"] is True
    assert browser.set_cookies(headers)
    status, _, body = browser.call("POST", "/account/delete", API)
    assert (status, body) == (200, "app POST /account/delete")


def test_step_up_page_says_why(browser: Browser) -> None:
    browser.verified(TEN_MINUTES_MS)
    status, _, page = browser.call("GET", "/sms2fa/challenge?max_age=300&next=/account", PAGE)
    assert status == 200 and "This page needs a code from the last 5 minutes." in page
    status = browser.call("GET", "/sms2fa/challenge?next=/account", PAGE)[0]
    assert status == 303  # verified, no step-up asked: straight back


# -- Django: idle and when, sync and async -------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_django_idle_and_when(
    request: pytest.FixtureRequest, fake_flowroute: FakeFlowroute, mode: str
) -> None:
    """The example project with ``{"path": "/account", "idle": 900, "when": ...}``: a
    session last seen 16 minutes ago is challenged (the URL carries idle=900); one last seen
    2 minutes ago opens the page and gets its last-seen renewed on the response; from the
    office network the rule does not apply (a dotted-path ``when``). Time travel: cookies
    signed with past times by the guard's own signer."""
    pytest.importorskip("django")
    from tests.support.django_example import ALICE as DJANGO_ALICE
    from tests.support.django_example import ALICE_PHONE, HTML, MARKER, PASSWORD

    configure = request.getfixturevalue("sms2fa")
    configure(
        protect=[{"path": "/account", "idle": 900, "when": "tests.unit.test_rules.outside_office"}]
    )
    from django.contrib.auth import get_user_model
    from django.test import AsyncClient, Client

    from sms2fa_middleware.django.conf import installed

    guard = installed().guard
    user = get_user_model().objects.get(username=DJANGO_ALICE)
    who = Identity(str(user.pk), ALICE_PHONE)
    now = int(guard.sessions.now_ms())
    minute = 60_000
    stale = guard.signer.issue(who, now - 30 * minute)  # last seen when issued: 30 min ago
    sid = guard.signer.session_id(stale)
    recent = guard.signer.issue(who, now - 30 * minute, now - 2 * minute, sid)
    name = guard.cookie_for(False)

    async def run() -> list[Any]:
        answers = []
        for value, remote in ((stale, "203.0.113.9"), (recent, "203.0.113.9"), (stale, "10.1.0.7")):
            client: Any = (
                _from(AsyncClient, remote)() if mode == "async" else Client(REMOTE_ADDR=remote)
            )
            if mode == "async":
                await client.alogin(username=DJANGO_ALICE, password=PASSWORD)
                client.cookies[name] = value
                answers.append(await client.get("/account/", headers=HTML))
            else:
                client.login(username=DJANGO_ALICE, password=PASSWORD)
                client.cookies[name] = value
                answers.append(client.get("/account/", headers=HTML))
        return answers

    if mode == "async":
        idle, active, office = asyncio.run(run())
    else:
        idle, active, office = _sync_run(run)
    assert idle.status_code == 303
    assert idle["location"] == "/sms2fa/challenge?idle=900&next=%2Faccount%2F"
    assert active.status_code == 200 and MARKER in active.text
    renewed = active.cookies[name].value
    assert renewed.split(".")[:2] == stale.split(".")[:2]  # the same session, issued then
    assert guard.signer.times(renewed, who) is not None
    assert guard.signer.times(renewed, who)[1] >= now  # type: ignore[index]
    # From the office the rule does not apply: to the view unverified, which refuses (403)
    # by its own double-check -- not the guard's challenge.
    assert office.status_code == 403 and "location" not in office


def _from(async_client: type, remote: str) -> Any:
    """Django's AsyncClient from ``remote``: under ASGI, REMOTE_ADDR is the scope's
    client (the test client's keywords become headers)."""

    class Remote(async_client):  # type: ignore[misc,valid-type]
        def _base_scope(self, **request: Any) -> dict[str, Any]:
            scope: dict[str, Any] = super()._base_scope(**request)
            scope["client"] = [remote, 0]
            return scope

    return Remote


def _sync_run(make: Callable[[], Any]) -> Any:
    """Run the coroutine function ``make`` whose body only calls sync code: Django's sync
    test client must not run inside an event loop, so step it by hand."""
    coroutine = make()
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    raise AssertionError("the sync run awaited something")


# -- route-level max_age: Flask, Starlette, FastAPI, Django ---------------------------------


def _step_up_checks(call: Callable[..., tuple[int, Any, str]], origin: str) -> None:
    """What a route with its own max_age=300 answers a session verified 10 minutes ago: a
    browser goes to the challenge (``?max_age=300``), an API client gets 401 with RFC 9470's
    header."""
    status, headers, _ = call("POST", "/account/delete", {**PAGE, "origin": origin})
    assert status == 303, headers
    location = re.sub(r"^https?://[^/]+", "", headers["location"])
    assert location.startswith("/sms2fa/challenge?max_age=300&next="), location
    status, headers, _ = call("POST", "/account/delete", API)
    assert status == 401
    assert "insufficient_user_authentication" in str(headers) and "max_age=300" in str(headers)


def test_flask_route_max_age(sms2fa_settings: Settings, fake_flowroute: FakeFlowroute) -> None:
    from flask import Flask
    from werkzeug.test import Client

    from sms2fa_middleware.flask import verified_required
    from sms2fa_middleware.wsgi import SMS2FAMiddleware as Wsgi

    app = Flask(__name__)

    @app.post("/account/delete")
    @verified_required(max_age=300)
    def delete() -> str:
        return "deleted"

    @app.get("/account")
    @verified_required
    def account() -> str:
        return "account"

    app.wsgi_app = Wsgi(app.wsgi_app, sms2fa_settings, protect=["/account"], identify=identify)  # type: ignore[method-assign]
    guard = app.wsgi_app.guard
    client = Client(app)

    def call(method: str, url: str, headers: dict[str, str]) -> tuple[int, Any, str]:
        response = client.open(url, method=method, headers={"x-user": "alice", **headers})
        return response.status_code, response.headers, response.get_data(as_text=True)

    old = guard.signer.issue(ALICE, int(guard.sessions.now_ms()) - TEN_MINUTES_MS)
    client.set_cookie(guard.cookie_for(False), old, path="/")
    assert call("GET", "/account", PAGE)[2] == "account"  # the plain decorator: no max_age
    _step_up_checks(call, "http://localhost")
    assert fake_flowroute.messages  # the browser's step-up sent a code
    client.set_cookie(
        guard.cookie_for(False), guard.signer.issue(ALICE, int(guard.sessions.now_ms())), path="/"
    )
    assert call("POST", "/account/delete", API)[2] == "deleted"
    with pytest.raises(ValueError):
        verified_required(max_age=0)


@pytest.mark.parametrize("framework", ["starlette", "fastapi"])
def test_starlette_and_fastapi_route_max_age(sms2fa_settings: Settings, framework: str) -> None:
    from starlette.requests import Request as StarletteRequest
    from starlette.responses import PlainTextResponse
    from starlette.testclient import TestClient

    from sms2fa_middleware.asgi import SMS2FAMiddleware as Asgi
    from sms2fa_middleware.starlette import require_verified, verified_required

    if framework == "fastapi":
        from fastapi import Depends, FastAPI

        app: Any = FastAPI()

        @app.post("/account/delete", response_class=PlainTextResponse)
        def delete(who: Identity = Depends(require_verified(max_age=300))) -> str:
            return f"deleted {who.auth_id}"

        @app.get("/account", response_class=PlainTextResponse)
        def account(who: Identity = Depends(require_verified)) -> str:
            return f"account {who.auth_id}"

    else:
        from starlette.applications import Starlette
        from starlette.routing import Route

        @verified_required(max_age=300)
        async def delete_endpoint(request: StarletteRequest) -> PlainTextResponse:
            return PlainTextResponse(f"deleted {request.state.sms2fa.auth_id}")

        @verified_required
        async def account_endpoint(request: StarletteRequest) -> PlainTextResponse:
            return PlainTextResponse(f"account {request.state.sms2fa.auth_id}")

        app = Starlette(
            routes=[
                Route("/account/delete", delete_endpoint, methods=["POST"]),
                Route("/account", account_endpoint),
            ]
        )
    wrapped = Asgi(app, sms2fa_settings, protect=["/account"], identify=identify)
    guard = wrapped.guard
    client = TestClient(wrapped, follow_redirects=False)

    def call(method: str, url: str, headers: dict[str, str]) -> tuple[int, Any, str]:
        response = client.request(method, url, headers={"x-user": "alice", **headers})
        return response.status_code, response.headers, response.text

    name = guard.cookie_for(False)
    client.cookies.set(
        name, guard.signer.issue(ALICE, int(guard.sessions.now_ms()) - TEN_MINUTES_MS)
    )
    assert call("GET", "/account", PAGE)[2] == "account alice"  # no max_age of its own
    _step_up_checks(call, "http://testserver")
    client.cookies.set(name, guard.signer.issue(ALICE, int(guard.sessions.now_ms())))
    assert call("POST", "/account/delete", API)[2] == "deleted alice"


def test_django_route_max_age(
    request: pytest.FixtureRequest, fake_flowroute: FakeFlowroute
) -> None:
    """The Django decorator with max_age=300, sync and async views, behind the middleware
    (the example project's settings: /account is protected)."""
    pytest.importorskip("django")
    from tests.support.django_example import ALICE as DJANGO_ALICE
    from tests.support.django_example import ALICE_PHONE

    request.getfixturevalue("sms2fa")
    from django.contrib.auth import get_user_model
    from django.http import HttpResponse
    from django.test import RequestFactory

    from sms2fa_middleware.django import SMS2FAMiddleware as DjangoMiddleware
    from sms2fa_middleware.django import verified_required
    from sms2fa_middleware.django.conf import installed

    @verified_required(max_age=300)
    def delete(req: Any) -> HttpResponse:
        return HttpResponse("deleted")

    @verified_required(max_age=300)
    async def adelete(req: Any) -> HttpResponse:
        return HttpResponse("deleted")

    guard = installed().guard
    user = get_user_model().objects.get(username=DJANGO_ALICE)
    who = Identity(str(user.pk), ALICE_PHONE)
    name = guard.cookie_for(False)

    def cookie(ago_ms: int) -> str:
        return f"{name}={guard.signer.issue(who, int(guard.sessions.now_ms()) - ago_ms)}"

    def call(ago_ms: int, headers: dict[str, str], view: Any) -> Any:
        req = RequestFactory().post("/account/delete", HTTP_COOKIE=cookie(ago_ms), headers=headers)
        req.user = user
        middleware = DjangoMiddleware(view)
        answer = middleware(req)
        return asyncio.run(answer) if asyncio.iscoroutine(answer) else answer

    for view in (delete, adelete):
        old = call(TEN_MINUTES_MS, API, view)
        assert old.status_code == 401 and "max_age=300" in str(old.headers.get("www-authenticate"))
        assert "max_age=300" in str(old.headers)
        page = call(TEN_MINUTES_MS, {**PAGE, "origin": "http://testserver"}, view)
        assert page.status_code == 303 and "/sms2fa/challenge?max_age=300" in page["location"]
        assert call(60_000, API, view).content == b"deleted"


# -- sms2fa rules check, and the remember_for warning ---------------------------------------

from sms2fa_middleware.wsgi import SMS2FAMiddleware as _Wsgi  # noqa: E402

#: An app for ``sms2fa rules check --app test_rules:RULES_APP`` (lazy: no settings needed).
RULES_APP = _Wsgi(
    wsgi_app,
    protect=[
        *PROTECT,
        {"path": "/admin", "when": "tests.unit.test_rules.outside_office", "idle": 300},
        {"path": "/account/settings", "idle": 900},
    ],
    exclude=["/account/public"],
    idle=3600,
    identify=identify,
)


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        (
            "POST",
            "/account/delete",
            [
                "POST /account/delete",
                "  a plain protect pattern: every method, any verified session",
                "  rule: path '/account/delete', methods DELETE,POST, max_age 300 s -- covers POST",
                "effective: verification required, a code at most 300 s old, used within 3600 s",
            ],
        ),
        (
            "GET",
            "/account/settings",
            [
                "GET /account/settings",
                "  a plain protect pattern: every method, any verified session",
                "  rule: path '/account/settings', idle 900 s -- covers GET",
                "effective: verification required, any verified session, used within 900 s",
            ],
        ),
        (
            "GET",
            "/reports",
            [
                "GET /reports",
                "  rule: path '/reports', methods POST -- does not cover GET",
                "effective: not protected for GET (to the app, unverified)",
            ],
        ),
        (
            "DELETE",
            "/admin/users",
            [
                "DELETE /admin/users",
                "  rule: path '/admin', idle 300 s, when tests.unit.test_rules.outside_office "
                "-- covers DELETE",
                "effective: protected only when a rule's when says true",
                "  when tests.unit.test_rules.outside_office says true: verification required, any "
                "verified session, used within 300 s",
            ],
        ),
        (
            "GET",
            "/account/public",
            [
                "GET /account/public",
                "  a plain protect pattern, but exclude wins",
                "effective: not protected (to the app, unverified)",
            ],
        ),
    ],
)
def test_sms2fa_rules_check(
    method: str, path: str, expected: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    from sms2fa_middleware.cli import main

    status = main(
        ["rules", "check", "--method", method, path, "--app", "tests.unit.test_rules:RULES_APP"]
    )
    assert status == 0
    assert capsys.readouterr().out.splitlines() == expected


def test_remember_for_over_a_day_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    GuardOptions(protect=["/a"], remember_for=24 * 3600)
    assert "remember_for" not in caplog.text
    GuardOptions(protect=["/a"], remember_for=24 * 3600 + 1)
    assert "remember_for is 86401 s" in caplog.text and "AAL2" in caplog.text


def test_a_renewed_cookie_is_the_same_session(sms2fa_settings: Settings, timed: Timed) -> None:
    """The renewed cookie keeps the session id: "log out this device" with either value
    ends both, and a made-up last-seen does not verify."""
    browser, clock, _ = timed("wsgi", sms2fa_settings, IDLE_PROTECT)
    guard, https = browser.guard, False
    first = guard.signer.issue(ALICE, int(guard.sessions.now_ms()))
    name = guard.cookie_for(https)
    session = guard.sessions.session(f"{name}={first}", https, ALICE)
    assert session is not None and session.seen == session.issued
    clock.advance(120)
    header = guard.sessions.touch(session, https, ALICE, guard.sessions.now_ms())
    assert header is not None
    renewed = header[1].split(";")[0].split("=", 1)[1]
    assert guard.signer.session_id(renewed) == guard.signer.session_id(first) is not None
    issued, seen = guard.signer.times(renewed, ALICE) or (0, 0)
    assert (issued, seen - issued) == (session.issued, 120_000)
    forged = renewed.split(".")
    forged[2] = f"{int(forged[2], 16) + 600_000:x}"  # a later last-seen, same signature
    assert guard.signer.times(".".join(forged), ALICE) is None
    guard.revoke_session(f"{name}={first}")  # this device, by the first value
    assert guard.sessions.session(f"{name}={renewed}", https, ALICE) is None


def test_why_the_page_is_shown_again() -> None:
    from sms2fa_middleware import text

    assert text.needs_recent_code(300) == "This page needs a code from the last 5 minutes."
    assert text.needs_recent_code(60) == "This page needs a code from the last minute."
    assert text.needs_recent_code(90) == "This page needs a code from the last 90 seconds."
    assert text.idle_too_long(900).startswith("You have been away for more than 15 minutes")
    assert text.idle_too_long(45).startswith("You have been away for more than 45 seconds")
