"""Microblog: users, posts, a profile page and a token API (after Miguel Grinberg's Flask
Mega-Tutorial app, reduced to one package on sqlite3)."""

import os

from flask import Flask
from flask_login import LoginManager

from sms2fa_middleware.flask import flask_login_identify
from sms2fa_middleware.wsgi import SMS2FAMiddleware

from . import db

login = LoginManager()
login.login_view = "auth.login"
login.login_message = "Please log in to access this page."


def create_app(test_config=None):
    app = Flask(__name__)
    app.config.from_mapping(
        SECRET_KEY=os.environ.get("SECRET_KEY", "you-will-never-guess"),
        DATABASE=os.environ.get("DATABASE", os.path.join(app.instance_path, "app.db")),
        TOKEN_LIFETIME=3600,
    )
    if test_config is not None:
        app.config.update(test_config)
    os.makedirs(os.path.dirname(app.config["DATABASE"]), exist_ok=True)

    db.init_app(app)
    login.init_app(app)

    from . import api, auth, main

    app.register_blueprint(auth.bp)
    app.register_blueprint(main.bp)
    app.register_blueprint(api.bp, url_prefix="/api")

    # SMS second factor for the profile editor and the API (README: Flask). The API's
    # token endpoint stays open: it is where a client gets its bearer token.
    app.wsgi_app = SMS2FAMiddleware(
        app.wsgi_app,
        protect=["/edit_profile", "/api"],
        exclude=["/api/tokens"],
        login_url="/auth/login",
        anonymous="app",
        identify=flask_login_identify(app, phone_attribute="phone"),
    )
    return app
