"""A slow SMS provider must not cap how many verifications a service worker has in flight."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from conftest import SECRET
from servers import serve

from sms2fa_middleware.testing import FakeFlowroute


def test_a_slow_provider_does_not_cap_sends_in_flight(
        tmp_path: Path, fake_flowroute: FakeFlowroute) -> None:
    """One worker keeps many sends in flight while each takes 0.5 s: its threads are sized for
    waiting, not for CPU (a pool of 4 would let only 4 out at a time)."""
    fake_flowroute.delay = 0.5
    env = {**fake_flowroute.settings_env(), "SMS2FA_SECRET_KEY": SECRET,
           "SMS2FA_DATABASE_URL": f"sqlite:///{tmp_path / 'slow.db'}",
           "SMS2FA_RECIPIENT_SEND_LIMIT": "0", "SMS2FA_ADDRESS_SEND_LIMIT": "0"}

    def start(i: int) -> int:
        answer = requests.post(base + "/", json={"auth_id": f"slow{i}",
                                                 "recipient": "12065550123"}, timeout=30)
        return answer.status_code

    with serve(env, workers=1) as base, ThreadPoolExecutor(24) as pool:
        statuses = list(pool.map(start, range(24)))
    assert statuses == [200] * 24
    assert fake_flowroute.most_in_flight >= 16, fake_flowroute.most_in_flight
