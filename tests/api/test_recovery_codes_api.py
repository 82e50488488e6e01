"""Recovery codes over the HTTP API (docs/api.md, "Recovery codes"): ``/recovery-codes``.

Driven like tests/api/test_http_api.py: the service (:class:`VerificationService`) in-process
through starlette's TestClient, a real Verifier on a real database (SQLite file, then
PostgreSQL) texting through a real FakeFlowroute. Every answer of a mounted path is also
checked against the OpenAPI document the service serves.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import httpx
import jsonschema
import pytest

from sms2fa_middleware.engine import Verifier
from sms2fa_middleware.testing import FakeFlowroute
from tests.support import Client

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

TOKEN = "api-token-0123456789abcdef0123456789"
RIGHT = {"authorization": f"Bearer {TOKEN}"}
NUMBER = "12065551234"
SHAPE = re.compile(r"^[a-z2-9]{5}-[a-z2-9]{5}$")


class Recovery:
    """The three recovery-code calls, each answer checked against the served document."""

    def __init__(self, api: Any, prefix: str = "") -> None:
        self.api, self.prefix = api, prefix
        self.document: dict[str, Any] = api.get(prefix + "/openapi.json").json()

    def call(
        self, method: str, path: str, status: int, reason: str | None = None, **kw: Any
    ) -> dict[str, Any]:
        response = self.api.request(method, self.prefix + path, headers=RIGHT, **kw)
        body = answer(response, status, reason)
        operation = self.document["paths"][path.split("?")[0]][method.lower()]
        described = operation["responses"][str(status)]
        schema = described["content"]["application/json"]["schema"]
        jsonschema.validate(body, schema, cls=jsonschema.Draft202012Validator)
        if status == 429:
            assert response.headers["retry-after"] == str(body["retry_after"])
        return body

    def new(self, auth_id: str = "u1") -> list[str]:
        body = self.call("POST", "/recovery-codes", 201, json={"auth_id": auth_id})
        assert body["auth_id"] == auth_id and body["left"] == 10
        codes: list[str] = body["recovery_codes"]
        return codes

    def left(self, auth_id: str = "u1") -> int:
        body = self.call("GET", "/recovery-codes", 200, params={"auth_id": auth_id})
        assert body["auth_id"] == auth_id
        return int(body["left"])

    def use(
        self, code: str, status: int = 200, reason: str | None = None, **extra: Any
    ) -> dict[str, Any]:
        payload = {"auth_id": "u1", "recovery_code": code, **extra}
        return self.call("POST", "/recovery-codes/use", status, reason, json=payload)


def answer(response: httpx.Response, status: int, reason: str | None = None) -> dict[str, Any]:
    """The JSON body, after checking what every answer of the API must be."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    if reason is not None:
        assert body["reason"] == reason, body
    return body


@pytest.fixture
def guarded(make_client: Client) -> tuple[Recovery, Verifier]:
    """The service behind a token (so with recovery codes), failed checks locking at 3."""
    api, verifier = make_client(api_token=TOKEN, max_failed_checks=3)
    return Recovery(api), verifier


# -- mounted only behind a token ----------------------------------------------------------------


def test_without_a_token_the_paths_are_not_there(make_client: Client) -> None:
    api, verifier = make_client()
    assert verifier.settings.api_token is None
    unknown = answer(api.get("/no-such-path"), 404, "NotFound")
    for response in (
        api.post("/recovery-codes", json={"auth_id": "u1"}),
        api.get("/recovery-codes", params={"auth_id": "u1"}),
        api.post("/recovery-codes/use", json={"auth_id": "u1", "recovery_code": "abcde-fghjk"}),
        api.get("/recovery-codes/use"),
    ):
        assert answer(response, 404) == unknown
    paths = api.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith("/recovery")]
    assert verifier.recovery_codes_left("u1") == 0


def test_a_wrong_token_is_refused_and_spends_the_failed_auth_budget(make_client: Client) -> None:
    api, verifier = make_client(api_token=TOKEN, failed_auth_limit=3, trusted_proxies=1)
    guesser = {"authorization": "Bearer " + "x" * 40, "x-forwarded-for": "203.0.113.9"}
    calls = [
        ("POST", "/recovery-codes", {"json": {"auth_id": "u1"}}),
        ("GET", "/recovery-codes", {"params": {"auth_id": "u1"}}),
        ("POST", "/recovery-codes/use", {"json": {"auth_id": "u1", "recovery_code": "a" * 10}}),
    ]
    for method, path, kw in calls:
        response = api.request(method, path, headers=guesser, **kw)
        answer(response, 401, "Unauthorized")
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert TOKEN not in response.text
    refused = answer(
        api.post("/recovery-codes", json={"auth_id": "u1"}, headers=guesser), 429, "RateLimited"
    )
    assert refused["budget"] == "failed_authorization"
    # Over the budget, even the right token from that address makes nothing.
    right_from_there = {**RIGHT, "x-forwarded-for": "203.0.113.9"}
    answer(api.post("/recovery-codes", json={"auth_id": "u1"}, headers=right_from_there), 429)
    assert verifier.recovery_codes_left("u1") == 0


def test_the_middlewares_mounted_api_has_none(make_verifier: Any) -> None:
    """In an app, the API mounted under the prefix (by the token) offers no recovery codes:
    the logged-in user's are the middleware's /recovery, tied to their verified session."""
    from sms2fa_middleware.guard import Guard
    from sms2fa_middleware.messages import Request

    guard = Guard(verifier=make_verifier(api_token=TOKEN), protect=["/private"])
    auth = {"authorization": f"Bearer {TOKEN}", "content-type": "application/json"}
    made = guard.handle_prefix(
        Request("POST", "/sms2fa/recovery-codes", headers=auth, body=b'{"auth_id": "u1"}'), None
    )
    assert made.status == 404 and json.loads(made.body)["reason"] == "NotFound"
    document = json.loads(guard.handle_prefix(Request("GET", "/sms2fa/openapi.json"), None).body)
    assert "/check" in document["paths"] and "/recovery-codes" not in document["paths"]


# -- making, counting and spending ----------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["/", "/verify"])
def test_ten_codes_one_used_with_a_notice_then_refused(
    make_client: Client, fake_flowroute: FakeFlowroute, prefix: str
) -> None:
    api, verifier = make_client(prefix=prefix, api_token=TOKEN, org_name="Example")
    recovery = Recovery(api, prefix.rstrip("/"))
    assert recovery.left() == 0
    codes = recovery.new()
    assert len(set(codes)) == 10 and all(SHAPE.match(c) for c in codes)
    assert recovery.left() == 10 == verifier.recovery_codes_left("u1")
    assert fake_flowroute.messages == []  # making them texts nothing

    used = recovery.use(codes[3], recipient="+" + NUMBER)
    assert used == {
        "authenticated": True,
        "auth_id": "u1",
        "message": "Success: Recovery code verified.",
        "left": 9,
    }
    [notice] = fake_flowroute.messages_to(NUMBER)
    assert notice.body.startswith("Example: ") and "9" in notice.body
    assert not any(c in notice.body or c.replace("-", "") in notice.body for c in codes)

    # Single use: the same code again is a wrong one (and texts nothing).
    again = recovery.use(codes[3], 400, "InvalidAuthCode")
    assert again["attempts_left"] == 9  # max_failed_checks 10 by default, one spent
    assert recovery.left() == 9
    # Typed as a person would (spaces, capitals, no dash) it is still a code; no recipient,
    # no notice.
    spoken = codes[0].replace("-", " ").upper()
    assert recovery.use(spoken)["left"] == 8
    assert len(fake_flowroute.messages) == 1


def test_a_new_set_voids_the_old_one(guarded: tuple[Recovery, Verifier]) -> None:
    recovery, _ = guarded
    old = recovery.new()
    assert recovery.use(old[0])["left"] == 9
    new = recovery.new()
    assert not set(old) & set(new)
    assert recovery.left() == 10
    recovery.use(old[1], 400, "InvalidAuthCode")
    assert recovery.use(new[1])["left"] == 9
    # Another auth_id's set is its own.
    other = recovery.new("u2")
    recovery.use(other[0], 400, "InvalidAuthCode")  # u1's use of u2's code
    assert recovery.left("u2") == 10


# -- wrong guesses: the auth_id's lock, shared with SMS codes -------------------------------------


def test_wrong_recovery_guesses_lock_the_sms_check_too(
    guarded: tuple[Recovery, Verifier], fake_flowroute: FakeFlowroute
) -> None:
    recovery, _ = guarded
    api = recovery.api
    codes = recovery.new()
    answer(api.post("/", json={"auth_id": "u1", "recipient": NUMBER}, headers=RIGHT), 200)
    sms = fake_flowroute.last_code(NUMBER)
    for left in (2, 1, 0):
        wrong = recovery.use("zzzzz-zzzzz", 400, "InvalidAuthCode")
        assert wrong["attempts_left"] == left
    locked = recovery.use(codes[0], 429, "RateLimited")  # the right one, once locked
    assert locked["budget"] == "failed_checks"
    # The SMS code's check of the same auth_id is locked too.
    refused = answer(
        api.post("/check", json={"auth_id": "u1", "code": sms}, headers=RIGHT), 429, "RateLimited"
    )
    assert refused["budget"] == "failed_checks"
    assert recovery.left() == 10  # nothing was spent while locked
    # Another auth_id is not touched.
    other = {"auth_id": "u2", "recovery_code": recovery.new("u2")[0]}
    assert recovery.call("POST", "/recovery-codes/use", 200, json=other)["left"] == 9


def test_wrong_sms_checks_lock_the_recovery_codes(
    guarded: tuple[Recovery, Verifier], fake_flowroute: FakeFlowroute
) -> None:
    recovery, _ = guarded
    api = recovery.api
    codes = recovery.new()
    answer(api.post("/", json={"auth_id": "u1", "recipient": NUMBER}, headers=RIGHT), 200)
    sms = fake_flowroute.last_code(NUMBER)
    wrong = str((int(sms) + 1) % 10 ** len(sms)).zfill(len(sms))
    for _ in range(3):
        answer(api.post("/check", json={"auth_id": "u1", "code": wrong}, headers=RIGHT), 400)
    assert recovery.use(codes[0], 429, "RateLimited")["budget"] == "failed_checks"
    assert recovery.left() == 10


# -- bad input: 400 JSON, nothing spent -----------------------------------------------------------

BAD_NEW = {
    "missing auth_id": {},
    "int auth_id": {"auth_id": 12},
    "empty auth_id": {"auth_id": ""},
    "auth_id of 121 chars": {"auth_id": "a" * 121},
    "control character": {"auth_id": "u\x001"},
    "unknown key": {"auth_id": "u1", "count": 20},
}
BAD_USE = {
    "missing recovery_code": {"auth_id": "u1"},
    "missing auth_id": {"recovery_code": "abcde-fghjk"},
    "int code": {"auth_id": "u1", "recovery_code": 12345},
    "null code": {"auth_id": "u1", "recovery_code": None},
    "short code": {"auth_id": "u1", "recovery_code": "abcde"},
    "code with 0 and 1": {"auth_id": "u1", "recovery_code": "abcde-fgh01"},
    "huge code": {"auth_id": "u1", "recovery_code": "a" * 10_000},
    "unknown key": {"auth_id": "u1", "recovery_code": "abcde-fghjk", "code": "1"},
}


@pytest.mark.parametrize("body", BAD_NEW.values(), ids=BAD_NEW.keys())
def test_a_malformed_new_set_request_is_400(
    guarded: tuple[Recovery, Verifier], body: dict[str, Any]
) -> None:
    recovery, verifier = guarded
    recovery.call("POST", "/recovery-codes", 400, "InvalidAPIUsage", json=body)
    assert verifier.recovery_codes_left("u1") == 0


@pytest.mark.parametrize("body", BAD_USE.values(), ids=BAD_USE.keys())
def test_a_malformed_use_is_400_and_no_guess(
    guarded: tuple[Recovery, Verifier], body: dict[str, Any]
) -> None:
    recovery, _ = guarded
    for _ in range(4):  # more than max_failed_checks: none of them counts as a guess
        recovery.call("POST", "/recovery-codes/use", 400, "InvalidAPIUsage", json=body)
    codes = recovery.new()
    assert recovery.use(codes[0])["left"] == 9


@pytest.mark.parametrize("recipient", ["12065", None, 5, "+1206555123x", "not a number"])
def test_a_bad_notice_number_is_400_and_spends_nothing(
    guarded: tuple[Recovery, Verifier], fake_flowroute: FakeFlowroute, recipient: Any
) -> None:
    recovery, _ = guarded
    codes = recovery.new()
    recovery.use(codes[0], 400, "InvalidAPIUsage", recipient=recipient)
    assert recovery.left() == 10
    assert fake_flowroute.requests_seen == 0
    assert recovery.use(codes[0], recipient=NUMBER)["left"] == 9  # the code was not spent


@pytest.mark.parametrize(
    "method, path, kw",
    [
        ("POST", "/recovery-codes", {"content": b"{not json", "headers": {}}),
        ("POST", "/recovery-codes", {"content": b'["u1"]'}),
        ("POST", "/recovery-codes", {"content": b'{"auth_id": "a", "auth_id": "b"}'}),
        ("POST", "/recovery-codes", {"data": {"auth_id": "u1"}}),  # a form, not JSON
        ("POST", "/recovery-codes/use", {"content": b"null"}),
        ("GET", "/recovery-codes", {}),
        ("GET", "/recovery-codes", {"params": [("auth_id", "u1"), ("auth_id", "u2")]}),
        ("GET", "/recovery-codes", {"params": {"auth_id": "u1", "code": "1"}}),
        ("GET", "/recovery-codes", {"params": {"auth_id": ""}}),
    ],
)
def test_malformed_requests_are_400_json(
    guarded: tuple[Recovery, Verifier], method: str, path: str, kw: dict[str, Any]
) -> None:
    recovery, _ = guarded
    headers = {**RIGHT, "content-type": "application/json", **kw.pop("headers", {})}
    if "data" in kw:
        headers.pop("content-type")
    response = recovery.api.request(method, path, headers=headers, **kw)
    answer(response, 400, "InvalidAPIUsage")


def test_wrong_methods_are_405(guarded: tuple[Recovery, Verifier]) -> None:
    api = guarded[0].api
    response = api.get("/recovery-codes/use", headers=RIGHT)
    answer(response, 405, "MethodNotAllowed")
    assert response.headers["allow"] == "POST"
    response = api.delete("/recovery-codes", headers=RIGHT)
    answer(response, 405, "MethodNotAllowed")
    assert response.headers["allow"] == "GET, POST"
    answer(api.get("/recovery-codes/u1", headers=RIGHT), 404, "NotFound")


def test_no_code_number_or_token_reaches_the_logs(
    guarded: tuple[Recovery, Verifier], caplog: pytest.LogCaptureFixture
) -> None:
    recovery, _ = guarded
    with caplog.at_level(logging.DEBUG):
        codes = recovery.new()
        recovery.use(codes[0], recipient=NUMBER)
        recovery.use(codes[0], 400)
        recovery.use("zzzzz-zzzzz", 400)
        recovery.left()
    logged = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    for code in codes:
        assert code not in logged and code.replace("-", "") not in logged
    assert NUMBER not in logged and TOKEN not in logged
