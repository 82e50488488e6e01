"""The HTTP API (README, "HTTP API"), answer by answer, against the standalone service in-process.

Every test drives :class:`~sms2fa_middleware.api.service.VerificationService` (the ASGI app that
``sms2fa serve`` runs) through starlette's TestClient, with a real Verifier on a real database
(SQLite file, then PostgreSQL) sending through a real FakeFlowroute HTTP server.
"""

from __future__ import annotations

import logging
import shutil
import warnings
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from sqlalchemy import update

with warnings.catch_warnings():  # starlette >= 1.0 would rather have httpx2
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from sms2fa_middleware import Settings, Verifier
from sms2fa_middleware.api.service import VerificationService
from sms2fa_middleware.messages import MAX_BODY
from sms2fa_middleware.store import codes, utcnow
from sms2fa_middleware.testing import FakeFlowroute
from tests.support import NO_BUDGETS, Client
from tests.support.tcp_proxy import PausableProxy

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

NUMBER = "12065551234"
OTHER_NUMBER = "14155552671"
# Budgets off unless a test is about them, so tests can create codes freely.


def answer(response: httpx.Response, status: int, reason: str | None = None) -> dict[str, Any]:
    """The JSON body, after checking what every answer of the API must be."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    assert not response.text.lstrip().startswith("<")
    body: dict[str, Any] = response.json()
    assert isinstance(body, dict)
    if reason is not None:
        assert body["reason"] == reason, body
    return body


def create(
    api: TestClient, auth_id: str = "u1", recipient: Any = NUMBER, **options: Any
) -> httpx.Response:
    return api.post("/", json={"auth_id": auth_id, "recipient": recipient, **options})


def check(api: TestClient, auth_id: str, code: str) -> httpx.Response:
    return api.get("/", params={"auth_id": auth_id, "code": code})


def wrong(code: str) -> str:
    """A code of the same length that is not ``code``."""
    return str((int(code) + 1) % 10 ** len(code)).zfill(len(code))


def expire(verifier: Verifier, auth_id: str) -> None:
    """Let the code's lifetime pass (the store's clock is the real one; its data is moved)."""
    past = datetime.now(timezone.utc) - timedelta(seconds=1)
    verifier.store.run(
        lambda conn: conn.execute(
            update(codes).where(codes.c.auth_id == auth_id).values(expires_at=past)
        )
    )


# -- POST / ------------------------------------------------------------------------------------


def test_create_answers_the_documented_body(api: TestClient, fake_flowroute: FakeFlowroute) -> None:
    before = datetime.now(timezone.utc)
    body = answer(create(api, "u1"), 200)
    assert set(body) == {"message", "auth_id", "expires_at", "attempts_left"}
    assert body["message"] == "Success: Verification code created."
    assert body["auth_id"] == "u1"
    assert body["attempts_left"] == 3
    assert body["expires_at"].endswith("Z")
    expires = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    assert expires.utcoffset() == timedelta(0)
    assert before + timedelta(seconds=599) <= expires <= before + timedelta(seconds=610)
    [message] = fake_flowroute.messages
    assert message.to == NUMBER
    assert len(fake_flowroute.last_code(NUMBER)) == 6


def test_create_honours_the_options(make_client: Client, fake_flowroute: FakeFlowroute) -> None:
    before = datetime.now(timezone.utc)
    api = make_client(allow_custom_message=True)[0]
    body = answer(
        create(
            api,
            "u1",
            "+" + NUMBER,
            code_length=8,
            expiration=120,
            retries=5,
            message="Code {code} for you",
        ),
        200,
    )
    assert body["attempts_left"] == 5
    expires = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    assert before + timedelta(seconds=119) <= expires <= before + timedelta(seconds=130)
    code = fake_flowroute.last_code(NUMBER)
    assert len(code) == 8
    assert fake_flowroute.messages[-1].body == f"Code {code} for you"


def test_create_accepts_the_original_integer_recipient(
    api: TestClient, fake_flowroute: FakeFlowroute
) -> None:
    answer(create(api, "u1", int(NUMBER)), 200)
    assert fake_flowroute.messages_to(NUMBER)


MALFORMED_BODIES = {
    "missing auth_id": {"recipient": NUMBER},
    "missing recipient": {"auth_id": "u1"},
    "empty object": {},
    "null auth_id": {"auth_id": None, "recipient": NUMBER},
    "int auth_id": {"auth_id": 12, "recipient": NUMBER},
    "empty auth_id": {"auth_id": "", "recipient": NUMBER},
    "auth_id of 121 chars": {"auth_id": "a" * 121, "recipient": NUMBER},
    "list recipient": {"auth_id": "u1", "recipient": [NUMBER]},
    "null recipient": {"auth_id": "u1", "recipient": None},
    "bad number": {"auth_id": "u1", "recipient": "12065"},
    "unknown key": {"auth_id": "u1", "recipient": NUMBER, "debug": True},
    "code_length 3": {"auth_id": "u1", "recipient": NUMBER, "code_length": 3},
    "code_length 11": {"auth_id": "u1", "recipient": NUMBER, "code_length": 11},
    "code_length string": {"auth_id": "u1", "recipient": NUMBER, "code_length": "6"},
    "code_length true": {"auth_id": "u1", "recipient": NUMBER, "code_length": True},
    "expiration 29": {"auth_id": "u1", "recipient": NUMBER, "expiration": 29},
    "expiration 3601": {"auth_id": "u1", "recipient": NUMBER, "expiration": 3601},
    "retries 0": {"auth_id": "u1", "recipient": NUMBER, "retries": 0},
    "retries 21": {"auth_id": "u1", "recipient": NUMBER, "retries": 21},
    "retries float": {"auth_id": "u1", "recipient": NUMBER, "retries": 2.5},
    "message without {code}": {"auth_id": "u1", "recipient": NUMBER, "message": "Hello"},
    "message not a string": {"auth_id": "u1", "recipient": NUMBER, "message": 5},
}


@pytest.mark.parametrize("payload", MALFORMED_BODIES.values(), ids=MALFORMED_BODIES.keys())
def test_create_refuses_malformed_json(
    api: TestClient, fake_flowroute: FakeFlowroute, payload: dict[str, Any]
) -> None:
    body = answer(api.post("/", json=payload), 400, "InvalidAPIUsage")
    assert set(body) == {"message", "reason"}
    assert body["message"]
    assert fake_flowroute.requests_seen == 0


GOOD = b'{"auth_id": "u1", "recipient": "12065551234"}'
MALFORMED_REQUESTS = {
    "not JSON": (b"auth_id=u1&recipient=12065551234", "application/json"),
    "truncated JSON": (GOOD[:-1], "application/json"),
    "not UTF-8": (b'{"auth_id": "\xff", "recipient": "12065551234"}', "application/json"),
    "empty body": (b"", "application/json"),
    "JSON array": (b"[" + GOOD + b"]", "application/json"),
    "JSON string": (b'"u1"', "application/json"),
    "duplicate key": (
        b'{"auth_id": "u1", "auth_id": "u2", "recipient": "12065551234"}',
        "application/json",
    ),
    "deeply nested": (b"[" * 8000 + b"]" * 8000, "application/json"),
    "deeply nested object": (b'{"a":' * 2000 + b"1" + b"}" * 2000, "application/json"),
    "form content type": (GOOD, "application/x-www-form-urlencoded"),
    "text content type": (GOOD, "text/plain"),
    "no content type": (GOOD, None),
}


@pytest.mark.parametrize(
    "content, ctype", MALFORMED_REQUESTS.values(), ids=MALFORMED_REQUESTS.keys()
)
def test_create_refuses_bodies_that_are_not_a_json_object(
    api: TestClient, fake_flowroute: FakeFlowroute, content: bytes, ctype: str | None
) -> None:
    headers = {"content-type": ctype} if ctype else {}
    answer(api.post("/", content=content, headers=headers), 400, "InvalidAPIUsage")
    assert fake_flowroute.requests_seen == 0


def test_create_accepts_a_json_content_type_with_charset(api: TestClient) -> None:
    answer(
        api.post("/", content=GOOD, headers={"content-type": "application/json; charset=utf-8"}),
        200,
    )


# -- GET / (check) -----------------------------------------------------------------------------


def test_check_unknown_auth_id(api: TestClient) -> None:
    body = answer(check(api, "nobody", "123456"), 400, "UnknownAuthId")
    assert body == {"attempts_left": 0, "message": "Unknown auth id", "reason": "UnknownAuthId"}


def test_check_wrong_codes_count_down_then_the_code_is_gone(
    api: TestClient, fake_flowroute: FakeFlowroute
) -> None:
    answer(create(api, "u1"), 200)
    code = fake_flowroute.last_code(NUMBER)
    for left in (2, 1, 0):
        body = answer(check(api, "u1", wrong(code)), 400, "InvalidAuthCode")
        assert body == {
            "attempts_left": left,
            "message": "Invalid code",
            "reason": "InvalidAuthCode",
        }
    # Exhausted codes are deleted: even the right code is now unknown.
    answer(check(api, "u1", code), 400, "UnknownAuthId")


def test_check_right_code_once_then_replay_refused(
    api: TestClient, fake_flowroute: FakeFlowroute
) -> None:
    answer(create(api, "u1"), 200)
    code = fake_flowroute.last_code(NUMBER)
    answer(check(api, "u1", wrong(code)), 400, "InvalidAuthCode")
    body = answer(check(api, "u1", code), 200)
    assert body == {
        "authenticated": True,
        "auth_id": "u1",
        "message": "Success: Authorization code verified.",
        "sent_to": "+1••••••••34",
    }
    answer(check(api, "u1", code), 400, "UnknownAuthId")


def test_check_expired_code_even_right_is_refused_and_deleted(
    make_client: Client, fake_flowroute: FakeFlowroute
) -> None:
    api, verifier = make_client()
    answer(create(api, "u1"), 200)
    code = fake_flowroute.last_code(NUMBER)
    expire(verifier, "u1")
    body = answer(check(api, "u1", code), 400, "ExpiredAuthCode")
    assert body["attempts_left"] == 0
    assert verifier.store.count_codes() == 0
    answer(check(api, "u1", code), 400, "UnknownAuthId")


def test_a_new_code_replaces_the_pending_one(
    api: TestClient, fake_flowroute: FakeFlowroute
) -> None:
    answer(create(api, "u1"), 200)
    first = fake_flowroute.last_code(NUMBER)
    answer(create(api, "u1"), 200)
    second = fake_flowroute.last_code(NUMBER)
    if first != second:
        answer(check(api, "u1", first), 400, "InvalidAuthCode")
    answer(check(api, "u1", second), 200)


def test_post_check_verifies_without_the_code_in_the_url(
    api: TestClient, fake_flowroute: FakeFlowroute
) -> None:
    answer(create(api, "u1"), 200)
    code = fake_flowroute.last_code(NUMBER)
    body = answer(
        api.post("/check", json={"auth_id": "u1", "code": wrong(code)}), 400, "InvalidAuthCode"
    )
    assert body["attempts_left"] == 2
    answer(api.post("/check", json={"auth_id": "u1", "code": code}), 200)
    answer(api.post("/check", json={"auth_id": "u1", "code": code}), 400, "UnknownAuthId")


@pytest.mark.parametrize(
    "payload",
    [
        {"auth_id": "u1"},
        {"code": "123456"},
        {"auth_id": "u1", "code": 123456},
        {"auth_id": None, "code": "123456"},
        {"auth_id": "u1", "code": "123456", "extra": 1},
    ],
    ids=["no code", "no auth_id", "int code", "null auth_id", "unknown key"],
)
def test_post_check_refuses_malformed_bodies(api: TestClient, payload: dict[str, Any]) -> None:
    answer(api.post("/check", json=payload), 400, "InvalidAPIUsage")


BAD_QUERIES = {
    "missing code": "auth_id=u1",
    "missing auth_id": "code=123456",
    "empty query": "",
    "duplicate code": "auth_id=u1&code=123456&code=654321",
    "duplicate auth_id": "auth_id=u1&auth_id=u2&code=123456",
    "unknown parameter": "auth_id=u1&code=123456&debug=1",
    "plus-signed code": "auth_id=u1&code=%2B0001268",
    "space in code": "auth_id=u1&code=+0001268",
    "letters in code": "auth_id=u1&code=12ab56",
    "empty code": "auth_id=u1&code=",
    "code of 11 digits": "auth_id=u1&code=12345678901",
    "auth_id of 121 chars": "auth_id=" + "a" * 121 + "&code=123456",
}


@pytest.mark.parametrize("query", BAD_QUERIES.values(), ids=BAD_QUERIES.keys())
def test_check_refuses_a_bad_query_without_spending_an_attempt(
    api: TestClient, fake_flowroute: FakeFlowroute, query: str
) -> None:
    answer(create(api, "u1"), 200)
    code = fake_flowroute.last_code(NUMBER)
    body = answer(api.get("/?" + query), 400, "InvalidAPIUsage")
    assert set(body) == {"message", "reason"}
    assert answer(check(api, "u1", wrong(code)), 400, "InvalidAuthCode")["attempts_left"] == 2


def test_codes_with_a_leading_zero_work(make_client: Client, fake_flowroute: FakeFlowroute) -> None:
    api, _ = make_client()
    for _ in range(300):  # P(no leading zero in 300 tries) = 0.9**300, about 2e-14
        answer(create(api, "u1", code_length=4), 200)
        code = fake_flowroute.last_code(NUMBER, length=4)
        if code.startswith("0"):
            break
    else:
        pytest.fail("no 4-digit code with a leading zero in 300 codes: codes are not uniform")
    # The code as an integer would have read it ("0123" -> "123") is a wrong guess.
    answer(check(api, "u1", code.lstrip("0") or "0"), 400, "InvalidAuthCode")
    answer(check(api, "u1", code), 200)


# -- 401 ---------------------------------------------------------------------------------------

TOKEN = "api-token-0123456789abcdef0123456789"


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer wrong-token",
        "Bearer " + TOKEN[:-1],
        "Bearer " + TOKEN + "x",
        "Basic " + TOKEN,
        TOKEN,
        "Bearer",
    ],
    ids=["missing", "wrong", "prefix", "longer", "basic scheme", "no scheme", "empty"],
)
def test_a_configured_token_is_required(
    make_client: Client, fake_flowroute: FakeFlowroute, authorization: str | None
) -> None:
    api, _ = make_client(api_token=TOKEN)
    headers = {"authorization": authorization} if authorization else {}
    for response in (
        api.post("/", json={"auth_id": "u1", "recipient": NUMBER}, headers=headers),
        api.get("/", params={"auth_id": "u1", "code": "123456"}, headers=headers),
        api.post("/check", json={"auth_id": "u1", "code": "123456"}, headers=headers),
    ):
        body = answer(response, 401, "Unauthorized")
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert TOKEN not in response.text
        assert "attempts_left" not in body
    assert fake_flowroute.requests_seen == 0


def test_the_right_token_works(make_client: Client, fake_flowroute: FakeFlowroute) -> None:
    api, _ = make_client(api_token=TOKEN)
    headers = {"authorization": f"Bearer {TOKEN}"}
    answer(api.post("/", json={"auth_id": "u1", "recipient": NUMBER}, headers=headers), 200)
    code = fake_flowroute.last_code(NUMBER)
    answer(api.get("/", params={"auth_id": "u1", "code": code}, headers=headers), 200)


def test_wrong_tokens_spend_a_budget_per_address(
    make_client: Client, fake_flowroute: FakeFlowroute
) -> None:
    api, verifier = make_client(api_token=TOKEN, failed_auth_limit=3, trusted_proxies=1)
    guesser = {"authorization": "Bearer " + "x" * 40, "x-forwarded-for": "203.0.113.9"}
    body = {"auth_id": "u1", "code": "123456"}
    for _ in range(3):
        answer(api.post("/check", json=body, headers=guesser), 401, "Unauthorized")
    refused = answer(api.post("/check", json=body, headers=guesser), 429, "RateLimited")
    assert refused["budget"] == "failed_authorization"
    assert 0 < int(refused["retry_after"]) <= 600
    assert refused["retry_after"] == int(
        api.post("/check", json=body, headers=guesser).headers["retry-after"]
    )
    # Further wrong tokens are refused from memory (engine/spent.py): the store counted up to
    # the first refusal, and no more.
    for _ in range(5):
        answer(api.post("/check", json=body, headers=guesser), 429, "RateLimited")
    assert verifier.store.peek(verifier.keys.failed_auth("203.0.113.9"), utcnow())[0] == 4
    # Over the budget, the right token from that address is refused too: no oracle.
    right_from_there = {"authorization": f"Bearer {TOKEN}", "x-forwarded-for": "203.0.113.9"}
    answer(
        api.post("/", json={"auth_id": "u1", "recipient": NUMBER}, headers=right_from_there),
        429,
        "RateLimited",
    )
    assert fake_flowroute.requests_seen == 0
    # Another address is not touched.
    elsewhere = {"authorization": f"Bearer {TOKEN}", "x-forwarded-for": "198.51.100.7"}
    answer(api.post("/", json={"auth_id": "u1", "recipient": NUMBER}, headers=elsewhere), 200)


def test_the_right_token_spends_nothing(make_client: Client) -> None:
    api, _ = make_client(api_token=TOKEN, failed_auth_limit=2)
    right = {"authorization": f"Bearer {TOKEN}"}
    for _ in range(5):
        answer(api.post("/check", json={"auth_id": "u1", "code": "123456"}, headers=right), 400)
    wrong = {"authorization": "Bearer " + "y" * 40}
    for _ in range(2):
        answer(api.post("/check", json={"auth_id": "u1", "code": "1"}, headers=wrong), 401)
    answer(api.post("/check", json={"auth_id": "u1", "code": "1"}, headers=wrong), 429)


# -- 429 ---------------------------------------------------------------------------------------


def assert_rate_limited(response: httpx.Response, most: int) -> dict[str, Any]:
    body = answer(response, 429, "RateLimited")
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= most
    assert body["retry_after"] == retry_after
    return body


def test_resend_cooldown_answers_429_with_retry_after(
    make_client: Client, fake_flowroute: FakeFlowroute
) -> None:
    api, _ = make_client(resend_cooldown=30)
    answer(create(api, "u1"), 200)
    body = assert_rate_limited(create(api, "u1"), 31)
    assert body["budget"] == "resend_cooldown"
    assert len(fake_flowroute.messages) == 1
    answer(create(api, "u2"), 200)  # the cooldown is per auth_id


def test_recipient_budget_answers_429(make_client: Client, fake_flowroute: FakeFlowroute) -> None:
    api, _ = make_client(recipient_send_limit=2, recipient_send_window=600)
    answer(create(api, "u1"), 200)
    answer(create(api, "u2"), 200)
    assert_rate_limited(create(api, "u3"), 601)
    assert len(fake_flowroute.messages_to(NUMBER)) == 2
    answer(create(api, "u3", OTHER_NUMBER), 200)


def test_client_address_budget_answers_429(
    make_client: Client, fake_flowroute: FakeFlowroute
) -> None:
    api, _ = make_client(address_send_limit=2, address_send_window=600)
    answer(create(api, "u1"), 200)
    answer(create(api, "u2", OTHER_NUMBER), 200)
    body = assert_rate_limited(create(api, "u3", "12025550143"), 601)
    assert body["budget"] == "client_address"
    assert len(fake_flowroute.messages) == 2


def test_a_token_holding_backend_is_not_held_to_one_persons_address_budget(
    make_client: Client, fake_flowroute: FakeFlowroute
) -> None:
    """With SMS2FA_API_TOKEN the caller is a relying party's backend: its one address would
    exhaust a budget meant for one person. Behind a trusted proxy the client is counted."""
    token = {"authorization": "Bearer " + "t" * 32}
    api, _ = make_client(address_send_limit=2, api_token="t" * 32)
    for i, number in enumerate((NUMBER, OTHER_NUMBER, "12025550143", "13125550199")):
        answer(api.post("/", json={"auth_id": f"u{i}", "recipient": number}, headers=token), 200)
    proxied, _ = make_client(address_send_limit=1, api_token="t" * 32, trusted_proxies=1)
    client = {**token, "x-forwarded-for": "203.0.113.7"}
    answer(proxied.post("/", json={"auth_id": "p1", "recipient": NUMBER}, headers=client), 200)
    assert_rate_limited(
        proxied.post("/", json={"auth_id": "p2", "recipient": OTHER_NUMBER}, headers=client), 601
    )


def test_failed_checks_lock_the_auth_id_with_429(
    make_client: Client, fake_flowroute: FakeFlowroute
) -> None:
    api, _ = make_client(max_failed_checks=2, lockout_seconds=300)
    answer(create(api, "u1", retries=5), 200)
    code = fake_flowroute.last_code(NUMBER)
    answer(check(api, "u1", wrong(code)), 400, "InvalidAuthCode")
    answer(check(api, "u1", wrong(code)), 400, "InvalidAuthCode")
    assert_rate_limited(check(api, "u1", code), 301)  # locked: even the right code waits


def test_forwarded_for_is_not_believed_without_trusted_proxies(
    make_client: Client, fake_flowroute: FakeFlowroute
) -> None:
    api, _ = make_client(address_send_limit=2)
    for i in range(2):
        answer(
            api.post(
                "/",
                json={"auth_id": f"u{i}", "recipient": NUMBER},
                headers={"x-forwarded-for": f"203.0.113.{i}"},
            ),
            200,
        )
    assert_rate_limited(
        api.post(
            "/",
            json={"auth_id": "u9", "recipient": NUMBER},
            headers={"x-forwarded-for": "203.0.113.9"},
        ),
        601,
    )


def test_forwarded_for_is_believed_behind_one_trusted_proxy(
    make_client: Client, fake_flowroute: FakeFlowroute
) -> None:
    api, _ = make_client(address_send_limit=1, trusted_proxies=1)
    spoofed = "198.51.100.1, 203.0.113.1"  # the client's claim, then what our proxy saw
    answer(
        api.post(
            "/", json={"auth_id": "u1", "recipient": NUMBER}, headers={"x-forwarded-for": spoofed}
        ),
        200,
    )
    assert_rate_limited(
        api.post(
            "/",
            json={"auth_id": "u2", "recipient": NUMBER},
            headers={"x-forwarded-for": "198.51.100.2, 203.0.113.1"},
        ),
        601,
    )
    answer(
        api.post(
            "/",
            json={"auth_id": "u3", "recipient": NUMBER},
            headers={"x-forwarded-for": "203.0.113.2"},
        ),
        200,
    )


# -- 502 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["500", "400", "401", "503 x3", "drop"])
def test_sms_failure_answers_502_and_leaves_no_code(
    make_client: Client, fake_flowroute: FakeFlowroute, fault: str
) -> None:
    api, verifier = make_client(resend_cooldown=30)
    if fault == "drop":
        fake_flowroute.drop_next()
    elif fault == "503 x3":
        fake_flowroute.fail_next(503, count=3, retry_after=0)
    else:
        fake_flowroute.fail_next(int(fault))
    body = answer(create(api, "u1"), 502, "SMSDeliveryFailed")
    assert set(body) == {"message", "reason"}
    assert fake_flowroute.messages == []
    assert verifier.store.count_codes() == 0
    answer(check(api, "u1", "123456"), 400, "UnknownAuthId")
    # Nobody got a code, so the user may ask again at once (no cooldown was spent).
    answer(create(api, "u1"), 200)
    answer(check(api, "u1", fake_flowroute.last_code(NUMBER)), 200)


def test_a_failed_send_is_logged_at_warning_with_the_providers_status(
    make_client: Client, fake_flowroute: FakeFlowroute, caplog: pytest.LogCaptureFixture
) -> None:
    """An operator sees a failed send without turning INFO on; the line carries the
    provider's status and a masked number, never the code or the whole number."""
    api, _ = make_client()
    fake_flowroute.fail_next(500)
    with caplog.at_level(logging.WARNING, logger="sms2fa"):
        answer(create(api, "u1"), 502, "SMSDeliveryFailed")
    failed = [
        r
        for r in caplog.records
        if r.levelno == logging.WARNING and "event=send_failed" in r.getMessage()
    ]
    assert len(failed) == 1, [r.getMessage() for r in caplog.records]
    assert "status=500" in failed[0].getMessage()
    assert NUMBER not in caplog.text and NUMBER[1:] not in caplog.text


# -- 503 ---------------------------------------------------------------------------------------


@pytest.fixture
def unreachable_later(
    request: pytest.FixtureRequest, database_url: str, tmp_path: Any
) -> Iterator[tuple[str, Callable[[Verifier], None]]]:
    """(database URL, cut): the database works until ``cut(verifier)`` takes it away."""
    if database_url.startswith("sqlite"):
        folder = tmp_path / "volume"
        folder.mkdir()

        def vanish(verifier: Verifier) -> None:
            # The volume holding the database is gone; connections opened from now on fail
            # (the pool's open ones would go on reading the deleted file, so they go too).
            shutil.rmtree(folder)
            verifier.store.dispose()

        yield f"sqlite:///{folder / 'sms2fa.db'}", vanish
        return
    proxy, proxied = PausableProxy.to(database_url)
    try:
        yield proxied, lambda _verifier: proxy.stop()
    finally:
        proxy.stop()


@pytest.mark.server
def test_unreachable_database_answers_503(
    make_client: Client,
    fake_flowroute: FakeFlowroute,
    unreachable_later: tuple[str, Callable[[Verifier], None]],
) -> None:
    url, cut = unreachable_later
    api, verifier = make_client(database_url=url)
    answer(create(api, "u1"), 200)
    code = fake_flowroute.last_code(NUMBER)
    cut(verifier)
    for response in (
        create(api, "u2"),
        check(api, "u1", code),
        api.post("/check", json={"auth_id": "u1", "code": code}),
    ):
        body = answer(response, 503, "ServiceUnavailable")
        assert set(body) == {"message", "reason"}
        assert "Traceback" not in response.text
    assert len(fake_flowroute.messages) == 1  # nothing was sent without a store


# -- 404, 405, 413 -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/nope", "/check/", "/index.html", "/openapi"])
def test_unknown_paths_answer_404_json(api: TestClient, path: str) -> None:
    answer(api.get(path), 404, "NotFound")
    answer(api.post(path, json={}), 404, "NotFound")


@pytest.mark.parametrize(
    "method, path, allow",
    [
        ("PUT", "/", "GET, POST"),
        ("DELETE", "/", "GET, POST"),
        ("PATCH", "/", "GET, POST"),
        ("GET", "/check", "POST"),
        ("PUT", "/check", "POST"),
    ],
)
def test_other_methods_answer_405_json(api: TestClient, method: str, path: str, allow: str) -> None:
    response = api.request(method, path)
    answer(response, 405, "MethodNotAllowed")
    assert response.headers["allow"] == allow


def test_prefix_mounts_the_api_and_answers_404_elsewhere(
    make_client: Client, fake_flowroute: FakeFlowroute
) -> None:
    api, _ = make_client(prefix="/sms2fa")
    answer(create(api, "u1"), 404, "NotFound")
    answer(api.post("/sms2fa/", json={"auth_id": "u1", "recipient": NUMBER}), 200)
    code = fake_flowroute.last_code(NUMBER)
    answer(api.post("/sms2fa/check", json={"auth_id": "u1", "code": code}), 200)
    answer(api.get("/sms2faX/"), 404, "NotFound")


def test_bodies_over_16_kib_answer_413(api: TestClient, fake_flowroute: FakeFlowroute) -> None:
    big = (
        b'{"auth_id": "u1", "recipient": "12065551234", "message": "{code}'
        + b"x" * MAX_BODY
        + b'"}'
    )
    headers = {"content-type": "application/json"}
    answer(api.post("/", content=big, headers=headers), 413, "InvalidAPIUsage")
    answer(api.post("/check", content=big, headers=headers), 413, "InvalidAPIUsage")
    # Without a Content-Length (chunked), the size is counted as the body arrives.
    answer(
        api.post("/", content=iter([big[:8000], big[8000:]]), headers=headers),
        413,
        "InvalidAPIUsage",
    )
    assert fake_flowroute.requests_seen == 0


def test_a_body_of_exactly_16_kib_is_read(api: TestClient) -> None:
    head = b'{"auth_id": "u1", "recipient": "12065551234", "pad": "'
    body = head + b"x" * (MAX_BODY - len(head) - 2) + b'"}'
    assert len(body) == MAX_BODY
    # Read and judged (the unknown key), not refused for its size.
    answer(
        api.post("/", content=body, headers={"content-type": "application/json"}),
        400,
        "InvalidAPIUsage",
    )


def test_openapi_document_is_json(api: TestClient) -> None:
    body = answer(api.get("/openapi.json"), 200)
    assert body["openapi"].startswith("3.")
    assert {"/", "/check"} <= set(body["paths"])


class _BrokenSender:
    """A sender with a bug in it: not a SendError, an exception nobody expected."""

    def __init__(self) -> None:
        self.calls = 0

    def send(self, to: str, body: str) -> str:
        self.calls += 1
        raise RuntimeError("a bug in the sender")


def test_a_sender_bug_answers_500_json_and_stores_nothing(
    make_settings: Callable[..., Settings],
) -> None:
    # On SQLite the service works out the answer on its loop and sends in a thread: the
    # sender's exception must come back into that work, and out as a JSON 500.
    sender = _BrokenSender()
    verifier = Verifier(make_settings(**NO_BUDGETS), sender=sender)
    try:
        api = TestClient(VerificationService(verifier))
        response = api.post("/", json={"auth_id": "u1", "recipient": "12065550123"})
        assert answer(response, 500, "InternalError") == {
            "message": "Internal error.",
            "reason": "InternalError",
        }
        assert sender.calls == 1
        assert verifier.store.count_codes() == 0
        answer(api.get("/", params={"auth_id": "u1", "code": "123456"}), 400, "UnknownAuthId")
    finally:
        verifier.store.dispose()


# -- the standalone service's health check --------------------------------------------------------


def test_health_answers_ok_while_the_store_answers_and_503_when_it_cannot(
    tmp_path: Any, fake_flowroute: FakeFlowroute
) -> None:
    folder = tmp_path / "db"
    folder.mkdir()
    settings = Settings(
        secret_key="health-secret-0123456789",
        database_url=f"sqlite:///{folder / 'h.db'}",
        **fake_flowroute.settings_kwargs(),
    )
    verifier = Verifier(settings)
    try:
        with TestClient(VerificationService(verifier, prefix="/api")) as client:
            ok = client.get("/api/health")
            assert ok.status_code == 200 and ok.json() == {"status": "ok"}
            assert client.head("/api/health").status_code == 200
            assert client.get("/health").status_code == 404  # under the prefix only
            verifier.store.dispose()
            shutil.rmtree(folder)  # the database goes away
            down = client.get("/api/health")
            assert down.status_code == 503
            assert down.json()["status"] == "unavailable"
            assert down.json()["reason"] == "ServiceUnavailable"
            assert down.headers["retry-after"] == "5"
    finally:
        verifier.store.dispose()


def test_a_body_that_never_arrives_gets_408_and_the_connection_closed(
    tmp_path: Any, fake_flowroute: FakeFlowroute
) -> None:
    """A client that declares a body and never sends it cannot hold the service."""
    import asyncio

    settings = Settings(
        secret_key="body-timeout-secret-0123",
        database_url=f"sqlite:///{tmp_path / 'b.db'}",
        **fake_flowroute.settings_kwargs(),
    )
    verifier = Verifier(settings)
    service = VerificationService(verifier, body_timeout=0.2)
    sent: list[dict[str, Any]] = []

    async def stalled() -> dict[str, Any]:
        await asyncio.sleep(3600)  # the body never comes
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "root_path": "",
        "query_string": b"",
        "scheme": "http",
        "client": ("127.0.0.1", 1),
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"60")],
    }
    try:
        asyncio.run(asyncio.wait_for(service(scope, stalled, send), timeout=10))
    finally:
        verifier.store.dispose()
    assert sent[0]["status"] == 408
    assert (b"connection", b"close") in sent[0]["headers"]
    assert b"RequestTimeout" in sent[1]["body"]
