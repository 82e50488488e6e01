"""No SMS without a person: a browser's prefetch or prerender of a protected page gets the
challenge redirect (an API client's, the 401) and nothing else -- no text to FakeFlowroute,
no pending code in the store, no budget spent -- on WSGI (Flask), ASGI (Starlette) and
Django, and the person who then opens the page gets the code as before."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from sms2fa_middleware.guard.responses import is_speculative
from sms2fa_middleware.messages import Request
from sms2fa_middleware.testing import FakeFlowroute
from tests.support.apps import Site
from tests.support.browsing import ACCOUNT_CHALLENGE, USERS, Browser, json_401
from tests.support.django_example import ALICE, ALICE_PHONE, HTML, PASSWORD

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

SPECULATIVE = [
    {"Sec-Purpose": "prefetch"},
    {"Sec-Purpose": "prefetch;prerender"},
    {"Sec-Purpose": "prefetch; anonymous-client-ip"},
    {"Purpose": "prefetch"},
    {"X-Moz": "prefetch"},
    {"X-Purpose": "preview"},
]


def _request(headers: dict[str, str]) -> Request:
    return Request(
        method="GET",
        scheme="https",
        path="/account",
        query_string="",
        headers={k.lower(): v for k, v in headers.items()},
    )


def test_which_requests_are_speculative() -> None:
    for headers in SPECULATIVE:
        assert is_speculative(_request(headers)), headers
    for headers in (
        {},
        {"Sec-Purpose": ""},
        {"Sec-Purpose": "prerender-until-script"},  # no prefetch token first
        {"Purpose": "navigate"},
        {"X-Moz": "something-else"},
        {"Sec-Fetch-Mode": "navigate"},
    ):
        assert not is_speculative(_request(headers)), headers


@SQLITE_ONLY
@pytest.mark.parametrize("headers", SPECULATIVE)
def test_a_prefetch_sends_nothing_then_the_person_gets_the_code(
    make_site: Callable[..., Site],
    fake_flowroute: FakeFlowroute,
    headers: dict[str, str],
) -> None:
    """WSGI and ASGI (the ``framework`` fixture: flask, starlette)."""
    site = make_site()
    browser = Browser(site, "alice")
    verifier = site.middleware.verifier

    prefetched = browser.nav("/account", headers=headers)
    assert prefetched.status_code == 303
    assert prefetched.headers["location"] == ACCOUNT_CHALLENGE
    assert "sms2fa_flash" not in prefetched.headers.get("set-cookie", "")
    assert fake_flowroute.messages == []
    assert verifier.pending("alice") is None
    assert verifier.store.count_codes() == 0
    api = browser.api("/api/data", headers=headers)
    json_401(api, "VerificationRequired")
    assert fake_flowroute.messages == []

    # The page a prefetch followed the redirect to shows no code form: nothing was sent.
    page = browser.nav(ACCOUNT_CHALLENGE, headers=headers)
    assert page.status_code == 200 and 'name="code"' not in page.text
    assert fake_flowroute.messages == []

    # The person opens the page: one code, as always.
    real = browser.nav("/account")
    assert real.status_code == 303 and real.headers["location"] == ACCOUNT_CHALLENGE
    assert len(fake_flowroute.messages_to(USERS["alice"])) == 1
    assert verifier.pending("alice") is not None


def test_django_sync_and_async_prefetch_sends_nothing(
    sms2fa: Any,
    fake_flowroute: FakeFlowroute,
) -> None:
    import asyncio

    from django.test import AsyncClient, Client

    client = Client()
    client.login(username=ALICE, password=PASSWORD)
    for headers in SPECULATIVE:
        answer = client.get("/account/", headers={**HTML, **headers})
        assert answer.status_code == 303, headers
        assert answer["location"] == "/sms2fa/challenge?next=%2Faccount%2F"
        api = client.get("/account/", headers={"accept": "application/json", **headers})
        assert api.status_code == 401 and api.json()["reason"] == "VerificationRequired"
    assert fake_flowroute.messages == []

    async def prefetch_async() -> int:
        aclient = AsyncClient()
        await aclient.post("/login/", {"username": ALICE, "password": PASSWORD})
        answer = await aclient.get(
            "/account/", headers={**HTML, "Sec-Purpose": "prefetch;prerender"}
        )
        return int(answer.status_code)

    assert asyncio.run(prefetch_async()) == 303
    assert fake_flowroute.messages == []

    real = client.get("/account/", headers=HTML)
    assert real.status_code == 303
    assert len(fake_flowroute.messages_to(ALICE_PHONE)) == 1
