"""The examples run as they are, and a user completes the whole flow against each one."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from fastapi.testclient import TestClient

from sms2fa_middleware.testing import FakeFlowroute
from tests.support import ROOT
from tests.support.examples import EXAMPLE_ALICE as ALICE
from tests.support.examples import run_example
from tests.support.servers import uvicorn_thread

HTML = {"accept": "text/html"}


@pytest.fixture(params=["flask_app.py", "starlette_app.py"])
def example(
    request: pytest.FixtureRequest, tmp_path: Path, fake_flowroute: FakeFlowroute
) -> Iterator[str]:
    """The Flask or Starlette example, running."""
    with run_example(request.param, tmp_path, fake_flowroute) as base:
        yield base


def test_example_protects_the_account_page_with_an_sms_code(
    example: str, fake_flowroute: FakeFlowroute
) -> None:
    browser = requests.Session()
    first = browser.get(example + "/account", headers=HTML, allow_redirects=False)
    assert first.status_code == 303 and first.headers["location"].startswith("/login")

    login = browser.post(
        example + "/login?next=/account",
        data={"username": "alice"},
        headers=HTML,
        allow_redirects=False,
    )
    assert login.status_code == 303 and login.headers["location"] == "/account"

    challenge = browser.get(example + "/account", headers=HTML, allow_redirects=False)
    assert challenge.status_code == 303
    assert challenge.headers["location"].startswith("/sms2fa/challenge")
    page = browser.get(example + challenge.headers["location"], headers=HTML)
    assert page.status_code == 200 and 'name="code"' in page.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    assert len(fake_flowroute.messages_to(ALICE)) == 1

    done = browser.post(
        example + "/sms2fa/challenge",
        allow_redirects=False,
        data={
            "csrf_token": token.group(1),
            "next": "/account",
            "code": fake_flowroute.last_code(ALICE),
        },
    )
    assert done.status_code == 303 and done.headers["location"] == "/account"
    account = browser.get(example + "/account", headers=HTML, allow_redirects=False)
    assert account.status_code == 200 and "Hello, alice" in account.text


@pytest.mark.parametrize("name", ["flask_app.py", "starlette_app.py"])
def test_examples_refuse_to_start_without_their_secrets(tmp_path: Path, name: str) -> None:
    """No hard-coded fallback secrets and no silent development mode."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMS2FA_", "FLOWROUTE_"))}
    env["SMS2FA_DATA_DIR"] = str(tmp_path)
    for missing in (
        "SMS2FA_SECRET_KEY",
        "FLASK_SECRET_KEY" if name == "flask_app.py" else "SESSION_SECRET",
        "FLOWROUTE_ACCESS_KEY",
    ):
        given = {
            "SMS2FA_SECRET_KEY": "k" * 32,
            "FLASK_SECRET_KEY": "f" * 32,
            "SESSION_SECRET": "s" * 32,
            "PORT": "1",
            "FLOWROUTE_ACCESS_KEY": "a",
            "FLOWROUTE_SECRET_KEY": "b",
            "FLOWROUTE_NUMBER": "12065550100",
        }
        given.pop(missing, None)
        done = subprocess.run(
            [sys.executable, str(ROOT / "examples" / name)],
            cwd=tmp_path,
            env={**env, **given},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode != 0
        assert missing in done.stderr, done.stderr
        assert "Traceback" not in done.stderr, done.stderr


def test_the_readme_add_middleware_order_works(
    tmp_path: Path, fake_flowroute: FakeFlowroute
) -> None:
    """README: with add_middleware, ours first and SessionMiddleware after it (outermost)."""
    from starlette.applications import Starlette
    from starlette.middleware.sessions import SessionMiddleware
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from sms2fa_middleware import Identity, Settings
    from sms2fa_middleware.asgi import SMS2FAMiddleware

    def login(request: Request) -> PlainTextResponse:
        request.session["user"] = "alice"
        return PlainTextResponse("in")

    def identify(request: Request) -> Identity | None:
        user = request.session.get("user")
        return Identity(user, "+12065550123") if user else None

    app = Starlette(routes=[Route("/login", login), Route("/account", login)])
    settings = Settings(
        secret_key="k" * 32,
        database_url=f"sqlite:///{tmp_path / 'o.db'}",
        **fake_flowroute.settings_kwargs(),
    )
    app.add_middleware(
        SMS2FAMiddleware,
        settings=settings,
        protect=["/account"],
        identify=identify,
        login_url="/login",
    )
    app.add_middleware(SessionMiddleware, secret_key="s" * 32)
    with TestClient(app, base_url="https://testserver") as client:
        assert client.get("/login").text == "in"
        challenged = client.get("/account", headers={"Accept": "text/html"}, follow_redirects=False)
        assert challenged.status_code == 303
        assert challenged.headers["location"].startswith("/sms2fa/challenge")
        assert fake_flowroute.last_code("+12065550123")  # identify read the session


def test_fastapi_example_bearer_tokens_and_an_sms_code(
    tmp_path: Path, fake_flowroute: FakeFlowroute
) -> None:
    """examples/fastapi_app.py over uvicorn: OAuth2 password login, a bearer token, the
    challenge completed by a client that sends the token (no browser), the route-level
    check, and logout revoking the verified session."""
    import httpx

    bob = "+12065550111"  # examples' USERS["bob"]
    with (
        run_example("fastapi_app.py", tmp_path, fake_flowroute) as base,
        httpx.Client(base_url=base) as client,
    ):
        assert (
            client.post("/token", data={"username": "alice", "password": "nope"}).status_code == 401
        )
        assert (
            client.post("/token", data={"username": "carol", "password": "singer"}).status_code
            == 401
        )  # disabled
        token = client.post("/token", data={"username": "alice", "password": "wonderland"}).json()[
            "access_token"
        ]
        bearer = {"authorization": f"Bearer {token}"}
        assert client.get("/users/me").json()["reason"] == "LoginRequired"  # no token

        refused = client.get("/users/me", headers=bearer)
        assert refused.status_code == 401
        assert refused.json()["reason"] == "VerificationRequired"
        assert refused.json()["challenge"] == "/sms2fa/challenge?next=%2Fusers%2Fme"
        assert fake_flowroute.messages_to(ALICE) == []  # an API call sends nothing by itself

        # The challenge, as a client that is no browser completes it today (the HTML flow
        # with the bearer token; the JSON flow, POST /sms2fa/challenge/send and a JSON
        # {"code"}, will replace the page and its token).
        sent = client.get("/users/me", headers={**bearer, **HTML})
        assert sent.status_code == 303 and len(fake_flowroute.messages_to(ALICE)) == 1
        page = client.get(refused.json()["challenge"], headers={**bearer, **HTML})
        token_field = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert page.status_code == 200 and token_field is not None
        done = client.post(
            "/sms2fa/challenge",
            headers=bearer,
            data={
                "csrf_token": token_field.group(1),
                "next": "/users/me",
                "code": fake_flowroute.last_code(ALICE),
            },
        )
        assert done.status_code == 303 and done.headers["location"] == "/users/me"
        assert "sms2fa" in client.cookies

        assert client.get("/users/me", headers=bearer).json() == {"username": "alice"}
        assert client.get("/users/me/items", headers=bearer).json() == [
            {"item_id": "Foo", "owner": "alice", "verified_for": "alice"}
        ]

        # The verified session is alice's: bob's token with her cookie is refused.
        bob_token = client.post("/token", data={"username": "bob", "password": "builder"}).json()[
            "access_token"
        ]
        as_bob = client.get("/users/me", headers={"authorization": f"Bearer {bob_token}"})
        assert as_bob.status_code == 401 and fake_flowroute.messages_to(bob) == []

        assert client.post("/logout", headers=bearer).status_code == 204
        again = client.get("/users/me", headers=bearer)
        assert again.status_code == 401 and again.json()["reason"] == "VerificationRequired"


def test_fastapi_example_in_its_own_tests() -> None:
    """How the example's own tests would go: a TestClient marked verified for alice
    (mark_verified) passes; the router's Depends(require_verified) refuses (403) a request
    that the middleware did not verify, as when the protect patterns miss a route."""
    import importlib

    from fastapi.testclient import TestClient

    from sms2fa_middleware import Identity
    from sms2fa_middleware.testing import mark_verified

    sys.path.insert(0, str(ROOT / "examples"))
    try:
        module = importlib.import_module("fastapi_app")
    finally:
        sys.path.remove(str(ROOT / "examples"))
    with TestClient(module.app) as client:
        token = client.post("/token", data={"username": "alice", "password": "wonderland"}).json()[
            "access_token"
        ]
        bearer = {"authorization": f"Bearer {token}"}
        assert client.get("/users/me", headers=bearer).status_code == 401
        mark_verified(client, module.app, Identity("alice", ALICE))
        assert client.get("/users/me", headers=bearer).json() == {"username": "alice"}
    with TestClient(module.api) as client:  # the FastAPI app alone, no middleware
        assert client.get("/users/me", headers=bearer).status_code == 403


def _fastapi_example() -> object:
    import importlib

    sys.path.insert(0, str(ROOT / "examples"))
    try:
        return importlib.import_module("fastapi_app")
    finally:
        sys.path.remove(str(ROOT / "examples"))


@pytest.mark.parametrize(
    "spelling", ["Bearer {}", "Bearer  {}", "bearer {}", "BEARER {}", "Bearer \t{}"]
)
def test_fastapi_example_identify_reads_tokens_as_the_app_does(
    spelling: str, tmp_path: Path, fake_flowroute: FakeFlowroute
) -> None:
    """With anonymous="app", a token spelling that identify called anonymous but FastAPI's
    OAuth2PasswordBearer accepts would reach the endpoint unverified. The example's identify
    reads the header with the app's own scheme, so every spelling the app accepts is
    challenged (over a real uvicorn, on a route with no route-level check)."""
    import httpx
    from fastapi import Depends, FastAPI

    from sms2fa_middleware import Settings
    from sms2fa_middleware.asgi import SMS2FAMiddleware

    example: Any = _fastapi_example()
    api = FastAPI()

    @api.get("/users/me/profile")
    async def profile(user: Any = Depends(example.current_user)) -> dict[str, str]:
        return {"username": user.username}

    settings = Settings(
        secret_key="s" * 32,
        database_url=f"sqlite:///{tmp_path / 'a.db'}",
        **fake_flowroute.settings_kwargs(),
    )
    app = SMS2FAMiddleware(
        api, settings, protect=["/users/me"], identify=example.identify, anonymous="app"
    )
    token = example.jwt.encode(
        {"sub": "alice", "exp": time.time() + 600}, example.JWT_KEY, algorithm=example.ALGORITHM
    )
    header = {"authorization": spelling.format(token)}
    with TestClient(api) as plain:  # the app alone serves alice on this spelling
        assert plain.get("/users/me/profile", headers=header).json() == {"username": "alice"}
    with uvicorn_thread(app) as base:
        answer = httpx.get(base + "/users/me/profile", headers=header)
        assert answer.status_code == 401, answer.text
        assert answer.json()["reason"] == "VerificationRequired"
        # No credentials at all: the app's own login handling, as anonymous="app" promises.
        assert httpx.get(base + "/users/me/profile").json() == {"detail": "Not authenticated"}
