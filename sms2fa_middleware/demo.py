"""``sms2fa demo``: a small app protected by the middleware, a fake phone, no Flowroute account.

FakeFlowroute stands in for the SMS provider, and ``/phone`` shows its inbox, so a newcomer
can walk the whole life of a phone in a browser: log in, get challenged, read the code, type
it; as a new user (no number on file), add a phone (``on_enroll``); make recovery codes and
log in with one; trust a browser (``trust_browser_for``), see it listed, revoke it.

The demo's own pages (home, login, account, fake phone) are the app's, in English; the
middleware's pages under ``/sms2fa`` speak the browser's language.
"""

from __future__ import annotations

import os
import re
import secrets
import tempfile
from collections.abc import Callable
from html import escape
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from . import Identity
from .asgi import SMS2FAMiddleware
from .guard import safe_next
from .settings import Settings
from .testing import FakeFlowroute

#: The users with a number on file; any other name that fits NAME logs in as a new user.
USERS = {"alice": "+12065550123", "bob": "+12065550145"}
NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
TRUST_DAYS = 30
PREFIX = "/sms2fa"

_STYLE = (
    "<meta name=viewport content='width=device-width, initial-scale=1'><style>"
    "body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:2rem auto;"
    "padding:0 1rem}li{margin:.5rem 0}code{font-size:1.2rem}.hint{color:#444}</style>"
)

_TRY = (
    "<h2>What to try</h2><ol id=try>"
    "<li><a href='/login'>Log in</a> as <b>alice</b> or <b>bob</b> (a number on file), "
    "open <a href='/account'>your account</a> and type the code the "
    "<a href='/phone' target='phone'>fake phone</a> shows.</li>"
    "<li>Log in as a new name, e.g. <b>carol</b> (no number on file): your account sends you "
    "to add a phone. Type any US mobile number, e.g. <code>(206) 555-0100</code>, and the "
    "code the fake phone shows.</li>"
    "<li>On your account page, make <b>recovery codes</b>. Log out, log in, and on the code "
    "page open <i>Can't get a text?</i> to sign in with one instead.</li>"
    f"<li>On the code page, tick <i>Trust this browser for {TRUST_DAYS} days</i>. Log out "
    "and in again: no code this time. Your account's <b>trusted browsers</b> page lists it; "
    "revoke it, and the next login asks for a code again.</li></ol>"
)


def _page(title: str, body: str, refresh: bool = False) -> HTMLResponse:
    meta = "<meta http-equiv=refresh content=2>" if refresh else ""
    return HTMLResponse(
        f"<!doctype html><html lang=en><title>{title}</title>{meta}{_STYLE}<main>{body}</main>"
    )


_LOG_OUT = "<form method=post action=/logout><button>Log out</button></form>"


async def home(request: Request) -> Response:
    user = request.session.get("user")
    if user:
        who = f"<p>Logged in as <b>{escape(user)}</b>.</p>{_LOG_OUT}"
    else:
        who = "<p>Not logged in. <a href='/login'>Log in</a></p>"
    return _page(
        "sms2fa demo",
        f"<h1>sms2fa demo</h1>{who}<p><a href='/account'>Your account</a> needs an SMS code; "
        f"the <a href='/phone' target='phone'>fake phone</a> shows the texts.</p>{_TRY}",
    )


async def login(request: Request) -> Response:
    error = ""
    if request.method == "POST":
        # Parsed by hand: request.form() would need python-multipart just for the demo.
        fields = parse_qs((await request.body()).decode("utf-8", "replace"))
        username = fields.get("username", [""])[0].strip().lower()
        if NAME.fullmatch(username):
            request.session["user"] = username
            return RedirectResponse(safe_next(request.query_params.get("next")), 303)
        error = "<p role=alert>A user name is a letter, then letters, digits, - or _.</p>"
    return _page(
        "Log in",
        (
            f"<h1>Log in</h1>{error}<p class=hint>No password in the demo. <b>alice</b> and "
            "<b>bob</b> have a phone number on file; any other name (e.g. <b>carol</b>) is a "
            "new user with none.</p><form method=post><label>User name "
            "<input name=username value=alice></label> <button>Log in</button></form>"
        ),
    )


async def logout(request: Request) -> Response:
    user = request.session.pop("user", None)
    if user:  # end the verified sessions; revoke() writes to the store: off the loop
        # browsers=False: a trusted browser stays trusted for the next login (trust is
        # what the login after a logout skips the code with); its page revokes it.
        await run_in_threadpool(request.app.state.sms2fa.revoke, user, browsers=False)
    return RedirectResponse("/", 303)


async def account(request: Request) -> Response:
    identity = request.state.sms2fa
    return _page(
        "Your account",
        (
            f"<h1>Your account</h1><p id=verified>Hello, {escape(identity.auth_id)}: "
            "you are verified by SMS.</p><ul id=settings>"
            f"<li><a href='{PREFIX}/recovery'>Recovery codes</a>: for when no text arrives. "
            "Make a set, then log out and use one on the code page.</li>"
            f"<li><a href='{PREFIX}/browsers'>Trusted browsers</a>: the ones you ticked "
            f"<i>Trust this browser</i> on; revoke any.</li></ul>{_LOG_OUT}"
            "<p><a href='/'>Home</a></p>"
        ),
    )


async def phone(request: Request) -> Response:
    items = (
        "".join(
            f"<li><small>to {escape(m.to)}</small><br><code>{escape(m.body)}</code></li>"
            for m in reversed(request.app.state.fake.messages)
        )
        or "<li>No messages yet.</li>"
    )
    return _page(
        "Fake phone",
        "<h1>Fake phone inbox</h1><p class=hint>Every text the demo sends, newest first "
        f"(this page reloads itself).</p><ul id=inbox>{items}</ul>",
        refresh=True,
    )


def _phone_book() -> tuple[Callable[[Request], Identity | None], Callable[[str, str], None]]:
    """The app's users: ``identify`` reads their numbers, ``on_enroll`` adds one. In memory:
    the demo keeps nothing after it stops."""
    numbers = dict(USERS)

    def identify(request: Request) -> Identity | None:
        user = request.session.get("user")
        return Identity(user, numbers.get(user)) if isinstance(user, str) else None

    def on_enroll(user: str, number: str) -> None:
        numbers[user] = number

    return identify, on_enroll


def create_demo_app(fake: FakeFlowroute, database_url: str | None = None) -> ASGIApp:
    """The demo app, sending through ``fake``."""
    settings = Settings(
        secret_key=secrets.token_urlsafe(32),
        database_url=database_url or f"sqlite:///{tempfile.mkdtemp()}/demo.db",
        resend_cooldown=10,
        **fake.settings_kwargs(),  # type: ignore[arg-type]
    )
    routes = Starlette(
        routes=[
            Route("/", home),
            Route("/login", login, methods=["GET", "POST"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/account", account),
            Route("/phone", phone),
        ]
    )
    identify, on_enroll = _phone_book()
    protected = SMS2FAMiddleware(
        routes,
        settings,
        protect=["/account"],
        identify=identify,
        login_url="/login",
        prefix=PREFIX,
        on_enroll=on_enroll,
        trust_browser_for=TRUST_DAYS * 86400,
    )
    routes.state.fake, routes.state.sms2fa = fake, protected
    # Plain ASGI composition: the session layer outside, so identify() can read the session.
    return SessionMiddleware(protected, secret_key=secrets.token_urlsafe(32))


def run_demo(host: str = "127.0.0.1", port: int = 8000) -> int:
    """Start FakeFlowroute and the demo app; serve until Ctrl-C."""
    import uvicorn

    with FakeFlowroute() as fake, tempfile.TemporaryDirectory(prefix="sms2fa-demo-") as tmp:
        database_url = os.environ.get("SMS2FA_DATABASE_URL") or f"sqlite:///{tmp}/demo.db"
        app = create_demo_app(fake, database_url)
        print(f"\n  sms2fa demo: open http://{host}:{port}/  (fake phone: /phone)\n")
        uvicorn.run(app, host=host, port=port, log_level="warning")
    return 0
