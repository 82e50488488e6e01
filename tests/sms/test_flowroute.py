"""FlowrouteSender against FakeFlowroute, over real HTTP (nothing patched)."""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from sms2fa_middleware.phones import mask
from sms2fa_middleware.sms import Sender, SendError
from sms2fa_middleware.sms.flowroute import FlowrouteSender
from sms2fa_middleware.testing import FakeFlowroute

TO = "+12065551234"
TO_DIGITS = "12065551234"
BODY = "Your verification code is 012345. Don't share it with anyone."


@pytest.fixture
def fake() -> Iterator[FakeFlowroute]:
    with FakeFlowroute() as server:
        yield server


_made: list[FlowrouteSender] = []


@pytest.fixture(autouse=True)
def _close_senders() -> Iterator[None]:
    yield
    while _made:
        _made.pop().close()


def make_sender(fake: FakeFlowroute | None = None, **options: Any) -> FlowrouteSender:
    settings: dict[str, Any] = {
        "access_key": "fake-access",
        "secret_key": "fake-secret",
        "from_number": "12065550100",
        "timeout": 2.0,
    }
    if fake is not None:
        settings["base_url"] = fake.url
    settings.update(options)
    sender = FlowrouteSender(**settings)
    _made.append(sender)
    return sender


@pytest.fixture
def sender(fake: FakeFlowroute) -> Iterator[FlowrouteSender]:
    with make_sender(fake) as s:
        yield s


def assert_private(exc: BaseException, caplog: pytest.LogCaptureFixture, *secrets: str) -> None:
    """Neither the exception nor any log line holds the secret, the body or the number."""
    texts = [str(exc), repr(exc), caplog.text, *(r.getMessage() for r in caplog.records)]
    for text in texts:
        for secret in ("fake-secret", TO_DIGITS, "012345", BODY, *secrets):
            assert secret not in text, (secret, text)


def test_is_a_sender(sender: FlowrouteSender) -> None:
    assert isinstance(sender, Sender)
    assert "fake-secret" not in repr(sender)


def test_success_returns_the_mdr_id(fake: FakeFlowroute, sender: FlowrouteSender) -> None:
    message_id = sender.send(TO, BODY)
    assert re.fullmatch(r"mdr2-[0-9a-f]{32}", message_id)
    [sent] = fake.messages
    assert sent.id == message_id
    assert (sent.to, sent.from_, sent.body) == (TO_DIGITS, "12065550100", BODY)
    assert fake.last_code(TO) == "012345"
    assert fake.requests_seen == 1


def test_connection_is_reused_and_threads_share_a_sender(
    fake: FakeFlowroute, sender: FlowrouteSender
) -> None:
    results: list[str] = []
    lock = threading.Lock()

    def work(i: int) -> None:
        for j in range(5):
            message_id = sender.send(TO, f"code {i}{j}0000")
            with lock:
                results.append(message_id)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 30
    assert len(fake.messages) == 30 == fake.requests_seen


def test_unicode_body(fake: FakeFlowroute, sender: FlowrouteSender) -> None:
    sender.send(TO, "Votre code: 4242 — merci ✓")
    assert fake.messages[0].body == "Votre code: 4242 — merci ✓"


def test_wrong_credentials_401(fake: FakeFlowroute, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    sender = make_sender(fake, secret_key="not-the-secret-key")
    with pytest.raises(SendError) as info:
        sender.send(TO, BODY)
    assert info.value.status == 401
    assert "credentials" in str(info.value)
    assert fake.requests_seen == 1
    errors = [r for r in caplog.records if r.levelno == logging.ERROR and r.name == "sms2fa"]
    assert errors and "FLOWROUTE_SECRET_KEY" in errors[0].getMessage()
    assert_private(info.value, caplog, "not-the-secret-key")


def test_forbidden_403(fake: FakeFlowroute, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    sender = make_sender(fake, from_number="12065550199")  # not the account's number
    with pytest.raises(SendError) as info:
        sender.send(TO, BODY)
    assert info.value.status == 403
    assert any(r.levelno == logging.ERROR for r in caplog.records)
    assert fake.requests_seen == 1
    assert_private(info.value, caplog)


def test_unprocessable_422_names_the_title_not_the_detail(
    fake: FakeFlowroute, sender: FlowrouteSender, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(SendError) as info:
        sender.send("+10065551234", BODY)  # not a North American number: the fake says 422
    assert info.value.status == 422
    assert "Unprocessable Entity" in str(info.value)
    assert mask("+10065551234") in str(info.value)
    assert "digits only" not in str(info.value)  # the provider's detail stays out
    assert fake.requests_seen == 1
    assert_private(info.value, caplog, "10065551234")


def test_429_with_small_retry_after_is_retried(
    fake: FakeFlowroute, sender: FlowrouteSender, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.fail_next(429, retry_after=0.1)
    started = time.monotonic()
    message_id = sender.send(TO, BODY)
    assert time.monotonic() - started >= 0.1
    assert message_id.startswith("mdr2-")
    assert fake.requests_seen == 2
    assert len(fake.messages) == 1
    assert any("retrying" in r.getMessage() for r in caplog.records)
    assert_private(Exception(), caplog)


def test_429_persistent_gives_up_after_bounded_tries(
    fake: FakeFlowroute, sender: FlowrouteSender, caplog: pytest.LogCaptureFixture
) -> None:
    fake.fail_next(429, count=10, retry_after=0)
    with pytest.raises(SendError) as info:
        sender.send(TO, BODY)
    assert info.value.status == 429
    assert fake.requests_seen == 3  # 1 + max_retries
    assert fake.messages == []
    assert_private(info.value, caplog)


def test_429_without_retry_after_backs_off_within_the_budget(fake: FakeFlowroute) -> None:
    fake.fail_next(429, count=10)
    sender = make_sender(fake, max_retries=5, max_retry_wait=0.5)
    started = time.monotonic()
    with pytest.raises(SendError) as info:
        sender.send(TO, BODY)
    assert time.monotonic() - started < 1.5
    assert info.value.status == 429
    assert 2 <= fake.requests_seen < 6


def test_retry_after_beyond_the_cap_gives_up_at_once(fake: FakeFlowroute) -> None:
    fake.fail_next(429, count=2, retry_after=30)
    sender = make_sender(fake)
    started = time.monotonic()
    with pytest.raises(SendError) as info:
        sender.send(TO, BODY)
    assert time.monotonic() - started < 1
    assert info.value.status == 429
    assert fake.requests_seen == 1


def test_retry_after_as_http_date(fake: FakeFlowroute, sender: FlowrouteSender) -> None:
    fake.fail_next(503, retry_after="Wed, 21 Oct 2015 07:28:00 GMT")  # in the past: go now
    assert sender.send(TO, BODY).startswith("mdr2-")
    assert fake.requests_seen == 2


def test_503_is_retried(fake: FakeFlowroute, sender: FlowrouteSender) -> None:
    fake.fail_next(503, count=2, retry_after=0)
    assert sender.send(TO, BODY).startswith("mdr2-")
    assert fake.requests_seen == 3
    assert len(fake.messages) == 1


def test_500_is_not_retried(
    fake: FakeFlowroute, sender: FlowrouteSender, caplog: pytest.LogCaptureFixture
) -> None:
    fake.fail_next(500)
    with pytest.raises(SendError) as info:
        sender.send(TO, BODY)
    assert info.value.status == 500
    assert "Internal Server Error" in str(info.value)
    assert fake.requests_seen == 1
    assert_private(info.value, caplog)


def test_read_timeout_is_not_retried(fake: FakeFlowroute, caplog: pytest.LogCaptureFixture) -> None:
    fake.delay_next(1.0)
    sender = make_sender(fake, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(SendError) as info:
        sender.send(TO, BODY)
    assert time.monotonic() - started < 1.0
    assert info.value.status is None
    assert "may have been sent" in str(info.value)
    assert fake.requests_seen == 1
    assert_private(info.value, caplog)


def test_dropped_connection_is_not_retried(
    fake: FakeFlowroute, sender: FlowrouteSender, caplog: pytest.LogCaptureFixture
) -> None:
    sender.send(TO, BODY)  # a kept-alive connection is in the pool now
    fake.clear()
    fake.drop_next()
    with pytest.raises(SendError) as info:
        sender.send(TO, BODY)
    assert info.value.status is None
    assert "may have been sent" in str(info.value)
    assert fake.requests_seen == 1
    assert_private(info.value, caplog)
    assert sender.send(TO, BODY).startswith("mdr2-")  # and the sender recovers


def test_connection_refused_is_retried_then_fails(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        port = sock.getsockname()[1]
        sender = make_sender(base_url=f"http://127.0.0.1:{port}/v2.1")
        with pytest.raises(SendError) as info:
            sender.send(TO, BODY)
    assert info.value.status is None
    assert "could not connect" in str(info.value)
    assert "3 attempts" in str(info.value)
    retries = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retries) == 2
    assert_private(info.value, caplog)


def test_refused_then_back_is_retried_to_success() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    fake = FakeFlowroute(port=port)
    timer = threading.Timer(0.05, fake.start)
    timer.start()
    try:
        sender = make_sender(base_url=f"http://127.0.0.1:{port}/v2.1", max_retries=6)
        assert sender.send(TO, BODY).startswith("mdr2-")
        assert len(fake.messages) == 1
    finally:
        timer.join()
        fake.stop()


def test_invalid_arguments() -> None:
    sender = make_sender(base_url="http://127.0.0.1:9/v2.1")
    with pytest.raises(SendError):
        sender.send("not a number", BODY)
    with pytest.raises(SendError):
        sender.send(TO, "")
    with pytest.raises(ValueError):
        make_sender(from_number="+1 206 555 0100")
    with pytest.raises(ValueError):
        make_sender(secret_key="")
    with pytest.raises(SendError, match="URL is not valid"):
        make_sender(base_url="127.0.0.1:9/v2.1").send(TO, BODY)


def test_wrong_base_path_fails_cleanly(fake: FakeFlowroute) -> None:
    # The fake answers 404 to a wrong base path; a sender given a path-less URL fails cleanly.
    sender = make_sender(base_url=fake.url.removesuffix("/v2.1"))
    with pytest.raises(SendError) as info:
        sender.send(TO, BODY)
    assert info.value.status == 404
    assert fake.requests_seen == 1


def test_caller_session_is_used_and_left_open(fake: FakeFlowroute) -> None:
    seen: list[str] = []
    session = requests.Session()
    session.hooks["response"].append(lambda r, *a, **k: seen.append(r.request.headers["Accept"]))
    with make_sender(fake, session=session) as sender:
        sender.send(TO, BODY)
    assert seen == ["application/vnd.api+json"]
    session.close()
