"""Issue 12, the guard's side: API clients verify with JSON alone, browsers' form posts and
HTMX calls are refused in their own shape, anonymous requests may be left to the app, the
middleware is reachable from a request (logout of one device), and a sync ``identify`` never
runs on the event loop.

Against the real Flask (werkzeug) and Starlette (uvicorn) servers of tests/support/apps.py; the API
client is ``httpx`` alone -- no HTML is parsed anywhere in the JSON flow.
"""

from __future__ import annotations

import asyncio
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from sms2fa_middleware import Identity, Settings
from sms2fa_middleware.api.openapi import openapi_document
from sms2fa_middleware.testing import FakeFlowroute
from tests.support.apps import Site, make_identify
from tests.support.browsing import ALICE, CHALLENGE, HTML, USERS, wrong

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
JSON = {"Accept": "application/json"}
pytestmark = SQLITE_ONLY


@pytest.fixture
def client(site: Site) -> Iterator[httpx.Client]:
    """An API client of alice's (a bearer-token client would send Authorization instead)."""
    with httpx.Client(base_url=site.url, headers={"X-User": "alice", **JSON}, timeout=10) as http:
        yield http


def test_an_api_client_verifies_with_json_alone(
    client: httpx.Client, fake_flowroute: FakeFlowroute
) -> None:
    refused = client.get("/api/data")
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == 'SMS2FA challenge="/sms2fa/challenge"'
    assert refused.json()["challenge"] == "/sms2fa/challenge?next=%2Fapi%2Fdata"
    assert fake_flowroute.messages == []  # an API client asks for its code itself

    status = client.get(CHALLENGE)
    assert status.status_code == 200 and status.headers["content-type"] == "application/json"
    assert status.json()["pending"] is False and status.json()["sent_to"].endswith("34")

    sent = client.post(CHALLENGE + "/send", json={})
    assert sent.status_code == 200, sent.text
    assert sent.json()["attempts_left"] == 3 and sent.json()["sent_to"].endswith("34")
    assert {"expires_at", "resend_after"} <= set(sent.json())
    assert client.get(CHALLENGE).json()["pending"] is True

    code = fake_flowroute.last_code(ALICE)
    bad = client.post(CHALLENGE, json={"code": wrong(code)})
    assert bad.status_code == 400 and bad.json()["attempts_left"] == 2
    assert "set-cookie" not in bad.headers
    done = client.post(CHALLENGE, json={"code": code})
    assert done.status_code == 200
    assert done.json() == {"verified": True, "remember_for": 12 * 3600}
    assert "sms2fa" in client.cookies  # httpx's jar keeps it, as any cookie jar would
    data = client.get("/api/data")
    assert data.status_code == 200 and data.json()["auth_id"] == "alice"


def test_a_client_without_a_cookie_jar_sends_the_value_back(
    site: Site, client: httpx.Client, fake_flowroute: FakeFlowroute
) -> None:
    client.post(CHALLENGE + "/send", json={})
    done = client.post(CHALLENGE, json={"code": fake_flowroute.last_code(ALICE)})
    value = done.cookies["sms2fa"]
    with httpx.Client(base_url=site.url, timeout=10) as bare:
        ok = bare.get("/api/data", headers={"X-User": "alice", "Cookie": f"sms2fa={value}"})
        assert ok.status_code == 200


def test_json_posts_pass_the_origin_check_and_malformed_ones_cost_nothing(
    site: Site, client: httpx.Client, fake_flowroute: FakeFlowroute
) -> None:
    client.post(CHALLENGE + "/send", json={})
    code = fake_flowroute.last_code(ALICE)
    for origin in ("http://evil.example", "null"):
        forged = client.post(CHALLENGE, json={"code": code}, headers={"Origin": origin})
        assert forged.status_code == 403 and forged.json()["reason"] == "OriginRejected"
        assert (
            client.post(CHALLENGE + "/send", json={}, headers={"Origin": origin}).status_code == 403
        )
    for body in ({"code": 123456}, {"code": code, "next": "/"}, {}, ["x"]):
        answer = client.post(CHALLENGE, json=body)
        assert answer.status_code == 400 and answer.json()["reason"] == "InvalidAPIUsage"
    assert (
        client.post(
            CHALLENGE, content=b"{", headers={"Content-Type": "application/json"}
        ).status_code
        == 400
    )
    assert site.middleware.verifier.pending("alice").attempts_left == 3
    assert len(fake_flowroute.messages) == 1


def test_json_flow_refusals(site: Site, fake_flowroute: FakeFlowroute) -> None:
    with httpx.Client(base_url=site.url, headers=JSON, timeout=10) as anonymous:
        answer = anonymous.post(CHALLENGE + "/send", json={})
        assert answer.status_code == 401 and answer.json()["reason"] == "LoginRequired"
    with httpx.Client(
        base_url=site.url, headers={"X-User": "carol", **JSON}, timeout=10
    ) as unknown:
        assert unknown.get(CHALLENGE).status_code == 401
    limited = None
    with httpx.Client(base_url=site.url, headers={"X-User": "alice", **JSON}, timeout=10) as client:
        for _ in range(12):
            limited = client.post(CHALLENGE + "/send", json={})
            if limited.status_code == 429:
                break
    assert limited is not None and limited.status_code == 429
    assert limited.json()["reason"] == "RateLimited"
    assert int(limited.headers["retry-after"]) >= 1


def test_openapi_lists_the_challenge_endpoints_even_with_the_api_off(client: httpx.Client) -> None:
    document = client.get("/sms2fa/openapi.json")
    assert document.status_code == 200
    assert document.json() == openapi_document(api=False, challenge=True)
    operations = {(p, m) for p, item in document.json()["paths"].items() for m in item}
    assert operations == {
        ("/challenge", "get"),
        ("/challenge", "post"),
        ("/challenge/send", "post"),
        ("/recovery", "get"),
        ("/recovery", "post"),
    }
    from openapi_spec_validator import OpenAPIV31SpecValidator, validate

    validate(document.json(), cls=OpenAPIV31SpecValidator)
    combined = openapi_document(api=True, challenge=True)
    validate(combined, cls=OpenAPIV31SpecValidator)
    assert {"/", "/check", "/challenge", "/challenge/send", "/recovery"} == set(combined["paths"])


# -- browser-shaped refusals ------------------------------------------------------------------


def test_a_form_post_goes_to_the_challenge_and_back_to_the_page_it_came_from(
    site: Site, fake_flowroute: FakeFlowroute
) -> None:
    with httpx.Client(
        base_url=site.url, headers={"X-User": "alice", "Accept": HTML}, timeout=10
    ) as browser:
        posted = browser.post(
            "/account", data={"note": "hello"}, headers={"Referer": f"{site.url}/account?tab=2"}
        )
        assert posted.status_code == 303
        assert posted.headers["location"] == (
            f"{CHALLENGE}?next={quote('/account?tab=2', safe='')}"
        )
        assert len(fake_flowroute.messages) == 1  # the code is on its way, as for a GET
        page = browser.get(posted.headers["location"])
        assert "was not sent" in page.text  # the post's loss is explained
        assert "was not sent" not in browser.get(posted.headers["location"]).text  # once
        elsewhere = browser.post(
            "/account", data={"x": "1"}, headers={"Referer": "http://evil.example/account"}
        )
        assert elsewhere.headers["location"] == f"{CHALLENGE}?next=%2F"  # not another site


def test_htmx_gets_401_and_hx_redirect(site: Site, fake_flowroute: FakeFlowroute) -> None:
    answer = httpx.get(
        site.url + "/api/data",
        timeout=10,
        headers={
            "X-User": "alice",
            "HX-Request": "true",
            "Accept": "*/*",
            "HX-Current-URL": f"{site.url}/account?tab=3",
        },
    )
    assert answer.status_code == 401
    assert answer.headers["hx-redirect"] == f"{CHALLENGE}?next=%2Faccount%3Ftab%3D3"
    assert answer.json()["reason"] == "VerificationRequired"
    assert len(fake_flowroute.messages) == 1
    anonymous = httpx.get(
        site.url + "/api/data", timeout=10, headers={"HX-Request": "true", "Accept": "text/html"}
    )
    assert anonymous.status_code == 401
    assert anonymous.headers["hx-redirect"].startswith("/login?next=")


def test_anonymous_browser_post_goes_to_login(site: Site) -> None:
    answer = httpx.post(
        site.url + "/account",
        data={"x": "1"},
        timeout=10,
        headers={"Accept": HTML, "Referer": f"{site.url}/account"},
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=%2Faccount"


def test_anonymous_app_leaves_anonymous_requests_to_the_app(
    make_site: Callable[..., Site],
    fake_flowroute: FakeFlowroute,
) -> None:
    site = make_site(anonymous="app")
    own = httpx.get(site.url + "/account/mine", headers=JSON, timeout=10)
    assert own.status_code == 401
    assert own.json() == {"detail": "Not authenticated"}
    assert own.headers["www-authenticate"] == "Bearer"
    # A logged-in user still needs the second factor.
    who = httpx.get(site.url + "/account/mine", headers={"X-User": "alice", **JSON}, timeout=10)
    assert who.status_code == 401 and who.json()["reason"] == "VerificationRequired"
    assert fake_flowroute.messages == []


# -- the middleware from a request; this device only ----------------------------------------------


def _verified_client(site: Site, fake_flowroute: FakeFlowroute) -> httpx.Client:
    client = httpx.Client(base_url=site.url, headers={"X-User": "alice", **JSON}, timeout=10)
    client.post(CHALLENGE + "/send", json={})
    assert client.post(CHALLENGE, json={"code": fake_flowroute.last_code(ALICE)}).is_success
    return client


def test_logout_of_this_device_only(site: Site, fake_flowroute: FakeFlowroute) -> None:
    phone, laptop = _verified_client(site, fake_flowroute), _verified_client(site, fake_flowroute)
    try:
        assert phone.get("/api/data").status_code == 200
        out = phone.post("/logout/device")
        assert out.status_code == 303
        assert 'sms2fa=""' in out.headers["set-cookie"] or "sms2fa=;" in out.headers["set-cookie"]
        assert "Max-Age=0" in out.headers["set-cookie"]
        assert phone.get("/api/data").status_code == 401  # the jar dropped the cookie
        value = out.request.headers["cookie"].split("sms2fa=")[1].split(";")[0]
        replay = httpx.get(
            site.url + "/api/data",
            timeout=10,
            headers={"X-User": "alice", "Cookie": f"sms2fa={value}", **JSON},
        )
        assert replay.status_code == 401  # a copy of the revoked cookie is worthless
        assert laptop.get("/api/data").status_code == 200  # the other device stays in
    finally:
        phone.close()
        laptop.close()


def test_a_session_revoked_on_another_host_ends_there_too(
    make_site: Callable[..., Site],
    fake_flowroute: FakeFlowroute,
) -> None:
    a = make_site(revocation_interval=0.0)
    b = make_site(revocation_interval=0.0)  # same database, same secret: another host
    client = _verified_client(a, fake_flowroute)
    value = client.cookies["sms2fa"]
    headers = {"X-User": "alice", "Cookie": f"sms2fa={value}", **JSON}
    assert httpx.get(b.url + "/api/data", headers=headers, timeout=10).status_code == 200
    client.post("/logout/device")
    assert httpx.get(b.url + "/api/data", headers=headers, timeout=10).status_code == 401
    client.close()


# -- identify and the event loop --------------------------------------------------------------


def test_a_sync_identify_runs_off_the_loop_and_an_async_one_on_it(
    make_settings: Callable[..., Settings],
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient
    from tests.support.apps import starlette_app

    seen: list[str] = []
    base = make_identify(USERS)

    def on_loop() -> str:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return "thread"
        return "loop"

    def sync_identify(request: Any) -> Identity | None:
        seen.append(on_loop())
        return base(request)

    async def async_identify(request: Any) -> Identity | None:
        seen.append(on_loop())
        return base(request)

    class Callable_:
        async def __call__(self, request: Any) -> Identity | None:
            return await async_identify(request)

    for identify in (sync_identify, async_identify, Callable_()):
        app, middleware = starlette_app(dict(USERS), make_settings(), [], identify=identify)
        with TestClient(app) as http:
            assert http.get("/account", headers={"X-User": "alice", **JSON}).status_code == 401
        middleware.verifier.store.dispose()
    assert seen == ["thread", "loop", "loop"]
    assert threading.current_thread() is threading.main_thread()
