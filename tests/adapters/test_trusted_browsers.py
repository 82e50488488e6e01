"""Trusted browsers (``trust_browser_for``): the engine on SQLite and PostgreSQL (trusted,
listed, used, revoked, expired, ended by ``revoke``, an existing database gets the table); and
the guard on WSGI (Flask) and ASGI (Starlette): "Trust this browser" with a right code lets a
NEW login from that browser through without a code, ``{prefix}/browsers`` lists and revokes
(one, all), ``revoke(auth_id)`` and a change of number end the trust (a logout's
``revoke(auth_id, browsers=False)`` keeps it), an expired row does not pass, and it is all
off by default."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from sms2fa_middleware import Verifier
from sms2fa_middleware.engine.trust import coarse_network
from sms2fa_middleware.store.schema import trusted_browsers
from tests.support.apps import Site
from tests.support.browsing import Browser, csrf_token
from tests.support.clock import FakeClock

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
DAYS_30 = 30 * 86400
TRUSTED = "sms2fa_trusted"


# -- the engine ------------------------------------------------------------------------------


def test_trust_list_use_forget_and_revoke(make_verifier: Callable[..., Verifier]) -> None:
    verifier = make_verifier()
    clock = FakeClock()
    verifier.clock = verifier.trust.clock = clock
    one = verifier.trust_browser(
        "alice", DAYS_30, user_agent="Firefox/140 " + "x" * 500, address="198.51.100.7"
    )
    two = verifier.trust_browser("alice", 60, user_agent="Safari", address="2001:db8:1:2::5/64")
    verifier.trust_browser("bob", DAYS_30, user_agent="Chrome", address="203.0.113.9")
    assert one.network == "198.51.100.0/24" and two.network == "2001:db8:1::/48"
    assert len(one.user_agent) == 200 and one.expires_at == clock.now() + timedelta(days=30)
    assert {b.id for b in verifier.trusted_browsers("alice")} == {one.id, two.id}
    assert verifier.use_trusted_browser("alice", one.id)
    assert not verifier.use_trusted_browser("bob", one.id)  # another user's browser
    clock.advance(61)  # the second one's trust has ended
    assert not verifier.use_trusted_browser("alice", two.id)
    assert [b.id for b in verifier.trusted_browsers("alice")] == [one.id]
    assert [b.last_used for b in verifier.trusted_browsers("alice")] == [
        clock.now() - timedelta(seconds=61)
    ]
    assert verifier.forget_browser("alice", one.id) and not verifier.forget_browser("alice", one.id)
    assert not verifier.use_trusted_browser("alice", one.id)
    assert verifier.trusted_browsers("alice") == []
    # revoke(auth_id) ends every one of them.
    three = verifier.trust_browser("bob", DAYS_30)
    verifier.revoke("bob")
    assert verifier.trusted_browsers("bob") == []
    assert not verifier.use_trusted_browser("bob", three.id)


def test_an_existing_database_gets_the_table(make_verifier: Callable[..., Verifier]) -> None:
    verifier = make_verifier()
    verifier.store.run(lambda conn: trusted_browsers.drop(conn))
    fresh = make_verifier()  # a new process: its first use creates what is missing
    assert fresh.trusted_browsers("alice") == []
    assert fresh.use_trusted_browser("alice", fresh.trust_browser("alice", 60).id)


def test_coarse_network() -> None:
    assert coarse_network("10.1.2.3") == "10.1.2.0/24"
    assert coarse_network("2001:db8:aa:bb::1") == "2001:db8:aa::/48"
    assert coarse_network("unknown") == coarse_network(None) == "unknown"


# -- the guard: WSGI and ASGI ------------------------------------------------------------------


def _trusting_verify(browser: Browser, fake: Any, next_url: str = "/account") -> None:
    """The challenge with the "Trust this browser" box ticked."""
    assert browser.nav(next_url).status_code == 303
    page = browser.page(next_url)
    assert 'name="trust"' in page.text and "Trust this browser for 30 days" in page.text
    number = browser.site.users[browser.http.headers["X-User"]]
    done = browser.post(
        "/sms2fa/challenge",
        {
            "csrf_token": csrf_token(page),
            "next": next_url,
            "code": fake.last_code(number),
            "trust": "1",
        },
    )
    assert done.status_code == 303, done.text[:300]
    assert TRUSTED in done.cookies


def _new_login(browser: Browser) -> None:
    """The verified session is gone (a new login), the trusted-browser cookie stays."""
    if "sms2fa" in browser.http.cookies:
        browser.http.cookies.clear(domain="127.0.0.1", path="/", name="sms2fa")
    assert "sms2fa" not in browser.http.cookies


def _passes_without_code(browser: Browser, fake: Any) -> None:
    number = browser.site.users[browser.http.headers["X-User"]]
    texts = len(fake.messages_to(number))
    first = browser.nav("/account?x=1")
    assert first.status_code == 307 and first.headers["location"] == "/account?x=1"
    assert "sms2fa" in first.cookies  # a fresh verified session
    assert browser.nav("/account?x=1").status_code == 200
    assert len(fake.messages_to(number)) == texts  # no code was sent


def _challenged(browser: Browser) -> None:
    answer = browser.nav("/account")
    assert answer.status_code == 303 and "/sms2fa/challenge" in answer.headers["location"]


@SQLITE_ONLY
def test_a_trusted_browser_logs_in_anew_without_a_code(
    make_site: Callable[..., Site], fake_flowroute: Any
) -> None:
    site = make_site(trust_browser_for=DAYS_30)
    laptop = Browser(site, "alice", **{"User-Agent": "TestBrowser/1.0"})
    _trusting_verify(laptop, fake_flowroute)
    _new_login(laptop)
    _passes_without_code(laptop, fake_flowroute)
    # An API client of the same browser (a POST) keeps its method: 307.
    _new_login(laptop)
    posted = laptop.api("/api/data", "POST", json={})
    assert posted.status_code == 307 and "sms2fa" in posted.cookies
    # Another browser of alice's, and bob with alice's cookie, get no such pass.
    other = Browser(site, "alice")
    _challenged(other)
    bob = Browser(site, "bob")
    bob.http.cookies.set(TRUSTED, laptop.http.cookies[TRUSTED], domain="127.0.0.1", path="/")
    _challenged(bob)
    # The same browser without ticking the box: nothing trusted.
    plain = Browser(site, "alice")
    plain.verify(fake_flowroute)
    _new_login(plain)
    _challenged(plain)


@SQLITE_ONLY
def test_json_check_with_trust(make_site: Callable[..., Site], fake_flowroute: Any) -> None:
    site = make_site(trust_browser_for=DAYS_30)
    client = Browser(site, "alice")
    assert client.api("/sms2fa/challenge/send", "POST", json={}).status_code == 200
    bad = client.api(
        "/sms2fa/challenge",
        "POST",
        json={"code": fake_flowroute.last_code(site.users["alice"]), "trust": "yes"},
    )
    assert bad.status_code == 400 and bad.json()["reason"] == "InvalidAPIUsage"
    done = client.api(
        "/sms2fa/challenge",
        "POST",
        json={"code": fake_flowroute.last_code(site.users["alice"]), "trust": True},
    )
    assert done.status_code == 200 and done.json()["trusted_for"] == DAYS_30
    assert TRUSTED in done.cookies
    listed = client.api("/sms2fa/browsers").json()["browsers"]
    assert len(listed) == 1 and listed[0]["this_browser"] is True
    assert listed[0]["network"] == "127.0.0.0/24"
    _new_login(client)
    again = client.api("/api/data")
    assert again.status_code == 307 and "sms2fa" in again.cookies
    assert client.api("/api/data").status_code == 200


@SQLITE_ONLY
def test_listed_and_revoked_one_and_all(
    make_site: Callable[..., Site], fake_flowroute: Any
) -> None:
    site = make_site(trust_browser_for=DAYS_30)
    laptop = Browser(site, "alice", **{"User-Agent": "LaptopBrowser/2"})
    phone = Browser(site, "alice", **{"User-Agent": "PhoneBrowser/3"})
    _trusting_verify(laptop, fake_flowroute)
    _trusting_verify(phone, fake_flowroute)
    page = laptop.nav("/sms2fa/browsers")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    assert "LaptopBrowser/2" in page.text and "PhoneBrowser/3" in page.text
    assert page.text.count("this browser") == 1 and "127.0.0.0/24" in page.text
    ids = dict(re.findall(r'data-id="([^"]+)"><strong>([^<]+)</strong>', page.text))
    phone_id = next(i for i, ua in ids.items() if ua == "PhoneBrowser/3")
    # CSRF: a post without the page's token revokes nothing.
    assert (
        laptop.post("/sms2fa/browsers", {"csrf_token": "x", "revoke": phone_id}).status_code == 403
    )
    done = laptop.post("/sms2fa/browsers", {"csrf_token": csrf_token(page), "revoke": phone_id})
    assert done.status_code == 200 and "PhoneBrowser/3" not in done.text
    assert "LaptopBrowser/2" in done.text
    _new_login(phone)
    _challenged(phone)  # revoked: its cookie opens nothing
    _new_login(laptop)
    _passes_without_code(laptop, fake_flowroute)
    # Revoke all, by JSON; this browser's cookie is deleted with it.
    everything = laptop.api("/sms2fa/browsers", "POST", json={"revoke": "all"})
    assert everything.status_code == 200 and everything.json() == {"revoked": 1, "browsers": []}
    assert 'sms2fa_trusted=""' in everything.headers["set-cookie"] or (
        "sms2fa_trusted=;" in everything.headers["set-cookie"]
    )
    assert laptop.api("/sms2fa/browsers", "POST", json={"revoke": 5}).status_code == 400
    # Without a verified session: the challenge (a page) or 401 (JSON).
    stranger = Browser(site, "alice")
    assert stranger.nav("/sms2fa/browsers").status_code == 303
    assert stranger.api("/sms2fa/browsers").status_code == 401


@SQLITE_ONLY
def test_revoke_and_a_number_change_end_the_trust(
    make_site: Callable[..., Site], fake_flowroute: Any
) -> None:
    site = make_site(trust_browser_for=DAYS_30)
    laptop, phone = Browser(site, "alice"), Browser(site, "alice")
    _trusting_verify(laptop, fake_flowroute)
    _trusting_verify(phone, fake_flowroute)
    site.middleware.revoke("alice")
    for browser in (laptop, phone):
        _new_login(browser)
        _challenged(browser)
    assert site.middleware.verifier.trusted_browsers("alice") == []
    # A new trust, then the number changes: the cookie (bound to it) is worthless.
    _trusting_verify(laptop, fake_flowroute)
    site.users["alice"] = "+12065550199"
    _new_login(laptop)
    _challenged(laptop)


@SQLITE_ONLY
def test_a_logout_revoke_keeps_the_trusted_browsers(
    make_site: Callable[..., Site], fake_flowroute: Any
) -> None:
    """``revoke(auth_id, browsers=False)`` (a logout): every verified session ends, and the
    trusted browser's next login passes without a code."""
    site = make_site(trust_browser_for=DAYS_30)
    laptop, other = Browser(site, "alice"), Browser(site, "alice")
    _trusting_verify(laptop, fake_flowroute)
    other.verify(fake_flowroute)
    site.middleware.revoke("alice", browsers=False)
    _challenged(other)  # its verified session is over, and it was never trusted
    assert len(site.middleware.verifier.trusted_browsers("alice")) == 1
    _passes_without_code(laptop, fake_flowroute)  # its old session cookie is revoked too


@SQLITE_ONLY
def test_expired_trust_does_not_pass(make_site: Callable[..., Site], fake_flowroute: Any) -> None:
    site = make_site(trust_browser_for=DAYS_30)
    laptop = Browser(site, "alice")
    _trusting_verify(laptop, fake_flowroute)
    store = site.middleware.verifier.store
    past = site.middleware.verifier.clock.now() - timedelta(seconds=1)
    store.run(lambda conn: conn.execute(update(trusted_browsers).values(expires_at=past)))
    _new_login(laptop)
    _challenged(laptop)


@SQLITE_ONLY
def test_off_by_default(make_site: Callable[..., Site], fake_flowroute: Any) -> None:
    site = make_site()
    browser = Browser(site, "alice")
    assert browser.nav("/account").status_code == 303
    page = browser.page()
    assert 'name="trust"' not in page.text
    done = browser.post(
        "/sms2fa/challenge",
        {
            "csrf_token": csrf_token(page),
            "next": "/account",
            "code": fake_flowroute.last_code(site.users["alice"]),
            "trust": "1",
        },
    )
    assert done.status_code == 303 and TRUSTED not in done.cookies
    assert browser.nav("/sms2fa/browsers").status_code == 404
    assert site.middleware.verifier.trusted_browsers("alice") == []


@SQLITE_ONLY
def test_the_store_is_read_once_per_new_login_only(
    make_site: Callable[..., Site], fake_flowroute: Any
) -> None:
    site = make_site(trust_browser_for=DAYS_30)
    store = site.middleware.verifier.store
    reads: list[str] = []
    real = store.use_trusted_browser

    def counted(auth_id: str, browser_id: str, now: Any) -> bool:
        reads.append(browser_id)
        return real(auth_id, browser_id, now)

    store.use_trusted_browser = counted
    laptop = Browser(site, "alice")
    _trusting_verify(laptop, fake_flowroute)
    for _ in range(5):  # verified requests: the trust is never looked at
        assert laptop.nav("/account").status_code == 200
    assert reads == []
    _new_login(laptop)
    _passes_without_code(laptop, fake_flowroute)
    assert len(reads) == 1
    for _ in range(3):
        assert laptop.nav("/account").status_code == 200
    assert len(reads) == 1


@SQLITE_ONLY
def test_a_tampered_mark_opens_nothing(make_site: Callable[..., Site], fake_flowroute: Any) -> None:
    site = make_site(trust_browser_for=DAYS_30)
    laptop = Browser(site, "alice")
    _trusting_verify(laptop, fake_flowroute)
    browser_id, expires, signature = laptop.http.cookies[TRUSTED].split(".")
    for forged in (
        f"{browser_id}.{int(expires, 16) + 86400:x}.{signature}",  # a later expiry
        f"{browser_id[:-1]}A.{expires}.{signature}",  # another row
        f"{browser_id}.{expires}.{signature[:-2]}AA",
        f"{browser_id}.{expires}",
    ):
        laptop.http.cookies.set(TRUSTED, forged, domain="127.0.0.1", path="/")
        _new_login(laptop)
        _challenged(laptop)


# -- Django ------------------------------------------------------------------------------------


def test_django_trusted_browser(sms2fa: Any, fake_flowroute: Any) -> None:
    from django.test import Client

    from tests.support.django_example import ALICE, ALICE_PHONE, FORM, HTML, PASSWORD
    from tests.support.django_example import csrf as _csrf
    from tests.support.django_example import form_body as _form

    sms2fa(trust_browser_for=DAYS_30)
    laptop = Client()
    laptop.login(username=ALICE, password=PASSWORD)
    challenge = laptop.get("/account/", headers=HTML)
    page = laptop.get(challenge["location"], headers=HTML)
    assert 'name="trust"' in page.text
    fields = {
        "csrf_token": _csrf(page.text),
        "next": "/account/",
        "code": fake_flowroute.last_code(ALICE_PHONE),
        "trust": "1",
    }
    done = laptop.post("/sms2fa/challenge", _form(fields), FORM, headers=HTML)
    assert done.status_code == 303 and TRUSTED in done.cookies
    # A new login: Django's session and the verified cookie are gone, the mark stays
    # (the test client's logout() drops every cookie: the mark is put back).
    mark = laptop.cookies[TRUSTED].value
    laptop.logout()
    laptop.login(username=ALICE, password=PASSWORD)
    laptop.cookies[TRUSTED] = mark
    assert "sms2fa" not in laptop.cookies
    texts = len(fake_flowroute.messages_to(ALICE_PHONE))
    again = laptop.get("/account/", headers=HTML)
    assert again.status_code == 307 and again["location"] == "/account/"
    assert laptop.get("/account/", headers=HTML).status_code == 200
    assert len(fake_flowroute.messages_to(ALICE_PHONE)) == texts
    listed = laptop.get("/sms2fa/browsers", headers={"accept": "application/json"}).json()
    assert [b["this_browser"] for b in listed["browsers"]] == [True]
    page = laptop.get("/sms2fa/browsers", headers=HTML)
    gone = laptop.post(
        "/sms2fa/browsers",
        _form({"csrf_token": _csrf(page.text), "revoke": listed["browsers"][0]["id"]}),
        FORM,
        headers=HTML,
    )
    assert gone.status_code == 200 and 'id="no-browsers"' in gone.content.decode()
    laptop.logout()
    laptop.login(username=ALICE, password=PASSWORD)
    laptop.cookies[TRUSTED] = mark
    assert laptop.get("/account/", headers=HTML).status_code == 303  # a code again
