"""The middleware, end to end: one suite driving both adapters through the same scenarios.

Each test serves a tiny Flask app (WSGI adapter, werkzeug's threaded server) and a tiny
Starlette app (ASGI adapter, uvicorn) -- see ``tests/support/apps.py`` -- on 127.0.0.1, and
drives it through ``requests`` exactly as a browser or an API client would. Codes come from a real
FakeFlowroute; the store is a real SQLite file, and the real PostgreSQL too (when
SMS2FA_TEST_POSTGRES_URL is set) for every test not marked ``SQLITE_ONLY``.

The Starlette app is served with uvicorn's ``proxy_headers`` off, so ``X-Forwarded-Proto``
from 127.0.0.1 is not believed unless a test asks for a trusted proxy (``behind_proxy``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from urllib.parse import urlencode

import pytest
import requests

from sms2fa_middleware.testing import FakeFlowroute
from tests.support.apps import Site
from tests.support.browsing import (
    ACCOUNT_CHALLENGE,
    ALICE,
    CHALLENGE,
    COOKIE,
    FLASH,
    HTML,
    NEW_NUMBER,
    Browser,
    attempts_shown,
    csrf_token,
    hidden_next,
    json_401,
    set_cookies,
    shows,
    wrong,
)

# The full matrix runs on SQLite; a representative subset also on PostgreSQL.
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
STARLETTE_ONLY = pytest.mark.parametrize("framework", ["starlette"])
# Also as Starlette(middleware=[Middleware(SMS2FAMiddleware, ...)]) rather than a wrapper.
ALL_FORMS = pytest.mark.parametrize("framework", ["flask", "starlette", "starlette-stack"])


# -- which paths are protected ------------------------------------------------------------


@SQLITE_ONLY
def test_unprotected_paths_pass_through(site: Site, fake_flowroute: FakeFlowroute) -> None:
    for user in (None, "alice"):
        browser = Browser(site, user)
        assert browser.nav("/").text == "home"
        assert browser.nav("/public/x").text == "public x"
        assert browser.api("/public/x").text == "public x"
        health = browser.api("/api/health")  # excluded from the protected "/api" prefix
        assert health.status_code == 200
        assert health.json() == {"ok": True, "identity": None}
        doc = browser.nav("/docs/readme.txt")  # does not match the glob /docs/*.pdf
        assert doc.status_code == 200
        assert doc.json() == {"doc": "readme.txt", "identity": None}
    assert fake_flowroute.messages == []


@SQLITE_ONLY
def test_glob_pattern_in_protect(site: Site, fake_flowroute: FakeFlowroute) -> None:
    browser = Browser(site, "alice")
    json_401(browser.api("/docs/report.pdf"), "VerificationRequired")
    first = browser.nav("/docs/report.pdf")
    assert first.status_code == 303
    assert first.headers["location"] == "/sms2fa/challenge?next=%2Fdocs%2Freport.pdf"
    browser.submit(fake_flowroute.last_code(ALICE), "/docs/report.pdf")
    doc = browser.nav("/docs/report.pdf")
    assert doc.status_code == 200
    assert doc.json() == {"doc": "report.pdf", "identity": {"auth_id": "alice", "recipient": ALICE}}
    # Matches the protected glob, but also the excluded one /docs/free-*.pdf.
    free = Browser(site).nav("/docs/free-sample.pdf")
    assert free.status_code == 200
    assert free.json() == {"doc": "free-sample.pdf", "identity": None}
    assert len(fake_flowroute.messages) == 1


# -- anonymous ----------------------------------------------------------------------------


@SQLITE_ONLY
def test_anonymous_navigation_goes_to_login_other_requests_get_401(
    site: Site, fake_flowroute: FakeFlowroute
) -> None:
    anonymous = Browser(site)
    to_login = anonymous.nav("/account?tab=2")
    assert to_login.status_code == 303
    assert to_login.headers["location"] == "/login?next=%2Faccount%3Ftab%3D2"
    json_401(anonymous.api("/api/data"), "LoginRequired")
    json_401(anonymous.api("/account", "POST", data={"x": "1"}), "LoginRequired")
    page = anonymous.nav(CHALLENGE, params={"next": "/account"})
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=%2Faccount"
    # An unknown user (identify() returns None) is anonymous too.
    json_401(Browser(site, "mallory").api("/api/data"), "LoginRequired")
    assert fake_flowroute.messages == []


@SQLITE_ONLY
def test_anonymous_without_login_url_gets_401(
    make_site: Callable[..., Site], fake_flowroute: FakeFlowroute
) -> None:
    site = make_site(login_url=None)
    anonymous = Browser(site)
    body = json_401(anonymous.nav("/account"), "LoginRequired")
    assert "location" not in anonymous.nav("/account").headers
    assert body["message"]
    json_401(anonymous.nav(CHALLENGE), "LoginRequired")
    assert fake_flowroute.messages == []


@ALL_FORMS
def test_login_challenge_success_and_redirect_back(
    site: Site, fake_flowroute: FakeFlowroute
) -> None:
    browser = Browser(site)  # identified by the app's "user" cookie after /login
    to_login = browser.nav("/account?tab=2")
    assert to_login.headers["location"] == "/login?next=%2Faccount%3Ftab%3D2"
    logged_in = browser.nav(to_login.headers["location"] + "&user=alice")
    assert logged_in.status_code == 303
    assert logged_in.headers["location"] == "/account?tab=2"

    challenged = browser.nav("/account?tab=2")
    assert challenged.status_code == 303
    assert challenged.headers["location"] == "/sms2fa/challenge?next=%2Faccount%3Ftab%3D2"
    assert len(fake_flowroute.messages_to(ALICE)) == 1
    page = browser.nav(challenged.headers["location"])
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    assert page.headers["cache-control"] == "no-store"
    assert "+1••••••••34" in page.text and ALICE not in page.text
    assert attempts_shown(page) == 3
    assert hidden_next(page) == "/account?tab=2"

    done = browser.post(
        CHALLENGE,
        {
            "csrf_token": csrf_token(page),
            "next": "/account?tab=2",
            "code": fake_flowroute.last_code(ALICE),
        },
    )
    assert done.status_code == 303
    assert done.headers["location"] == "/account?tab=2"
    assert done.cookies.get(COOKIE)

    account = browser.nav("/account?tab=2")
    assert account.status_code == 200
    assert account.text == "account of alice"  # the app sees the identity
    data = browser.api("/api/data")
    assert data.status_code == 200
    assert data.json() == {"auth_id": "alice", "recipient": ALICE}
    # Once verified, the challenge page sends the user on.
    again = browser.nav(CHALLENGE, params={"next": "/account?tab=2"})
    assert again.status_code == 303
    assert again.headers["location"] == "/account?tab=2"
    assert len(fake_flowroute.messages) == 1
    assert site.middleware.verifier.store.get_code("alice") is None  # consumed


# -- the challenge ------------------------------------------------------------------------


def test_first_visit_sends_one_code_and_reload_sends_none(
    site: Site, fake_flowroute: FakeFlowroute
) -> None:
    browser = Browser(site, "alice")
    first = browser.nav("/account")
    assert first.status_code == 303
    assert first.headers["location"] == ACCOUNT_CHALLENGE
    assert first.headers["cache-control"] == "no-store"
    assert len(fake_flowroute.messages_to(ALICE)) == 1
    code = fake_flowroute.last_code(ALICE)
    assert len(code) == 6

    # Reloads (of the page and of the challenge), with the resend cooldown off: no new SMS.
    for _ in range(3):
        assert browser.nav("/account").headers["location"] == ACCOUNT_CHALLENGE
        assert attempts_shown(browser.page()) == 3
    assert len(fake_flowroute.messages) == 1
    pending = site.middleware.verifier.store.get_code("alice")
    assert pending is not None and pending.attempts_left == 3

    assert browser.submit(code).status_code == 303  # the first code still holds
    assert browser.nav("/account").text == "account of alice"


@SQLITE_ONLY
def test_wrong_code_costs_one_attempt_and_sends_nothing(
    site: Site, fake_flowroute: FakeFlowroute
) -> None:
    browser = Browser(site, "alice")
    browser.nav("/account")
    code = fake_flowroute.last_code(ALICE)
    for left in (2, 1):
        answer = browser.submit(wrong(code))
        assert answer.status_code == 400
        assert "That code is not right" in answer.text
        assert attempts_shown(answer) == left
        assert COOKIE not in set_cookies(answer)
        assert site.middleware.verifier.store.get_code("alice").attempts_left == left
    assert browser.submit(" " + code[:3] + "-" + code[3:]).status_code == 303  # spaces, dash ok
    assert len(fake_flowroute.messages) == 1


@SQLITE_ONLY
def test_non_digits_are_refused_without_costing_an_attempt(
    site: Site, fake_flowroute: FakeFlowroute
) -> None:
    browser = Browser(site, "alice")
    browser.nav("/account")
    for junk in ("abcdef", "", "12345678901", "١٢٣٤٥٦"):
        answer = browser.submit(junk)
        assert answer.status_code == 400
        assert "Enter the digits" in answer.text
    assert site.middleware.verifier.store.get_code("alice").attempts_left == 3


@SQLITE_ONLY
def test_resend_cooldown(make_site: Callable[..., Site], fake_flowroute: FakeFlowroute) -> None:
    site = make_site(settings={"resend_cooldown": 1})
    browser = Browser(site, "alice")
    browser.nav("/account")
    old_code = fake_flowroute.last_code(ALICE)
    page = browser.page()
    assert re.search(r'id="resend" disabled', page.text)
    assert "You can ask for a new code in 1 second." in page.text

    refused = browser.resend()
    assert refused.status_code == 303
    assert refused.headers["location"] == ACCOUNT_CHALLENGE
    assert set_cookies(refused)[FLASH][0] == "rate_limited"
    assert shows(browser.nav(ACCOUNT_CHALLENGE), "rate_limited")
    assert not shows(browser.page(), "rate_limited")  # said once; a reload does not repeat it
    assert len(fake_flowroute.messages) == 1

    time.sleep(1.1)
    assert 'id="resend" disabled' not in browser.page().text
    sent = browser.resend()
    assert sent.headers["location"] == ACCOUNT_CHALLENGE
    assert set_cookies(sent)[FLASH][0] == "sent"
    assert len(fake_flowroute.messages_to(ALICE)) == 2
    page = browser.nav(sent.headers["location"])
    assert "We sent you a new code." in page.text
    assert attempts_shown(page) == 3
    new_code = fake_flowroute.last_code(ALICE)
    if new_code != old_code:  # a fresh code on each resend: the old one is dead
        assert browser.submit(old_code).status_code == 400
    assert browser.submit(new_code).status_code == 303


def test_exhausted_attempts(site: Site, fake_flowroute: FakeFlowroute) -> None:
    browser = Browser(site, "alice")
    browser.nav("/account")
    code = fake_flowroute.last_code(ALICE)
    shown = [attempts_shown(browser.submit(wrong(code))) for _ in range(3)]
    assert shown == [2, 1, None]
    page = browser.page()
    assert "Ask for a new code to continue." in page.text
    assert attempts_shown(page) is None
    assert site.middleware.verifier.pending("alice") is None  # used up

    late = browser.submit(code)  # the right code, too late
    assert late.status_code == 400
    assert COOKIE not in set_cookies(late)
    json_401(browser.api("/api/data"), "VerificationRequired")

    # A new visit sends a new code (nothing is pending any more), and that one works.
    assert browser.nav("/account").headers["location"] == ACCOUNT_CHALLENGE
    assert len(fake_flowroute.messages_to(ALICE)) == 2
    assert browser.submit(fake_flowroute.last_code(ALICE)).status_code == 303


@SQLITE_ONLY
def test_lockout_across_codes(
    make_site: Callable[..., Site], fake_flowroute: FakeFlowroute
) -> None:
    site = make_site(settings={"max_failed_checks": 2, "retries_allowed": 5})
    browser = Browser(site, "alice")
    browser.nav("/account")
    code = fake_flowroute.last_code(ALICE)
    assert [browser.submit(wrong(code)).status_code for _ in range(2)] == [400, 400]
    locked = browser.submit(code)
    assert locked.status_code == 429
    assert "Too many wrong codes" in locked.text
    json_401(browser.api("/api/data"), "VerificationRequired")


@SQLITE_ONLY
def test_send_failure_and_refused_number(
    make_site: Callable[..., Site], fake_flowroute: FakeFlowroute
) -> None:
    site = make_site(users={"alice": ALICE, "carol": "+19005550100"})  # premium rate
    browser = Browser(site, "alice")
    fake_flowroute.fail_next(500)
    failed = browser.nav("/account")
    assert failed.headers["location"] == ACCOUNT_CHALLENGE
    page = browser.nav(failed.headers["location"])
    assert shows(page, "send_failed")
    assert attempts_shown(page) is None
    assert site.middleware.verifier.store.get_code("alice") is None  # nothing left pending
    assert browser.nav("/account").headers["location"] == ACCOUNT_CHALLENGE  # sent now
    assert len(fake_flowroute.messages_to(ALICE)) == 1

    carol = Browser(site, "carol")
    refused = carol.nav("/account")
    assert refused.headers["location"] == ACCOUNT_CHALLENGE
    assert shows(carol.nav(refused.headers["location"]), "bad_number")
    assert len(fake_flowroute.messages) == 1


@SQLITE_ONLY
def test_non_ascii_and_encoded_paths_come_back_intact(
    make_site: Callable[..., Site], fake_flowroute: FakeFlowroute
) -> None:
    site = make_site(settings={"recipient_send_limit": 0})
    browser = Browser(site, "alice")
    for path, wire in [
        ("/account/日本", "/account/%E6%97%A5%E6%9C%AC"),
        ("/account/a%3Fb?q=%C3%BC", "/account/a%3Fb?q=%C3%BC"),
    ]:
        to_login = Browser(site).nav(path)
        assert to_login.headers["location"] == "/login?" + urlencode({"next": wire})
        challenged = browser.nav(path)
        assert challenged.headers["location"] == CHALLENGE + "?" + urlencode({"next": wire})
        page = browser.nav(challenged.headers["location"])
        assert hidden_next(page) == wire
        done = browser.submit(fake_flowroute.last_code(ALICE), wire, token=csrf_token(page))
        assert (done.status_code, done.headers["location"]) == (303, wire)
        browser.api("/logout", "POST")
    # A next that is not ASCII is percent-encoded, never a 500.
    browser.verify(fake_flowroute)
    again = browser.nav(CHALLENGE, params={"next": "/café/日本 x"})
    assert (again.status_code, again.headers["location"]) == (
        303,
        "/caf%C3%A9/%E6%97%A5%E6%9C%AC%20x",
    )


@SQLITE_ONLY
def test_bad_requests_under_the_prefix(site: Site, fake_flowroute: FakeFlowroute) -> None:
    browser = Browser(site, "alice")
    browser.nav("/account")
    too_big = browser.post(CHALLENGE, {"code": "1" * 20_000})
    assert too_big.status_code == 413
    assert too_big.json()["reason"] == "InvalidAPIUsage"
    token = csrf_token(browser.page())
    # A JSON post is the API clients' flow (issue 12): it takes {"code"} and nothing else.
    as_json = browser.api(
        CHALLENGE,
        "POST",
        json={"csrf_token": token, "next": "/account", "code": fake_flowroute.last_code(ALICE)},
    )
    assert as_json.status_code == 400
    assert as_json.json()["reason"] == "InvalidAPIUsage"
    for method, path in [
        ("GET", "/sms2fa/nope"),
        ("GET", CHALLENGE + "/resend"),
        ("PUT", CHALLENGE),
        ("DELETE", "/sms2fa/"),
    ]:
        answer = browser.api(path, method)
        assert answer.status_code == 404, (method, path)
        assert answer.json()["reason"] == "NotFound"
    assert site.middleware.verifier.store.get_code("alice").attempts_left == 3


# -- what the app and the client see ------------------------------------------------------


def test_non_navigation_gets_401_json_and_sends_nothing(
    site: Site, fake_flowroute: FakeFlowroute
) -> None:
    browser = Browser(site, "alice")
    body = json_401(browser.api("/api/data"), "VerificationRequired")
    assert body["challenge"] == "/sms2fa/challenge?next=%2Fapi%2Fdata"
    # (A browser's form post, Accept: text/html, goes to the challenge since issue 12: see
    # adapters/test_api_clients.py.)
    json_401(browser.api("/account", "POST", data={"a": "b"}), "VerificationRequired")
    json_401(browser.api("/account?x=1"), "VerificationRequired")
    assert fake_flowroute.messages == []


# -- the mounted API ----------------------------------------------------------------------


@SQLITE_ONLY
def test_mounted_api_is_off_by_default(site: Site, fake_flowroute: FakeFlowroute) -> None:
    create = requests.post(
        site.url + "/sms2fa/", json={"auth_id": "x", "recipient": ALICE}, timeout=10
    )
    assert create.status_code == 404
    assert create.json()["reason"] == "NotFound"
    check = requests.get(
        site.url + "/sms2fa/", params={"auth_id": "x", "code": "123456"}, timeout=10
    )
    assert check.status_code == 404
    # The document is always served (the JSON challenge flow), without the API's paths.
    document = requests.get(site.url + "/sms2fa/openapi.json", timeout=10).json()
    assert "/" not in document["paths"] and "/check" not in document["paths"]
    assert fake_flowroute.messages == []


def test_mounted_api_on(make_site: Callable[..., Site], fake_flowroute: FakeFlowroute) -> None:
    site = make_site(public_api=True)
    api = site.url + "/sms2fa/"
    create = requests.post(api, json={"auth_id": "order-7", "recipient": NEW_NUMBER}, timeout=10)
    assert create.status_code == 200, create.text
    assert create.json()["attempts_left"] == 3
    code = fake_flowroute.last_code(NEW_NUMBER)
    bad = requests.get(api, params={"auth_id": "order-7", "code": wrong(code)}, timeout=10)
    assert bad.status_code == 400
    assert bad.json()["reason"] == "InvalidAuthCode"
    good = requests.post(api + "check", json={"auth_id": "order-7", "code": code}, timeout=10)
    assert good.status_code == 200
    assert good.json()["authenticated"] is True
    assert (
        requests.get(api, params={"auth_id": "order-7", "code": code}, timeout=10).status_code
        == 400
    )  # single use
    garbage = requests.post(
        api, data=b"{not json", timeout=10, headers={"Content-Type": "application/json"}
    )
    assert garbage.status_code == 400
    assert garbage.json()["reason"] == "InvalidAPIUsage"


@SQLITE_ONLY
def test_mounted_api_with_token(
    make_site: Callable[..., Site], fake_flowroute: FakeFlowroute
) -> None:
    token = "s3cret-token-0123456789abcdef-xyz"
    site = make_site(settings={"api_token": token})
    api = site.url + "/sms2fa/"
    body = {"auth_id": "order-8", "recipient": NEW_NUMBER}
    refused = requests.post(api, json=body, timeout=10)
    assert refused.status_code == 401
    assert refused.json()["reason"] == "Unauthorized"
    assert fake_flowroute.messages == []
    ok = requests.post(api, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert ok.status_code == 200
    assert len(fake_flowroute.messages_to(NEW_NUMBER)) == 1


# -- cookies ------------------------------------------------------------------------------


def test_cookie_attributes_over_http(
    make_site: Callable[..., Site], fake_flowroute: FakeFlowroute
) -> None:
    site = make_site()
    # The server does not believe X-Forwarded-Proto (no trusted proxy), nor does the
    # middleware: this is plain http, so no Secure and no __Host- prefix.
    browser = Browser(site, "alice", **{"X-Forwarded-Proto": "https"})
    browser.nav("/account")
    page = browser.page()
    csrf = set_cookies(page)["sms2fa_csrf"]
    assert set(csrf[1:]) == {"Path=/", "Max-Age=3600", "HttpOnly", "SameSite=Lax"}
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    done = browser.submit(fake_flowroute.last_code(ALICE))
    cookies = set_cookies(done)
    assert set(cookies[COOKIE][1:]) == {"Path=/", "Max-Age=43200", "HttpOnly", "SameSite=Lax"}
    assert cookies["sms2fa_csrf"][:2] == ["", "Path=/"] and "Max-Age=0" in cookies["sms2fa_csrf"]
    assert not any(name.startswith("__Host-") for name in cookies)


def verify_by_hand(
    site: Site, fake: FakeFlowroute, prefix: str, **headers: str
) -> tuple[list[str], list[str]]:
    """The challenge with cookies carried by hand (requests keeps Secure cookies off http).
    Returns the Set-Cookie of the CSRF cookie and of the verified-session cookie."""
    alice = {"X-User": "alice", "Accept": HTML, **headers}
    sent = requests.get(site.url + "/account", headers=alice, allow_redirects=False, timeout=10)
    bound = set_cookies(sent)[f"{prefix}sms2fa_challenge"]  # the code is bound to it
    page = requests.get(site.url + ACCOUNT_CHALLENGE, headers=alice, timeout=10)
    csrf = set_cookies(page)[f"{prefix}sms2fa_csrf"]
    done = requests.post(
        site.url + CHALLENGE,
        allow_redirects=False,
        timeout=10,
        headers={
            **alice,
            "Cookie": f"{prefix}sms2fa_csrf={csrf[0]}; {prefix}sms2fa_challenge={bound[0]}",
        },
        data={"csrf_token": csrf_token(page), "next": "/account", "code": fake.last_code(ALICE)},
    )
    assert done.status_code == 303, done.text[:300]
    return csrf, set_cookies(done)[f"{prefix}sms2fa"]


@SQLITE_ONLY
@pytest.mark.parametrize("how", ["cookie_secure", "https behind a trusted proxy"])
def test_cookie_attributes_when_secure(
    how: str, make_site: Callable[..., Site], fake_flowroute: FakeFlowroute
) -> None:
    if how == "cookie_secure":
        site, headers = make_site(cookie_secure=True), {}
    else:
        site, headers = make_site(behind_proxy=True), {"X-Forwarded-Proto": "https"}
    csrf, cookie = verify_by_hand(site, fake_flowroute, "__Host-", **headers)
    assert set(csrf[1:]) == {"Path=/", "Max-Age=3600", "HttpOnly", "SameSite=Lax", "Secure"}
    assert set(cookie[1:]) == {"Path=/", "Max-Age=43200", "HttpOnly", "SameSite=Lax", "Secure"}
    with_prefix = requests.get(
        site.url + "/api/data",
        timeout=10,
        headers={"X-User": "alice", "Cookie": f"__Host-sms2fa={cookie[0]}", **headers},
    )
    assert with_prefix.status_code == 200
    assert with_prefix.json()["auth_id"] == "alice"
    json_401(
        requests.get(
            site.url + "/api/data",
            timeout=10,
            headers={"X-User": "alice", "Cookie": f"sms2fa={cookie[0]}", **headers},
        ),
        "VerificationRequired",
    )


# -- ASGI only: websockets and lifespan ---------------------------------------------------


@STARLETTE_ONLY
@SQLITE_ONLY
def test_websocket_needs_verification(site: Site, fake_flowroute: FakeFlowroute) -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    ws_url = site.url.replace("http://", "ws://")
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url + "/ws", additional_headers={"X-User": "alice"}, open_timeout=5)
    assert refused.value.response.status_code == 403
    with pytest.raises(InvalidStatus):
        connect(ws_url + "/ws", open_timeout=5)  # anonymous
    with pytest.raises(InvalidStatus):  # nor is there any websocket under the prefix
        connect(
            ws_url + "/sms2fa/challenge", additional_headers={"X-User": "alice"}, open_timeout=5
        )
    with connect(ws_url + "/public/ws", open_timeout=5) as ws:
        assert ws.recv(timeout=5) == "hello nobody"
    assert fake_flowroute.messages == []  # a websocket never triggers an SMS

    cookie = Browser(site, "alice").verify(fake_flowroute)
    with connect(
        ws_url + "/ws",
        open_timeout=5,
        additional_headers={"X-User": "alice", "Cookie": f"{COOKIE}={cookie}"},
    ) as ws:
        assert ws.recv(timeout=5) == "hello alice"
    with pytest.raises(InvalidStatus):
        connect(
            ws_url + "/ws",
            open_timeout=5,
            additional_headers={"X-User": "bob", "Cookie": f"{COOKIE}={cookie}"},
        )


@pytest.mark.parametrize("framework", ["starlette", "starlette-stack"])
@SQLITE_ONLY
def test_lifespan_passes_through(make_site: Callable[..., Site]) -> None:
    site = make_site()
    assert site.lifespan_log == ["startup"]
    assert requests.get(site.url + "/", timeout=10).text == "home"
    site.stop()
    assert site.lifespan_log == ["startup", "shutdown"]
