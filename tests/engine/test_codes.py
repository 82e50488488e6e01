"""The codes the engine makes and checks (engine/codes.py through the Verifier): from
``secrets``, of the asked length with their leading zeros, stored only as a keyed digest,
compared in constant time, never parsed as a number.

From the defects of the original Flowroute sms-verification service (each docstring quotes
one)."""

from __future__ import annotations

import inspect
import random
import warnings
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from sms2fa_middleware import (
    VerificationError,
    Verifier,
)
from sms2fa_middleware.engine import codes as code_tools
from sms2fa_middleware.store import codes
from sms2fa_middleware.testing import FakeFlowroute

with warnings.catch_warnings():  # starlette >= 1.0 would rather have httpx2
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")


NUMBER = "12065551234"


def json_400(response: Any) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert body["reason"] == "InvalidAPIUsage"
    return body


def wrong(code: str) -> str:
    return str((int(code) + 1) % 10 ** len(code)).zfill(len(code))


def reason_of(call: Callable[[], object]) -> str:
    try:
        call()
    except VerificationError as exc:
        return exc.reason
    return "ok"


# -- "Code from `random.randint` (not a CSPRNG), range off by one (can be one digit short),
#    stored as an integer (leading zeros lost), stored in plain text, logged at DEBUG,
#    compared with `==`." ---------------------------------------------------------------------


def test_code_does_not_come_from_the_random_module(
    quiet: Verifier, fake_flowroute: FakeFlowroute
) -> None:
    """Defect: "Code from `random.randint` (not a CSPRNG)": the same seed of `random` must not
    give the same code."""
    state = random.getstate()
    try:
        sent = []
        for _ in range(3):
            random.seed(1234)
            quiet.start("u1", NUMBER, code_length=10)
            sent.append(fake_flowroute.last_code(NUMBER, length=10))
    finally:
        random.setstate(state)
    assert len(set(sent)) == 3, sent  # 10 digits: two equal by chance is a 1e-10 event


def test_code_always_has_exactly_the_asked_length(
    quiet: Verifier, fake_flowroute: FakeFlowroute
) -> None:
    """Defect: "range off by one (can be one digit short)"."""
    for length in (4, 5, 6, 8, 10):
        for _ in range(4):
            quiet.start("u1", NUMBER, code_length=length)
            assert len(fake_flowroute.last_code(NUMBER)) == length
    # The generator itself, many times over: every length exact, every first digit seen
    # (randint(10**(n-1), 10**n - 1) would never start with 0).
    generated = [code_tools.generate_code(4) for _ in range(20000)]
    assert {len(c) for c in generated} == {4}
    assert {c[0] for c in generated} == set("0123456789")


def test_code_keeps_its_leading_zeros(quiet: Verifier, fake_flowroute: FakeFlowroute) -> None:
    """Defect: "stored as an integer (leading zeros lost)"."""
    for _ in range(300):  # P(no leading zero in 300 tries) is about 2e-14
        quiet.start("u1", NUMBER, code_length=4)
        code = fake_flowroute.last_code(NUMBER, length=4)
        if code.startswith("0"):
            break
    else:
        pytest.fail("no 4-digit code with a leading zero in 300 codes")
    assert reason_of(lambda: quiet.check("u1", str(int(code)))) == "InvalidAuthCode"
    assert reason_of(lambda: quiet.check("u1", code)) == "ok"


def test_code_is_not_stored_in_plain_text(quiet: Verifier, fake_flowroute: FakeFlowroute) -> None:
    """Defect: "stored in plain text"."""
    quiet.start("u1", NUMBER, code_length=10)
    code = fake_flowroute.last_code(NUMBER, length=10)
    rows = quiet.store.run(lambda conn: conn.execute(select(codes)).all())
    assert len(rows) == 1
    stored = " ".join(str(value) for value in rows[0])
    assert code not in stored
    assert str(int(code)) not in stored
    digest = rows[0].digest
    assert len(digest) == 64 and set(digest) <= set("0123456789abcdef")
    # Keyed: the digest is not a plain hash anyone could brute-force without the secret.
    assert digest != code_tools.digest(code, "u1", "")


def test_code_compared_in_constant_time() -> None:
    """Defect: codes "compared with `==`". A timing test would be flaky, so this one reads the
    code: the comparison of digests is :func:`hmac.compare_digest`, and every key is tried."""
    source = inspect.getsource(code_tools.matches)
    assert "hmac.compare_digest" in source
    assert "==" not in source
    digest = code_tools.digest("123456", "u1", "old-key")
    assert code_tools.matches("123456", "u1", digest, ["new-key", "old-key"])
    assert not code_tools.matches("123457", "u1", digest, ["new-key", "old-key"])


# -- "Code parsed with `int()`: `+0001268` matched `1268`." -----------------------------------


def test_code_is_not_parsed_with_int(api: TestClient, fake_flowroute: FakeFlowroute) -> None:
    """Defect: "Code parsed with `int()`: `+0001268` matched `1268`." """
    assert (
        api.post("/", json={"auth_id": "u1", "recipient": NUMBER, "retries": 20}).status_code == 200
    )
    code = fake_flowroute.last_code(NUMBER)
    full_width = code.translate({ord(d): ord(d) + 0xFEE0 for d in "0123456789"})
    for variant in (
        "+" + code,
        "+000" + code,
        " " + code,
        code + " ",
        "-" + code,
        code[:2] + "_" + code[2:],
        code + ".0",
        full_width,
    ):
        response = api.get("/", params={"auth_id": "u1", "code": variant})
        json_400(response)
        response = api.post("/check", json={"auth_id": "u1", "code": variant})
        json_400(response)
    json_400(api.post("/check", json={"auth_id": "u1", "code": int(code)}))
    # Zero-padded: digits, so a guess -- and a wrong one.
    response = api.get("/", params={"auth_id": "u1", "code": "000" + code})
    assert response.json()["reason"] == "InvalidAuthCode"
    assert api.get("/", params={"auth_id": "u1", "code": code}).status_code == 200
