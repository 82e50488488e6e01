"""``sms2fa demo``: a small app protected by the middleware, a fake phone, no Flowroute account.

FakeFlowroute stands in for the SMS provider, and ``/phone`` shows its inbox, so a newcomer
can walk the whole flow in a browser: log in, get challenged, read the code, type it.
"""

from __future__ import annotations

import os
import secrets
import tempfile
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

USERS = {"alice": "+12065550123", "bob": "+12065550145"}

_STYLE = (
    "<meta name=viewport content='width=device-width, initial-scale=1'><style>"
    "body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:2rem auto;"
    "padding:0 1rem}li{margin:.5rem 0}code{font-size:1.2rem}</style>"
)


def _page(title: str, body: str, refresh: bool = False) -> HTMLResponse:
    meta = "<meta http-equiv=refresh content=2>" if refresh else ""
    return HTMLResponse(f"<!doctype html><title>{title}</title>{meta}{_STYLE}{body}")


async def home(request: Request) -> Response:
    user = request.session.get("user")
    who = f"Logged in as <b>{escape(user)}</b>." if user else "Not logged in."
    return _page(
        "sms2fa demo",
        (
            "<h1>sms2fa demo</h1>"
            f"<p>{who}</p><ol><li><a href='/login'>Log in</a> (alice or bob)</li>"
            "<li>Open <a href='/account'>your account</a>: it needs an SMS code.</li>"
            "<li>Read the code on the <a href='/phone' target='phone'>fake phone</a>.</li>"
            "</ol><form method=post action=/logout><button>Log out</button></form>"
        ),
    )


async def login(request: Request) -> Response:
    if request.method == "POST":
        # Parsed by hand: request.form() would need python-multipart just for the demo.
        username = parse_qs((await request.body()).decode("utf-8", "replace")).get(
            "username", [""]
        )[0]
        if username in USERS:
            request.session["user"] = username
            return RedirectResponse(safe_next(request.query_params.get("next")), 303)
    return _page(
        "Log in",
        (
            "<h1>Log in</h1><form method=post><label>User name "
            "<input name=username value=alice></label> <button>Log in</button></form>"
        ),
    )


async def logout(request: Request) -> Response:
    user = request.session.pop("user", None)
    if user:  # end the verified session too; revoke() writes to the store: off the loop
        await run_in_threadpool(request.app.state.sms2fa.revoke, user)
    return RedirectResponse("/", 303)


async def account(request: Request) -> Response:
    identity = request.state.sms2fa
    return _page(
        "Your account",
        (
            f"<h1>Your account</h1><p id=verified>Hello, {escape(identity.auth_id)}: "
            "you are verified by SMS.</p><p><a href='/'>Home</a></p>"
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
    return _page("Fake phone", f"<h1>Fake phone inbox</h1><ul id=inbox>{items}</ul>", refresh=True)


def identify(request: Request) -> Identity | None:
    user = request.session.get("user")
    return Identity(user, USERS[user]) if user in USERS else None


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
    protected = SMS2FAMiddleware(
        routes, settings, protect=["/account"], identify=identify, login_url="/login"
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
