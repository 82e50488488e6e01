"""No code, secret or full phone number in any log line, even at DEBUG: the engine, the
middleware and the API in-process, and a ``sms2fa serve`` subprocess.

From the defects of the original Flowroute sms-verification service and the abuse review."""

from __future__ import annotations

import logging
import warnings

import pytest

from sms2fa_middleware.testing import FakeFlowroute
from tests.support import Client

with warnings.catch_warnings():  # starlette >= 1.0 would rather have httpx2
    warnings.simplefilter("ignore")


pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")


NUMBER = "12065551234"


def wrong(code: str) -> str:
    return str((int(code) + 1) % 10 ** len(code)).zfill(len(code))


def test_code_and_number_never_logged_even_at_debug(
    make_client: Client,
    fake_flowroute: FakeFlowroute,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Defect: the code was "logged at DEBUG". Neither it nor the full number may be logged.

    Every logger at DEBUG (urllib3, SQLAlchemy, the fake, ours) over a full flow: create,
    a wrong guess, the right code by GET, a new code, a failed send, the right code by POST.
    The test's own HTTP client (httpx) logs the URLs it requests -- those are this test's
    logs, not the service's, so they are left out.
    """
    api, _ = make_client()
    with caplog.at_level(logging.DEBUG):  # the root logger: every library inherits it
        assert api.post("/", json={"auth_id": "u1", "recipient": NUMBER}).status_code == 200
        first = fake_flowroute.last_code(NUMBER)
        assert api.get("/", params={"auth_id": "u1", "code": wrong(first)}).status_code == 400
        assert api.get("/", params={"auth_id": "u1", "code": first}).status_code == 200
        fake_flowroute.fail_next(500)
        assert api.post("/", json={"auth_id": "u2", "recipient": NUMBER}).status_code == 502
        assert api.post("/", json={"auth_id": "u2", "recipient": NUMBER}).status_code == 200
        second = fake_flowroute.last_code(NUMBER)
        assert api.post("/check", json={"auth_id": "u2", "code": second}).status_code == 200
    records = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert any(r.name == "sms2fa" for r in records)  # the flow was logged at all
    text = "\n".join(f"{r.getMessage()} {r.args!r}" for r in records)
    for secret in (first, second, NUMBER, "+" + NUMBER):
        assert secret not in text
