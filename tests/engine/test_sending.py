"""Sending a code: a failed send leaves nothing behind and answers 502 in JSON; a code
cannot be checked while its SMS is still in flight.

From the defects of the original Flowroute sms-verification service."""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pytest

from sms2fa_middleware import (
    VerificationError,
    Verifier,
)
from sms2fa_middleware.testing import FakeFlowroute
from tests.support import Client

with warnings.catch_warnings():  # starlette >= 1.0 would rather have httpx2
    warnings.simplefilter("ignore")


pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")


NUMBER = "12065551234"


def reason_of(call: Callable[[], object]) -> str:
    try:
        call()
    except VerificationError as exc:
        return exc.reason
    return "ok"


# -- "If the SMS send fails, the row is already committed and stays; the answer is a 500 HTML
#    page." -------------------------------------------------------------------------------------


def test_failed_send_leaves_no_row_and_answers_502_json(
    make_client: Client, fake_flowroute: FakeFlowroute
) -> None:
    """Defect: "If the SMS send fails, the row is already committed and stays; the answer is a
    500 HTML page." """
    api, verifier = make_client()
    fake_flowroute.fail_next(500)
    response = api.post("/", json={"auth_id": "u1", "recipient": NUMBER})
    assert response.status_code == 502
    assert response.headers["content-type"] == "application/json"
    assert response.json()["reason"] == "SMSDeliveryFailed"
    assert verifier.store.count_codes() == 0
    assert (
        api.get("/", params={"auth_id": "u1", "code": "123456"}).json()["reason"] == "UnknownAuthId"
    )


def test_code_not_checkable_while_its_sms_is_in_flight(
    quiet: Verifier, fake_flowroute: FakeFlowroute
) -> None:
    """Same defect, the other window: the original stored the row before the provider
    answered. Until it accepted the SMS, there must be no code to check."""
    fake_flowroute.delay = 1.0
    done = threading.Event()
    thread = threading.Thread(target=lambda: (quiet.start("u1", NUMBER), done.set()))
    thread.start()
    try:
        deadline = datetime.now(timezone.utc) + timedelta(seconds=5)
        while fake_flowroute.requests_seen == 0 and datetime.now(timezone.utc) < deadline:
            time.sleep(0.01)
        assert fake_flowroute.requests_seen == 1 and not done.is_set()  # in flight
        assert quiet.store.count_codes() == 0
        assert quiet.pending("u1") is None
        assert reason_of(lambda: quiet.check("u1", "123456")) == "UnknownAuthId"
    finally:
        thread.join(10)
    assert done.is_set()
    assert quiet.pending("u1") is not None
