"""Verified sessions and their cookies under attack: tampered, expired, replayed on another
user or another app with the same secret, hidden behind a second Cookie header; a changed
number voids them; revocation (logout of one device or of all) reaches every instance and
never comes back after the purge.

Real servers (tests/support/apps.py: Flask on werkzeug, Starlette on uvicorn) where the
attack is an HTTP request; sans-IO guards where it is about time (a fake clock for the
store) or state.

From the middleware's end-to-end suite, issue 11 (items 6 and 9) and a security review of
the guard's newer parts.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
import requests

from sms2fa_middleware import Identity, Settings, Verifier
from sms2fa_middleware.guard import Guard, SessionSigner
from sms2fa_middleware.guard.options import MAX_REMEMBER_FOR
from sms2fa_middleware.testing import FakeFlowroute
from tests.support import SECRET
from tests.support.apps import Site
from tests.support.browsing import (
    ACCOUNT_CHALLENGE,
    ALICE,
    BOB,
    COOKIE,
    EPOCH,
    NEW_NUMBER,
    Browser,
    attempts_shown,
    get_with_cookie,
    json_401,
    set_cookies,
)

ALL_FORMS = pytest.mark.parametrize("framework", ["flask", "starlette", "starlette-stack"])


def api(site: Site, path: str, user: str = "alice") -> requests.Response:
    return requests.get(
        site.url + path,
        headers={"X-User": user, "Accept": "application/json"},
        allow_redirects=False,
        timeout=10,
    )


def _raw_get(site: Site, path: str, headers: list[tuple[str, str]]) -> tuple[int, str]:
    """GET over a socket with exactly these header lines (repeated names kept)."""
    host, port = site.url.removeprefix("http://").split(":")
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Connection: close",
        *(f"{name}: {value}" for name, value in headers),
    ]
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode("utf-8", "replace")


SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
JSON = {"Accept": "application/json"}
DAY = 86400


class Clock:
    """The store's time, set by the test."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


# -- revocation ------------------------------------------------------------------------------


def _revoked_session_after_purge(
    tmp_path: Path, fake_flowroute: FakeFlowroute, remember_for: int
) -> bool | None:
    """Whether a fresh process still accepts a session that was revoked just after it was
    issued, once the store has been purged, as late as that session is still alive. None:
    a guard with this ``remember_for`` cannot be built."""
    who = Identity("alice", ALICE)
    now = datetime.now(timezone.utc)
    issued = now - timedelta(seconds=remember_for - 60)  # a minute left to live
    settings = Settings(
        secret_key=SECRET,
        database_url=f"sqlite:///{tmp_path / 'r.db'}",
        **fake_flowroute.settings_kwargs(),
    )
    verifier = Verifier(settings, clock=Clock(issued + timedelta(seconds=1)))
    try:
        guard = Guard(verifier=verifier, protect=["/account"], remember_for=remember_for)
    except ValueError:
        return None
    cookie = f"sms2fa={guard.signer.issue(who, int(issued.timestamp() * 1000))}"
    guard.revoke("alice")  # logged out on every device, a second after verifying
    assert not guard.is_verified(cookie, False, who)
    verifier.clock = Clock(now)
    verifier.purge()  # what `sms2fa purge` and the background purge do
    restarted = Guard(settings, protect=["/account"], remember_for=remember_for)
    restarted.refresh_revocations()  # a worker that starts now (or another host)
    try:
        return restarted.is_verified(cookie, False, who)
    finally:
        verifier.store.dispose()
        restarted.verifier.store.dispose()


@pytest.mark.parametrize("remember_for", [MAX_REMEMBER_FOR, 40 * DAY, 90 * DAY])
def test_a_revoked_session_never_comes_back_after_the_purge(
    tmp_path: Path, fake_flowroute: FakeFlowroute, remember_for: int
) -> None:
    """Revocations are purged after 31 days: a session that lives longer would be accepted
    again by any worker started after the purge. Such a lifetime must be refused."""
    accepted = _revoked_session_after_purge(tmp_path, fake_flowroute, remember_for)
    if remember_for > MAX_REMEMBER_FOR:
        assert accepted is None  # refused at configuration
    else:
        assert accepted is False


@SQLITE_ONLY
@pytest.mark.parametrize(
    "value",
    [
        b"1." + b"x" * 200 + b".sig",
        b"1.a\xa0b.sig",
        b"1.short.sig",
        b"1.AAAAAAAAAAAAAAAAAAAA.sig.more",
    ],
)
def test_logout_of_this_device_with_a_junk_cookie(
    make_site: Callable[..., Site],
    value: bytes,
) -> None:
    """A logout ("this device") whose cookie is not one of ours: the cookie is deleted, the
    logout answers as usual (no 500), and nothing of the client's choosing is stored as a
    revocation (each one would be loaded by every worker for the sessions' lifetime)."""
    site = make_site()
    with httpx.Client(base_url=site.url, timeout=10) as client:
        out = client.post(
            "/logout/device", headers={b"X-User": b"alice", b"Cookie": b"sms2fa=" + value}
        )
    assert out.status_code == 303, out.text[:300]
    assert "Max-Age=0" in out.headers["set-cookie"]
    assert site.middleware.verifier.revocations_since(EPOCH) == []


# -- the cookie's audience (item 9) ---------------------------------------------------------


@SQLITE_ONLY
def test_cookie_is_refused_by_another_app_with_the_same_secret(
    make_identity_site: Callable[..., Site], fake_flowroute: FakeFlowroute
) -> None:
    site = make_identity_site()
    cookie = Browser(site, "alice").verify(fake_flowroute)
    assert get_with_cookie(site, "/api/data", "alice", cookie).status_code == 200
    others = [
        make_identity_site(audience="billing"),
        make_identity_site(prefix="/2fa"),
        make_identity_site(cookie_name="other"),
    ]
    for other, name in zip(others, (COOKIE, COOKIE, "other")):
        json_401(
            get_with_cookie(other, "/api/data", "alice", cookie, name=name), "VerificationRequired"
        )
    # The same options on another process accept it: the audience is configuration, not luck.
    assert get_with_cookie(make_identity_site(), "/api/data", "alice", cookie).status_code == 200


@SQLITE_ONLY
def test_a_verified_cookie_in_a_second_cookie_header(
    make_identity_site: Callable[..., Site], fake_flowroute: FakeFlowroute, framework: str
) -> None:
    """HTTP/2 clients may split cookies over several headers (RFC 9113, 8.2.3): on ASGI,
    where the server hands them over as they came, the verified cookie counts wherever it
    is. WSGI servers join repeated headers with "," (no cookie separator), and there the
    request fails closed: refused, never let through on a garbled value."""
    site = make_identity_site()
    cookie = Browser(site, "alice").verify(fake_flowroute)
    base = [("X-User", "alice"), ("Accept", "application/json")]
    for split in (
        [("Cookie", "theme=dark"), ("Cookie", f"{COOKIE}={cookie}")],
        [("Cookie", f"{COOKIE}={cookie}"), ("Cookie", "theme=dark")],
    ):
        status, body = _raw_get(site, "/api/data", [*base, *split])
        if framework == "starlette":
            assert status == 200, body
        else:
            assert status == 401 and "VerificationRequired" in body
    status, body = _raw_get(site, "/api/data", [*base, ("Cookie", f"{COOKIE}={cookie}")])
    assert status == 200, body


@SQLITE_ONLY
def test_second_user_with_first_users_cookie(site: Site, fake_flowroute: FakeFlowroute) -> None:
    cookie = Browser(site, "alice").verify(fake_flowroute)
    assert get_with_cookie(site, "/api/data", "alice", cookie).status_code == 200
    json_401(get_with_cookie(site, "/api/data", "bob", cookie), "VerificationRequired")

    bob = Browser(site, "bob")
    bob.plant(cookie)
    challenged = bob.nav("/account")
    assert challenged.headers["location"] == ACCOUNT_CHALLENGE
    assert len(fake_flowroute.messages_to(BOB)) == 1  # bob is asked for his own code
    assert len(fake_flowroute.messages_to(ALICE)) == 1
    assert bob.submit(fake_flowroute.last_code(BOB)).status_code == 303
    assert bob.nav("/account").text == "account of bob"


def test_changed_number_voids_the_session(site: Site, fake_flowroute: FakeFlowroute) -> None:
    browser = Browser(site, "alice")
    browser.verify(fake_flowroute)
    assert browser.api("/api/data").json()["recipient"] == ALICE
    site.users["alice"] = NEW_NUMBER
    json_401(browser.api("/api/data"), "VerificationRequired")
    assert browser.nav("/account").headers["location"] == ACCOUNT_CHALLENGE
    assert len(fake_flowroute.messages_to(NEW_NUMBER)) == 1
    assert "+1••••••••99" in browser.page().text
    assert browser.submit(fake_flowroute.last_code(NEW_NUMBER)).status_code == 303
    assert browser.api("/api/data").json() == {"auth_id": "alice", "recipient": NEW_NUMBER}


@SQLITE_ONLY
def test_number_changed_while_the_code_was_out(site: Site, fake_flowroute: FakeFlowroute) -> None:
    browser = Browser(site, "alice")
    browser.nav("/account")
    old_code = fake_flowroute.last_code(ALICE)
    site.users["alice"] = NEW_NUMBER
    page = browser.page()
    assert attempts_shown(page) is None  # the pending code is for the old number
    answer = browser.submit(old_code)
    assert answer.status_code == 400
    assert "Your phone number changed" in answer.text
    assert COOKIE not in set_cookies(answer)
    json_401(browser.api("/api/data"), "VerificationRequired")
    assert fake_flowroute.messages_to(NEW_NUMBER) == []


@ALL_FORMS
def test_revocation(site: Site, fake_flowroute: FakeFlowroute) -> None:
    browser = Browser(site, "alice")
    old = browser.verify(fake_flowroute)
    assert browser.api("/api/data").status_code == 200
    logout = browser.api("/logout", "POST")
    assert logout.status_code == 303
    json_401(browser.api("/api/data"), "VerificationRequired")
    assert [a for a, _ in site.middleware.verifier.store.revocations_since(EPOCH)] == ["alice"]
    # Bob is untouched; alice can verify again, and only the new cookie counts.
    bob = Browser(site, "bob")
    bob.verify(fake_flowroute)
    new = browser.verify(fake_flowroute)
    assert new != old
    assert get_with_cookie(site, "/api/data", "alice", new).status_code == 200
    json_401(get_with_cookie(site, "/api/data", "alice", old), "VerificationRequired")
    assert bob.api("/api/data").status_code == 200


def test_revocation_reaches_another_instance(
    make_site: Callable[..., Site], fake_flowroute: FakeFlowroute
) -> None:
    a = make_site(revocation_interval=0.2)
    b = make_site(revocation_interval=0.2)  # same database, same secret: another host
    cookie = Browser(a, "alice").verify(fake_flowroute)
    assert get_with_cookie(b, "/api/data", "alice", cookie).status_code == 200
    logout = requests.post(
        a.url + "/logout", headers={"X-User": "alice"}, allow_redirects=False, timeout=10
    )
    assert logout.status_code == 303
    json_401(get_with_cookie(a, "/api/data", "alice", cookie), "VerificationRequired")
    time.sleep(0.3)
    json_401(get_with_cookie(b, "/api/data", "alice", cookie), "VerificationRequired")
    # A session verified after the revocation is good on both.
    fresh = Browser(a, "alice").verify(fake_flowroute)
    assert get_with_cookie(b, "/api/data", "alice", fresh).status_code == 200


def test_tampered_or_expired_cookie_is_refused(site: Site, fake_flowroute: FakeFlowroute) -> None:
    cookie = Browser(site, "alice").verify(fake_flowroute)
    head, _, signature = cookie.rpartition(".")
    issued, _, sid = head.partition(".")
    flip = {"A": "B"}.get(signature[-1], "A")
    audience = site.middleware.guard.cookie_audience
    signer = SessionSigner([SECRET], audience)
    now_ms = int(time.time() * 1000)
    alice = Identity("alice", ALICE)
    tampered = {
        "signature": f"{head}.{signature[:-1]}{flip}",
        "issued": f"{int(issued, 16) + 1:x}.{sid}.{signature}",
        "sid": f"{issued}.{sid[:-1]}{'A' if sid[-1] != 'A' else 'B'}.{signature}",
        "no signature": head,
        "empty": "",
        "other key": SessionSigner(["another-secret-key-0123456789"], audience).issue(
            alice, now_ms
        ),
        "other audience": SessionSigner([SECRET], "another-app").issue(alice, now_ms),
        "no audience": SessionSigner([SECRET]).issue(alice, now_ms),
        "other number": signer.issue(Identity("alice", NEW_NUMBER), now_ms),
        "expired": signer.issue(alice, now_ms - 12 * 3600 * 1000 - 1000),
        "from the future": signer.issue(alice, now_ms + 5 * 60 * 1000),
    }
    answers = {
        name: get_with_cookie(site, "/api/data", "alice", value).status_code
        for name, value in tampered.items()
    }
    assert answers == dict.fromkeys(tampered, 401)
    # The controls: the real cookie, and one we sign the same way, pass.
    assert get_with_cookie(site, "/api/data", "alice", cookie).status_code == 200
    assert (
        get_with_cookie(site, "/api/data", "alice", signer.issue(alice, now_ms - 1000)).status_code
        == 200
    )


@SQLITE_ONLY
def test_cookie_expires_after_remember_for(
    make_site: Callable[..., Site], fake_flowroute: FakeFlowroute
) -> None:
    site = make_site(remember_for=1)
    browser = Browser(site, "alice")
    browser.nav("/account")
    done = browser.submit(fake_flowroute.last_code(ALICE))
    assert "Max-Age=1" in set_cookies(done)[COOKIE]
    cookie = done.cookies[COOKIE]
    assert get_with_cookie(site, "/api/data", "alice", cookie).status_code == 200
    time.sleep(1.1)
    json_401(get_with_cookie(site, "/api/data", "alice", cookie), "VerificationRequired")


def test_fresh_session_identifier_on_success(site: Site, fake_flowroute: FakeFlowroute) -> None:
    browser = Browser(site, "alice")
    planted = "0.planted-by-an-attacker.AAAA"
    browser.plant(planted)
    json_401(browser.api("/api/data"), "VerificationRequired")
    first = browser.verify(fake_flowroute)
    assert first != planted
    json_401(get_with_cookie(site, "/api/data", "alice", planted), "VerificationRequired")

    second = Browser(site, "alice").verify(fake_flowroute)
    assert second.split(".")[1] != first.split(".")[1]  # a new random session id each time
    # After a logout, the next success mints a new identifier and the old one is worthless.
    browser.api("/logout", "POST")
    third = browser.verify(fake_flowroute)
    assert third not in (first, second)
    for old in (first, second):
        json_401(get_with_cookie(site, "/api/data", "alice", old), "VerificationRequired")
    assert get_with_cookie(site, "/api/data", "alice", third).status_code == 200
