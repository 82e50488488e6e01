"""Cross-site requests against the challenge forms: the CSRF token, and the Origin check
(``null`` included), through real servers on both adapters.

From the middleware's end-to-end suite and issue 11 (items 6 and 9)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests

from sms2fa_middleware.testing import FakeFlowroute
from tests.support.apps import Site
from tests.support.browsing import (
    ALICE,
    CHALLENGE,
    COOKIE,
    HTML,
    Browser,
    attempts_shown,
    csrf_token,
    json_401,
    set_cookies,
)

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def nav(site: Site, path: str, user: str = "alice", **kw: Any) -> requests.Response:
    return requests.get(
        site.url + path,
        headers={"X-User": user, "Accept": HTML},
        allow_redirects=False,
        timeout=10,
        **kw,
    )


# -- Origin: null (item 9) ------------------------------------------------------------------


@SQLITE_ONLY
def test_origin_null_is_refused_on_the_challenge_forms(
    make_identity_site: Callable[..., Site], fake_flowroute: FakeFlowroute
) -> None:
    site = make_identity_site()
    browser = Browser(site, "alice")
    browser.nav("/account")
    code = fake_flowroute.last_code(ALICE)
    token = csrf_token(browser.page())
    null = {"Origin": "null"}
    check = browser.post(
        CHALLENGE, {"csrf_token": token, "next": "/account", "code": code}, headers=null
    )
    resend = browser.post(
        CHALLENGE + "/resend", {"csrf_token": token, "next": "/account"}, headers=null
    )
    assert (check.status_code, resend.status_code) == (403, 403)
    assert COOKIE not in set_cookies(check)
    assert len(fake_flowroute.messages) == 1
    assert site.middleware.verifier.store.get_code("alice").attempts_left == 3
    same = {"Origin": site.url}  # the control: this site's own origin passes
    assert browser.submit(code, token=token, headers=same).status_code == 303


def test_csrf_token_missing_or_wrong_is_403_and_costs_nothing(
    site: Site, fake_flowroute: FakeFlowroute
) -> None:
    browser = Browser(site, "alice")
    browser.nav("/account")
    code = fake_flowroute.last_code(ALICE)
    token = csrf_token(browser.page())
    bob = Browser(site, "bob")
    bobs_token = csrf_token(bob.page())
    stranger = Browser(site, "alice")  # the right token, but not the cookie it is bound to

    attempts = [
        browser.post(CHALLENGE, {"next": "/account", "code": code}),
        browser.post(CHALLENGE, {"csrf_token": "", "next": "/account", "code": code}),
        browser.post(CHALLENGE, {"csrf_token": "x" + token[1:], "next": "/account", "code": code}),
        browser.post(CHALLENGE, {"csrf_token": bobs_token, "next": "/account", "code": code}),
        stranger.post(CHALLENGE, {"csrf_token": token, "next": "/account", "code": code}),
        # bob's cookie and bob's token, but alice asking: the token is bound to the user.
        Browser(site, "alice", Cookie=f"sms2fa_csrf={bob.http.cookies.get('sms2fa_csrf')}").post(
            CHALLENGE, {"csrf_token": bobs_token, "next": "/account", "code": code}
        ),
        browser.post(
            CHALLENGE,
            {"csrf_token": token, "next": "/account", "code": code},
            headers={"Origin": "http://evil.example"},
        ),
        browser.post(CHALLENGE + "/resend", {"next": "/account"}),
    ]
    assert [a.status_code for a in attempts] == [403] * len(attempts)
    assert all(COOKIE not in set_cookies(a) for a in attempts)
    # A GET never checks a code, whatever it carries.
    assert (
        browser.nav(
            CHALLENGE, params={"next": "/account", "code": code, "csrf_token": token}
        ).status_code
        == 200
    )
    assert site.middleware.verifier.store.get_code("alice").attempts_left == 3
    assert attempts_shown(browser.page()) == 3
    assert len(fake_flowroute.messages_to(ALICE)) == 1  # the refused resend sent nothing
    json_401(browser.api("/api/data"), "VerificationRequired")
    assert browser.submit(code, token=token).status_code == 303  # the code is still good
