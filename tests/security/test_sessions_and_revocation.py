"""Attacks from a security review of the guard's newer parts -- sessions and their
revocation, the JSON challenge flow, ``anonymous="app"``, the Django adapter -- that the other
attack suites do not already try. Each test fails if its hole is (or comes back) open.

Real servers (tests/apps.py: Flask on werkzeug, Starlette on uvicorn) where the attack is an
HTTP request; sans-IO guards where it is about time (a fake clock for the store) or state.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from sms2fa_middleware import Identity, Settings, Verifier
from sms2fa_middleware.guard import Guard
from sms2fa_middleware.guard.options import MAX_REMEMBER_FOR
from sms2fa_middleware.testing import FakeFlowroute
from tests.support import SECRET, in_threads
from tests.support.apps import Site
from tests.support.browsing import ALICE, CHALLENGE, HTML

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
JSON = {"Accept": "application/json"}
EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)
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


# -- counters under a parallel burst ------------------------------------------------------------


def test_a_burst_of_first_visits_and_json_sends_texts_once(
    make_site: Callable[..., Site],
    fake_flowroute: FakeFlowroute,
) -> None:
    """Twelve requests at once that each would send a code -- browser navigations (each sees
    no code waiting yet) and JSON ``/challenge/send`` posts -- send one SMS: the resend
    cooldown is taken atomically, not read and then written."""
    site = make_site(settings={"resend_cooldown": 30})
    barrier = threading.Barrier(12)
    answers: list[int] = []

    def one(i: int) -> None:
        with httpx.Client(base_url=site.url, headers={"X-User": "alice"}, timeout=10) as http:
            barrier.wait()
            if i % 2:
                answers.append(http.get("/account", headers={"Accept": HTML}).status_code)
            else:
                answers.append(http.post(CHALLENGE + "/send", json={}).status_code)

    in_threads(one, 12)
    assert len(answers) == 12
    assert len(fake_flowroute.messages_to(ALICE)) == 1
    assert answers.count(200) <= 1  # at most one JSON send says it sent
    assert set(answers) <= {200, 303, 429}
