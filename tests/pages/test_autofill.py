"""Autofill: the SMS ends with the origin-bound line ``@domain #code`` (WebOTP, Safari's
domain-bound codes) -- the ``otp_domain`` option's domain, else the request's trusted host,
never with ``otp_domain=False`` -- and never at the cost of a billed segment; the code field
asks for ``one-time-code`` and the page arms WebOTP in its nonce'd script. Over real servers
(Flask, Starlette), Django's test client, and the engine on a real SQLite file."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from sms2fa_middleware import Verifier
from sms2fa_middleware.guard import GuardOptions
from sms2fa_middleware.sms import segments
from sms2fa_middleware.sms.bound import bind, otp_domain
from sms2fa_middleware.testing import FakeFlowroute
from tests.support.apps import Site
from tests.support.browsing import USERS, Browser
from tests.support.django_example import ALICE, ALICE_PHONE, HTML, PASSWORD

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

NUMBER = "+12065550123"
BOUND = re.compile(r"\n@([a-z0-9.-]+) #([0-9]+)\Z")


def bound_line(body: str) -> tuple[str, str] | None:
    """(domain, code) of the SMS's origin-bound last line, or None."""
    found = BOUND.search(body)
    return None if found is None else (found.group(1), found.group(2))


# -- the line itself -----------------------------------------------------------------------


def test_which_hosts_are_domains() -> None:
    assert otp_domain("Example.COM.") == "example.com"
    assert otp_domain("localhost") == "localhost"
    assert otp_domain("a-b.example.co.uk") == "a-b.example.co.uk"
    for host in ("127.0.0.1", "[::1]", "::1", "ex ample.com", "a_b.example.com", "", "-a.com"):
        assert otp_domain(host) is None, host
    assert otp_domain("a" * 64 + ".com") is None  # a label longer than 63
    assert otp_domain(".".join(["a" * 60] * 5)) is None  # longer than 253


def test_the_line_never_adds_a_segment() -> None:
    body = "Your verification code is 123456. Don't share it with anyone."
    assert bind(body, "example.com", "123456") == body + "\n\n@example.com #123456"
    assert bind(body, None, "123456") == body
    # 152 characters: a blank line does not fit, a single newline does not either.
    long_body = "x" * 140 + " code 123456"
    assert bind(long_body, "example.com", "123456") == long_body
    # 140: "\n\n" + "@example.com #123456" (20) = 162 > 160, "\n" + 20 = 161 > 160 ...
    almost = "y" * 138
    assert segments(bind(almost, "example.com", "123456")) == 1
    assert bind(almost, "example.com", "123456").endswith("\n@example.com #123456")
    # A message of two segments may take the line while it stays at two.
    two = "z" * 200
    assert bind(two, "example.com", "1") == two + "\n\n@example.com #1"
    # Outside GSM 7-bit (UCS-2, 70 a segment) the same rule holds.
    ucs2 = "Ваш код 123456"
    assert segments(bind(ucs2, "example.com", "123456")) == 1
    assert segments(bind("Ж" * 60, "example.com", "123456")) == 1
    # A template with its own bound line is left as it is.
    own = "Code 123456\n@mine.example #123456"
    assert bind(own, "example.com", "123456") == own


def test_the_option_is_validated() -> None:
    assert GuardOptions(protect=["/a"]).otp_domain is None
    assert GuardOptions(protect=["/a"], otp_domain=False).otp_domain is False
    assert GuardOptions(protect=["/a"], otp_domain="App.Example.com").otp_domain == (
        "app.example.com"
    )
    for bad in ("https://example.com", "example.com:8443", "10.0.0.1", True, 3, ""):
        with pytest.raises(ValueError, match="otp_domain"):
            GuardOptions(protect=["/a"], otp_domain=bad)


# -- the engine ----------------------------------------------------------------------------


def test_the_engine_binds_the_code_and_budgets_count_what_is_sent(
    make_verifier: Callable[..., Verifier], fake_flowroute: FakeFlowroute
) -> None:
    verifier = make_verifier(resend_cooldown=0, recipient_send_limit=10)
    verifier.start("u1", NUMBER, otp_domain="example.com")
    body = fake_flowroute.messages_to(NUMBER)[-1].body
    assert bound_line(body) == ("example.com", fake_flowroute.last_code(NUMBER))
    assert segments(body) == 1
    # A domain too long for the one segment: the line is left off, one segment is billed.
    verifier.start("u1", NUMBER, otp_domain="d" * 50 + "." + "e" * 50 + ".example.com")
    body = fake_flowroute.messages_to(NUMBER)[-1].body
    assert bound_line(body) is None and segments(body) == 1
    count, _ = verifier.store.peek(f"recipient:{NUMBER}", verifier.clock.now())
    assert count == 2  # one segment each
    verifier.start("u1", NUMBER)  # no domain, no line
    assert bound_line(fake_flowroute.messages_to(NUMBER)[-1].body) is None


# -- the middleware ------------------------------------------------------------------------


def _first_sms(
    site: Site, fake: FakeFlowroute, host: str | None = None, user: str = "alice"
) -> str:
    browser = Browser(site, user)
    headers = {"Host": host} if host else {}
    answer = browser.nav("/account", headers=headers)
    assert answer.status_code == 303, answer.text[:300]
    return fake.messages_to(USERS[user])[-1].body


@SQLITE_ONLY
def test_a_configured_domain_ends_the_sms(
    make_site: Callable[..., Site],
    fake_flowroute: FakeFlowroute,
) -> None:
    body = _first_sms(make_site(otp_domain="example.com"), fake_flowroute)
    assert bound_line(body) == ("example.com", fake_flowroute.last_code(USERS["alice"]))
    assert segments(body) == 1


@SQLITE_ONLY
def test_without_a_domain_the_request_host_is_used(
    make_site: Callable[..., Site],
    fake_flowroute: FakeFlowroute,
) -> None:
    site = make_site()
    port = site.url.rsplit(":", 1)[1]
    body = _first_sms(site, fake_flowroute, host=f"App.Example.test:{port}")
    assert bound_line(body) == ("app.example.test", fake_flowroute.last_code(USERS["alice"]))


@SQLITE_ONLY
def test_an_ip_host_or_opting_out_leaves_the_line_off(
    make_site: Callable[..., Site],
    fake_flowroute: FakeFlowroute,
) -> None:
    body = _first_sms(make_site(), fake_flowroute)  # http://127.0.0.1:port
    assert bound_line(body) is None and "@" not in body
    site = make_site(otp_domain=False)  # (the same store: bob, who has no code waiting)
    port = site.url.rsplit(":", 1)[1]
    body = _first_sms(site, fake_flowroute, host=f"app.example.test:{port}", user="bob")
    assert bound_line(body) is None and "@" not in body


def test_django_binds_to_the_host_django_trusts(sms2fa: Any, fake_flowroute: FakeFlowroute) -> None:
    from django.test import Client

    client = Client()
    client.login(username=ALICE, password=PASSWORD)
    assert client.get("/account/", headers=HTML).status_code == 303
    body = fake_flowroute.messages_to(ALICE_PHONE)[-1].body
    assert bound_line(body) == ("testserver", fake_flowroute.last_code(ALICE_PHONE))


@SQLITE_ONLY
def test_the_page_asks_for_the_one_time_code_and_arms_webotp(
    make_site: Callable[..., Site],
    fake_flowroute: FakeFlowroute,
) -> None:
    site = make_site()
    browser = Browser(site, "alice")
    browser.nav("/account")
    page = browser.page()
    assert 'autocomplete="one-time-code"' in page.text
    assert 'inputmode="numeric"' in page.text
    nonce = re.search(r"script-src 'nonce-([^']+)'", page.headers["content-security-policy"])
    assert nonce is not None
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page.text, re.S)
    assert len(scripts) == 1
    attributes, body = scripts[0]
    assert attributes == f' nonce="{nonce.group(1)}"'
    assert "navigator.credentials.get({otp:{transport:['sms']}" in body
    # With no code to fill (none sent yet), the page does not wait for one.
    fresh = Browser(make_site(), "bob").page()
    assert "OTPCredential" not in fresh.text
