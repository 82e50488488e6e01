"""A Starlette app whose /account page needs an SMS code.

Run it: ``uvicorn examples.starlette_app:app`` (or ``python examples/starlette_app.py``).
It needs SMS2FA_SECRET_KEY, SESSION_SECRET and Flowroute's keys. To try it without them,
use development mode (``SMS2FA_DEVELOPMENT=1``): throw-away keys, codes printed to the
console.
"""

import os
import secrets
import sys

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse
from starlette.routing import Route

from sms2fa_middleware import ConfigurationError, Identity, Settings
from sms2fa_middleware.asgi import SMS2FAMiddleware
from sms2fa_middleware.guard import safe_next
from sms2fa_middleware.starlette import check_routes, verified_required

USERS = {"alice": "+12065550100", "bob": "+12065550111"}  # user name -> phone number on file


def secret(name: str) -> str:
    """A secret from the environment; a throw-away one in development mode; else stop."""
    value = os.environ.get(name)
    if value:
        return value
    if os.environ.get("SMS2FA_DEVELOPMENT") == "1":
        return secrets.token_urlsafe(32)
    sys.exit(f"{name} is not set (or set SMS2FA_DEVELOPMENT=1 to try with throw-away keys)")


async def home(request: Request) -> HTMLResponse:
    return HTMLResponse('<p><a href="/account">Your account</a></p>')


async def login(request: Request) -> HTMLResponse | RedirectResponse:
    form = await request.form()
    if request.method == "POST" and form.get("username") in USERS:
        request.session["user"] = form["username"]
        return RedirectResponse(safe_next(request.query_params.get("next")), 303)
    return HTMLResponse(
        '<form method="post"><label>User name <input name="username" '
        'value="alice"></label> <button>Log in</button></form>'
    )


@verified_required  # defence in depth: refuses (403) a request the middleware did not verify
async def account(request: Request) -> HTMLResponse:
    identity = request.state.sms2fa
    return HTMLResponse(f"<h1>Hello, {identity.auth_id}</h1><p>Verified by SMS.</p>")


def identify(request: Request) -> Identity | None:
    user = request.session.get("user")
    return Identity(user, USERS[user]) if user in USERS else None


PROTECT = ["/account"]
try:
    # SMS2FA_DEVELOPMENT=1: a throw-away key, codes on the console unless Flowroute is set.
    settings = Settings.from_env().require_provider()
except ConfigurationError as exc:
    sys.exit(f"sms2fa: {exc}")
app = Starlette(
    routes=[
        Route("/", home),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/account", account),
    ],
    middleware=[
        Middleware(SessionMiddleware, secret_key=secret("SESSION_SECRET")),
        Middleware(
            SMS2FAMiddleware,
            settings=settings,
            protect=PROTECT,
            identify=identify,
            login_url="/login",
        ),
    ],
)
check_routes(app, PROTECT)  # logs a warning for each route the patterns may leave open

if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, port=int(os.environ.get("PORT", "8000")))
