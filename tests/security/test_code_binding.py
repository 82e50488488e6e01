"""Codes bound to the asking browser (OWASP ASVS 5.0 6.6.2): a code the guard sends for one
browser's challenge verifies only in that browser. Another browser of the same user (no
challenge nonce, or its own) gets "wrong code" and spends an attempt; the asking browser
still passes. The engine on SQLite and PostgreSQL; the flows on WSGI (Flask), ASGI
(Starlette) and Django, the HTML page and the JSON flow."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from sms2fa_middleware import Verifier
from sms2fa_middleware.errors import InvalidAuthCode, RateLimited
from sms2fa_middleware.testing import FakeFlowroute
from tests.support.apps import Site
from tests.support.browsing import ALICE as ALICE_NUMBER
from tests.support.browsing import Browser
from tests.support.django_example import ALICE, ALICE_PHONE, FORM, HTML, PASSWORD
from tests.support.django_example import csrf as _csrf
from tests.support.django_example import form_body as _form

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

NUMBER = "+12065550100"
A, B = "a" * 32, "b" * 32


def test_engine_a_bound_code_verifies_with_its_binding_only(
    verifier: Verifier, fake_flowroute: FakeFlowroute
) -> None:
    """SQLite and PostgreSQL: another binding, or none, is a wrong guess that spends an
    attempt; the right binding then verifies."""
    started = verifier.start("alice", NUMBER, binding=A)
    code = fake_flowroute.last_code(NUMBER)
    with pytest.raises(InvalidAuthCode) as other:
        verifier.check("alice", code, binding=B)
    assert other.value.attempts_left == started.attempts_left - 1
    with pytest.raises(InvalidAuthCode):
        verifier.check("alice", code)  # unbound
    pending = verifier.pending("alice")
    assert pending is not None and pending.attempts_left == started.attempts_left - 2
    assert verifier.check("alice", code, binding=A).auth_id == "alice"
    assert verifier.pending("alice") is None


def test_engine_an_unbound_code_refuses_a_binding(
    verifier: Verifier, fake_flowroute: FakeFlowroute
) -> None:
    verifier.start("alice", NUMBER)
    code = fake_flowroute.last_code(NUMBER)
    with pytest.raises(InvalidAuthCode):
        verifier.check("alice", code, binding=A)
    assert verifier.check("alice", code).auth_id == "alice"  # the legacy API stays unbound


def test_engine_checks_from_another_browser_count_toward_the_lock(
    make_verifier: Callable[..., Verifier], fake_flowroute: FakeFlowroute
) -> None:
    verifier = make_verifier(max_failed_checks=3, retries_allowed=5)
    verifier.start("alice", NUMBER, binding=A)
    code = fake_flowroute.last_code(NUMBER)
    for _ in range(3):
        with pytest.raises(InvalidAuthCode):
            verifier.check("alice", code, binding=B)  # the right code, the wrong browser
    with pytest.raises(RateLimited):
        verifier.check("alice", code, binding=A)  # locked: even the right browser waits


def _attempts(site: Site) -> int:
    pending = site.middleware.verifier.pending("alice")
    assert pending is not None
    return pending.attempts_left


@SQLITE_ONLY
def test_html_a_code_asked_in_browser_a_is_refused_in_browser_b(
    make_site: Callable[..., Site],
    fake_flowroute: FakeFlowroute,
) -> None:
    """WSGI and ASGI (the ``framework`` fixture)."""
    site = make_site()
    a, b = Browser(site, "alice"), Browser(site, "alice")
    assert a.nav("/account").status_code == 303  # A is challenged: the code is texted
    assert a.http.cookies.get("sms2fa_challenge")
    code = fake_flowroute.last_code(ALICE_NUMBER)
    before = _attempts(site)
    # B opens the challenge page (no new code: a page view sends none) and types A's code.
    refused = b.submit(code)
    assert refused.status_code == 400 and "sms2fa=" not in refused.headers.get("set-cookie", "")
    assert _attempts(site) == before - 1  # a wrong guess: it spent an attempt
    # B with a nonce of its own (planted, or from an earlier challenge) fares no better.
    b.http.cookies.set("sms2fa_challenge", "c" * 32, domain="127.0.0.1", path="/")
    assert b.submit(code).status_code == 400
    done = a.submit(code)
    assert done.status_code == 303 and done.cookies.get("sms2fa")
    assert a.nav("/account").status_code == 200
    assert b.nav("/account").status_code == 303  # B is still unverified


@SQLITE_ONLY
def test_json_a_code_sent_for_one_client_is_refused_for_another(
    make_site: Callable[..., Site],
    fake_flowroute: FakeFlowroute,
) -> None:
    """The JSON flow binds by the cookie the send response sets (a client without a jar
    sends it back itself, as it does the session cookie)."""
    site = make_site()
    a, b = Browser(site, "alice"), Browser(site, "alice")
    sent = a.api("/sms2fa/challenge/send", "POST", json={})
    assert sent.status_code == 200 and "sms2fa_challenge=" in sent.headers["set-cookie"]
    assert "HttpOnly" in sent.headers["set-cookie"]
    code = fake_flowroute.last_code(ALICE_NUMBER)
    refused = b.api("/sms2fa/challenge", "POST", json={"code": code})
    assert refused.status_code == 400 and refused.json()["reason"] == "InvalidAuthCode"
    done = a.api("/sms2fa/challenge", "POST", json={"code": code})
    assert done.status_code == 200 and done.json()["verified"] is True


@SQLITE_ONLY
def test_a_browser_without_a_nonce_gets_a_code_of_its_own(
    make_site: Callable[..., Site],
    fake_flowroute: FakeFlowroute,
) -> None:
    """A waiting code cannot be B's (B holds no nonce): B's challenge sends B one, and
    that one works in B; a reload in B sends none."""
    site = make_site()
    a, b = Browser(site, "alice"), Browser(site, "alice")
    a.nav("/account")
    b.nav("/account")
    assert len(fake_flowroute.messages_to(ALICE_NUMBER)) == 2
    b.nav("/account")
    assert len(fake_flowroute.messages_to(ALICE_NUMBER)) == 2  # a reload sends none
    code = fake_flowroute.last_code(ALICE_NUMBER)
    assert a.submit(code).status_code == 400
    assert b.submit(code).status_code == 303


def test_django_a_code_asked_in_one_browser_is_refused_in_another(
    sms2fa: Any,
    fake_flowroute: FakeFlowroute,
) -> None:
    from django.test import Client

    a, b = Client(), Client()
    for client in (a, b):
        client.login(username=ALICE, password=PASSWORD)
    challenge = a.get("/account/", headers=HTML)
    assert challenge.status_code == 303
    code = fake_flowroute.last_code(ALICE_PHONE)

    def submit(client: Any) -> Any:
        page = client.get(challenge["location"], headers=HTML)
        fields = {"csrf_token": _csrf(page.text), "next": "/account/", "code": code}
        return client.post("/sms2fa/challenge", _form(fields), FORM, headers=HTML)

    refused = submit(b)
    assert refused.status_code == 400
    assert b.get("/account/", headers=HTML).status_code == 303
    done = submit(a)
    assert done.status_code == 303 and done["location"] == "/account/"
    assert a.get("/account/", headers=HTML).status_code == 200


def test_django_json_flow_binds_by_the_send_cookie(
    sms2fa: Any,
    fake_flowroute: FakeFlowroute,
) -> None:
    from django.test import Client

    a, b = Client(), Client()
    for client in (a, b):
        client.login(username=ALICE, password=PASSWORD)
    json = {"accept": "application/json"}
    sent = a.post("/sms2fa/challenge/send", "{}", "application/json", headers=json)
    assert sent.status_code == 200
    code = fake_flowroute.last_code(ALICE_PHONE)
    body = f'{{"code": "{code}"}}'
    refused = b.post("/sms2fa/challenge", body, "application/json", headers=json)
    assert refused.status_code == 400 and refused.json()["reason"] == "InvalidAuthCode"
    done = a.post("/sms2fa/challenge", body, "application/json", headers=json)
    assert done.status_code == 200 and done.json()["verified"] is True
