"""Enrollment (``on_enroll``): a logged-in user with no phone on file adds one at
``{prefix}/enroll`` on WSGI (Flask) and ASGI (Starlette): the code goes to FakeFlowroute, a
right one calls ``on_enroll`` once with the E.164 number and opens the page; a number
outside the policy sends nothing; a wrong code enrolls nothing; a user with a number is sent
to the challenge; the JSON twin; an async ``on_enroll``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from sms2fa_middleware import AuditEvent, Identity
from sms2fa_middleware.testing import FakeFlowroute
from tests.support.apps import Site
from tests.support.browsing import ALICE, Browser, csrf_token

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

TYPED = "(206) 555-0100"  # a national format, read in the default region (US)
NUMBER = "+12065550100"
ENROLL = "/sms2fa/enroll"


class Enrolled:
    """The app's side: identify reads ``table``; on_enroll stores the number there."""

    def __init__(self) -> None:
        self.table: dict[str, Any] = {
            "carol": Identity("carol", None),
            "alice": Identity("alice", ALICE),
        }
        self.calls: list[tuple[str, str]] = []
        self.events: list[AuditEvent] = []

    def on_enroll(self, auth_id: str, number: str) -> None:
        self.calls.append((auth_id, number))
        self.table[auth_id] = Identity(auth_id, number)

    async def on_enroll_async(self, auth_id: str, number: str) -> None:
        self.on_enroll(auth_id, number)


def _site(make_identity_site: Callable[..., Site], app: Enrolled, **options: Any) -> Site:
    options.setdefault("on_enroll", app.on_enroll)
    return make_identity_site(app.table, on_event=app.events.append, **options)


def _send(browser: Browser, phone: str, next_url: str = "/account") -> Any:
    page = browser.nav(f"{ENROLL}?next={next_url}")
    assert page.status_code == 200, page.text[:300]
    return browser.post(ENROLL, {"csrf_token": csrf_token(page), "next": next_url, "phone": phone})


def _confirm(browser: Browser, code: str, next_url: str = "/account") -> Any:
    page = browser.nav(f"{ENROLL}?next={next_url}")
    assert page.status_code == 200 and 'name="code"' in page.text, page.text[:500]
    return browser.post(ENROLL, {"csrf_token": csrf_token(page), "next": next_url, "code": code})


@SQLITE_ONLY
def test_a_first_number_enrolled_end_to_end(
    make_identity_site: Callable[..., Site], fake_flowroute: FakeFlowroute
) -> None:
    app = Enrolled()
    site = _site(make_identity_site, app)
    carol = Browser(site, "carol")
    away = carol.nav("/account")
    assert away.status_code == 303 and away.headers["location"] == f"{ENROLL}?next=%2Faccount"
    sent = _send(carol, TYPED)
    assert sent.status_code == 303 and sent.headers["location"] == f"{ENROLL}?next=%2Faccount"
    code = fake_flowroute.last_code(NUMBER)
    assert "We texted a code to +1••••••••00" in carol.nav(f"{ENROLL}?next=/account").text
    assert app.calls == []  # not before the code
    done = _confirm(carol, code)
    assert done.status_code == 303 and done.headers["location"] == "/account"
    assert app.calls == [("carol", NUMBER)]
    opened = carol.nav("/account")
    assert opened.status_code == 200 and "carol" in opened.text
    enrolled = [e for e in app.events if e.name == "enrolled"]
    assert len(enrolled) == 1 and enrolled[0].auth_id == "carol"
    assert enrolled[0].recipient == "+1••••••••00"  # masked
    # Now a user with a number: the enroll page is the challenge's business.
    again = carol.nav(f"{ENROLL}?next=/account")
    assert again.status_code == 303 and again.headers["location"].startswith("/sms2fa/challenge")
    assert app.calls == [("carol", NUMBER)]


@SQLITE_ONLY
@pytest.mark.parametrize("phone", ["+44 7911 123456", "1-800-555-0199", "not a number", ""])
def test_a_number_outside_the_policy_is_refused_before_any_sms(
    make_identity_site: Callable[..., Site], fake_flowroute: FakeFlowroute, phone: str
) -> None:
    app = Enrolled()
    site = _site(make_identity_site, app)
    carol = Browser(site, "carol")
    refused = _send(carol, phone)
    assert refused.status_code == 400
    assert "We cannot send codes to that number" in refused.text
    api = carol.api(ENROLL, "POST", json={"phone": phone})
    assert api.status_code == 400 and api.json()["reason"] == "InvalidRecipient"
    assert phone not in api.text or not phone
    assert fake_flowroute.messages == [] and app.calls == []


@SQLITE_ONLY
def test_a_wrong_code_enrolls_nothing(
    make_identity_site: Callable[..., Site], fake_flowroute: FakeFlowroute
) -> None:
    app = Enrolled()
    site = _site(make_identity_site, app)
    carol = Browser(site, "carol")
    assert _send(carol, NUMBER).status_code == 303
    code = fake_flowroute.last_code(NUMBER)
    wrong = _confirm(carol, "000000" if code != "000000" else "111111")
    assert wrong.status_code == 400 and "not right" in wrong.text
    assert app.calls == [] and not [e for e in app.events if e.name == "enrolled"]
    assert carol.nav("/account").status_code == 303  # still no number, no session
    # Another browser cannot use the code sent for this one (bound to it).
    other = Browser(site, "carol")
    stolen = other.api(ENROLL, "POST", json={"code": code})
    assert stolen.status_code == 400 and app.calls == []
    assert _confirm(carol, code).status_code == 303 and app.calls == [("carol", NUMBER)]


@SQLITE_ONLY
def test_a_user_with_a_number_gets_no_enroll_page(
    make_identity_site: Callable[..., Site], fake_flowroute: FakeFlowroute
) -> None:
    app = Enrolled()
    site = _site(make_identity_site, app)
    alice = Browser(site, "alice")
    page = alice.nav(f"{ENROLL}?next=/account")
    assert page.status_code == 303
    assert page.headers["location"] == "/sms2fa/challenge?next=%2Faccount"
    api = alice.api(ENROLL, "POST", json={"phone": NUMBER})
    assert api.status_code == 403 and api.json()["reason"] == "PhoneOnFile"
    assert fake_flowroute.messages_to(NUMBER) == [] and app.calls == []
    assert Browser(site).nav(ENROLL).status_code in (303, 401)  # anonymous: log in first


@SQLITE_ONLY
def test_json_enrollment(
    make_identity_site: Callable[..., Site], fake_flowroute: FakeFlowroute
) -> None:
    app = Enrolled()
    site = _site(make_identity_site, app)
    client = Browser(site, "carol")
    refused = client.api("/api/data")
    assert refused.status_code == 403 and refused.json()["enroll"] == ENROLL
    assert client.api(ENROLL).json() == {"pending": False, "sent_to": None}
    sent = client.api(ENROLL, "POST", json={"phone": "206.555.0100"})
    assert sent.status_code == 200, sent.text
    assert sent.json()["sent_to"] == "+1••••••••00" and NUMBER not in sent.text
    assert client.api(ENROLL).json() == {"pending": True, "sent_to": "+1••••••••00"}
    bad = client.api(ENROLL, "POST", json={"phone": NUMBER, "code": "123456"})
    assert bad.status_code == 400 and bad.json()["reason"] == "InvalidAPIUsage"
    code = fake_flowroute.last_code(NUMBER)
    done = client.api(ENROLL, "POST", json={"code": code})
    assert done.status_code == 200, done.text
    assert done.json()["verified"] is True and done.json()["enrolled"] == "+1••••••••00"
    assert app.calls == [("carol", NUMBER)]
    assert client.api("/api/data").status_code == 200


@SQLITE_ONLY
def test_an_async_on_enroll_is_run_to_completion(
    make_identity_site: Callable[..., Site], fake_flowroute: FakeFlowroute
) -> None:
    app = Enrolled()
    site = _site(make_identity_site, app, on_enroll=app.on_enroll_async)
    carol = Browser(site, "carol")
    assert _send(carol, TYPED).status_code == 303
    done = _confirm(carol, fake_flowroute.last_code(NUMBER))
    assert done.status_code == 303 and app.calls == [("carol", NUMBER)]
    assert carol.nav("/account").status_code == 200


@SQLITE_ONLY
def test_an_on_enroll_that_raises_verifies_nothing(
    make_identity_site: Callable[..., Site], fake_flowroute: FakeFlowroute
) -> None:
    app = Enrolled()

    def broken(auth_id: str, number: str) -> None:
        raise RuntimeError("the app's bug")

    site = _site(make_identity_site, app, on_enroll=broken)
    carol = Browser(site, "carol")
    assert _send(carol, TYPED).status_code == 303
    failed = _confirm(carol, fake_flowroute.last_code(NUMBER))
    assert failed.status_code == 500 and "bug" not in failed.text and NUMBER not in failed.text
    assert "sms2fa" not in failed.cookies  # no verified session for a number not kept
    assert carol.nav("/account").status_code == 303
    assert not [e for e in app.events if e.name == "enrolled"]


@SQLITE_ONLY
def test_enroll_url_still_wins(
    make_identity_site: Callable[..., Site], fake_flowroute: FakeFlowroute
) -> None:
    app = Enrolled()
    site = _site(make_identity_site, app, enroll_url="/profile/phone")
    away = Browser(site, "carol").nav("/account")
    assert away.status_code == 303 and away.headers["location"] == "/profile/phone?next=%2Faccount"


# -- Django ------------------------------------------------------------------------------------


def enroll_for_django(auth_id: str, number: str) -> None:
    """The Django test's on_enroll (a dotted path): the app stores the number."""
    from django.contrib.auth import get_user_model

    get_user_model().objects.filter(pk=auth_id).update(phone_number=number)


def test_django_enrollment_with_a_dotted_path(sms2fa: Any, fake_flowroute: FakeFlowroute) -> None:
    from django.contrib.auth import get_user_model
    from django.test import Client

    from tests.support.django_example import FORM, HTML, PASSWORD
    from tests.support.django_example import csrf as _csrf
    from tests.support.django_example import form_body as _form

    sms2fa(on_enroll=f"{__name__}.enroll_for_django")
    users = get_user_model().objects
    user = users.create_user("enrollee", password=PASSWORD)
    try:
        client = Client()
        client.login(username="enrollee", password=PASSWORD)
        away = client.get("/account/", headers=HTML)
        assert away.status_code == 303, away.content[:300]
        assert away["location"] == f"{ENROLL}?next=%2Faccount%2F"
        page = client.get(away["location"], headers=HTML)
        fields = {"csrf_token": _csrf(page.text), "next": "/account/", "phone": TYPED}
        sent = client.post(ENROLL, _form(fields), FORM, headers=HTML)
        assert sent.status_code == 303, sent.content[:300]
        page = client.get(sent["location"], headers=HTML)
        assert "+1••••••••00" in page.text
        code = fake_flowroute.last_code(NUMBER)
        fields = {"csrf_token": _csrf(page.text), "next": "/account/", "code": code}
        done = client.post(ENROLL, _form(fields), FORM, headers=HTML)
        assert done.status_code == 303 and done["location"] == "/account/"
        assert users.get(pk=user.pk).phone_number == NUMBER
        assert client.get("/account/", headers=HTML).status_code == 200
    finally:
        user.delete()
