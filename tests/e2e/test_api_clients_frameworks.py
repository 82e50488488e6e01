"""Issue 12: an API client that is ``httpx`` alone -- no HTML parsed anywhere -- completes the
JSON verification flow against the FastAPI example (bearer tokens, uvicorn) and the Django
example project (session login, uvicorn and gunicorn), as tests/adapters/test_api_clients.py does
against Flask and Starlette. The 401 carries ``WWW-Authenticate`` and
``/sms2fa/openapi.json`` lists the challenge endpoints on both.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx

from sms2fa_middleware.testing import FakeFlowroute
from tests.support.browsing import wrong
from tests.support.django_example import ALICE, ALICE_PHONE, MARKER, PASSWORD, Server
from tests.support.examples import EXAMPLE_ALICE as FASTAPI_ALICE_PHONE
from tests.support.examples import run_example

CHALLENGE = "/sms2fa/challenge"
JSON = {"Accept": "application/json"}


def json_flow(client: httpx.Client, protected: str, last_code: Callable[[], str]) -> None:
    """Refused with a challenge, ask for a code, post it as JSON, then pass: the client's
    cookie jar keeps the verified cookie; ``client`` already carries the login."""
    refused = client.get(protected)
    assert refused.status_code == 401, refused.text
    assert refused.headers["www-authenticate"] == f'SMS2FA challenge="{CHALLENGE}"'
    assert refused.json()["reason"] == "VerificationRequired"
    assert refused.json()["challenge"].startswith(CHALLENGE + "?next=")

    status = client.get(CHALLENGE)
    assert status.status_code == 200 and status.json()["pending"] is False
    sent = client.post(CHALLENGE + "/send", json={})
    assert sent.status_code == 200, sent.text
    assert sent.json()["attempts_left"] == 3

    code = last_code()
    forged = client.post(CHALLENGE, json={"code": code}, headers={"Origin": "http://evil.example"})
    assert forged.status_code == 403 and forged.json()["reason"] == "OriginRejected"
    bad = client.post(CHALLENGE, json={"code": wrong(code)})
    assert bad.status_code == 400 and bad.json()["attempts_left"] == 2
    done = client.post(
        CHALLENGE, json={"code": code}, headers={"Origin": str(client.base_url).rstrip("/")}
    )  # same origin
    assert done.status_code == 200, done.text
    assert done.json()["verified"] is True
    assert "sms2fa" in client.cookies
    assert client.get(protected).status_code == 200


def assert_openapi_lists_the_challenge(client: httpx.Client) -> None:
    document = client.get("/sms2fa/openapi.json")
    assert document.status_code == 200
    assert {"/challenge", "/challenge/send"} <= set(document.json()["paths"])


def test_fastapi_bearer_client_verifies_with_json_alone(
    tmp_path: Path, fake_flowroute: FakeFlowroute
) -> None:
    with (
        run_example("fastapi_app.py", tmp_path, fake_flowroute) as base,
        httpx.Client(base_url=base, headers=JSON, timeout=10) as client,
    ):
        token = client.post("/token", data={"username": "alice", "password": "wonderland"}).json()[
            "access_token"
        ]
        client.headers["Authorization"] = f"Bearer {token}"
        json_flow(client, "/users/me", lambda: fake_flowroute.last_code(FASTAPI_ALICE_PHONE))
        assert client.get("/users/me/items").json() == [
            {"item_id": "Foo", "owner": "alice", "verified_for": "alice"}
        ]
        assert_openapi_lists_the_challenge(client)


def test_django_session_client_verifies_with_json_alone(django_server: Server) -> None:
    with httpx.Client(base_url=django_server.base, headers=JSON, timeout=10) as client:
        # Django's CSRF check on its login form: the csrftoken cookie's value (the secret)
        # is accepted as the form field, so no page is parsed for it.
        assert client.get("/login/").status_code == 200
        login = client.post(
            "/login/",
            data={
                "username": ALICE,
                "password": PASSWORD,
                "next": "/account/",
                "csrfmiddlewaretoken": client.cookies["csrftoken"],
            },
        )
        assert login.status_code == 302 and login.headers["location"] == "/account/"
        json_flow(client, "/account/", lambda: django_server.fake.last_code(ALICE_PHONE))
        assert MARKER in client.get("/account/").text
        assert_openapi_lists_the_challenge(client)
