"""SMS pumping and toll fraud: who may make the service send, how many texts, to which
numbers, with which text.

From the defects of the original Flowroute sms-verification service, the attacks of issue
11, a security review of the guard and the abuse review."""

from __future__ import annotations

import warnings

import pytest

from sms2fa_middleware import (
    Settings,
)
from sms2fa_middleware.testing import FakeFlowroute
from tests.support import Client

with warnings.catch_warnings():  # starlette >= 1.0 would rather have httpx2
    warnings.simplefilter("ignore")


pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")


NUMBER = "12065551234"


# -- "No authentication and no rate limit on POST: anyone who reaches it sends SMS anywhere." --


def test_post_can_require_a_token_and_is_rate_limited_by_default(
    make_client: Client, fake_flowroute: FakeFlowroute
) -> None:
    """Defect: "No authentication and no rate limit on POST: anyone who reaches it sends SMS
    anywhere (SMS pumping)." """
    # The default budgets, spelled out: the same recipient gets at most 5 codes per window.
    api, _ = make_client(
        resend_cooldown=30,
        recipient_send_limit=5,
        address_send_limit=20,
        api_token="a-token-for-the-api-0123456789abcdef",
    )
    auth = {"authorization": "Bearer a-token-for-the-api-0123456789abcdef"}
    assert api.post("/", json={"auth_id": "x", "recipient": NUMBER}).status_code == 401
    assert fake_flowroute.requests_seen == 0
    statuses = [
        api.post("/", json={"auth_id": f"u{i}", "recipient": NUMBER}, headers=auth).status_code
        for i in range(8)
    ]
    assert statuses == [200] * 5 + [429] * 3
    assert len(fake_flowroute.messages) == 5
    assert (
        api.post("/", json={"auth_id": "u0", "recipient": "14155552671"}, headers=auth).status_code
        == 429
    )  # per-auth_id cooldown
    defaults = Settings(secret_key="s" * 32)
    assert defaults.recipient_send_limit > 0
    assert defaults.address_send_limit > 0
    assert defaults.resend_cooldown > 0
