"""Open redirects: every ``next`` payload an attacker may try lands on the app's root, never
off the site; through real servers on both adapters.

From the middleware's end-to-end suite."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sms2fa_middleware.testing import FakeFlowroute
from tests.support.apps import Site
from tests.support.browsing import (
    ALICE,
    CHALLENGE,
    Browser,
    csrf_token,
    hidden_next,
)

OPEN_REDIRECTS = [
    "//evil.example",
    "/\\evil.example",
    "https:evil.example",
    "%2F%2Fevil.example",
    "javascript:alert(1)",
    "https://evil.example/",
    "///evil.example",
    "/%2F%2Fevil.example",
    "/%5Cevil.example",
    "\\\\evil.example",
    "/\t/evil.example",
    "//evil.example/%2F..",
]


# -- security -----------------------------------------------------------------------------


def test_open_redirect_payloads_all_land_on_root(
    make_site: Callable[..., Site], fake_flowroute: FakeFlowroute
) -> None:
    site = make_site(settings={"recipient_send_limit": 0, "address_send_limit": 0})
    assert len(OPEN_REDIRECTS) == 12
    landed: dict[str, Any] = {}
    for payload in OPEN_REDIRECTS:
        browser = Browser(site, "alice")
        page = browser.page(payload)
        assert hidden_next(page) == "/", payload
        browser.nav("/account")  # sends a code
        done = browser.submit(fake_flowroute.last_code(ALICE), payload, token=csrf_token(page))
        landed[payload] = (done.status_code, done.headers.get("location"))
        # Verified now: the challenge page redirects straight to ``next`` -- or rather to /.
        again = browser.nav(CHALLENGE, params={"next": payload})
        assert (again.status_code, again.headers.get("location")) == (303, "/"), payload
    assert landed == {payload: (303, "/") for payload in OPEN_REDIRECTS}
