"""The helpers a user's own tests get from ``sms2fa_middleware.testing``: a test client marked
verified (a real signed cookie), settings and environment pointed at FakeFlowroute and a temp
SQLite file, and "assume verified" for tests that make their own clients."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from sms2fa_middleware import Identity, Settings, Verifier
from sms2fa_middleware.testing import (
    FakeFlowroute,
    assume_verified,
    find_guard,
    mark_verified,
    settings_for_tests,
    verified_cookie,
)
from tests.support.apps import flask_app, starlette_app

ALICE, BOB = "+12065551234", "+14155552671"
USERS = {"alice": ALICE, "bob": BOB, "nophone": "x"}


@pytest.fixture
def users() -> dict[str, str]:
    return {"alice": ALICE, "bob": BOB}


def test_mark_verified_flask_test_client(users: dict[str, str], sms2fa_settings: Settings) -> None:
    app, middleware = flask_app(users, sms2fa_settings)
    client = app.test_client()
    client.set_cookie("user", "alice")  # the test app's "login"
    assert client.get("/api/data").status_code == 401  # logged in, not verified

    mark_verified(client, app, Identity("alice", ALICE))
    for base in ("http://localhost", "https://localhost"):  # both cookie names are set
        response = client.get("/api/data", base_url=base)
        assert response.status_code == 200, base
        assert response.json == {"auth_id": "alice", "recipient": ALICE}

    client.set_cookie("user", "bob")  # the cookie is alice's, not bob's
    assert client.get("/api/data").status_code == 401
    client.set_cookie("user", "alice")
    middleware.revoke("alice")  # a logout ends it like a real verified session
    assert client.get("/api/data").status_code == 401


@pytest.mark.parametrize("stack", [False, True], ids=["wrapper", "middleware-list"])
def test_mark_verified_starlette_test_client(
    users: dict[str, str], sms2fa_settings: Settings, stack: bool
) -> None:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.testclient import TestClient

    from sms2fa_middleware.asgi import SMS2FAMiddleware

    app: Any
    if stack:
        # As a user writes it: the middleware is built lazily, on the first request.
        inner, _ = starlette_app(users, sms2fa_settings, [])
        app = Starlette(
            routes=inner.app.routes,
            middleware=[
                Middleware(
                    SMS2FAMiddleware,
                    settings=sms2fa_settings,
                    protect=["/api"],
                    identify=inner.identify,
                )
            ],
        )
        assert app.middleware_stack is None
    else:
        app, _ = starlette_app(users, sms2fa_settings, [])
    with TestClient(app, base_url="https://testserver") as client:
        client.cookies.set("user", "alice")
        assert client.get("/api/data").status_code == 401
        mark_verified(client, app, Identity("alice", ALICE), https=True)
        assert [c.name for c in client.cookies.jar if c.name != "user"] == ["__Host-sms2fa"]
        response = client.get("/api/data")
        assert response.status_code == 200
        assert response.json() == {"auth_id": "alice", "recipient": ALICE}


def test_mark_verified_requests_session_and_django_style_client(
    users: dict[str, str], sms2fa_settings: Settings
) -> None:
    from http.cookies import SimpleCookie

    import requests

    app, _ = flask_app(users, sms2fa_settings)
    session = requests.Session()
    mark_verified(session, app, Identity("alice", ALICE), https=False)
    value = session.cookies.get("sms2fa")
    assert value

    class DjangoLikeClient:  # django.test.Client keeps its cookies in a SimpleCookie
        cookies: SimpleCookie = SimpleCookie()

    django_client = DjangoLikeClient()
    mark_verified(django_client, app, Identity("alice", ALICE), https=False)
    header = django_client.cookies.output(attrs=[], header="", sep=";").strip()
    client = app.test_client(use_cookies=False)  # werkzeug's jar would drop our header
    response = client.get("/api/data", headers={"cookie": f"user=alice; {header}"})
    assert response.status_code == 200

    with pytest.raises(TypeError, match="cannot set a cookie"):
        mark_verified(object(), app, Identity("alice", ALICE))


def test_verified_cookie_normalises_the_identity_as_identify_answers_are(
    sms2fa_settings: Settings,
) -> None:
    app, _ = flask_app({"7": ALICE}, sms2fa_settings)
    name, value = verified_cookie(app, Identity(7, "(206) 555-1234"))
    assert name == "sms2fa"
    assert verified_cookie(app, Identity(7, ALICE), https=True)[0] == "__Host-sms2fa"
    response = app.test_client(use_cookies=False).get(
        "/api/data", headers={"cookie": f"user=7; {name}={value}"}
    )
    assert response.status_code == 200
    with pytest.raises(ValueError, match="phone number"):
        verified_cookie(app, Identity("alice", None))


def test_a_cookie_for_another_app_with_the_same_key_is_refused(
    users: dict[str, str], sms2fa_settings: Settings
) -> None:
    """Bound to the cookie's audience: another prefix on the same secret does not pass."""
    app, _ = flask_app(users, sms2fa_settings)
    other, _ = flask_app(users, sms2fa_settings, prefix="/other-2fa")
    client = app.test_client()
    client.set_cookie("user", "alice")
    mark_verified(client, other, Identity("alice", ALICE))
    assert client.get("/api/data").status_code == 401


def test_find_guard(users: dict[str, str], sms2fa_settings: Settings) -> None:
    app, middleware = flask_app(users, sms2fa_settings)
    assert find_guard(app) is middleware.guard
    assert find_guard(middleware) is middleware.guard
    assert find_guard(middleware.guard) is middleware.guard
    from flask import Flask

    with pytest.raises(LookupError, match="no SMS2FAMiddleware"):
        find_guard(Flask("plain"))


def test_assume_verified(
    users: dict[str, str], sms2fa_settings: Settings, fake_flowroute: FakeFlowroute
) -> None:
    users["nophone"] = ""
    app, _ = flask_app(users, sms2fa_settings)
    client = app.test_client()
    client.set_cookie("user", "alice")
    with assume_verified():
        assert client.get("/api/data").json == {"auth_id": "alice", "recipient": ALICE}
        client.set_cookie("user", "nobody")  # anonymous: still refused
        assert client.get("/api/data").json["reason"] == "LoginRequired"
    client.set_cookie("user", "alice")
    assert client.get("/api/data").status_code == 401  # over when the block ends
    assert fake_flowroute.messages == []


def test_settings_for_tests(tmp_path: Path, fake_flowroute: FakeFlowroute) -> None:
    settings = settings_for_tests(tmp_path / "t.db", fake_flowroute, code_length=8)
    assert settings.database_url == f"sqlite:///{tmp_path / 't.db'}"
    assert settings.backend == "flowroute" and settings.code_length == 8
    verifier = Verifier(settings)
    try:
        verifier.start("u1", ALICE)
    finally:
        verifier.store.dispose()
    assert len(fake_flowroute.last_code(ALICE)) == 8
    assert (tmp_path / "t.db").exists()
    assert settings_for_tests(tmp_path / "c.db").backend == "console"
    assert settings.secret_keys != settings_for_tests(tmp_path / "t.db").secret_keys


@pytest.mark.server
def test_the_fixtures_in_a_users_own_suite(tmp_path: Path) -> None:
    """The plugin as a user's suite meets it (loaded from the entry point): an app factory
    that calls Settings.from_env() builds, with or without a test config, under sms2fa_env;
    a client made in the test passes under sms2fa_assume_verified; the env is undone."""
    (tmp_path / "app_tests").mkdir()
    (tmp_path / "app_tests" / "conftest.py").write_text(
        textwrap.dedent("""
        import pytest

        @pytest.fixture(autouse=True)
        def _sms2fa(sms2fa_env):
            pass
    """)
    )
    (tmp_path / "app_tests" / "test_app.py").write_text(
        textwrap.dedent("""
        import os
        from flask import Flask, request
        from sms2fa_middleware import Identity, Settings
        from sms2fa_middleware.wsgi import SMS2FAMiddleware

        def create_app(test_config=None):
            app = Flask(__name__)
            app.config.update(test_config or {})
            app.wsgi_app = SMS2FAMiddleware(
                app.wsgi_app, Settings.from_env(), protect=["/account"],
                identify=lambda r: Identity("u1", "+12065551234") if r.cookies.get("in")
                else None)
            app.get("/account")(lambda: "account")
            return app

        def test_builds_with_and_without_a_test_config(sms2fa_env, fake_flowroute):
            assert create_app() and create_app({"TESTING": True})
            assert Settings.from_env().flowroute_url == fake_flowroute.url
            assert os.environ["SMS2FA_DATABASE_URL"] == sms2fa_env["SMS2FA_DATABASE_URL"]

        def test_settings_fixture(sms2fa_settings, fake_flowroute):
            assert sms2fa_settings.flowroute_url == fake_flowroute.url

        def test_assume_verified(sms2fa_assume_verified):
            client = create_app({"TESTING": True}).test_client()
            client.set_cookie("in", "1")
            assert client.get("/account").text == "account"
    """)
    )
    (tmp_path / "test_z_after.py").write_text(
        textwrap.dedent("""
        import os

        def test_env_is_undone():
            assert os.environ.get("SMS2FA_DATABASE_URL") == os.environ.get("OUTSIDE_DB")
    """)
    )
    env = {**os.environ, "OUTSIDE_DB": os.environ.get("SMS2FA_DATABASE_URL", "")}
    if not env["OUTSIDE_DB"]:
        env.pop("OUTSIDE_DB")
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "app_tests",
            "test_z_after.py",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "4 passed" in run.stdout


# -- users without a phone: assume_verified(phone=...) -------------------------------------------

CAROL_PHONE = "+12065550100"  # what the test assumes for carol, who has no phone on file


def _phone_optional(users: dict[str, str]) -> Any:
    """identify() as the adopting apps had it: a logged-in user may have no phone on file."""

    def identify(request: Any) -> Identity | None:
        user = request.cookies.get("user")
        return Identity(user, users.get(user) or None) if user else None

    return identify


def test_assume_verified_with_a_phone_flask(
    users: dict[str, str], sms2fa_settings: Settings, fake_flowroute: FakeFlowroute
) -> None:
    users["carol"] = ""
    app, _ = flask_app(users, sms2fa_settings, identify=_phone_optional(users))
    client = app.test_client()
    client.set_cookie("user", "carol")
    assert client.get("/api/data").json["reason"] == "NoPhoneOnFile"
    with assume_verified():  # a phone is still needed without phone=
        assert client.get("/api/data").json["reason"] == "NoPhoneOnFile"
    with assume_verified(phone=CAROL_PHONE):
        assert client.get("/api/data").json == {"auth_id": "carol", "recipient": CAROL_PHONE}
        client.set_cookie("user", "alice")  # a user with a phone keeps hers
        assert client.get("/api/data").json == {"auth_id": "alice", "recipient": ALICE}
        client.delete_cookie("user")
        assert client.get("/api/data").json["reason"] == "LoginRequired"
    client.set_cookie("user", "carol")
    assert client.get("/api/data").json["reason"] == "NoPhoneOnFile"  # over with the block
    assert fake_flowroute.messages == []
    with (
        pytest.raises(ValueError, match="phone number in E"),
        assume_verified(phone="not a number"),
    ):
        pass


def test_assume_verified_with_a_phone_starlette(
    users: dict[str, str], sms2fa_settings: Settings
) -> None:
    from starlette.testclient import TestClient

    users["carol"] = ""
    app, _ = starlette_app(users, sms2fa_settings, [], identify=_phone_optional(users))
    with TestClient(app) as client, assume_verified(phone="12065550100"):
        client.cookies.set("user", "carol")
        assert client.get("/api/data").json() == {"auth_id": "carol", "recipient": CAROL_PHONE}
    with TestClient(app) as client:
        client.cookies.set("user", "carol")
        assert client.get("/api/data").status_code == 403


def test_the_assume_verified_fixture_takes_a_phone(
    users: dict[str, str], sms2fa_settings: Settings, sms2fa_assume_verified: Any
) -> None:
    users["carol"] = ""
    app, _ = flask_app(users, sms2fa_settings, identify=_phone_optional(users))
    client = app.test_client()
    client.set_cookie("user", "alice")
    assert client.get("/api/data").status_code == 200  # users with a phone, as before
    client.set_cookie("user", "carol")
    assert client.get("/api/data").status_code == 403
    sms2fa_assume_verified(phone=CAROL_PHONE)
    assert client.get("/api/data").json == {"auth_id": "carol", "recipient": CAROL_PHONE}
