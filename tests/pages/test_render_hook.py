"""Pages rendered by the app (the ``render`` option): every page's context, key by key, as
documented in ``sms2fa_middleware/pages.py``; sync and async hooks on WSGI (Flask) and ASGI
(Starlette), an async one awaited on the app's own event loop; what stays the middleware's
whatever the hook returns (status, headers, the CSP nonce and our script); the built-in
page when the hook says None or fails; and the adapters: ``flask_render``,
``jinja2_render`` (sync and ``enable_async``) and ``django_render``, each with the app's
own templates and with the package's, whose forms work (a code posted from them verifies).

In process: Flask's and Starlette's test clients, Django's test client on the example
project; FakeFlowroute and a SQLite file are real."""

from __future__ import annotations

import asyncio
import html
import logging
import re
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from sms2fa_middleware import Identity, Settings, text
from sms2fa_middleware.errors import StoreUnavailable
from sms2fa_middleware.guard import GuardOptions, responses
from sms2fa_middleware.messages import Request
from sms2fa_middleware.pages import (
    PAGES,
    BrowsersContext,
    ChallengeContext,
    EnrollContext,
    MessageContext,
    PhoneContext,
    RecoveryContext,
)
from sms2fa_middleware.phones import mask
from sms2fa_middleware.testing import FakeFlowroute

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

ALICE = "+12065551234"
NEW = "+13125550199"  # alice's new number, on the change-of-number page
HTML = "text/html,application/xhtml+xml"
KEYS: dict[str, frozenset[str]] = {
    "challenge": ChallengeContext.__required_keys__,
    "enroll": EnrollContext.__required_keys__,
    "phone": PhoneContext.__required_keys__,
    "recovery": RecoveryContext.__required_keys__,
    "browsers": BrowsersContext.__required_keys__,
    **{name: MessageContext.__required_keys__ for name in ("no_phone", "forbidden", "error")},
    "unavailable": MessageContext.__required_keys__,
}
NONCE = re.compile(r"'nonce-([^']+)'")
LAYOUT = """<!doctype html><html lang="{{ lang }}" dir="{{ dir }}"><head>
<title>{% block title %}{% endblock %} | Shop</title>
<link rel="stylesheet" href="/static/style.css"></head>
<body><header id="shop">{{ shop }}</header>{% block content %}{% endblock %}</body></html>"""


def identify(request: Any) -> Identity | None:
    """alice has a phone, carol none; "broken" makes identify raise."""
    user = request.headers.get("x-user")
    if user == "broken":
        raise RuntimeError("the user store is down")
    if user == "carol":
        return Identity("carol", None)
    return Identity("alice", ALICE) if user == "alice" else None


@dataclass
class Page:
    status: int
    headers: Any
    text: str

    def field(self, name: str) -> str:
        found = re.search(rf'name="{name}" value="([^"]*)"', self.text)
        assert found is not None, self.text[:800]
        return found.group(1)

    @property
    def nonce(self) -> str:
        found = NONCE.search(self.headers["content-security-policy"])
        assert found is not None
        return found.group(1)


@dataclass
class App:
    """One app behind the middleware, driven by its framework's test client."""

    kind: str
    client: Any
    middleware: Any
    loops: list[Any] = field(default_factory=list)  # the app's loop, seen by an endpoint

    def get(self, path: str, user: str = "alice", **headers: str) -> Page:
        headers = {"accept": HTML, "x-user": user, **headers}
        if self.kind == "flask":
            made = self.client.get(path, headers=headers)
            return Page(made.status_code, made.headers, made.get_data(as_text=True))
        made = self.client.get(path, headers=headers, follow_redirects=False)
        return Page(made.status_code, made.headers, made.text)

    def post(self, path: str, data: dict[str, str], user: str = "alice") -> Page:
        headers = {"accept": HTML, "x-user": user}
        if self.kind == "flask":
            made = self.client.post(path, data=data, headers=headers)
            return Page(made.status_code, made.headers, made.get_data(as_text=True))
        made = self.client.post(path, data=data, headers=headers, follow_redirects=False)
        return Page(made.status_code, made.headers, made.text)

    def challenge(self, user: str = "alice", **headers: str) -> Page:
        started = self.get("/account", user, **headers)
        assert started.status == 303, started.text[:300]
        return self.get(started.headers["location"], user, **headers)

    def verify(self, fake: FakeFlowroute, trust: bool = False) -> None:
        page = self.challenge()
        assert page.status == 200, page.text[:500]
        data = {"csrf_token": page.field("csrf_token"), "next": "/account"}
        data["code"] = fake.last_code(ALICE)
        if trust:
            data["trust"] = "1"
        done = self.post("/sms2fa/challenge", data)
        assert done.status == 303 and done.headers["location"] == "/account", done.text[:500]


def flask_app(settings: Settings, templates: Path | None = None, **options: Any) -> tuple[App, Any]:
    from flask import Flask, request

    from sms2fa_middleware.wsgi import ENVIRON_KEY, SMS2FAMiddleware

    app = Flask("sms2fa_render_test", template_folder=str(templates) if templates else None)

    @app.context_processor
    def shop() -> dict[str, str]:  # the app's own context: its templates see it on our pages
        return {"shop": f"ACME for {request.headers.get('x-user', '?')}"}

    @app.get("/account")
    def account() -> str:
        return f"account of {request.environ[ENVIRON_KEY].auth_id}"

    options = {"protect": ["/account"], "identify": identify, **options}
    made_with = options.pop("render_with", None)  # a helper that needs the app: flask_render
    if made_with is not None:
        options["render"] = made_with(app)
    middleware = SMS2FAMiddleware(app.wsgi_app, settings, **options)
    app.wsgi_app = middleware  # type: ignore[method-assign]
    return App("flask", app.test_client(), middleware), app


def starlette_app(settings: Settings, **options: Any) -> App:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request as StarletteRequest
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from sms2fa_middleware.asgi import SMS2FAMiddleware

    with warnings.catch_warnings():  # starlette >= 1.0 would rather have httpx2
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    loops: list[Any] = []

    async def account(request: StarletteRequest) -> PlainTextResponse:
        loops.append(asyncio.get_running_loop())
        return PlainTextResponse(f"account of {request.state.sms2fa.auth_id}")

    options = {"protect": ["/account"], "identify": identify, **options}
    app = Starlette(
        routes=[Route("/account", account)],
        middleware=[Middleware(SMS2FAMiddleware, settings=settings, **options)],
    )
    client = TestClient(app)
    client.__enter__()  # one portal (one event loop) for every request of the test
    app.middleware_stack = app.build_middleware_stack()
    node: Any = app.middleware_stack
    while not isinstance(node, SMS2FAMiddleware):
        node = node.app
    return App("starlette", client, node, loops)


@pytest.fixture
def apps(make_settings: Callable[..., Settings], tmp_path: Path) -> Iterator[Callable[..., App]]:
    """``apps(kind, **options)``: a Flask or Starlette app behind the middleware."""
    made: list[App] = []

    def build(kind: str, templates: Path | None = None, **options: Any) -> App:
        settings = make_settings(resend_cooldown=30)
        app = (
            flask_app(settings, templates, **options)[0]
            if kind == "flask"
            else starlette_app(settings, **options)
        )
        made.append(app)
        return app

    yield build
    for app in made:
        if app.kind == "starlette":
            app.client.__exit__(None, None, None)
        app.middleware.verifier.store.dispose()


class Recorder:
    """A render hook that keeps what it was given; ``html``: what it answers (None: the
    built-in page)."""

    def __init__(self, html: Callable[[str, dict[str, Any]], Any] | None = None) -> None:
        self.html = html
        self.seen: list[tuple[str, dict[str, Any]]] = []
        self.threads: list[str] = []

    def __call__(self, page: str, context: Any) -> Any:
        self.seen.append((page, dict(context)))
        self.threads.append(threading.current_thread().name)
        return self.html(page, dict(context)) if self.html else None

    def last(self, page: str) -> dict[str, Any]:
        found = [context for name, context in self.seen if name == page]
        assert found, f"no {page!r} page rendered: {[n for n, _ in self.seen]}"
        context = found[-1]
        assert set(context) == KEYS[page], set(context) ^ KEYS[page]  # as documented
        return context


def hooked(page: str, context: dict[str, Any]) -> str:
    """A hook's page: enough to recognise, its form's hidden fields, a <body> for our
    script."""
    fields = "".join(
        f'<input type="hidden" name="{name}" value="{html.escape(context[key])}">'
        for name, key in (("csrf_token", "csrf_value"), ("next", "next_url"))
        if key in context
    )
    return (
        f'<!doctype html><html lang="{context["lang"]}"><title>{context["title"]}</title>'
        f'<body><h1 id="hooked">{page}: {context["title"]}</h1>{fields}</body></html>'
    )


# -- every page's context ----------------------------------------------------------------


@SQLITE_ONLY
@pytest.mark.parametrize("kind", ["flask", "starlette"])
def test_every_pages_context_is_as_documented(
    apps: Callable[..., App], fake_flowroute: FakeFlowroute, kind: str
) -> None:
    seen = Recorder()  # None: the built-in pages, which show what the context says
    app = apps(kind, render=seen, trust_browser_for=30 * 86400, logout_url="/bye")

    page = app.challenge()
    c = seen.last("challenge")
    assert page.status == c["status"] == 200
    assert (c["page"], c["title"], c["heading"]) == (
        "challenge",
        text.page_title(),
        "Check your phone",
    )
    assert (c["lang"], c["dir"]) == ("en", "ltr")
    assert c["masked_number"] == mask(ALICE) and ALICE not in repr(c)
    assert c["lead"] == f"We sent a verification code by text message to {mask(ALICE)}."
    assert (c["action"], c["resend_action"]) == ("/sms2fa/challenge", "/sms2fa/challenge/resend")
    assert (c["csrf_name"], c["csrf_value"]) == ("csrf_token", page.field("csrf_token"))
    assert c["next_url"] == "/account" == page.field("next")
    assert (c["code_length"], c["attempts_left"], c["attempts_text"]) == (6, 3, "3 attempts left.")
    assert (c["error"], c["notice"], c["held"]) == (None, None, None)
    assert 29 <= c["retry_after"] <= 31
    assert c["retry_after_text"] == f"You can ask for a new code in {c['retry_after']} seconds."
    assert c["retry_after_template"] == "You can ask for a new code in {time}."
    assert c["retry_after_join"] == "{minutes} and {seconds}"
    assert (c["recovery_left"], c["recovery_left_text"]) == (0, "0 recovery codes left")
    assert c["trust_days"] == 30 and c["trust_text"] == text.trust_browser_label(30)
    assert (c["logout_url"], c["logout_text"]) == ("/bye", "Log out")
    assert c["csp_nonce"] == page.nonce  # the nonce the page's CSP allows
    assert c["request"].headers["x-user"] == "alice"  # the framework's own request
    assert type(c["request"]).__module__.split(".")[0] == (
        "werkzeug" if kind == "flask" else "starlette"
    )
    for label in ("code_label", "verify_label", "resend_label", "logout_text"):
        assert c[label] and c[label] in page.text.replace("&#x27;", "'")

    wrong = app.post("/sms2fa/challenge", {"csrf_token": page.field("csrf_token"), "code": "x"})
    c = seen.last("challenge")
    assert (wrong.status, c["status"]) == (400, 400)
    assert c["error"] == text.enter_digits()

    forged = app.post("/sms2fa/challenge", {"csrf_token": "forged", "code": "123456"})
    c = seen.last("forbidden")
    assert (forged.status, c["status"], c["title"]) == (403, 403, "Forbidden")
    assert c["sentence"] == text.forbidden() and c["link_url"] is None

    app.verify(fake_flowroute, trust=True)
    app.get("/sms2fa/recovery")
    c = seen.last("recovery")
    assert (c["left"], c["codes"], c["shown_once_text"]) == (0, [], None)
    assert c["action"] == "/sms2fa/recovery"
    made = app.post("/sms2fa/recovery", {"csrf_token": c["csrf_value"]})
    c = seen.last("recovery")
    assert made.status == 200 and len(c["codes"]) == c["left"] == 10
    assert all(f"<code>{code}</code>" in made.text for code in c["codes"])
    assert c["shown_once_text"] == text.recovery_shown_once()

    listed = app.get("/sms2fa/browsers")
    c = seen.last("browsers")
    (entry,) = c["browsers"]
    assert entry["this_browser"] is True and set(entry) == {
        "id",
        "created_at",
        "expires_at",
        "last_used",
        "created_date",
        "expires_date",
        "last_used_date",
        "created_text",
        "expires_text",
        "last_used_text",
        "user_agent",
        "network",
        "this_browser",
    }
    # Each time twice: ISO (as the JSON has it) and in words, to the minute, labelled.
    for key, iso_key, label in (
        ("created", "created_at", "Trusted on"),
        ("expires", "expires_at", "Trusted until"),
        ("last_used", "last_used", "Last used"),
    ):
        moment = datetime.fromisoformat(entry[iso_key].replace("Z", "+00:00"))
        words = f"{moment.day} {moment:%B %Y, %H:%M} UTC"  # "3 December 2026, 20:41 UTC"
        assert entry[f"{key}_date"] == words, entry
        assert entry[f"{key}_text"] == f"{label} {words}"
        assert f'<time datetime="{entry[iso_key]}">{label} {words}</time>' in listed.text
    assert (c["revoke_label"], c["revoke_all_label"]) == ("Revoke", "Revoke all")
    spanish = app.get("/sms2fa/browsers", **{"accept-language": "es"})
    (entry,) = seen.last("browsers")["browsers"]
    assert re.fullmatch(
        r"De confianza desde el \d+ de [a-z]+ de \d{4}, \d\d:\d\d UTC", entry["created_text"]
    )
    assert entry["created_text"] in spanish.text

    no_phone = app.get("/account", user="carol")
    c = seen.last("no_phone")
    assert (no_phone.status, c["status"], c["link_url"]) == (403, 403, None)
    assert c["sentence"] == text.no_phone()

    broken = app.get("/account", user="broken")
    c = seen.last("error")
    assert (broken.status, c["status"], c["sentence"]) == (500, 500, text.identify_failed())
    assert "the user store is down" not in broken.text


@SQLITE_ONLY
def test_the_enrollment_and_unavailable_contexts(
    apps: Callable[..., App], fake_flowroute: FakeFlowroute
) -> None:
    seen = Recorder()
    numbers: dict[str, str] = {}
    app = apps("flask", render=seen, on_enroll=numbers.__setitem__)

    app.get("/sms2fa/enroll?next=/account", user="carol")
    c = seen.last("enroll")
    assert (c["sent_to"], c["sent_text"], c["error"]) == (None, None, None)
    assert (c["action"], c["next_url"], c["code_length"]) == ("/sms2fa/enroll", "/account", 6)
    assert c["phone_label"] == text.enroll_phone_label()
    data = {"csrf_token": c["csrf_value"], "next": "/account", "phone": "not a number"}
    refused = app.post("/sms2fa/enroll", data, user="carol")
    assert refused.status == seen.last("enroll")["status"] == 400
    assert seen.last("enroll")["error"] == text.enroll_bad_number()
    sent = app.post("/sms2fa/enroll", {**data, "phone": "+13125550199"}, user="carol")
    assert sent.status == 303
    app.get("/sms2fa/enroll?next=/account", user="carol")
    c = seen.last("enroll")
    assert c["sent_to"] == mask("+13125550199") and "+13125550199" not in repr(c)
    assert c["sent_text"] == text.enroll_code_sent(mask("+13125550199"))

    # The store is down: the 503 page, with its Retry-After, through the hook too.
    renderer = app.middleware.options.renderer
    with renderer.active(), text.speaking("es"):
        down = responses.unavailable(
            Request("GET", "/account", headers={"accept": "text/html"}), StoreUnavailable()
        )
    c = seen.last("unavailable")
    assert (down.status, c["status"], c["lang"]) == (503, 503, "es")
    assert c["title"] == "Inténtalo de nuevo en breve"
    assert dict(down.headers)["retry-after"] == "5"


@SQLITE_ONLY
@pytest.mark.parametrize("kind", ["flask", "starlette"])
def test_the_change_of_number_context(
    apps: Callable[..., App], fake_flowroute: FakeFlowroute, kind: str
) -> None:
    seen = Recorder()
    numbers = {"alice": ALICE}

    def who(request: Any) -> Identity | None:  # the app's table, which on_enroll writes
        user = request.headers.get("x-user")
        return Identity(user, numbers[user]) if user in numbers else None

    app = apps(kind, render=seen, identify=who, on_enroll=numbers.__setitem__)
    app.verify(fake_flowroute)  # a fresh code: no step-up before the page
    page = app.get("/sms2fa/phone?next=/account")
    c = seen.last("phone")
    assert page.status == c["status"] == 200
    assert (c["page"], c["title"], c["lang"]) == ("phone", "Change your phone number", "en")
    assert c["masked_number"] == mask(ALICE) and ALICE not in repr(c)
    assert c["intro"] == text.phone_intro(mask(ALICE))
    assert (c["action"], c["next_url"]) == ("/sms2fa/phone", "/account")
    assert (c["recovery_url"], c["recovery_text"]) == (
        "/sms2fa/recovery",
        "Make new recovery codes",
    )
    assert (c["csrf_name"], c["csrf_value"]) == ("csrf_token", page.field("csrf_token"))
    assert (c["sent_to"], c["sent_text"], c["changed_text"], c["error"]) == (None,) * 4
    assert (c["phone_label"], c["send_label"]) == ("New mobile number", "Text me a code")
    assert c["csp_nonce"] == page.nonce and c["code_length"] == 6
    assert 'name="code"' not in page.text  # no code out: the number form only

    data = {"csrf_token": c["csrf_value"], "next": "/account"}
    same = app.post("/sms2fa/phone", {**data, "phone": ALICE})
    c = seen.last("phone")
    assert (same.status, c["status"], c["error"]) == (400, 400, text.phone_same_number())
    assert app.post("/sms2fa/phone", {**data, "phone": NEW}).status == 303
    waiting = app.get("/sms2fa/phone?next=/account")
    c = seen.last("phone")
    assert c["sent_to"] == mask(NEW) and NEW not in repr(c)
    assert c["sent_text"] == text.phone_code_sent(mask(NEW)) and c["changed_text"] is None
    assert c["confirm_label"] == "Use this number" and 'pattern="[0-9 \\-]*"' in waiting.text

    # A code typed in groups, as the field lets it be: the number changes.
    code = fake_flowroute.last_code(NEW)
    done = app.post("/sms2fa/phone", {**data, "code": f"{code[:3]} {code[3:]}"})
    assert done.status == 303 and numbers["alice"] == NEW, done.text[:300]
    after = app.get(done.headers["location"])
    c = seen.last("phone")
    assert (after.status, c["masked_number"]) == (200, mask(NEW))
    assert c["changed_text"] == text.phone_changed(mask(NEW)) and 'id="phone-changed"' in after.text
    assert c["continue_text"] == "Continue" and 'href="/sms2fa/recovery"' in after.text
    app.get("/sms2fa/phone?next=/account")
    assert seen.last("phone")["changed_text"] is None  # shown once


# -- what the hook returns, and what stays ours ------------------------------------------


@SQLITE_ONLY
@pytest.mark.parametrize("kind", ["flask", "starlette"])
@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_the_hooks_page_with_our_headers_and_script(
    apps: Callable[..., App], fake_flowroute: FakeFlowroute, kind: str, flavour: str
) -> None:
    ran: list[tuple[Any, str]] = []

    def sync_hook(page: str, context: Any) -> str:
        ran.append((None, threading.current_thread().name))
        return hooked(page, context)

    async def async_hook(page: str, context: Any) -> bytes:
        await asyncio.sleep(0)
        ran.append((asyncio.get_running_loop(), threading.current_thread().name))
        return hooked(page, context).encode()

    app = apps(kind, render=sync_hook if flavour == "sync" else async_hook)
    page = app.challenge()
    assert page.status == 200
    assert '<h1 id="hooked">challenge: Enter your verification code</h1>' in page.text
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    # Our script, by this response's nonce, before the hook's </body>.
    ours = page.text.index(f'<script nonce="{page.nonce}">')
    assert page.text.index('<h1 id="hooked">') < ours < page.text.index("OTPCredential")
    assert page.text.endswith("</script></body></html>")
    assert page.headers.get("set-cookie")  # the CSRF nonce cookie is still ours to set
    forbidden = app.post("/sms2fa/challenge", {"csrf_token": "forged"})
    assert forbidden.status == 403 and '<h1 id="hooked">forbidden: Forbidden</h1>' in forbidden.text
    assert NONCE.search(forbidden.headers["content-security-policy"])

    assert len(ran) == 2
    if kind == "starlette":
        assert app.get("/account").status == 303  # the endpoint notes the app's loop
        if flavour == "async":  # awaited on the app's own event loop
            assert all(loop is not None for loop, _ in ran)
        else:  # a worker thread, never the event loop's
            assert all(name.startswith("sms2fa-send") for _, name in ran), ran


@SQLITE_ONLY
def test_an_async_hook_runs_on_the_apps_event_loop(
    apps: Callable[..., App], fake_flowroute: FakeFlowroute
) -> None:
    loops: list[Any] = []

    async def hook(page: str, context: Any) -> str:
        loops.append(asyncio.get_running_loop())
        return hooked(page, context)

    app = apps("starlette", render=hook)
    app.verify(fake_flowroute)
    assert app.get("/account").text == "account of alice"  # the endpoint ran on the app's loop
    assert loops and app.loops and all(loop is app.loops[0] for loop in loops)


@SQLITE_ONLY
@pytest.mark.parametrize("kind", ["flask", "starlette"])
def test_none_or_a_failing_hook_gets_the_built_in_page(
    apps: Callable[..., App],
    fake_flowroute: FakeFlowroute,
    kind: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def hook(page: str, context: Any) -> Any:
        if page == "forbidden":
            return None  # ours
        if page == "challenge" and context["error"]:
            return 42  # not HTML
        raise RuntimeError(f"template bug near {context['csrf_value']}")

    app = apps(kind, render=hook)
    with caplog.at_level(logging.DEBUG, logger="sms2fa"):
        page = app.challenge()
        assert page.status == 200 and 'id="code"' in page.text  # the built-in page
        token = page.field("csrf_token")
        wrong = app.post("/sms2fa/challenge", {"csrf_token": token, "code": "x"})
        assert wrong.status == 400 and text.enter_digits() in wrong.text
        forged = app.post("/sms2fa/challenge", {"csrf_token": "forged"})
        assert forged.status == 403 and "<h1>Forbidden</h1>" in forged.text
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [
        "sms2fa: render('challenge') raised RuntimeError; the built-in page was served "
        "(the logger 'sms2fa' at DEBUG has the traceback)",
        "sms2fa: render('challenge') returned a int, not HTML; the built-in page was served",
    ]
    assert token not in "".join(errors)  # nothing of the context (the CSRF token) logged


def test_render_must_be_callable_and_it_lets_the_apps_styles_in() -> None:
    with pytest.raises(ValueError, match="render must be a callable"):
        GuardOptions(protect=["/a"], render="templates/")  # type: ignore[arg-type]
    ours = GuardOptions(protect=["/a"]).csp.header("N")[1]
    assert "style-src 'unsafe-inline';" in ours  # the built-in pages load nothing
    rendered = GuardOptions(protect=["/a"], render=hooked).csp.header("N")[1]
    assert "style-src 'unsafe-inline' 'self'" in rendered  # /static/style.css
    assert "img-src 'self' data:" in rendered and "font-src 'self'" in rendered
    assert "script-src 'nonce-N';" in rendered  # scripts still by nonce only
    extended = GuardOptions(
        protect=["/a"], render=hooked, page_csp={"style-src": "https://cdn.example"}
    ).csp.header("N")[1]
    assert "style-src 'unsafe-inline' 'self' https://cdn.example" in extended
    own = GuardOptions(protect=["/a"], render=hooked, page_csp="default-src 'self'")
    assert own.csp.header("N")[1].startswith("default-src 'self'; base-uri 'none'")


# -- the adapters ---------------------------------------------------------------------------


def _templates(root: Path, challenge: str | None = None) -> Path:
    (root / "sms2fa").mkdir(parents=True, exist_ok=True)
    (root / "layout.html").write_text(LAYOUT)
    if challenge is not None:
        (root / "sms2fa" / "challenge.html").write_text(challenge)
    return root


@SQLITE_ONLY
def test_flask_render_with_the_apps_own_template(
    apps: Callable[..., App], fake_flowroute: FakeFlowroute, tmp_path: Path
) -> None:
    from sms2fa_middleware.flask import flask_render

    own = (
        '{% extends "layout.html" %}{% block title %}{{ title }}{% endblock %}'
        '{% block content %}<form method="post" action="{{ action }}" id="mine">'
        '<input type="hidden" name="{{ csrf_name }}" value="{{ csrf_value }}">'
        '<input type="hidden" name="next" value="{{ next_url }}">'
        '<label for="code">{{ code_label }}</label><input id="code" name="code">'
        '<a href="{{ url_for("static", filename="style.css") }}">css</a>'
        '<script nonce="{{ csp_nonce }}">window.mine = 1;</script></form>{% endblock %}'
    )
    templates = _templates(tmp_path / "templates", own)
    app = apps("flask", templates, render_with=lambda a: flask_render(a, pages=["challenge"]))
    page = app.challenge(**{"accept-language": "es"})
    assert '<header id="shop">ACME for alice</header>' in page.text  # the app's context
    assert "<title>Escribe tu código de verificación | Shop</title>" in page.text
    assert '<html lang="es" dir="ltr">' in page.text
    assert 'id="mine"' in page.text and '<a href="/static/style.css">' in page.text
    assert f'<script nonce="{page.nonce}">window.mine = 1;</script>' in page.text
    data = {"csrf_token": page.field("csrf_token"), "next": page.field("next")}
    done = app.post("/sms2fa/challenge", {**data, "code": fake_flowroute.last_code(ALICE)})
    assert done.status == 303 and app.get("/account").text == "account of alice"
    # pages=["challenge"]: the others stay built in.
    forged = app.post("/sms2fa/challenge", {"csrf_token": "forged"})
    assert "<h1>Forbidden</h1>" in forged.text and "Shop" not in forged.text


@SQLITE_ONLY
def test_flask_render_makes_every_page_from_the_packages_templates(
    apps: Callable[..., App],
    fake_flowroute: FakeFlowroute,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from sms2fa_middleware.flask import flask_render

    templates = _templates(tmp_path / "templates")
    app = apps(
        "flask",
        templates,
        render_with=lambda a: flask_render(a, layout="layout.html"),
        trust_browser_for=86400,
    )
    with caplog.at_level(logging.ERROR, logger="sms2fa"):
        page = app.challenge()
        assert '<section class="sms2fa sms2fa-challenge">' in page.text
        assert '<header id="shop">ACME for alice</header>' in page.text
        assert 'id="cooldown" data-seconds="3' in page.text and 'id="resend" disabled' in page.text
        app.verify(fake_flowroute, trust=True)  # a code posted from the package's form
        made = app.post(
            "/sms2fa/recovery", {"csrf_token": app.get("/sms2fa/recovery").field("csrf_token")}
        )
        assert made.text.count("<li><code>") == 10 and "sms2fa-recovery" in made.text
        listed = app.get("/sms2fa/browsers")
        assert 'class="browser"' in listed.text and "(this browser)" in listed.text
        assert re.search(r'<time datetime="[0-9T:.-]+Z">Trusted on \d+ [A-Z]', listed.text)
        refused = app.get("/account", user="carol")
        assert refused.status == 403 and '<section class="sms2fa sms2fa-no_phone">' in refused.text
    assert not caplog.records  # no page fell back to the built-in one


@SQLITE_ONLY
def test_the_packages_enroll_and_phone_templates_work(
    apps: Callable[..., App],
    fake_flowroute: FakeFlowroute,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Through the package's Jinja templates: carol adds a number, alice changes hers, each
    confirming with a code typed in groups ("123 456", which the code fields let through)."""
    from sms2fa_middleware.flask import flask_render

    numbers: dict[str, str | None] = {"alice": ALICE, "carol": None}

    def who(request: Any) -> Identity | None:
        user = request.headers.get("x-user")
        return Identity(user, numbers[user]) if user in numbers else None

    templates = _templates(tmp_path / "templates")
    app = apps(
        "flask",
        templates,
        render_with=lambda a: flask_render(a, layout="layout.html"),
        identify=who,
        on_enroll=numbers.__setitem__,
    )
    grouped = 'pattern="[0-9 \\-]*" maxlength="12"'
    with caplog.at_level(logging.ERROR, logger="sms2fa"):
        page = app.get("/sms2fa/enroll?next=/account", user="carol")
        data = {"csrf_token": page.field("csrf_token"), "next": "/account"}
        assert app.post("/sms2fa/enroll", {**data, "phone": NEW}, user="carol").status == 303
        page = app.get("/sms2fa/enroll?next=/account", user="carol")
        assert "sms2fa-enroll" in page.text and grouped in page.text
        code = fake_flowroute.last_code(NEW)
        done = app.post("/sms2fa/enroll", {**data, "code": f"{code[:3]}-{code[3:]}"}, user="carol")
        assert done.status == 303 and numbers["carol"] == NEW

        app.verify(fake_flowroute)
        page = app.get("/sms2fa/phone?next=/account")
        assert '<section class="sms2fa sms2fa-phone">' in page.text
        assert '<header id="shop">ACME for alice</header>' in page.text
        assert f"Your codes go to {mask(ALICE)}" in page.text and 'name="code"' not in page.text
        data = {"csrf_token": page.field("csrf_token"), "next": "/account"}
        other = "+13125550142"
        assert app.post("/sms2fa/phone", {**data, "phone": other}).status == 303
        page = app.get("/sms2fa/phone?next=/account")
        assert 'id="phone-sent"' in page.text and grouped in page.text
        code = fake_flowroute.last_code(other)
        done = app.post("/sms2fa/phone", {**data, "code": f"{code[:3]} {code[3:]}"})
        assert done.status == 303 and numbers["alice"] == other
        after = app.get(done.headers["location"])
        assert 'id="phone-changed"' in after.text and f"is now {mask(other)}" in after.text
        assert '<a href="/sms2fa/recovery">Make new recovery codes</a>' in after.text
    assert not caplog.records  # no page fell back to the built-in one


@SQLITE_ONLY
@pytest.mark.parametrize("enable_async", [False, True])
def test_jinja2_render_with_starlettes_templates(
    apps: Callable[..., App], fake_flowroute: FakeFlowroute, tmp_path: Path, enable_async: bool
) -> None:
    import jinja2
    from starlette.templating import Jinja2Templates

    from sms2fa_middleware.starlette import jinja2_render

    root = _templates(tmp_path / "templates")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(root),
        autoescape=jinja2.select_autoescape(),
        enable_async=enable_async,
    )
    templates = Jinja2Templates(
        env=env, context_processors=[lambda request: {"shop": request.headers["x-user"]}]
    )
    hook = jinja2_render(templates, layout="layout.html")
    assert asyncio.iscoroutinefunction(hook) is enable_async
    app = apps("starlette", render=hook)
    page = app.challenge(**{"accept-language": "ar"})
    assert (
        '<html lang="ar" dir="rtl">' in page.text
        and '<header id="shop">alice</header>' in page.text
    )
    assert "<title>أدخل رمز التحقق | Shop</title>" in page.text
    data = {"csrf_token": page.field("csrf_token"), "next": page.field("next")}
    done = app.post("/sms2fa/challenge", {**data, "code": fake_flowroute.last_code(ALICE)})
    assert done.status == 303 and app.get("/account").text == "account of alice"


def test_the_helpers_refuse_an_unknown_page() -> None:
    from starlette.templating import Jinja2Templates

    from sms2fa_middleware.starlette import jinja2_render

    with pytest.raises(ValueError, match="unknown page"):
        jinja2_render(Jinja2Templates(directory="."), pages=["challange"])
    assert set(PAGES) == set(KEYS)


@pytest.mark.parametrize("layout", [None, "layout.html"])
def test_django_render(
    sms2fa: Any, fake_flowroute: FakeFlowroute, tmp_path: Path, layout: str | None
) -> None:
    from django.conf import settings
    from django.test import Client, override_settings

    from sms2fa_middleware.django import django_render
    from tests.support.django_example import ALICE as DJANGO_ALICE
    from tests.support.django_example import ALICE_PHONE, PASSWORD

    root = tmp_path / "templates"
    (root / "sms2fa").mkdir(parents=True)
    (root / "layout.html").write_text(
        LAYOUT.replace("{{ shop }}", "{{ user.username }} {% csrf_token %}")
    )
    engine = {**settings.TEMPLATES[0], "DIRS": [str(root)]}
    with override_settings(TEMPLATES=[engine]):
        sms2fa(render=django_render(layout=layout), on_enroll=f"{__name__}.django_on_enroll")
        client = Client()
        client.login(username=DJANGO_ALICE, password=PASSWORD)
        html = {"accept": "text/html", "accept-language": "fr"}
        page = client.get(client.get("/account/", headers=html)["location"], headers=html)
        body = page.text
        assert page.status_code == 200 and '<section class="sms2fa sms2fa-challenge">' in body
        assert '<html lang="fr" dir="ltr">' in body
        if layout is None:
            assert "<title>Saisissez votre code de vérification</title>" in body
        else:  # the project's base: its context processors (user, csrf_token) work
            assert '<header id="shop">alice <input type="hidden" name="csrfmiddlewaretoken"' in body
        token = re.search(r'name="csrf_token" value="([^"]+)"', body)
        assert token is not None
        done = client.post(
            "/sms2fa/challenge",
            {
                "csrf_token": token.group(1),
                "next": "/account/",
                "code": fake_flowroute.last_code(ALICE_PHONE),
            },
            headers=html,
        )
        assert done.status_code == 303 and done["location"] == "/account/"
        # The change-of-number page (the code above is fresh), and its code form.
        page = client.get("/sms2fa/phone?next=/account/", headers=html)
        body = page.text
        assert page.status_code == 200 and '<section class="sms2fa sms2fa-phone">' in body
        assert "<h1>Changer votre numéro de téléphone</h1>" in body, body
        token = re.search(r'name="csrf_token" value="([^"]+)"', body)
        assert token is not None
        fields = {"csrf_token": token.group(1), "next": "/account/", "phone": NEW}
        assert client.post("/sms2fa/phone", fields, headers=html).status_code == 303
        body = client.get("/sms2fa/phone?next=/account/", headers=html).text
        assert 'id="phone-sent"' in body and 'pattern="[0-9 \\-]*" maxlength="12"' in body


def django_on_enroll(auth_id: str, number: str) -> None:
    """``on_enroll`` for the Django project (a dotted path): test_django_render confirms no
    new number, so it is never called."""
    raise AssertionError("no number is confirmed in test_django_render")


@pytest.mark.parametrize("shown", [False, True])
def test_the_packages_jinja2_templates_leave_no_blank_lines(shown: bool) -> None:
    """``{%- ... %}`` on the tag-only lines: whatever is shown or left out, no empty line is
    left behind (in an environment without ``trim_blocks``, as the app's may be)."""
    from jinja2 import Environment, FileSystemLoader

    from sms2fa_middleware.pages import JINJA2_TEMPLATES, PAGES

    env = Environment(loader=FileSystemLoader(str(JINJA2_TEMPLATES)), autoescape=True)
    every = "error notice held attempts_left trust_text recovery_left change_number_url"
    every += " logout_url codes sent_text changed_text link_url retry_after"
    context: dict[str, Any] = {key: (1 if shown else 0) for key in every.split()} | {
        "code_length": 6,
        "lang": "en",
        "dir": "ltr",
        "title": "T",
        "page": "no_phone",
    }
    context["browsers"] = [{"id": 1, "this_browser": True}] if shown else []
    context["codes"] = ["a", "b"] if shown else []
    for page in PAGES:
        names = [f"sms2fa/{page}.html", "sms2fa/message.html"]
        made = env.select_template(names).render(context)
        assert "<section class=" in made and ("<h1>" in made), page
        assert not [line for line in made.splitlines() if not line.strip()], (page, made)
