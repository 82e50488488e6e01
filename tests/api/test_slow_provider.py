"""A slow SMS provider must not cap how many verifications a service worker has in flight."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from sms2fa_middleware import Identity, Settings
from sms2fa_middleware.testing import FakeFlowroute, verified_cookie
from tests.support import SECRET, apps
from tests.support.servers import serve


@pytest.mark.server
def test_a_slow_provider_does_not_cap_sends_in_flight(
    tmp_path: Path, fake_flowroute: FakeFlowroute
) -> None:
    """One worker keeps many sends in flight while each takes 0.5 s: its threads are sized for
    waiting, not for CPU (a pool of 4 would let only 4 out at a time)."""
    fake_flowroute.delay = 0.5
    env = {
        **fake_flowroute.settings_env(),
        "SMS2FA_SECRET_KEY": SECRET,
        "SMS2FA_DATABASE_URL": f"sqlite:///{tmp_path / 'slow.db'}",
        "SMS2FA_RECIPIENT_SEND_LIMIT": "0",
        "SMS2FA_ADDRESS_SEND_LIMIT": "0",
    }

    def start(i: int) -> int:
        answer = requests.post(
            base + "/", json={"auth_id": f"slow{i}", "recipient": "12065550123"}, timeout=30
        )
        return answer.status_code

    with serve(env, workers=1) as base, ThreadPoolExecutor(24) as pool:
        statuses = list(pool.map(start, range(24)))
    assert statuses == [200] * 24
    assert fake_flowroute.most_in_flight >= 16, fake_flowroute.most_in_flight


@pytest.mark.slow
def test_verified_requests_on_asgi_never_wait_behind_slow_sends(
    tmp_path: Path, fake_flowroute: FakeFlowroute
) -> None:
    """50 unverified navigations each send a code that takes 5 s (more than anyio's default
    pool of 40 threads); meanwhile a verified user's request, whose sync identify runs in a
    thread, answers at once."""
    fake_flowroute.delay = 5.0
    settings = Settings(
        secret_key=SECRET,
        database_url=f"sqlite:///{tmp_path / 'asgi.db'}",
        resend_cooldown=0,
        recipient_send_limit=0,
        address_send_limit=0,
        **fake_flowroute.settings_kwargs(),
    )
    senders = [f"waiting{i}" for i in range(50)]
    users = {"alice": "+12065550123", **{name: "+12065550124" for name in senders}}
    site = apps.serve("starlette", settings, users)
    try:
        name, value = verified_cookie(site.middleware, Identity("alice", "+12065550123"))
        verified = {"X-User": "alice", "Cookie": f"{name}={value}"}
        assert requests.get(site.url + "/account", headers=verified, timeout=10).ok

        def navigate(user: str) -> int:
            return requests.get(
                site.url + "/account",
                allow_redirects=False,
                timeout=30,
                headers={"X-User": user, "Accept": "text/html"},
            ).status_code

        with ThreadPoolExecutor(len(senders)) as pool:
            sends = pool.map(navigate, senders)
            deadline = time.monotonic() + 10
            while fake_flowroute.most_in_flight < 40 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert fake_flowroute.most_in_flight >= 40  # the sends are hanging now
            started = time.monotonic()
            answer = requests.get(site.url + "/account", headers=verified, timeout=30)
            took = time.monotonic() - started
            assert answer.ok and "alice" in answer.text
            assert list(sends) == [303] * len(senders)
        assert took < 1.0, f"a verified request waited {took:.1f} s behind the sends"
    finally:
        site.stop()
