"""Changing the phone number at ``{prefix}/phone`` (with ``on_enroll``), and the fresh code
that it and making recovery codes ask for (``account_max_age``). On WSGI (Flask) and ASGI
(Starlette), the end-to-end change on SQLite and PostgreSQL, and on Django: a session older
than five minutes is challenged on the OLD number first and comes back; the new number is
checked against the policy before any SMS and confirmed by a code bound to the browser; only
a right code calls ``on_enroll``; then the old number gets a notice (FakeFlowroute's inbox,
no code in it), other browsers' sessions, trusted browsers and recovery codes open nothing,
the event ``number_changed`` reaches ``on_event`` masked, and this browser is verified for
the new number. The JSON twin, the challenge page's link, and the engine's part on both
databases."""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest

from sms2fa_middleware import AuditEvent, Identity, Verifier
from sms2fa_middleware.engine import AsyncVerifier
from sms2fa_middleware.errors import InvalidAuthCode, RateLimited
from sms2fa_middleware.sms import SendError
from sms2fa_middleware.testing import FakeFlowroute
from tests.support.apps import Site
from tests.support.browsing import ALICE, NEW_NUMBER, Browser, csrf_token, hidden_next, wrong

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

PHONE = "/sms2fa/phone"
BACK = f"{PHONE}?next=%2Faccount"  # the change page, coming back to /account after
STEP_UP = f"/sms2fa/challenge?max_age=300&next={quote(BACK, safe='')}"
TEN_MINUTES_MS = 10 * 60 * 1000
DAYS_30 = 30 * 86400
ALICE_MASKED, NEW_MASKED = "+1••••••••34", "+1••••••••99"


class Phones:
    """The app's side: identify reads ``table``; on_enroll stores the number there."""

    def __init__(self) -> None:
        self.table: dict[str, Any] = {"alice": Identity("alice", ALICE)}
        self.calls: list[tuple[str, str]] = []
        self.events: list[AuditEvent] = []

    def on_enroll(self, auth_id: str, number: str) -> None:
        self.calls.append((auth_id, number))
        self.table[auth_id] = Identity(auth_id, number)


def _site(make_identity_site: Callable[..., Site], app: Phones, **options: Any) -> Site:
    options.setdefault("on_enroll", app.on_enroll)
    options.setdefault("trust_browser_for", DAYS_30)
    return make_identity_site(app.table, on_event=app.events.append, **options)


def _stale(browser: Browser, number: str = ALICE, ago_ms: int = TEN_MINUTES_MS) -> None:
    """A verified session for alice whose code was entered ``ago_ms`` ago (the guard's
    clock): live, but too old for a change of number."""
    guard = browser.site.middleware.guard
    browser.plant(
        guard.signer.issue(Identity("alice", number), int(guard.sessions.now_ms()) - ago_ms)
    )


def _verify(browser: Browser, fake: FakeFlowroute, trust: bool = False) -> None:
    """The plain challenge on the number on file (the box ticked with ``trust``)."""
    assert browser.nav("/account").status_code == 303
    page = browser.page("/account")
    fields = {"csrf_token": csrf_token(page), "next": "/account", "code": fake.last_code(ALICE)}
    if trust:
        fields["trust"] = "1"
    done = browser.post("/sms2fa/challenge", fields)
    assert done.status_code == 303 and done.headers["location"] == "/account", done.text[:300]


def _step_up(
    browser: Browser,
    fake: FakeFlowroute,
    back: str = BACK,
    away: Any = None,
) -> None:
    """A too-old session asks for ``back`` (or was sent ``away`` from a post): the challenge
    (``max_age=300``) on the number on file, the user asks for a code, enters it, and is
    sent back."""
    away = away or browser.nav(back)
    assert away.status_code == 303, away.text[:300]
    location = away.headers["location"]
    assert location.startswith("/sms2fa/challenge?max_age=300&next="), location
    page = browser.nav(location)
    assert page.status_code == 200 and "needs a code from the last 5 minutes" in page.text
    next_url = hidden_next(page)
    assert next_url == back
    sent = browser.post(
        "/sms2fa/challenge/resend?max_age=300", {"csrf_token": csrf_token(page), "next": next_url}
    )
    assert sent.status_code == 303
    page = browser.nav(sent.headers["location"])
    done = browser.post(
        "/sms2fa/challenge?max_age=300",
        {"csrf_token": csrf_token(page), "next": next_url, "code": fake.last_code(ALICE)},
    )
    assert done.status_code == 303 and done.headers["location"] == back, done.text[:300]


def _send(browser: Browser, phone: str) -> Any:
    page = browser.nav(BACK)
    assert page.status_code == 200, page.text[:300]
    return browser.post(PHONE, {"csrf_token": csrf_token(page), "next": "/account", "phone": phone})


def _confirm(browser: Browser, code: str) -> Any:
    page = browser.nav(BACK)
    assert page.status_code == 200 and 'name="code"' in page.text, page.text[:500]
    return browser.post(PHONE, {"csrf_token": csrf_token(page), "next": "/account", "code": code})


def _recovery_codes(browser: Browser) -> list[str]:
    page = browser.nav("/sms2fa/recovery")
    made = browser.post("/sms2fa/recovery", {"csrf_token": csrf_token(page)})
    assert made.status_code == 200, made.text[:300]
    codes = [html.unescape(c) for c in re.findall(r"<li><code>([^<]+)</code></li>", made.text)]
    assert len(codes) == 10
    return codes


def test_a_change_of_number_end_to_end(
    make_identity_site: Callable[..., Site], fake_flowroute: FakeFlowroute
) -> None:
    app = Phones()
    site = _site(make_identity_site, app)
    verifier = site.middleware.verifier
    # Alice's other devices: a trusted tablet, a phone with a verified session.
    tablet, phone = Browser(site, "alice"), Browser(site, "alice")
    _verify(tablet, fake_flowroute, trust=True)
    _verify(phone, fake_flowroute)
    codes = _recovery_codes(phone)
    assert len(verifier.trusted_browsers("alice")) == 1

    # The laptop's session is ten minutes old: the change starts with a code on the OLD number.
    laptop = Browser(site, "alice")
    _stale(laptop)
    assert laptop.nav("/account").status_code == 200  # old enough for the app, not for this
    texts_to_old = len(fake_flowroute.messages_to(ALICE))
    _step_up(laptop, fake_flowroute)
    assert len(fake_flowroute.messages_to(ALICE)) == texts_to_old + 1
    page = laptop.nav(BACK)
    assert page.status_code == 200 and f"Your codes go to {ALICE_MASKED}" in page.text

    assert _send(laptop, "(312) 555-0199").status_code == 303  # typed nationally
    code = fake_flowroute.last_code(NEW_NUMBER)
    assert f"We texted a code to {NEW_MASKED}" in laptop.nav(BACK).text
    assert app.calls == []  # not before the code
    done = _confirm(laptop, code)
    assert done.status_code == 303 and done.headers["location"] == BACK
    assert app.calls == [("alice", NEW_NUMBER)]

    # The page says what ended, once, and links to new recovery codes.
    after = laptop.nav(BACK)
    assert after.status_code == 200, after.text[:300]
    assert f"Your phone number is now {NEW_MASKED}" in after.text
    assert "your recovery codes no longer work" in after.text
    assert 'href="/sms2fa/recovery"' in after.text and 'href="/account"' in after.text
    assert "is now" not in laptop.nav(BACK).text
    # This browser is verified for the new number.
    assert laptop.nav("/account").status_code == 200

    # The old number got a notice, with nothing in it that could pass for a code.
    notice = fake_flowroute.messages_to(ALICE)[-1].body
    assert "phone number for your sign-in codes was changed" in notice
    assert not re.search(r"[0-9]{4,}", notice) and code not in notice

    # Other browsers: their sessions and trust are gone, and not only because the number
    # is signed into their cookies: a session for the NEW number issued before the change
    # (as another host might have) is revoked too, and the trusted rows are deleted.
    assert phone.nav("/account").status_code == 303
    tablet.http.cookies.clear(domain="127.0.0.1", path="/", name="sms2fa")
    assert tablet.nav("/account").status_code == 303  # a new login: challenged, not 307
    assert verifier.trusted_browsers("alice") == []
    _stale(phone, NEW_NUMBER, ago_ms=1000)
    assert phone.nav("/account").status_code == 303

    # The recovery codes are gone: none left, and an old one is a wrong guess.
    assert verifier.recovery_codes_left("alice") == 0
    with pytest.raises(InvalidAuthCode):
        verifier.use_recovery_code("alice", codes[0])

    # Audited, masked only.
    changed = [e for e in app.events if e.name == "number_changed"]
    assert len(changed) == 1 and changed[0].auth_id == "alice"
    assert changed[0].recipient == NEW_MASKED and changed[0].detail["previous"] == ALICE_MASKED
    assert changed[0].detail["recovery_codes_dropped"] == 10
    assert ALICE not in repr(app.events) and NEW_NUMBER not in repr(app.events)


@SQLITE_ONLY
def test_a_fresh_session_changes_without_a_second_challenge(
    make_identity_site: Callable[..., Site], fake_flowroute: FakeFlowroute
) -> None:
    app = Phones()
    site = _site(make_identity_site, app)
    browser = Browser(site, "alice")
    _verify(browser, fake_flowroute)
    texts = len(fake_flowroute.messages_to(ALICE))
    assert browser.nav(BACK).status_code == 200  # the code was entered just now
    assert _send(browser, NEW_NUMBER).status_code == 303
    assert _confirm(browser, fake_flowroute.last_code(NEW_NUMBER)).status_code == 303
    assert app.calls == [("alice", NEW_NUMBER)]
    assert len(fake_flowroute.messages_to(ALICE)) == texts + 1  # the notice, no code


@SQLITE_ONLY
def test_a_wrong_code_changes_nothing(
    make_identity_site: Callable[..., Site], fake_flowroute: FakeFlowroute
) -> None:
    app = Phones()
    site = _site(make_identity_site, app)
    browser = Browser(site, "alice")
    _verify(browser, fake_flowroute)
    codes = _recovery_codes(browser)
    texts = len(fake_flowroute.messages_to(ALICE))
    assert _send(browser, NEW_NUMBER).status_code == 303
    code = fake_flowroute.last_code(NEW_NUMBER)
    refused = _confirm(browser, wrong(code))
    assert refused.status_code == 400 and "not right" in refused.text
    assert app.calls == [] and app.table["alice"].recipient == ALICE
    assert not [e for e in app.events if e.name == "number_changed"]
    assert len(fake_flowroute.messages_to(ALICE)) == texts  # no notice
    assert browser.nav("/account").status_code == 200  # still verified, for the old number
    assert site.middleware.verifier.recovery_codes_left("alice") == 10
    # Another browser of alice's, fresh too, cannot use the code sent for this one.
    other = Browser(site, "alice")
    _verify(other, fake_flowroute)
    assert _send(other, "+13125550100").status_code == 303  # its own code, elsewhere
    stolen = other.api(PHONE, "POST", json={"code": code})
    assert stolen.status_code == 400 and app.calls == []
    assert codes  # untouched: a later change is what ends them


@SQLITE_ONLY
@pytest.mark.parametrize("phone", ["+44 7911 123456", "1-800-555-0199", "not a number", "", ALICE])
def test_a_number_outside_the_policy_is_refused_before_any_sms(
    make_identity_site: Callable[..., Site], fake_flowroute: FakeFlowroute, phone: str
) -> None:
    app = Phones()
    site = _site(make_identity_site, app)
    browser = Browser(site, "alice")
    _verify(browser, fake_flowroute)
    sent = len(fake_flowroute.messages)
    refused = _send(browser, phone)
    assert refused.status_code == 400
    said = "already" if phone == ALICE else "We cannot send codes to that number"
    assert said in refused.text
    api = browser.api(PHONE, "POST", json={"phone": phone})
    assert api.status_code == 400
    assert api.json()["reason"] == ("SameNumber" if phone == ALICE else "InvalidRecipient")
    assert not phone or phone not in api.text
    assert len(fake_flowroute.messages) == sent and app.calls == []


@SQLITE_ONLY
def test_json_change_of_number(
    make_identity_site: Callable[..., Site], fake_flowroute: FakeFlowroute
) -> None:
    app = Phones()
    site = _site(make_identity_site, app)
    client = Browser(site, "alice")
    _stale(client)
    # Too old: the 401 says how recent the code must be, as a rule's step-up does.
    for method, body in (("GET", None), ("POST", {"phone": NEW_NUMBER})):
        refused = client.api(PHONE, method, json=body)
        assert refused.status_code == 401 and refused.json()["max_age"] == 300
        assert refused.json()["challenge"].startswith("/sms2fa/challenge?max_age=300")
        assert "insufficient_user_authentication" in refused.headers["www-authenticate"]
    assert fake_flowroute.messages_to(NEW_NUMBER) == []
    # The JSON challenge on the old number, then the change.
    assert client.api("/sms2fa/challenge/send", "POST", json={}).status_code == 200
    checked = client.api(
        "/sms2fa/challenge", "POST", json={"code": fake_flowroute.last_code(ALICE)}
    )
    assert checked.status_code == 200, checked.text
    status = client.api(PHONE)
    assert status.json() == {"phone": ALICE_MASKED, "pending": False, "sent_to": None}
    sent = client.api(PHONE, "POST", json={"phone": "312.555.0199"})
    assert sent.status_code == 200 and sent.json()["sent_to"] == NEW_MASKED, sent.text
    assert client.api(PHONE).json() == {
        "phone": ALICE_MASKED,
        "pending": True,
        "sent_to": NEW_MASKED,
    }
    both = client.api(PHONE, "POST", json={"phone": NEW_NUMBER, "code": "123456"})
    assert both.status_code == 400 and both.json()["reason"] == "InvalidAPIUsage"
    done = client.api(PHONE, "POST", json={"code": fake_flowroute.last_code(NEW_NUMBER)})
    assert done.status_code == 200, done.text
    assert done.json() == {
        "verified": True,
        "changed_to": NEW_MASKED,
        "remember_for": 43200,
        "recovery_codes_left": 0,
    }
    assert app.calls == [("alice", NEW_NUMBER)]
    assert client.api("/api/data").status_code == 200  # verified for the new number
    assert client.api(PHONE).json()["phone"] == NEW_MASKED
    # No code out for a new number: nothing to confirm.
    again = client.api(PHONE, "POST", json={"code": "123456"})
    assert again.status_code == 400 and again.json()["reason"] == "UnknownAuthId"


@SQLITE_ONLY
def test_a_challenge_code_for_the_old_number_changes_nothing(
    make_identity_site: Callable[..., Site], fake_flowroute: FakeFlowroute
) -> None:
    """The code waiting is the challenge's (for the number on file): the change page does
    not take it (it could only "change" the number to itself), and spends no attempt."""
    app = Phones()
    site = _site(make_identity_site, app)
    client = Browser(site, "alice")
    _verify(client, fake_flowroute)
    assert client.api("/sms2fa/challenge/send", "POST", json={}).status_code == 200
    code = fake_flowroute.last_code(ALICE)
    refused = client.api(PHONE, "POST", json={"code": code})
    assert refused.status_code == 400 and refused.json()["reason"] == "UnknownAuthId"
    assert app.calls == []
    assert site.middleware.verifier.pending("alice").attempts_left == 3  # none spent


@SQLITE_ONLY
def test_an_on_enroll_that_raises_changes_nothing(
    make_identity_site: Callable[..., Site], fake_flowroute: FakeFlowroute
) -> None:
    app = Phones()

    def broken(auth_id: str, number: str) -> None:
        raise RuntimeError("the app's bug")

    site = _site(make_identity_site, app, on_enroll=broken)
    browser = Browser(site, "alice")
    _verify(browser, fake_flowroute, trust=True)
    _recovery_codes(browser)
    texts = len(fake_flowroute.messages_to(ALICE))
    assert _send(browser, NEW_NUMBER).status_code == 303
    failed = _confirm(browser, fake_flowroute.last_code(NEW_NUMBER))
    assert failed.status_code == 500 and "bug" not in failed.text and NEW_NUMBER not in failed.text
    verifier = site.middleware.verifier
    assert verifier.recovery_codes_left("alice") == 10
    assert len(verifier.trusted_browsers("alice")) == 1
    assert len(fake_flowroute.messages_to(ALICE)) == texts  # no notice
    assert not [e for e in app.events if e.name == "number_changed"]
    assert browser.nav("/account").status_code == 200  # the old session lives on


@SQLITE_ONLY
def test_who_gets_the_change_page(
    make_identity_site: Callable[..., Site], fake_flowroute: FakeFlowroute
) -> None:
    app = Phones()
    app.table["carol"] = Identity("carol", None)
    site = _site(make_identity_site, app)
    anonymous = Browser(site).nav(BACK)
    assert anonymous.status_code == 303  # log in first, then here
    assert anonymous.headers["location"] == f"/login?next={quote(BACK, safe='')}"
    carol = Browser(site, "carol").nav(BACK)  # no number yet: enrollment's business
    assert carol.status_code == 303 and carol.headers["location"].startswith("/sms2fa/enroll")
    unverified = Browser(site, "alice").nav(BACK)  # no session at all: the challenge
    assert unverified.status_code == 303 and unverified.headers["location"] == STEP_UP
    # Without on_enroll there is no such page.
    plain = make_identity_site(app.table)
    assert Browser(plain, "alice").nav(PHONE).status_code == 404


@SQLITE_ONLY
def test_the_challenge_page_links_to_the_change(
    make_identity_site: Callable[..., Site], fake_flowroute: FakeFlowroute
) -> None:
    app = Phones()
    site = _site(make_identity_site, app)
    browser = Browser(site, "alice")
    page = browser.page("/account")
    assert f'href="{BACK}"' in page.text and "Change your phone number" in page.text
    # On the change page's own step-up the link would lead back here: not shown.
    _stale(browser)
    step_up = browser.nav(STEP_UP)
    assert step_up.status_code == 200 and "Change your phone number" not in step_up.text
    plain = make_identity_site(app.table)
    assert "Change your phone number" not in Browser(plain, "alice").page("/account").text


def test_the_cooldown_after_the_step_up_says_how_long_to_wait(
    make_site: Callable[..., Site], fake_flowroute: FakeFlowroute
) -> None:
    """The step-up's code started the resend cooldown (30 s here, as by default), but it
    was used: the new number's code goes at once. A code to yet another number (a typo
    put right) while that one waits is refused, with the wait said, and nothing sent."""
    holder: list[Site] = []

    def on_enroll(auth_id: str, number: str) -> None:
        holder[0].users[auth_id] = number

    site = make_site(settings={"resend_cooldown": 30}, on_enroll=on_enroll)
    holder.append(site)
    browser = Browser(site, "alice")
    _stale(browser)
    _step_up(browser, fake_flowroute)
    assert _send(browser, "+13125550100").status_code == 303  # at once, 30 s or not
    assert len(fake_flowroute.messages_to("+13125550100")) == 1
    refused = _send(browser, NEW_NUMBER)
    assert refused.status_code == 429
    assert re.search(r"You can ask for a new code in [0-9]+ seconds?\.", refused.text), refused.text
    assert fake_flowroute.messages_to(NEW_NUMBER) == []
    limited = browser.api(PHONE, "POST", json={"phone": NEW_NUMBER})
    assert limited.status_code == 429 and limited.json()["budget"] == "resend_cooldown"
    assert int(limited.headers["retry-after"]) >= 1
    assert fake_flowroute.messages_to(NEW_NUMBER) == []


# -- recovery codes need a recent code too ----------------------------------------------------


@SQLITE_ONLY
def test_making_recovery_codes_with_a_stale_session_is_challenged_first(
    make_identity_site: Callable[..., Site], fake_flowroute: FakeFlowroute
) -> None:
    app = Phones()
    site = _site(make_identity_site, app)
    browser = Browser(site, "alice")
    _stale(browser)
    page = browser.nav("/sms2fa/recovery")
    assert page.status_code == 200 and "0 recovery codes left" in page.text  # seeing is fine
    made = browser.post("/sms2fa/recovery", {"csrf_token": csrf_token(page)})
    assert made.status_code == 303
    assert made.headers["location"] == "/sms2fa/challenge?max_age=300&next=%2Fsms2fa%2Frecovery"
    assert site.middleware.verifier.recovery_codes_left("alice") == 0  # the first set too
    api = browser.api("/sms2fa/recovery", "POST", json={})
    assert api.status_code == 401 and api.json()["max_age"] == 300
    assert site.middleware.verifier.recovery_codes_left("alice") == 0
    _step_up(browser, fake_flowroute, back="/sms2fa/recovery", away=made)
    assert len(_recovery_codes(browser)) == 10
    # Four minutes later, a new set still needs no new code; six minutes later it does.
    _stale(browser, ago_ms=4 * 60 * 1000)
    assert browser.api("/sms2fa/recovery", "POST", json={}).status_code == 200
    _stale(browser, ago_ms=6 * 60 * 1000)
    assert browser.api("/sms2fa/recovery", "POST", json={}).status_code == 401


@SQLITE_ONLY
def test_account_max_age_is_an_option(
    make_identity_site: Callable[..., Site], fake_flowroute: FakeFlowroute
) -> None:
    app = Phones()
    site = _site(make_identity_site, app, account_max_age=3600)
    browser = Browser(site, "alice")
    _stale(browser)  # ten minutes: within the hour
    assert browser.nav(BACK).status_code == 200
    assert browser.api("/sms2fa/recovery", "POST", json={}).status_code == 200
    _stale(browser, ago_ms=3601 * 1000)
    refused = browser.api(PHONE)
    assert refused.status_code == 401 and refused.json()["max_age"] == 3600


# -- the engine ---------------------------------------------------------------------------------


def test_number_changed_drops_recovery_codes_and_texts_the_old_number(
    make_verifier: Callable[..., Verifier], fake_flowroute: FakeFlowroute
) -> None:
    events: list[AuditEvent] = []
    verifier = make_verifier()
    verifier.audit.on_event = events.append
    codes = verifier.new_recovery_codes("alice")
    assert verifier.number_changed("alice", ALICE, NEW_NUMBER) == 10
    assert verifier.recovery_codes_left("alice") == 0
    with pytest.raises(InvalidAuthCode):
        verifier.use_recovery_code("alice", codes[0])
    notices = fake_flowroute.messages_to(ALICE)
    assert len(notices) == 1 and "was changed" in notices[0].body
    assert fake_flowroute.messages_to(NEW_NUMBER) == []
    changed = [e for e in events if e.name == "number_changed"]
    assert changed[0].detail == {
        "previous": ALICE_MASKED,
        "recovery_codes_dropped": 10,
        "notified": True,
    }
    assert verifier.number_changed("bob", "+14155552671", NEW_NUMBER) == 0  # none to drop


def test_a_failed_notice_is_audited_and_changes_nothing_else(
    make_verifier: Callable[..., Verifier],
) -> None:
    events: list[AuditEvent] = []
    verifier = make_verifier()
    verifier.audit.on_event = events.append

    class Down:
        def send(self, to: str, body: str) -> str:
            raise SendError("the provider is down")

    verifier.sender = Down()  # type: ignore[assignment]
    verifier.new_recovery_codes("alice")
    assert verifier.number_changed("alice", ALICE, NEW_NUMBER) == 10
    failed = [e for e in events if e.name == "send_failed"]
    assert len(failed) == 1 and failed[0].reason == "NumberChangeNotice"
    assert [e.detail["notified"] for e in events if e.name == "number_changed"] == [False]


def test_end_cooldown_only_when_no_code_waits(
    make_verifier: Callable[..., Verifier], fake_flowroute: FakeFlowroute
) -> None:
    verifier = make_verifier(resend_cooldown=30)
    verifier.start("alice", ALICE)
    assert verifier.end_cooldown("alice") is False  # the code waits: a new one is a resend
    with pytest.raises(RateLimited):
        verifier.start("alice", NEW_NUMBER)
    verifier.check("alice", fake_flowroute.last_code(ALICE))
    assert verifier.resend_wait("alice") > 0
    assert verifier.end_cooldown("alice") is True  # used: the next code is a new one
    assert verifier.resend_wait("alice") == 0
    verifier.start("alice", NEW_NUMBER)
    assert len(fake_flowroute.messages_to(NEW_NUMBER)) == 1


def test_the_async_twins(
    make_verifier: Callable[..., Verifier], fake_flowroute: FakeFlowroute
) -> None:
    verifier = make_verifier(resend_cooldown=30)
    twin = AsyncVerifier(verifier)
    verifier.new_recovery_codes("alice")

    async def walk() -> tuple[bool, int]:
        return await twin.end_cooldown("alice"), await twin.number_changed(
            "alice", ALICE, NEW_NUMBER
        )

    assert asyncio.run(walk()) == (True, 10)
    assert verifier.recovery_codes_left("alice") == 0
    assert "was changed" in fake_flowroute.messages_to(ALICE)[-1].body


@SQLITE_ONLY
def test_the_notice_speaks_the_language_of_the_change(
    make_identity_site: Callable[..., Site], fake_flowroute: FakeFlowroute
) -> None:
    app = Phones()
    site = _site(make_identity_site, app)
    client = Browser(site, "alice", **{"Accept-Language": "es"})
    assert client.api("/sms2fa/challenge/send", "POST", json={}).status_code == 200
    code = fake_flowroute.last_code(ALICE)
    assert client.api("/sms2fa/challenge", "POST", json={"code": code}).status_code == 200
    assert client.api(PHONE, "POST", json={"phone": NEW_NUMBER}).status_code == 200
    done = client.api(PHONE, "POST", json={"code": fake_flowroute.last_code(NEW_NUMBER)})
    assert done.status_code == 200, done.text
    notice = fake_flowroute.messages_to(ALICE)[-1].body
    assert "Se ha cambiado el número de teléfono" in notice, notice


# -- Django ------------------------------------------------------------------------------------


def phone_for_django(auth_id: str, number: str) -> None:
    """The Django test's on_enroll (a dotted path): the app stores the number."""
    from django.contrib.auth import get_user_model

    get_user_model().objects.filter(pk=auth_id).update(phone_number=number)


def test_django_change_of_number(sms2fa: Any, fake_flowroute: FakeFlowroute) -> None:
    from django.contrib.auth import get_user_model
    from django.test import Client

    from tests.support.django_example import FORM, HTML, PASSWORD
    from tests.support.django_example import csrf as _csrf
    from tests.support.django_example import form_body as _form

    # The example's settings: a 30 s resend cooldown, lifted once the step-up's code is used.
    sms2fa(on_enroll=f"{__name__}.phone_for_django")
    users = get_user_model().objects
    user = users.create_user("changer", password=PASSWORD, phone_number=ALICE)
    try:
        client = Client()
        client.login(username="changer", password=PASSWORD)
        # Not verified yet: the change page sends the user to the challenge first.
        back = f"{PHONE}?next=%2Faccount%2F"
        away = client.get(back, headers=HTML)
        assert away.status_code == 303, away.content[:300]
        challenge = away["location"]
        assert challenge == f"/sms2fa/challenge?max_age=300&next={quote(back, safe='')}"
        page = client.get(challenge, headers=HTML)
        fields = {"csrf_token": _csrf(page.text), "next": back}
        sent = client.post(
            "/sms2fa/challenge/resend?max_age=300", _form(fields), FORM, headers=HTML
        )
        assert sent.status_code == 303
        page = client.get(sent["location"], headers=HTML)
        fields = {
            "csrf_token": _csrf(page.text),
            "next": back,
            "code": fake_flowroute.last_code(ALICE),
        }
        done = client.post("/sms2fa/challenge?max_age=300", _form(fields), FORM, headers=HTML)
        assert done.status_code == 303 and done["location"] == back
        page = client.get(back, headers=HTML)
        assert page.status_code == 200 and ALICE_MASKED in page.text
        fields = {"csrf_token": _csrf(page.text), "next": "/account/", "phone": NEW_NUMBER}
        sent = client.post(PHONE, _form(fields), FORM, headers=HTML)
        assert sent.status_code == 303, sent.content[:300]
        page = client.get(sent["location"], headers=HTML)
        code = fake_flowroute.last_code(NEW_NUMBER)
        fields = {"csrf_token": _csrf(page.text), "next": "/account/", "code": code}
        changed = client.post(PHONE, _form(fields), FORM, headers=HTML)
        assert changed.status_code == 303 and changed["location"] == back
        assert users.get(pk=user.pk).phone_number == NEW_NUMBER
        assert "was changed" in fake_flowroute.messages_to(ALICE)[-1].body
        assert client.get("/account/", headers=HTML).status_code == 200
    finally:
        user.delete()
