"""Issue 11, the engine and store side: what an attacker found, each one a test.

Real parts throughout: a real Verifier on a real SQLite file and the real PostgreSQL, codes
through a real FakeFlowroute, the API in-process (the service's ASGI app under TestClient,
or the sans-IO handler for a request with no peer address), and the middleware served for
real (tests/apps.py). Interleavings are forced by pausing one thread inside the store, never
by timing.
"""

from __future__ import annotations

import ipaddress
import threading
import warnings
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import requests
from sqlalchemy import select, update

from tests.support.apps import serve as serve_site
from tests.support.browsing import csrf_token

with warnings.catch_warnings():  # starlette >= 1.0 would rather have httpx2
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from sms2fa_middleware import Settings, Verifier
from sms2fa_middleware.api.service import VerificationService
from sms2fa_middleware.api.verification import VerificationAPI
from sms2fa_middleware.engine import Verified
from sms2fa_middleware.errors import InvalidAPIUsage, InvalidAuthCode, RateLimited, UnknownAuthId
from sms2fa_middleware.messages import Request
from sms2fa_middleware.phones import mask
from sms2fa_middleware.store import counters
from sms2fa_middleware.testing import FakeFlowroute

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

NUMBER = "+12065551234"
ATTACKER = "+13125550199"
NO_BUDGETS: dict[str, Any] = {
    "resend_cooldown": 0,
    "recipient_send_limit": 0,
    "address_send_limit": 0,
    "address_check_limit": 0,
}


def wrong(code: str) -> str:
    return str((int(code) + 1) % 10 ** len(code)).zfill(len(code))


def counter_keys(verifier: Verifier) -> list[str]:
    return verifier.store.run(lambda c: [k for (k,) in c.execute(select(counters.c.key))])


def end_lock(verifier: Verifier, key: str) -> None:
    """Let a counter's window pass (the store's clock is the real one; its data is moved)."""
    past = datetime.now(timezone.utc) - timedelta(seconds=1)
    verifier.store.run(
        lambda conn: conn.execute(
            update(counters).where(counters.c.key == key).values(reset_at=past)
        )
    )


class PauseBeforeConsuming:
    """Holds the thread named ``name`` just before it deletes (consumes) a code, until
    :meth:`go`; other threads pass. Forces the interleaving the issue found by chance."""

    def __init__(self, verifier: Verifier, name: str) -> None:
        self.reached, self._go = threading.Event(), threading.Event()
        delete_code = verifier.store.delete_code

        def paused(*args: Any, **kwargs: Any) -> bool:
            if threading.current_thread().name == name:
                self.reached.set()
                assert self._go.wait(30)
            return delete_code(*args, **kwargs)

        verifier.store.delete_code = paused  # type: ignore[method-assign]

    def go(self) -> None:
        self._go.set()


def check_in_thread(
    verifier: Verifier, code: str, name: str
) -> tuple[threading.Thread, list[object]]:
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(verifier.check("u1", code))
        except Exception as exc:  # the outcome is what the test looks at
            outcome.append(exc)

    thread = threading.Thread(target=run, name=name)
    thread.start()
    return thread, outcome


# -- 4. a right code inside the allowance always wins ----------------------------------------


def test_right_code_wins_while_wrong_guesses_take_the_last_attempts(
    make_verifier: Callable[..., Verifier], fake_flowroute: FakeFlowroute
) -> None:
    """Issue 11.4: 1 right + 2 wrong guesses on a code with 3 attempts. The right one took
    its attempt first; the wrong one that took the last attempt deleted the row under it."""
    verifier = make_verifier(**NO_BUDGETS)
    verifier.start("u1", NUMBER, retries=3)
    code = fake_flowroute.last_code(NUMBER)
    pause = PauseBeforeConsuming(verifier, "right")
    thread, outcome = check_in_thread(verifier, code, "right")
    assert pause.reached.wait(30)  # its attempt is taken and its code matched
    for left in (1, 0):
        with pytest.raises(InvalidAuthCode) as info:
            verifier.check("u1", wrong(code))
        assert info.value.attempts_left == left
    pause.go()
    thread.join(30)
    assert outcome == [Verified("u1", NUMBER)]
    with pytest.raises(UnknownAuthId):  # and only once
        verifier.check("u1", code)


def test_a_guess_whose_code_is_gone_gives_its_failure_slot_back(
    make_verifier: Callable[..., Verifier], fake_flowroute: FakeFlowroute
) -> None:
    verifier = make_verifier(**NO_BUDGETS)
    verifier.start("u1", NUMBER)
    code = fake_flowroute.last_code(NUMBER)
    pause = PauseBeforeConsuming(verifier, "right")
    thread, outcome = check_in_thread(verifier, code, "right")
    assert pause.reached.wait(30)
    verifier.start("u1", NUMBER)  # a new code replaces the one it matched
    pause.go()
    thread.join(30)
    assert [type(o) for o in outcome] == [UnknownAuthId]
    assert verifier.store.peek("failed:u1", datetime.now(timezone.utc))[0] == 0


# -- 5. client addresses -------------------------------------------------------------------

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


# -- 7. per-address check budget, and the same store work on every path ---------------------


def test_checks_are_limited_per_client_address(
    make_verifier: Callable[..., Verifier], fake_flowroute: FakeFlowroute
) -> None:
    """Issue 11.7: locked (and unknown) auth_ids could be probed without limit."""
    verifier = make_verifier(**{**NO_BUDGETS, "address_check_limit": 3}, uniform_errors=True)
    api = TestClient(VerificationService(verifier))
    statuses = [
        api.get("/", params={"auth_id": f"probe{i}", "code": "123456"}).status_code
        for i in range(4)
    ]
    assert statuses == [400, 400, 400, 429]
    body = api.get("/", params={"auth_id": "other", "code": "123456"}).json()
    assert body["budget"] == "client_address_checks"
    # The middleware's own users are not counted: its checks pass no address.
    with pytest.raises(UnknownAuthId):
        verifier.check("u1", "123456")


def test_uniform_checks_do_the_same_store_work_for_unknown_locked_and_live_ids(
    make_verifier: Callable[..., Verifier], fake_flowroute: FakeFlowroute
) -> None:
    verifier = make_verifier(
        **{**NO_BUDGETS, "address_check_limit": 100}, max_failed_checks=2, retries_allowed=5
    )
    verifier.start("locked", NUMBER)
    for _ in range(2):  # the failures allowed
        with pytest.raises(InvalidAuthCode):
            verifier.check("locked", wrong(fake_flowroute.last_code(NUMBER)), uniform=True)
    verifier.start("live", NUMBER)
    code = fake_flowroute.last_code(NUMBER)
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


# -- 8. escalating locks ---------------------------------------------------------------------


def test_each_lock_lasts_twice_the_one_before_up_to_the_ceiling(
    make_verifier: Callable[..., Verifier], fake_flowroute: FakeFlowroute
) -> None:
    """Issue 11.8: a fixed 15-minute lock allowed ~960 guesses per account per day."""
    verifier = make_verifier(
        **NO_BUDGETS, max_failed_checks=2, lockout_seconds=60, lockout_max_seconds=200
    )

    def lock_once() -> int:
        verifier.start("u1", NUMBER)
        code = fake_flowroute.last_code(NUMBER)
        for _ in range(2):
            with pytest.raises(InvalidAuthCode):
                verifier.check("u1", wrong(code))
        with pytest.raises(RateLimited) as info:
            verifier.check("u1", code)
        with pytest.raises(RateLimited):  # no SMS while locked either
            verifier.start("u1", NUMBER)
        end_lock(verifier, "failed:u1")
        return info.value.retry_after

    waits = [lock_once() for _ in range(4)]
    assert [w // 10 for w in waits] == [6, 12, 20, 20], waits  # 60 s, 120 s, then the ceiling
    # A right code starts the escalation again.
    verifier.start("u1", NUMBER)
    assert verifier.check("u1", fake_flowroute.last_code(NUMBER)) == Verified("u1", NUMBER)
    assert lock_once() // 10 == 6


def test_lockout_ceiling_must_not_be_shorter_than_the_first_lock() -> None:
    from sms2fa_middleware.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="SMS2FA_LOCKOUT_MAX_SECONDS"):
        Settings(secret_key="k" * 32, lockout_seconds=900, lockout_max_seconds=60)


# -- 1. per-request messages, segments, and which number proved it -------------------------


def test_per_request_message_is_off_by_default(
    make_verifier: Callable[..., Verifier], fake_flowroute: FakeFlowroute
) -> None:
    """Issue 11.1: a 981-character phishing text went out as one request."""
    api = TestClient(VerificationService(make_verifier(**NO_BUDGETS)))
    response = api.post(
        "/", json={"auth_id": "u1", "recipient": NUMBER, "message": "Your bank: call us. {code}"}
    )
    assert response.status_code == 400, response.text
    assert response.json()["reason"] == "InvalidAPIUsage"
    assert "SMS2FA_ALLOW_CUSTOM_MESSAGE" in response.json()["message"]
    assert fake_flowroute.messages == []


@pytest.mark.parametrize(
    "message",
    [
        "{code} " + "x" * 154,  # 161 with a 6-digit code: two GSM segments
        "{code} " + "ł" * 64,  # 71: two UCS-2 segments ("ł" is not in the GSM alphabet)
        "{code} " + "€" * 77,  # 161 septets: "€" takes two in the GSM alphabet
        "{code} " + "😀" * 32,  # 71 UTF-16 units: an emoji takes two
        "Phish! " * 140 + "{code}",  # 981
    ],
)
def test_a_long_per_request_message_is_refused(
    make_verifier: Callable[..., Verifier], fake_flowroute: FakeFlowroute, message: str
) -> None:
    api = TestClient(VerificationService(make_verifier(**NO_BUDGETS, allow_custom_message=True)))
    response = api.post("/", json={"auth_id": "u1", "recipient": NUMBER, "message": message})
    assert response.status_code == 400, response.text
    assert response.json()["reason"] == "InvalidAPIUsage"
    assert fake_flowroute.messages == []
    # One segment, enabled: it goes out.
    one = "{code} " + "x" * 153
    response = api.post("/", json={"auth_id": "u1", "recipient": NUMBER, "message": one})
    assert response.status_code == 200, response.text


def test_send_budgets_count_segments(
    make_verifier: Callable[..., Verifier], fake_flowroute: FakeFlowroute
) -> None:
    verifier = make_verifier(
        resend_cooldown=0, recipient_send_limit=3, auth_message="{code} " + "x" * 200
    )  # two segments
    verifier.start("u1", NUMBER)
    with pytest.raises(RateLimited) as info:  # 4 segments > 3
        verifier.start("u2", NUMBER)
    assert info.value.budget == "recipient"
    assert len(fake_flowroute.messages) == 1


def test_a_successful_check_says_which_masked_number_the_code_went_to(
    make_verifier: Callable[..., Verifier], fake_flowroute: FakeFlowroute
) -> None:
    api = TestClient(VerificationService(make_verifier(**NO_BUDGETS)))
    assert api.post("/", json={"auth_id": "u1", "recipient": NUMBER}).status_code == 200
    response = api.post("/check", json={"auth_id": "u1", "code": fake_flowroute.last_code(NUMBER)})
    assert response.status_code == 200, response.text
    assert response.json()["sent_to"] == mask(NUMBER) == "+1••••••••34"
    assert NUMBER.lstrip("+") not in response.text


def test_verifier_refuses_a_custom_message_when_off(verifier: Verifier) -> None:
    with pytest.raises(InvalidAPIUsage):
        verifier.start("u1", NUMBER, message="{code}")


# -- 3. the mounted API cannot touch the middleware's users ---------------------------------


@pytest.fixture(params=["flask", "starlette"])
def public_site(
    request: pytest.FixtureRequest, make_settings: Callable[..., Settings]
) -> Iterator[Any]:
    settings = make_settings(max_failed_checks=3, resend_cooldown=30)
    site = serve_site(str(request.param), settings, {"alice": NUMBER}, public_api=True)
    yield site
    site.stop()


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
