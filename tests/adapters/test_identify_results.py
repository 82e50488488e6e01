"""What ``identify`` may return -- an int auth_id, a national number, no number, garbage,
an exception -- on both adapters through real servers (see ``tests/support/apps.py``).

``identify`` here reads the ``X-User`` header and returns whatever the test put in
``IDENTITIES`` for that user (``make_identity_site`` in conftest.py).

From issue 11 (items 6 and 9).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import requests

from sms2fa_middleware import Identity, Settings
from sms2fa_middleware.testing import FakeFlowroute
from tests.support.apps import Site
from tests.support.browsing import (
    ALICE,
    CHALLENGE,
    HTML,
    Browser,
    attempts_shown,
    json_401,
)

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
SECRET_IN_ERROR = "leaked-secret-0123"
NATIONAL = "(206) 555-1234"  # ALICE, as an app may keep it


def nav(site: Site, path: str, user: str = "alice", **kw: Any) -> requests.Response:
    return requests.get(
        site.url + path,
        headers={"X-User": user, "Accept": HTML},
        allow_redirects=False,
        timeout=10,
        **kw,
    )


def api(site: Site, path: str, user: str = "alice") -> requests.Response:
    return requests.get(
        site.url + path,
        headers={"X-User": user, "Accept": "application/json"},
        allow_redirects=False,
        timeout=10,
    )


# (guard names new in this change are imported inside the tests that use them, so the rest
# of this file runs -- and fails -- on the code before it.)


# -- identify(): what it may return (item 6) -----------------------------------------------


@SQLITE_ONLY
def test_int_auth_id_goes_through_the_challenge(
    make_identity_site: Callable[..., Site], fake_flowroute: FakeFlowroute
) -> None:
    site = make_identity_site({"alice": Identity(42, ALICE)})
    browser = Browser(site, "alice")  # the code is bound to the browser that asked
    first = browser.nav("/account")
    assert first.status_code == 303, first.text[:300]
    assert first.headers["location"] == "/sms2fa/challenge?next=%2Faccount"
    done = browser.submit(fake_flowroute.last_code(ALICE))
    assert done.status_code == 303
    assert browser.nav("/account").text == "account of 42"
    assert browser.api("/api/data").json() == {"auth_id": "42", "recipient": ALICE}
    site.middleware.revoke(42)  # the same id the app knows, as an int
    json_401(browser.api("/api/data"), "VerificationRequired")


@SQLITE_ONLY
def test_uuid_auth_id_and_national_number(
    make_identity_site: Callable[..., Site], fake_flowroute: FakeFlowroute
) -> None:
    user_id = uuid.UUID("12345678-1234-5678-1234-567812345678")
    site = make_identity_site({"alice": Identity(user_id, NATIONAL)})
    browser = Browser(site, "alice")
    assert browser.nav("/account").status_code == 303
    assert len(fake_flowroute.messages_to(ALICE)) == 1  # sent to the E.164 form
    page = browser.page()
    assert "+1••••••••34" in page.text
    assert attempts_shown(page) == 3
    assert browser.submit(fake_flowroute.last_code(ALICE)).status_code == 303
    assert browser.api("/api/data").json() == {"auth_id": str(user_id), "recipient": ALICE}


@SQLITE_ONLY
@pytest.mark.parametrize("number", [None, "", "not a number"])
def test_no_phone_on_file_gets_a_clear_answer(
    number: str | None, make_identity_site: Callable[..., Site], fake_flowroute: FakeFlowroute
) -> None:
    site = make_identity_site({"alice": Identity("alice", number)})
    page = nav(site, "/account")
    assert page.status_code == 403
    assert "text/html" in page.headers["content-type"]
    assert "No phone number on file" in page.text
    assert nav(site, CHALLENGE + "?next=/account").status_code == 403  # not a 500
    answer = api(site, "/api/data")
    assert answer.status_code == 403
    assert answer.json()["reason"] == "NoPhoneOnFile"
    resend = requests.post(
        site.url + CHALLENGE + "/resend",
        data={"next": "/account"},
        headers={"X-User": "alice"},
        timeout=10,
        allow_redirects=False,
    )
    assert resend.status_code == 403
    assert fake_flowroute.messages == []


@SQLITE_ONLY
def test_no_phone_on_file_goes_to_enroll_url(
    make_identity_site: Callable[..., Site], fake_flowroute: FakeFlowroute
) -> None:
    site = make_identity_site({"alice": Identity(7, None)}, enroll_url="/settings/phone")
    first = nav(site, "/account?tab=2")
    assert first.status_code == 303
    assert first.headers["location"] == "/settings/phone?next=%2Faccount%3Ftab%3D2"
    page = nav(site, CHALLENGE + "?next=/account")
    assert page.headers["location"] == "/settings/phone?next=%2Faccount"
    answer = api(site, "/api/data")
    assert answer.status_code == 403
    assert answer.json() == {
        "message": answer.json()["message"],
        "reason": "NoPhoneOnFile",
        "enroll": "/settings/phone",
    }
    assert fake_flowroute.messages == []


@SQLITE_ONLY
@pytest.mark.parametrize(
    "returned",
    [
        RuntimeError(f"database said {SECRET_IN_ERROR}"),
        Identity("x" * 121, ALICE),
        Identity(["alice"], ALICE),
        Identity(True, ALICE),
        Identity("alice", 12.5),
        f"alice {SECRET_IN_ERROR}",
    ],
    ids=["raises", "long", "list", "bool", "float number", "a str"],
)
def test_identify_failing_is_a_quiet_500(
    returned: Any,
    make_identity_site: Callable[..., Site],
    caplog: pytest.LogCaptureFixture,
    fake_flowroute: FakeFlowroute,
) -> None:
    site = make_identity_site({"alice": returned})
    with caplog.at_level(logging.ERROR, logger="sms2fa"):
        answer = api(site, "/api/data")
        page = nav(site, "/account")
        challenge = nav(site, CHALLENGE)
    assert answer.status_code == 500
    assert answer.json() == {"message": "Internal error.", "reason": "InternalError"}
    for html_page in (page, challenge):
        assert html_page.status_code == 500
        assert "text/html" in html_page.headers["content-type"]
        assert "Traceback" not in html_page.text and SECRET_IN_ERROR not in html_page.text
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name == "sms2fa")
    assert "identify()" in logged
    assert SECRET_IN_ERROR not in logged and ALICE not in logged
    assert nav(site, "/public/x").text == "public x"  # pass-through never calls identify
    assert fake_flowroute.messages == []


@SQLITE_ONLY
def test_identity_normalised_once(make_settings: Callable[..., Settings]) -> None:
    from sms2fa_middleware.guard import Guard, IdentifyError

    guard = Guard(make_settings(), protect=["/a"], default_region="gb")
    try:
        assert guard.identity(None) is None
        assert guard.identity(Identity(1, "+12065551234")) == ("1", "+12065551234")
        assert guard.identity(Identity("u", "020 7946 0018")) == ("u", "+442079460018")
        assert guard.identity(Identity("u", "12065551234")) == ("u", "+12065551234")
        assert guard.identity(("u", 12065551234)) == ("u", "+12065551234")
        assert guard.identity(Identity("u", "  ")) == ("u", None)
        # 1 == True as a dict key: the cache must not answer True with "1".
        with pytest.raises(IdentifyError, match="identify"):
            guard.identity(Identity(True, "+12065551234"))
        for bad in (
            "u",
            Identity("", ALICE),
            Identity("a\nb", ALICE),
            Identity(b"7", ALICE),
            Identity("u", object()),
            (1, 2, 3),
        ):
            with pytest.raises(IdentifyError, match="identify"):
                guard.identity(bad)
    finally:
        guard.verifier.store.dispose()


# -- cookies split over several headers -------------------------------------------------------
