"""The store's revocation signal: a revocation made through one Store reaches the sessions of
another (a second worker: its own Store on the same SQLite file or PostgreSQL database) before
their next request, not after ``revocation_interval`` -- while with no revocation, nothing is
read on the verified path.

Each "worker" is a Verifier and Sessions of its own with a revocation interval of an hour,
so only the signal can make the second one read revocations.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from sms2fa_middleware import Identity, Verifier
from sms2fa_middleware.guard.cookies import Cookies
from sms2fa_middleware.guard.sessions import Sessions

ALICE = Identity("alice", "+12065550100")
HOUR = 3600


def _worker(make_verifier: Callable[..., Verifier]) -> Sessions:
    sessions = Sessions(make_verifier(), Cookies("sms2fa"), "", HOUR, HOUR)
    sessions.refresh_revocations()  # as an adapter does on the first request
    return sessions


def _request(sessions: Sessions, cookie: str) -> bool:
    """What an adapter does for a protected request: refresh if stale, then decide."""
    if sessions.revocations_stale():
        sessions.refresh_revocations()
    return sessions.is_verified(cookie, False, ALICE)


def _signalled(sessions: Sessions, timeout: float = 5.0) -> bool:
    """Whether the signal reaches ``sessions`` (at once on SQLite; PostgreSQL's notification
    arrives on the listener's thread a moment after the commit)."""
    deadline = time.monotonic() + timeout
    while not sessions.revocations_stale():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.mark.parametrize("revoke", ["auth_id", "session"])
def test_a_revocation_reaches_another_worker_before_its_next_request(
    make_verifier: Callable[..., Verifier], revoke: str
) -> None:
    here, there = _worker(make_verifier), _worker(make_verifier)
    cookie = f"sms2fa={here.issue(ALICE)}"
    assert _request(here, cookie) and _request(there, cookie)
    _signalled(there, timeout=1.0)  # PostgreSQL: the listener's first count, once it listens
    if there.revocations_stale():
        there.refresh_revocations()
    # With no revocation the verified path reads nothing (adapters read when stale).
    for _ in range(1000):
        assert not there.revocations_stale() and there.is_verified(cookie, False, ALICE)

    if revoke == "auth_id":
        here.revoke(ALICE.auth_id)
    else:
        here.revoke_sessions([cookie.partition("=")[2]])
    assert not _request(here, cookie)
    assert _signalled(there)  # today: not before revocation_interval (an hour here)
    assert not _request(there, cookie)
