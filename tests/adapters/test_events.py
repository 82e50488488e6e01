"""``on_event``: the middleware option (and Django's dotted path) that hands the app every
audit event -- sent, approved, failed, locked, recovery_used, browser_trusted, trusted_login,
browser_revoked -- synchronously, without a code or a full number; a hook that raises is
logged and never breaks the request. WSGI (Flask), ASGI (Starlette) and Django."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from sms2fa_middleware import AuditEvent
from sms2fa_middleware.guard import Guard
from sms2fa_middleware.testing import FakeFlowroute
from tests.support.apps import Site
from tests.support.browsing import Browser, csrf_token, wrong
from tests.support.django_example import ALICE, ALICE_PHONE, FORM, HTML, PASSWORD
from tests.support.django_example import csrf as _csrf
from tests.support.django_example import form_body as _form

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

#: Collected by the Django test's hook (a dotted path to this module's function).
DJANGO_EVENTS: list[AuditEvent] = []


def collect_for_django(event: AuditEvent) -> None:
    DJANGO_EVENTS.append(event)


def _no_secret(events: list[AuditEvent], codes: list[str], number: str) -> None:
    shown = repr(events)
    assert number not in shown and number[2:] not in shown  # the number masked
    for code in codes:
        assert code not in shown


@SQLITE_ONLY
def test_the_hook_gets_the_events_without_secrets(
    make_site: Callable[..., Site], fake_flowroute: FakeFlowroute
) -> None:
    events: list[AuditEvent] = []
    site = make_site({"max_failed_checks": 3}, on_event=events.append, trust_browser_for=86400)
    number = site.users["alice"]
    browser = Browser(site, "alice")
    assert browser.nav("/account").status_code == 303
    assert browser.submit(wrong(fake_flowroute.last_code(number))).status_code == 400
    code = fake_flowroute.last_code(number)
    page = browser.page()
    done = browser.post(
        "/sms2fa/challenge",
        {"csrf_token": csrf_token(page), "next": "/account", "code": code, "trust": "1"},
    )
    assert done.status_code == 303
    recovery = site.middleware.verifier.new_recovery_codes("alice")
    other = Browser(site, "alice")
    assert other.api("/sms2fa/challenge", "POST", json={"recovery_code": recovery[0]}).ok
    # A new login from the trusted browser, then revoking it.
    browser.http.cookies.clear(domain="127.0.0.1", path="/", name="sms2fa")
    assert browser.nav("/account").status_code == 307
    assert browser.api("/sms2fa/browsers", "POST", json={"revoke": "all"}).ok
    # Three wrong codes lock.
    bob = Browser(site, "bob")
    assert bob.nav("/account").status_code == 303
    bob_code = fake_flowroute.last_code(site.users["bob"])
    for _ in range(3):
        bob.submit(wrong(bob_code))
    names = [e.name for e in events]
    for name in (
        "sent",
        "failed",
        "approved",
        "browser_trusted",
        "recovery_used",
        "trusted_login",
        "browser_revoked",
        "locked",
    ):
        assert name in names, (name, names)
    assert all(e.auth_id in ("alice", "bob") for e in events)
    sent = next(e for e in events if e.name == "sent")
    assert sent.recipient is not None and sent.recipient != number
    assert sent.recipient.endswith(number[-2:]) and "•" in sent.recipient  # masked
    _no_secret(events, [code, bob_code, *recovery], number)


@SQLITE_ONLY
def test_a_raising_hook_breaks_nothing(
    make_site: Callable[..., Site],
    fake_flowroute: FakeFlowroute,
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str] = []

    def broken(event: AuditEvent) -> None:
        calls.append(event.name)
        raise RuntimeError("the app's hook is broken")

    site = make_site(on_event=broken)
    browser = Browser(site, "alice")
    with caplog.at_level(logging.ERROR, logger="sms2fa"):
        browser.verify(fake_flowroute)
        assert browser.nav("/account").status_code == 200
    assert "sent" in calls and "approved" in calls
    assert "the on_event hook failed" in caplog.text


def test_on_event_must_be_callable(make_settings: Callable[..., Any]) -> None:
    with pytest.raises(ValueError, match="on_event"):
        Guard(make_settings(), protect=["/account"], on_event="not callable")


def test_django_on_event_as_a_dotted_path(sms2fa: Any, fake_flowroute: FakeFlowroute) -> None:
    from django.test import Client

    DJANGO_EVENTS.clear()
    sms2fa(on_event=f"{__name__}.collect_for_django")
    client = Client()
    client.login(username=ALICE, password=PASSWORD)
    challenge = client.get("/account/", headers=HTML)
    page = client.get(challenge["location"], headers=HTML)
    code = fake_flowroute.last_code(ALICE_PHONE)
    fields = {"csrf_token": _csrf(page.text), "next": "/account/", "code": code}
    assert client.post("/sms2fa/challenge", _form(fields), FORM, headers=HTML).status_code == 303
    names = [e.name for e in DJANGO_EVENTS]
    assert "sent" in names and "approved" in names
    _no_secret(DJANGO_EVENTS, [code], ALICE_PHONE)
