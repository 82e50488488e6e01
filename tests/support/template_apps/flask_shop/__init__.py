"""The Flask shop: ``create_app(settings)``. Its challenge page is its own
``templates/sms2fa/challenge.html`` (extending its ``base.html``); the other pages are the
package's templates in its ``base.html`` (``layout``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask, make_response, redirect, request

from sms2fa_middleware import Identity, Settings
from sms2fa_middleware.flask import flask_render
from sms2fa_middleware.guard import safe_next
from sms2fa_middleware.wsgi import ENVIRON_KEY, SMS2FAMiddleware

HERE = Path(__file__).parent
USERS = {"alice": "+12065551234"}


def identify(request: Any) -> Identity | None:
    user = request.cookies.get("user")
    return Identity(user, USERS[user]) if user in USERS else None


def create_app(settings: Settings) -> Flask:
    app = Flask(__name__, root_path=str(HERE))

    @app.context_processor
    def shop() -> dict[str, str]:
        return {"shop_name": "Corner Shop"}

    @app.get("/login")
    def login() -> Any:
        response = make_response(redirect(safe_next(request.args.get("next")), 303))
        response.set_cookie("user", request.args.get("user", ""))
        return response

    @app.get("/account")
    def account() -> str:
        return f'<p id="account">account of {request.environ[ENVIRON_KEY].auth_id}</p>'

    app.wsgi_app = SMS2FAMiddleware(  # type: ignore[method-assign]
        app.wsgi_app,
        settings,
        protect=["/account"],
        identify=identify,
        login_url="/login",
        render=flask_render(app, layout="base.html"),
    )
    return app
