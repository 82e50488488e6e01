"""A Flask app whose /account page needs an SMS code. Run it: ``python examples/flask_app.py``.

It needs SMS2FA_SECRET_KEY, FLASK_SECRET_KEY and Flowroute's keys. To try it without them,
use development mode (``SMS2FA_DEVELOPMENT=1``): throw-away keys, codes printed to the
console.
"""

import os
import secrets
import sys

from flask import Flask, redirect, request, session

from sms2fa_middleware import ConfigurationError, Identity, Settings
from sms2fa_middleware.flask import check_routes, verified_required
from sms2fa_middleware.guard import safe_next
from sms2fa_middleware.wsgi import ENVIRON_KEY, SMS2FAMiddleware

USERS = {"alice": "+12065550100", "bob": "+12065550111"}  # user name -> phone number on file


def secret(name: str) -> str:
    """A secret from the environment; a throw-away one in development mode; else stop."""
    value = os.environ.get(name)
    if value:
        return value
    if os.environ.get("SMS2FA_DEVELOPMENT") == "1":
        return secrets.token_urlsafe(32)
    sys.exit(f"{name} is not set (or set SMS2FA_DEVELOPMENT=1 to try with throw-away keys)")


app = Flask(__name__)
app.secret_key = secret("FLASK_SECRET_KEY")


@app.get("/")
def home() -> str:
    return '<p><a href="/account">Your account</a></p>'


@app.route("/login", methods=["GET", "POST"])
def login():  # type: ignore[no-untyped-def]
    if request.method == "POST" and request.form.get("username") in USERS:
        session["user"] = request.form["username"]
        return redirect(safe_next(request.args.get("next")), 303)
    return (
        '<form method="post"><label>User name <input name="username" value="alice">'
        "</label> <button>Log in</button></form>"
    )


@app.post("/logout")
def logout():  # type: ignore[no-untyped-def]
    user = session.pop("user", None)
    if user:
        app.wsgi_app.revoke(user)  # type: ignore[attr-defined]
    response = redirect("/", 303)
    # This browser also drops its verified cookie (the revocation already voids it).
    for name, value in app.wsgi_app.revoke_session(request):  # type: ignore[attr-defined]
        response.headers.add(name, value)
    return response


@app.get("/account")
@verified_required  # defence in depth: refuses (403) a request the middleware did not verify
def account() -> str:
    identity = request.environ[ENVIRON_KEY]
    return (
        f"<h1>Hello, {identity.auth_id}</h1><p>Verified by SMS.</p>"
        '<form method="post" action="/logout"><button>Log out</button></form>'
    )


def identify(req):  # type: ignore[no-untyped-def]
    # The middleware runs outside Flask's request context, so read Flask's session cookie here.
    user = app.session_interface.open_session(app, req).get("user")  # type: ignore[union-attr]
    return Identity(user, USERS[user]) if user in USERS else None


PROTECT = ["/account"]
try:
    # SMS2FA_DEVELOPMENT=1: a throw-away key, codes on the console unless Flowroute is set.
    settings = Settings.from_env().require_provider()
except ConfigurationError as exc:
    sys.exit(f"sms2fa: {exc}")
app.wsgi_app = SMS2FAMiddleware(  # type: ignore[method-assign]
    app.wsgi_app, settings, protect=PROTECT, identify=identify, login_url="/login"
)
check_routes(app, PROTECT)  # logs a warning for each route the patterns may leave open

if __name__ == "__main__":
    app.run(port=int(os.environ.get("PORT", "5000")))
