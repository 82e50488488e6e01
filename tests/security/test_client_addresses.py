"""Client addresses as an attacker sends them: a garbage X-Forwarded-For is never a 5xx nor
stored, IPv6 clients are counted per /64, requests without an address share one budget.

From the attacks of issue 11 (the engine and store side)."""

from __future__ import annotations

import ipaddress
import warnings
from collections.abc import Callable

import pytest
from sqlalchemy import select

from sms2fa_middleware import Verifier
from sms2fa_middleware.api.service import VerificationService
from sms2fa_middleware.api.verification import VerificationAPI
from sms2fa_middleware.messages import Request
from sms2fa_middleware.store import counters
from sms2fa_middleware.testing import FakeFlowroute

with warnings.catch_warnings():  # starlette >= 1.0 would rather have httpx2
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")


NUMBER = "+12065551234"


def counter_keys(verifier: Verifier) -> list[str]:
    return verifier.store.run(lambda c: [k for (k,) in c.execute(select(counters.c.key))])


GARBAGE_ADDRESSES = [
    "a" * 300,
    "not-an-ip",
    "1.2.3.4.5",
    "999.1.1.1",
    "::g",
    "[::1",
    "1.2.3.4:80",
    "fe80::1%" + "x" * 250,
    "' OR 1=1 --",
    "\t",
    "ä" * 100,
]


def test_garbage_forwarded_for_is_never_a_5xx_nor_stored(
    make_verifier: Callable[..., Verifier], fake_flowroute: FakeFlowroute
) -> None:
    """Issue 11.5: a 300-character X-Forwarded-For was a 500 on PostgreSQL (varchar(200))."""
    verifier = make_verifier(
        trusted_proxies=1,
        resend_cooldown=0,
        recipient_send_limit=0,
        address_send_limit=1000,
        address_check_limit=1000,
    )
    api = TestClient(VerificationService(verifier))
    for i, value in enumerate(GARBAGE_ADDRESSES):
        headers = {"x-forwarded-for": value.encode()}
        created = api.post("/", json={"auth_id": f"g{i}", "recipient": NUMBER}, headers=headers)
        assert created.status_code == 200, (value, created.text)
        checked = api.get("/", params={"auth_id": f"g{i}", "code": "000000"}, headers=headers)
        assert checked.status_code == 400, (value, checked.text)
    keys = counter_keys(verifier)
    assert "address:unknown" in keys and "checks:unknown" in keys
    for key in keys:  # only parsed addresses are stored ("[::1" is ::1, a scope id dropped)
        if key.startswith(("address:", "checks:")) and not key.endswith(":unknown"):
            ipaddress.ip_network(key.split(":", 1)[1])


def test_ipv6_clients_are_counted_per_64(
    make_verifier: Callable[..., Verifier], fake_flowroute: FakeFlowroute
) -> None:
    verifier = make_verifier(
        trusted_proxies=1, resend_cooldown=0, recipient_send_limit=0, address_send_limit=2
    )
    api = TestClient(VerificationService(verifier))

    def create(i: int, address: str) -> int:
        response = api.post(
            "/",
            json={"auth_id": f"v{i}", "recipient": NUMBER},
            headers={"x-forwarded-for": address},
        )
        print(response.text)
        return response.status_code

    assert create(1, "2001:db8:0:7::1") == 200
    assert create(2, "2001:db8:0:7:ffff:ffff:ffff:fffe") == 200
    assert create(3, "2001:db8:0:7::abcd") == 429  # the same /64
    assert create(4, "2001:db8:0:8::1") == 200  # the next /64


def test_requests_without_an_address_share_one_budget(
    make_verifier: Callable[..., Verifier], fake_flowroute: FakeFlowroute
) -> None:
    """Issue 11.5: gunicorn on a unix socket has no peer address: 30/30 codes went out."""
    verifier = make_verifier(resend_cooldown=0, recipient_send_limit=0, address_send_limit=2)
    api = VerificationAPI(verifier)

    def create(i: int) -> int:
        body = f'{{"auth_id": "n{i}", "recipient": "{NUMBER}"}}'.encode()
        request = Request(
            "POST", "/", headers={"content-type": "application/json"}, body=body, client=None
        )
        return api.handle(request, "/").status

    assert [create(i) for i in range(3)] == [200, 200, 429]
