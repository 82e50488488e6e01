"""The framework identify helpers: the app's own authentication decides who is asking.

Real apps: Flask + Flask-Login with remember-me, FastAPI with OAuth2PasswordBearer and
HTTPBearer, Starlette with SessionMiddleware; FakeFlowroute and SQLite files.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI, HTTPException
from fastapi.security import OAuth2PasswordBearer

from sms2fa_middleware import Identity, Settings
from sms2fa_middleware.testing import FakeFlowroute
from tests.support import SECRET

flask_login = pytest.importorskip("flask_login")

PHONE = "+12065550123"
PROFILE = "EDIT-PROFILE-PAGE"


def _settings(tmp_path: Path, fake: FakeFlowroute) -> Settings:
    return Settings(
        secret_key=SECRET,
        database_url=f"sqlite:///{tmp_path / 'sms2fa.db'}",
        **fake.settings_kwargs(),
    )


# -- Flask + Flask-Login -----------------------------------------------------------------------


def _flask_login_app(tmp_path: Path, fake: FakeFlowroute, identify: str) -> Any:
    """A microblog-like app: Flask-Login, remember-me on login, ``anonymous="app"``."""
    from flask import Flask, redirect, request
    from flask_login import LoginManager, UserMixin, login_required, login_user

    from sms2fa_middleware.flask import flask_login_identify
    from sms2fa_middleware.wsgi import SMS2FAMiddleware

    class User(UserMixin):
        def __init__(self, id: str, phone_number: str) -> None:
            self.id, self.phone_number = id, phone_number

    users = {"7": User("7", PHONE)}
    app = Flask(__name__)
    app.config["SECRET_KEY"] = "flask-secret-for-tests-0123456789"
    login = LoginManager(app)
    login.login_view = "login_view"

    @login.user_loader
    def load_user(user_id: str) -> User | None:
        return users.get(user_id)

    @app.post("/login")
    def login_view() -> Any:
        login_user(users[request.form["id"]], remember=True)
        return redirect("/")

    @app.get("/edit_profile")
    @login_required
    def edit_profile() -> str:
        return PROFILE

    def by_hand(request: Any) -> Identity | None:  # the README's pattern until now
        user_id = app.session_interface.open_session(app, request).get("_user_id")
        return Identity(user_id, users[user_id].phone_number) if user_id else None

    app.wsgi_app = SMS2FAMiddleware(  # type: ignore[method-assign]
        app.wsgi_app,
        _settings(tmp_path, fake),
        protect=["/edit_profile"],
        anonymous="app",
        identify=flask_login_identify(app) if identify == "helper" else by_hand,
    )
    return app


def _remembered_client(app: Any) -> Any:
    """A client after a browser restart: the session cookie is gone, remember_token stays."""
    client = app.test_client()
    assert client.post("/login", data={"id": "7"}).status_code == 302
    remember = client.get_cookie("remember_token")
    assert remember is not None
    fresh = app.test_client()
    fresh.set_cookie("remember_token", remember.value)
    return fresh


NAVIGATION = {"Accept": "text/html", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}


def test_flask_login_remembered_user_is_challenged(
    tmp_path: Path, fake_flowroute: FakeFlowroute
) -> None:
    app = _flask_login_app(tmp_path, fake_flowroute, "helper")
    page = _remembered_client(app).get("/edit_profile", headers=NAVIGATION)
    assert PROFILE not in page.get_data(as_text=True)
    assert fake_flowroute.messages_to(PHONE), "the remembered user was sent a code"


def test_hand_written_session_identify_lets_a_remembered_user_through(
    tmp_path: Path, fake_flowroute: FakeFlowroute
) -> None:
    """Why the helper exists: the session alone misses Flask-Login's remember-me cookie,
    and with anonymous="app" the app signs the user in past the middleware."""
    app = _flask_login_app(tmp_path, fake_flowroute, "by_hand")
    page = _remembered_client(app).get("/edit_profile", headers=NAVIGATION)
    assert PROFILE in page.get_data(as_text=True)


def test_flask_login_verified_then_through(tmp_path: Path, fake_flowroute: FakeFlowroute) -> None:
    app = _flask_login_app(tmp_path, fake_flowroute, "helper")
    client = app.test_client()
    client.post("/login", data={"id": "7"})
    api = {"Accept": "application/json"}
    first = client.get("/edit_profile", headers=api)
    assert first.status_code == 401 and first.json["reason"] == "VerificationRequired"
    origin = {"Origin": "http://localhost", "Content-Type": "application/json"}
    assert client.post("/sms2fa/challenge/send", headers=origin, json={}).status_code == 200
    done = client.post(
        "/sms2fa/challenge", headers=origin, json={"code": fake_flowroute.last_code(PHONE)}
    )
    assert done.status_code == 200, done.get_data(as_text=True)
    assert client.get("/edit_profile", headers=api).get_data(as_text=True) == PROFILE
    anonymous = app.test_client().get("/edit_profile", headers=NAVIGATION)
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]


def test_flask_login_identify_inside_a_pushed_context(
    tmp_path: Path, fake_flowroute: FakeFlowroute
) -> None:
    """A context pushed already (a test, a CLI) is reused harmlessly: the user Flask-Login
    loaded for identify is not left in its g for the app's own request."""
    from flask import g
    from werkzeug.test import EnvironBuilder
    from werkzeug.wrappers import Request

    from sms2fa_middleware.flask import flask_login_identify

    app = _flask_login_app(tmp_path, fake_flowroute, "helper")
    client = _remembered_client(app)
    cookie = client.get_cookie("remember_token")
    environ = EnvironBuilder(
        path="/edit_profile", headers={"Cookie": f"remember_token={cookie.value}"}
    ).get_environ()
    identify = flask_login_identify(app, phone_attribute=lambda user: user.phone_number)
    with app.test_request_context("/"):
        assert identify(Request(environ)) == Identity("7", PHONE)
        assert identify(Request(environ)) == Identity("7", PHONE)  # twice: same answer
        assert "_login_user" not in g
    assert identify(Request(EnvironBuilder(path="/edit_profile").get_environ())) is None


# -- FastAPI ------------------------------------------------------------------------------------

TOKENS = {"tok-alice": "alice"}


# At module level: FastAPI resolves the string annotations in the module's globals.
class BearerUser:
    def __init__(self, username: str) -> None:
        self.username, self.phone = username, PHONE


oauth2_scheme = OAuth2PasswordBearer(tokenUrl="token")


async def current_user(token: Annotated[str, Depends(oauth2_scheme)]) -> BearerUser:
    if token not in TOKENS:
        raise HTTPException(401, "bad token", headers={"WWW-Authenticate": "Bearer"})
    return BearerUser(TOKENS[token])


async def by_hand_bearer(request: Any) -> Identity | None:  # a parser of its own
    token = request.headers.get("authorization", "").removeprefix("Bearer ")
    return Identity(TOKENS[token], PHONE) if token in TOKENS else None


def _fastapi_app(tmp_path: Path, fake: FakeFlowroute, identify: str) -> Any:
    from sms2fa_middleware.asgi import SMS2FAMiddleware
    from sms2fa_middleware.fastapi import fastapi_identify

    api = FastAPI()

    @api.get("/users/me")
    async def me(user: Annotated[BearerUser, Depends(current_user)]) -> dict[str, str]:
        return {"username": user.username}

    chosen = (
        fastapi_identify(current_user, auth_id="username", phone="phone")
        if identify == "helper"
        else by_hand_bearer
    )
    return SMS2FAMiddleware(
        api, _settings(tmp_path, fake), protect=["/users/me"], anonymous="app", identify=chosen
    )


@pytest.mark.parametrize(("identify", "status"), [("helper", 401), ("by_hand", 200)])
def test_fastapi_identify_reads_the_header_as_fastapi(
    tmp_path: Path, fake_flowroute: FakeFlowroute, identify: str, status: int
) -> None:
    """Two spaces after Bearer: FastAPI's scheme strips them and signs alice in, so the
    helper must see alice too (a parser of its own lets her past the second factor)."""
    from fastapi.testclient import TestClient

    with TestClient(_fastapi_app(tmp_path, fake_flowroute, identify)) as client:
        got = client.get("/users/me", headers={"Authorization": "Bearer  tok-alice"})
        assert got.status_code == status
        if identify == "helper":
            assert got.json()["reason"] == "VerificationRequired"
            # Anonymous and bad tokens go to the app (anonymous="app"): its own 401s.
            for headers in ({}, {"Authorization": "Bearer nope"}):
                answer = client.get("/users/me", headers=headers)
                assert answer.status_code == 401 and "reason" not in answer.json()


def test_fastapi_identify_http_bearer_and_refusals() -> None:
    import asyncio

    from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
    from starlette.requests import Request

    from sms2fa_middleware.fastapi import fastapi_identify

    bearer = HTTPBearer()

    def user(credentials: HTTPAuthorizationCredentials = Depends(bearer)) -> Any:
        return {"tok-alice": type("U", (), {"id": 7, "phone_number": PHONE})}.get(
            credentials.credentials
        )

    identify = fastapi_identify(user)

    def request(authorization: str | None) -> Request:
        headers = [(b"authorization", authorization.encode())] if authorization else []
        return Request({"type": "http", "method": "GET", "path": "/", "headers": headers})

    assert asyncio.run(identify(request("Bearer tok-alice"))) == Identity(7, PHONE)
    assert asyncio.run(identify(request("Bearer other"))) is None
    assert asyncio.run(identify(request(None))) is None  # HTTPBearer's 403: anonymous

    def two(token: str, db: object) -> None: ...

    with pytest.raises(TypeError, match="scheme="):
        fastapi_identify(two)
    lookup: Callable[[Any], Any] = lambda credentials: None  # noqa: E731
    assert asyncio.run(fastapi_identify(lookup, scheme=bearer)(request("Bearer x"))) is None


# -- Starlette sessions -------------------------------------------------------------------------


def test_starlette_session_identify(tmp_path: Path, fake_flowroute: FakeFlowroute) -> None:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.sessions import SessionMiddleware
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from sms2fa_middleware.asgi import SMS2FAMiddleware
    from sms2fa_middleware.starlette import session_identify

    async def login(request: Any) -> PlainTextResponse:
        request.session["user_id"] = 7
        return PlainTextResponse("in")

    async def account(request: Any) -> PlainTextResponse:
        return PlainTextResponse("account")

    phones = {7: PHONE}
    app = Starlette(
        routes=[Route("/login", login), Route("/account", account)],
        middleware=[
            Middleware(SessionMiddleware, secret_key="starlette-secret-0123456789"),
            Middleware(
                SMS2FAMiddleware,
                settings=_settings(tmp_path, fake_flowroute),
                protect=["/account"],
                identify=session_identify("user_id", phone=phones.get),
            ),
        ],
    )
    with TestClient(app) as client:
        api = {"Accept": "application/json"}
        assert client.get("/account", headers=api).json()["reason"] == "LoginRequired"
        client.get("/login")
        assert client.get("/account", headers=api).json()["reason"] == "VerificationRequired"
    with pytest.raises(TypeError):
        session_identify("user_id")
