"""Recovery codes: ten single-use codes for when no text arrives. The engine on SQLite and
PostgreSQL (each works once, a new set voids the old, wrong guesses share the SMS codes'
lock, parallel uses of one code succeed once, an existing database gets the table); the page
``{prefix}/recovery``, its JSON twin and the challenge's "Can't get a text?" path on WSGI
(Flask), ASGI (Starlette) and Django, with the notice texted to FakeFlowroute (no code in
it) and the count going down."""

from __future__ import annotations

import html
import re
import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from sms2fa_middleware import AuditEvent, Verifier, text
from sms2fa_middleware.errors import InvalidAPIUsage, InvalidAuthCode, RateLimited
from sms2fa_middleware.store.schema import recovery_codes
from sms2fa_middleware.testing import FakeFlowroute
from tests.support import in_threads
from tests.support.apps import Site
from tests.support.browsing import ALICE as ALICE_NUMBER
from tests.support.browsing import Browser, csrf_token
from tests.support.django_example import ALICE, ALICE_PHONE, FORM, HTML, PASSWORD
from tests.support.django_example import csrf as _csrf
from tests.support.django_example import form_body as _form

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

NUMBER = "+12065550100"


def _codes_in(page: str) -> list[str]:
    return [html.unescape(c) for c in re.findall(r"<li><code>([^<]+)</code></li>", page)]


# -- the engine ------------------------------------------------------------------------------


def test_ten_codes_each_work_once_and_the_count_goes_down(
    make_verifier: Callable[..., Verifier],
) -> None:
    verifier = make_verifier(max_failed_checks=20)
    codes = verifier.new_recovery_codes("alice")
    assert len(codes) == 10 and len(set(codes)) == 10
    assert all(re.fullmatch(r"[a-z2-9]{5}-[a-z2-9]{5}", c) for c in codes)
    assert verifier.recovery_codes_left("alice") == 10
    # Only keyed digests are kept: no code, with or without its dash, is in the table.
    rows = verifier.store.run(lambda conn: list(conn.execute(select(recovery_codes))))
    stored = repr(rows)
    assert len(rows) == 10 and not any(c in stored or c.replace("-", "") in stored for c in codes)
    for n, code in enumerate(codes):
        typed = code.upper().replace("-", " ") if n % 2 else code  # as people type them
        assert verifier.use_recovery_code("alice", typed) == 9 - n
        assert verifier.recovery_codes_left("alice") == 9 - n
    for code in codes[:3]:
        with pytest.raises(InvalidAuthCode):
            verifier.use_recovery_code("alice", code)  # single use
    assert verifier.recovery_codes_left("bob") == 0
    with pytest.raises(InvalidAPIUsage):
        verifier.use_recovery_code("alice", "123")  # not shaped like one: no guess spent


def test_a_new_set_voids_the_old_one(verifier: Verifier) -> None:
    old = verifier.new_recovery_codes("alice")
    new = verifier.new_recovery_codes("alice")
    assert not set(old) & set(new)
    assert verifier.recovery_codes_left("alice") == 10
    with pytest.raises(InvalidAuthCode):
        verifier.use_recovery_code("alice", old[0])
    assert verifier.use_recovery_code("alice", new[0]) == 9


def test_wrong_guesses_lock_and_share_the_sms_codes_lock(
    make_verifier: Callable[..., Verifier], fake_flowroute: FakeFlowroute
) -> None:
    verifier = make_verifier(max_failed_checks=3, resend_cooldown=0)
    codes = verifier.new_recovery_codes("alice")
    verifier.start("alice", NUMBER)
    sms = fake_flowroute.last_code(NUMBER)
    for _ in range(2):
        with pytest.raises(InvalidAuthCode):
            verifier.use_recovery_code("alice", "aaaaa-aaaaa")
    with pytest.raises(InvalidAuthCode):
        verifier.check("alice", "0" * len(sms) if sms != "0" * len(sms) else "1" * len(sms))
    # Three failures in all, of both kinds: locked for recovery codes and SMS codes alike.
    with pytest.raises(RateLimited):
        verifier.use_recovery_code("alice", codes[0])
    with pytest.raises(RateLimited):
        verifier.check("alice", sms)
    assert verifier.recovery_codes_left("alice") == 10  # the lock spent none


def test_a_right_recovery_code_resets_the_failures(make_verifier: Callable[..., Verifier]) -> None:
    verifier = make_verifier(max_failed_checks=3)
    codes = verifier.new_recovery_codes("alice")
    for code in codes[:3]:
        for _ in range(2):
            with pytest.raises(InvalidAuthCode):
                verifier.use_recovery_code("alice", "bbbbb-bbbbb")
        verifier.use_recovery_code("alice", code)  # never a third failure in a row


def test_parallel_uses_of_one_code_succeed_once(make_verifier: Callable[..., Verifier]) -> None:
    verifier = make_verifier(max_failed_checks=50)
    code = verifier.new_recovery_codes("alice")[0]
    wins: list[int] = []
    lock = threading.Lock()

    def use(_: int) -> None:
        try:
            verifier.use_recovery_code("alice", code)
        except InvalidAuthCode:
            return
        with lock:
            wins.append(1)

    in_threads(use, 12)
    assert wins == [1]
    assert verifier.recovery_codes_left("alice") == 9


def test_each_use_is_audited_and_texted_without_a_code(
    make_settings: Callable[..., Any], fake_flowroute: FakeFlowroute
) -> None:
    events: list[AuditEvent] = []
    verifier = Verifier(make_settings(), on_event=events.append)
    try:
        codes = verifier.new_recovery_codes("alice")
        assert verifier.use_recovery_code("alice", codes[4], recipient=NUMBER) == 9
        sent = fake_flowroute.messages_to(NUMBER)
        assert len(sent) == 1
        body = sent[0].body
        assert "recovery code was used" in body and "9 left" in body
        assert not any(c in body or c.replace("-", "") in body for c in codes)
        assert not re.search(r"[0-9]{4,}", body)  # nothing that could pass for a code
        used = [e for e in events if e.name == "recovery_used"]
        assert len(used) == 1 and used[0].auth_id == "alice" and used[0].detail["remaining"] == 9
        assert used[0].recipient != NUMBER  # masked
        assert not any(c in repr(events) for c in codes)
    finally:
        verifier.store.dispose()


def test_the_notice_is_in_the_language_spoken(
    make_verifier: Callable[..., Verifier], fake_flowroute: FakeFlowroute
) -> None:
    """The notice follows the request's language (the guard speaks it while it answers),
    with the plural right, and the app's name first."""
    verifier = make_verifier(org_name="Tienda")
    codes = verifier.new_recovery_codes("alice")
    with text.speaking("es"):
        verifier.use_recovery_code("alice", codes[0], recipient=NUMBER)
    for code in codes[1:9]:
        verifier.use_recovery_code("alice", code)  # no recipient: no notice
    with text.speaking("es"):
        verifier.use_recovery_code("alice", codes[9], recipient=NUMBER)
    bodies = [m.body for m in fake_flowroute.messages_to(NUMBER)]
    assert bodies[0].startswith("Tienda: Se usó un código de recuperación"), bodies
    assert "Quedan 9." in bodies[0]
    assert "Quedan 0." in bodies[1], bodies  # Spanish: plural for 0


def test_an_existing_database_gets_the_table(
    make_verifier: Callable[..., Verifier],
) -> None:
    """A database made before recovery codes: create_schema (``sms2fa migrate``, or the
    first use) adds the table and keeps the rest."""
    verifier = make_verifier()
    verifier.store.run(lambda conn: recovery_codes.drop(conn))
    fresh = make_verifier()  # a new process: its first use creates what is missing
    assert fresh.recovery_codes_left("alice") == 0
    assert len(fresh.new_recovery_codes("alice")) == 10


# -- the guard: WSGI and ASGI ------------------------------------------------------------------


def _new_codes(browser: Browser) -> list[str]:
    page = browser.nav("/sms2fa/recovery")
    assert page.status_code == 200 and "0 recovery codes left" in page.text
    made = browser.post("/sms2fa/recovery", {"csrf_token": csrf_token(page)})
    assert made.status_code == 200, made.text[:300]
    assert made.headers["cache-control"] == "no-store"
    codes = _codes_in(made.text)
    assert len(codes) == 10
    return codes


@SQLITE_ONLY
def test_html_recovery_page_and_the_challenges_recovery_path(
    make_site: Callable[..., Site],
    fake_flowroute: FakeFlowroute,
) -> None:
    site = make_site()
    laptop, phone = Browser(site, "alice"), Browser(site, "alice")
    # Unverified: the page sends the browser through the challenge and back.
    away = phone.nav("/sms2fa/recovery")
    assert away.status_code == 303
    assert away.headers["location"] == "/sms2fa/challenge?next=%2Fsms2fa%2Frecovery"
    assert phone.post("/sms2fa/recovery", {"csrf_token": "x"}).status_code == 303
    laptop.verify(fake_flowroute)
    # A post without the page's token makes nothing.
    assert laptop.post("/sms2fa/recovery", {"csrf_token": "forged"}).status_code == 403
    codes = _new_codes(laptop)
    again = laptop.nav("/sms2fa/recovery")
    assert "10 recovery codes left" in again.text and not _codes_in(again.text)  # shown once

    texts = len(fake_flowroute.messages_to(ALICE_NUMBER))
    page = phone.page()
    assert "Use a recovery code" in page.text and "10 recovery codes left" in page.text
    token = csrf_token(page)
    wrong = phone.post(
        "/sms2fa/challenge",
        {"csrf_token": token, "next": "/account", "recovery_code": "zzzzz-zzzzz"},
    )
    assert wrong.status_code == 400 and "not right" in wrong.text
    done = phone.post(
        "/sms2fa/challenge", {"csrf_token": token, "next": "/account", "recovery_code": codes[0]}
    )
    assert done.status_code == 303 and done.headers["location"] == "/account"
    assert phone.nav("/account").status_code == 200
    notices = fake_flowroute.messages_to(ALICE_NUMBER)[texts:]
    assert len(notices) == 1 and codes[0] not in notices[0].body
    assert "recovery code was used" in notices[0].body
    assert "9 recovery codes left" in phone.nav("/sms2fa/recovery").text
    # Used once: another browser cannot use it again.
    third = Browser(site, "alice")
    reused = third.post(
        "/sms2fa/challenge",
        {"csrf_token": csrf_token(third.page()), "next": "/account", "recovery_code": codes[0]},
    )
    assert reused.status_code == 400


@SQLITE_ONLY
def test_json_recovery_codes_and_the_json_challenge(
    make_site: Callable[..., Site],
    fake_flowroute: FakeFlowroute,
) -> None:
    site = make_site()
    client, other = Browser(site, "alice"), Browser(site, "alice")
    refused = other.api("/sms2fa/recovery", "POST", json={})
    assert refused.status_code == 401 and refused.json()["reason"] == "VerificationRequired"
    client.verify(fake_flowroute)
    assert client.api("/sms2fa/recovery").json() == {"remaining": 0}
    made = client.api("/sms2fa/recovery", "POST", json={})
    assert made.status_code == 200
    codes = made.json()["codes"]
    assert len(codes) == 10 and made.json()["remaining"] == 10
    assert other.api("/sms2fa/challenge").json()["recovery_codes_left"] == 10
    wrong = other.api("/sms2fa/challenge", "POST", json={"recovery_code": "zzzzz-zzzzz"})
    assert wrong.status_code == 400 and wrong.json()["reason"] == "InvalidAuthCode"
    bad = other.api("/sms2fa/challenge", "POST", json={"recovery_code": 5})
    assert bad.status_code == 400 and bad.json()["reason"] == "InvalidAPIUsage"
    done = other.api("/sms2fa/challenge", "POST", json={"recovery_code": codes[3]})
    assert done.status_code == 200 and done.json()["verified"] is True
    assert done.json()["recovery_codes_left"] == 9
    assert other.api("/api/data").status_code == 200
    assert client.api("/sms2fa/recovery").json() == {"remaining": 9}


@SQLITE_ONLY
def test_recovery_guesses_lock_the_challenge(
    make_site: Callable[..., Site],
    fake_flowroute: FakeFlowroute,
) -> None:
    site = make_site({"max_failed_checks": 3})
    client = Browser(site, "alice")
    codes = site.middleware.verifier.new_recovery_codes("alice")
    for _ in range(3):
        wrong = client.api("/sms2fa/challenge", "POST", json={"recovery_code": "zzzzz-zzzzz"})
        assert wrong.status_code == 400
    locked = client.api("/sms2fa/challenge", "POST", json={"recovery_code": codes[0]})
    assert locked.status_code == 429 and locked.json()["reason"] == "RateLimited"


# -- Django ------------------------------------------------------------------------------------


def test_django_recovery_codes(
    sms2fa: Any,
    fake_flowroute: FakeFlowroute,
) -> None:
    from django.test import Client

    laptop, phone = Client(), Client()
    for client in (laptop, phone):
        client.login(username=ALICE, password=PASSWORD)
    challenge = laptop.get("/account/", headers=HTML)
    page = laptop.get(challenge["location"], headers=HTML)
    fields = {
        "csrf_token": _csrf(page.text),
        "next": "/account/",
        "code": fake_flowroute.last_code(ALICE_PHONE),
    }
    assert laptop.post("/sms2fa/challenge", _form(fields), FORM, headers=HTML).status_code == 303
    assert phone.get("/sms2fa/recovery", headers=HTML).status_code == 303  # not verified
    mine = laptop.get("/sms2fa/recovery", headers=HTML)
    assert mine.status_code == 200
    made = laptop.post(
        "/sms2fa/recovery", _form({"csrf_token": _csrf(mine.text)}), FORM, headers=HTML
    )
    codes = _codes_in(made.content.decode())
    assert len(codes) == 10
    texts = len(fake_flowroute.messages_to(ALICE_PHONE))
    page = phone.get("/sms2fa/challenge?next=%2Faccount%2F", headers=HTML)
    assert "10 recovery codes left" in page.text
    fields = {"csrf_token": _csrf(page.text), "next": "/account/", "recovery_code": codes[1]}
    done = phone.post("/sms2fa/challenge", _form(fields), FORM, headers=HTML)
    assert done.status_code == 303 and done["location"] == "/account/"
    assert phone.get("/account/", headers=HTML).status_code == 200
    notices = fake_flowroute.messages_to(ALICE_PHONE)[texts:]
    assert len(notices) == 1 and codes[1] not in notices[0].body
    json = {"accept": "application/json"}
    assert laptop.get("/sms2fa/recovery", headers=json).json() == {"remaining": 9}
