"""Learning who exists, or whose challenge is live: checks do the same store work for
unknown, locked and live ids; a check says only the masked number; anonymous API callers
cannot touch a logged-in user's challenge.

From the attacks of issue 11 (the engine and store side)."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from sms2fa_middleware import Settings, Verifier
from sms2fa_middleware.api.service import VerificationService
from sms2fa_middleware.errors import InvalidAuthCode, RateLimited, UnknownAuthId
from sms2fa_middleware.phones import mask
from sms2fa_middleware.testing import FakeFlowroute
from tests.support.apps import serve as serve_site
from tests.support.browsing import csrf_token

with warnings.catch_warnings():  # starlette >= 1.0 would rather have httpx2
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")


NUMBER = "+12065551234"


ATTACKER = "+13125550199"


NO_LIMITS: dict[str, Any] = {
    "resend_cooldown": 0,
    "recipient_send_limit": 0,
    "address_send_limit": 0,
    "address_check_limit": 0,
}


def wrong(code: str) -> str:
    return str((int(code) + 1) % 10 ** len(code)).zfill(len(code))


@pytest.fixture(params=["flask", "starlette"])
def public_site(
    request: pytest.FixtureRequest, make_settings: Callable[..., Settings]
) -> Iterator[Any]:
    settings = make_settings(max_failed_checks=3, resend_cooldown=30)
    site = serve_site(str(request.param), settings, {"alice": NUMBER}, public_api=True)
    yield site
    site.stop()


def test_uniform_checks_do_the_same_store_work_for_unknown_locked_and_live_ids(
    make_verifier: Callable[..., Verifier], fake_flowroute: FakeFlowroute
) -> None:
    verifier = make_verifier(
        **{**NO_LIMITS, "address_check_limit": 100}, max_failed_checks=2, retries_allowed=5
    )
    verifier.start("locked", NUMBER)
    for _ in range(2):  # the failures allowed
        with pytest.raises(InvalidAuthCode):
            verifier.check("locked", wrong(fake_flowroute.last_code(NUMBER)), uniform=True)
    verifier.start("live", NUMBER)
    code = fake_flowroute.last_code(NUMBER)
    # Another worker, which has not seen the lock: the one that locked it refuses from memory
    # (tests/engine/test_remembered_refusals.py: padded alike, and no store work at all).
    verifier = Verifier(verifier.settings, store=verifier.store)
    calls: list[str] = []
    for name in ("get_code", "take_attempt", "hit", "delete_code", "reset", "extend"):

        def record(
            *args: Any, _name: str = name, _real: Any = getattr(verifier.store, name), **kwargs: Any
        ) -> Any:
            calls.append(_name)
            return _real(*args, **kwargs)

        setattr(verifier.store, name, record)
    seen = {}
    for auth_id in ("unknown", "locked", "live"):
        calls.clear()
        with pytest.raises((UnknownAuthId, RateLimited, InvalidAuthCode)):
            verifier.check(auth_id, wrong(code), client_address="198.51.100.7", uniform=True)
        seen[auth_id] = list(calls)
    assert seen["unknown"] == seen["locked"] == seen["live"], seen


def test_a_successful_check_says_which_masked_number_the_code_went_to(
    make_verifier: Callable[..., Verifier], fake_flowroute: FakeFlowroute
) -> None:
    api = TestClient(VerificationService(make_verifier(**NO_LIMITS)))
    assert api.post("/", json={"auth_id": "u1", "recipient": NUMBER}).status_code == 200
    response = api.post("/check", json={"auth_id": "u1", "code": fake_flowroute.last_code(NUMBER)})
    assert response.status_code == 200, response.text
    assert response.json()["sent_to"] == mask(NUMBER) == "+1••••••••34"
    assert NUMBER.lstrip("+") not in response.text


def test_anonymous_api_callers_cannot_touch_a_logged_in_users_challenge(
    public_site: Any, fake_flowroute: FakeFlowroute
) -> None:
    """Issue 11.3: with public_api=True, creating a code for auth_id "alice" stole her resend
    cooldown and replaced her code, and failing checks on it locked her out."""
    base = public_site.url + "/sms2fa/"
    anonymous = requests.Session()
    created = anonymous.post(base, json={"auth_id": "alice", "recipient": ATTACKER}, timeout=10)
    assert created.status_code == 200, created.text
    for _ in range(4):  # more than max_failed_checks: "alice" is locked in the API's namespace
        answer = anonymous.get(base, params={"auth_id": "alice", "code": "000000"}, timeout=10)
        assert answer.status_code in (400, 429), answer.text
    assert (
        anonymous.post(
            base, json={"auth_id": "alice", "recipient": ATTACKER}, timeout=10
        ).status_code
        != 200
    )  # locked (uniform: a 400)
    # Alice logs in and is challenged: she gets her code, and it works.
    alice = requests.Session()
    alice.headers["X-User"] = "alice"
    html = "text/html,application/xhtml+xml"
    nav = alice.get(
        public_site.url + "/account", headers={"Accept": html}, allow_redirects=False, timeout=10
    )
    assert nav.status_code == 303, nav.text
    assert len(fake_flowroute.messages_to(NUMBER)) == 1
    page = alice.get(
        public_site.url + nav.headers["location"], headers={"Accept": html}, timeout=10
    )
    token = csrf_token(page)
    done = alice.post(
        public_site.url + "/sms2fa/challenge",
        data={"csrf_token": token, "next": "/account", "code": fake_flowroute.last_code(NUMBER)},
        headers={"Accept": html},
        allow_redirects=False,
        timeout=10,
    )
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/account"
    # And the API's "alice" is still its own: its code is not hers.
    assert anonymous.get(
        base, params={"auth_id": "alice", "code": fake_flowroute.last_code(NUMBER)}, timeout=10
    ).status_code in (400, 429)
