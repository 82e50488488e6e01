"""FakeFlowroute is as strict as the real API: checked with plain HTTP requests."""

from __future__ import annotations

import concurrent.futures
import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from sms2fa_middleware.testing import (
    FakeFlowroute,
    NoCodeError,
    fake_flowroute,  # noqa: F401 - the plugin fixture, for when the plugin is not installed
)

JSONAPI = "application/vnd.api+json"
TO = "12065551234"
FROM = "12065550100"


@pytest.fixture
def fake() -> Iterator[FakeFlowroute]:
    with FakeFlowroute() as server:
        yield server


def post(
    fake: FakeFlowroute,
    body: Any = None,
    *,
    auth: tuple[str, str] | None = ("fake-access", "fake-secret"),
    content_type: str | None = JSONAPI + "; charset=utf-8",
    data: bytes | None = None,
    path: str = "/messages",
    method: str = "POST",
) -> requests.Response:
    if body is None and data is None:
        body = message()
    headers = {"Accept": JSONAPI}
    if content_type is not None:
        headers["Content-Type"] = content_type
    if data is None:
        data = json.dumps(body).encode()
    return requests.request(
        method, fake.url + path, data=data, headers=headers, auth=auth, timeout=5
    )


def message(to: str = TO, from_: str = FROM, body: str = "Your code is 123456") -> dict[str, Any]:
    return {"data": {"type": "message", "attributes": {"to": to, "from": from_, "body": body}}}


def assert_error(response: requests.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith(JSONAPI)
    errors = response.json()["errors"]
    assert len(errors) == 1
    error: dict[str, Any] = errors[0]
    assert error["status"] == status
    assert isinstance(error["title"], str) and error["title"]
    assert re.fullmatch(r"[0-9a-f-]{36}", error["id"])
    assert "detail" in error
    return error


def test_accepts_a_message_and_answers_202(fake: FakeFlowroute) -> None:
    response = post(fake)
    assert response.status_code == 202
    assert response.headers["Content-Type"].startswith(JSONAPI)
    data = response.json()["data"]
    assert re.fullmatch(r"mdr2-[0-9a-f]{32}", data["id"])
    assert data["type"] == "message"
    assert data["links"]["self"] == f"{fake.url}/messages/{data['id']}"
    [sent] = fake.messages
    assert (sent.id, sent.to, sent.from_, sent.body) == (
        data["id"],
        TO,
        FROM,
        "Your code is 123456",
    )
    assert sent.time.tzinfo is not None
    assert fake.requests_seen == 1


def test_url_and_settings(fake: FakeFlowroute) -> None:
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v2\.1", fake.url)
    env = fake.settings_env()
    assert env == {
        "FLOWROUTE_ACCESS_KEY": "fake-access",
        "FLOWROUTE_SECRET_KEY": "fake-secret",
        "FLOWROUTE_NUMBER": FROM,
        "SMS2FA_FLOWROUTE_URL": fake.url,
        "SMS2FA_SMS_BACKEND": "flowroute",
    }
    assert fake.settings_kwargs() == {
        "flowroute_access_key": "fake-access",
        "flowroute_secret_key": "fake-secret",
        "flowroute_number": FROM,
        "flowroute_url": fake.url,
        "sms_backend": "flowroute",
    }


def test_flat_form_and_plain_media_type_are_accepted(fake: FakeFlowroute) -> None:
    response = post(fake, {"to": TO, "from": FROM, "body": "hi 4321"}, content_type=JSONAPI)
    assert response.status_code == 202, response.text
    assert fake.last_code(TO) == "4321"


@pytest.mark.parametrize(
    "auth",
    [("fake-access", "wrong"), ("wrong", "fake-secret"), ("fake-access", ""), None],
)
def test_bad_credentials_401(fake: FakeFlowroute, auth: tuple[str, str] | None) -> None:
    error = assert_error(post(fake, auth=auth), 401)
    assert error["title"] == "Unauthorized"
    assert fake.messages == []


def test_garbled_authorization_header_401(fake: FakeFlowroute) -> None:
    for header in ("Basic !!!", "Bearer abc", "Basic " + "ZmFrZS1hY2Nlc3M=", ""):
        response = requests.post(
            fake.url + "/messages",
            json=message(),
            headers={"Authorization": header, "Content-Type": JSONAPI},
            timeout=5,
        )
        assert_error(response, 401)


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "text/plain", None, JSONAPI + "; charset=latin-1", JSONAPI + "; ext=x"],
)
def test_wrong_content_type_415(fake: FakeFlowroute, content_type: str | None) -> None:
    assert_error(post(fake, content_type=content_type), 415)
    assert fake.messages == []


def test_media_type_is_case_insensitive(fake: FakeFlowroute) -> None:
    assert post(fake, content_type='Application/VND.API+JSON;Charset="UTF-8"').status_code == 202


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"\xff\xfe",
        b"[1, 2]",
        b'"text"',
        b"",
        b'{"data": []}',
        b'{"data": {"type": "message"}}',
        b'{"data": {"type": "sms", "attributes": {}}}',
    ],
)
def test_malformed_document_400(fake: FakeFlowroute, data: bytes) -> None:
    assert_error(post(fake, data=data), 400)
    assert fake.messages == []


@pytest.mark.parametrize(
    "attributes",
    [
        {"from": FROM, "body": "x"},
        {"to": TO, "body": "x"},
        {"to": TO, "from": FROM},
        {"to": TO, "from": FROM, "body": ""},
        {"to": TO, "from": FROM, "body": "   "},
        {"to": TO, "from": FROM, "body": 123456},
        {"to": TO, "from": FROM, "body": "x", "colour": "red"},
        {"to": TO, "from": FROM, "body": "x", "is_mms": "no"},
    ],
)
def test_bad_attributes_422(fake: FakeFlowroute, attributes: dict[str, Any]) -> None:
    assert_error(post(fake, {"data": {"type": "message", "attributes": attributes}}), 422)
    assert fake.messages == []


@pytest.mark.parametrize(
    "number",
    [
        "+12065551234",
        "2065551234",
        "1206555123",
        "120655512345",
        "1-206-555-1234",
        "12065551234 ",
        "10065551234",
        "44207946000",
        12065551234,
    ],
)
def test_bad_number_422(fake: FakeFlowroute, number: Any) -> None:
    assert_error(post(fake, message(to=number)), 422)
    assert_error(post(fake, message(from_=number)), 422)
    assert fake.messages == []


def test_from_not_on_the_account_403(fake: FakeFlowroute) -> None:
    error = assert_error(post(fake, message(from_="12065550199")), 403)
    assert error["title"] == "Forbidden"
    assert fake.messages == []


def test_other_paths_404_and_methods_405(fake: FakeFlowroute) -> None:
    assert_error(post(fake, path="/message"), 404)
    assert_error(post(fake, path="/messages/mdr2-0"), 404)
    base = fake.url.removesuffix("/v2.1")
    assert_error(requests.post(base + "/v2/messages", json=message(), timeout=5), 404)
    for method in ("GET", "PUT", "PATCH", "DELETE"):
        response = post(fake, method=method)
        assert_error(response, 405)
        assert response.headers["Allow"] == "POST"
    head = requests.head(fake.url + "/messages", timeout=5)
    assert head.status_code == 405 and head.content == b""
    assert fake.requests_seen == 8
    assert fake.messages == []


def test_records_and_last_code_keeps_leading_zeros(fake: FakeFlowroute) -> None:
    other = "13125550111"
    post(fake, message(body="Your Acme 2024 code is 004217. Don't share it."))
    post(fake, message(to=other, body="Your code is 999999"))
    post(fake, message(body="Your code is 000123"))
    assert fake.last_code(TO) == "000123"
    assert fake.last_code("+" + TO) == "000123"
    assert fake.last_code(other) == "999999"
    assert [m.body for m in fake.messages_to("+" + TO)] == [
        "Your Acme 2024 code is 004217. Don't share it.",
        "Your code is 000123",
    ]
    assert len(fake.messages) == 3
    fake.messages.clear()  # a copy: the fake keeps its own
    assert len(fake.messages) == 3
    fake.clear()
    assert fake.messages == [] and fake.requests_seen == 0


def test_last_code_length_and_errors(fake: FakeFlowroute) -> None:
    with pytest.raises(NoCodeError):
        fake.last_code(TO)
    with pytest.raises(LookupError):
        fake.last_code(TO)
    post(fake, message(body="Code 0042917 expires at 1530"))
    assert fake.last_code(TO) == "1530"
    assert fake.last_code(TO, length=7) == "0042917"
    with pytest.raises(AssertionError, match="no 6-digit code"):
        fake.last_code(TO, length=6)
    post(fake, message(body="no code here, only 123"))
    with pytest.raises(NoCodeError):
        fake.last_code(TO)
    with pytest.raises(ValueError):
        fake.messages_to("not a number")


def test_fail_next_with_retry_after(fake: FakeFlowroute) -> None:
    fake.fail_next(429, count=2, retry_after=3)
    fake.fail_next(503, retry_after=0.5)
    first, second, third = post(fake), post(fake), post(fake)
    for response in (first, second):
        assert assert_error(response, 429)["title"] == "Too Many Requests"
        assert response.headers["Retry-After"] == "3"
    assert_error(third, 503)
    assert third.headers["Retry-After"] == "0.5"
    assert post(fake).status_code == 202
    assert fake.requests_seen == 4
    assert len(fake.messages) == 1
    fake.fail_next(500)
    response = post(fake)
    assert_error(response, 500)
    assert "Retry-After" not in response.headers
    with pytest.raises(ValueError):
        fake.fail_next(200)


def test_drop_next_closes_without_answer(fake: FakeFlowroute) -> None:
    fake.drop_next()
    with pytest.raises(requests.ConnectionError):
        post(fake)
    assert fake.requests_seen == 1
    assert fake.messages == []
    assert post(fake).status_code == 202


def test_delay_next_and_standing_delay(fake: FakeFlowroute) -> None:
    fake.delay_next(0.3)
    started = time.monotonic()
    assert post(fake).status_code == 202
    assert time.monotonic() - started >= 0.3
    fake.delay = 0.2
    with pytest.raises(requests.ReadTimeout):
        requests.post(
            fake.url + "/messages",
            json=message(),
            timeout=(1, 0.05),
            auth=("fake-access", "fake-secret"),
            headers={"Content-Type": JSONAPI},
        )
    fake.reset_faults()
    assert fake.delay == 0
    # The request that timed out on the client side is still handled, as the real one would be.
    deadline = time.monotonic() + 2
    while len(fake.messages) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(fake.messages) == 2


def test_reset_faults(fake: FakeFlowroute) -> None:
    fake.fail_next(500, count=3)
    fake.drop_next(2)
    fake.delay_next(5)
    fake.reset_faults()
    assert post(fake).status_code == 202


def test_keep_alive_connections_are_cut_on_stop() -> None:
    fake = FakeFlowroute().start()
    session = requests.Session()
    response = session.post(
        fake.url + "/messages",
        json=message(),
        timeout=5,
        auth=("fake-access", "fake-secret"),
        headers={"Content-Type": JSONAPI},
    )
    assert response.status_code == 202
    fake.stop()
    with pytest.raises(requests.ConnectionError):
        session.post(
            response.url,
            json=message(),
            timeout=5,
            auth=("fake-access", "fake-secret"),
            headers={"Content-Type": JSONAPI},
        )
    session.close()
    fake.stop()  # idempotent


def test_not_running() -> None:
    fake = FakeFlowroute()
    with pytest.raises(RuntimeError):
        _ = fake.url
    with fake:
        with pytest.raises(RuntimeError):
            fake.start()
        assert fake.url
    with pytest.raises(ValueError):
        FakeFlowroute(number="+12065550100")


def test_threads_do_not_lose_messages(fake: FakeFlowroute) -> None:
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        codes = list(
            pool.map(lambda i: post(fake, message(body=f"code {i:06d}")).status_code, range(40))
        )
    assert codes == [202] * 40
    assert sorted(m.body for m in fake.messages) == [f"code {i:06d}" for i in range(40)]
    assert fake.requests_seen == 40


@pytest.mark.server
def test_reachable_from_a_subprocess(fake: FakeFlowroute) -> None:
    script = (
        "import json, os, sys, urllib.request, base64\n"
        "env = json.loads(sys.argv[1])\n"
        "auth = base64.b64encode((env['FLOWROUTE_ACCESS_KEY'] + ':' + "
        "env['FLOWROUTE_SECRET_KEY']).encode()).decode()\n"
        "body = json.dumps({'to': '12065551234', 'from': env['FLOWROUTE_NUMBER'],"
        " 'body': 'code 5555'}).encode()\n"
        "req = urllib.request.Request(env['SMS2FA_FLOWROUTE_URL'] + '/messages', data=body,"
        " headers={'Authorization': 'Basic ' + auth,"
        " 'Content-Type': 'application/vnd.api+json'})\n"
        "print(urllib.request.urlopen(req, timeout=5).status)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, json.dumps(fake.settings_env())],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    assert out.stdout.strip() == "202"
    assert fake.last_code(TO) == "5555"


def test_plugin_fixture(request: pytest.FixtureRequest) -> None:
    server = request.getfixturevalue("fake_flowroute")
    assert isinstance(server, FakeFlowroute)
    assert post(server).status_code == 202


def test_refuses_connections_after_stop() -> None:
    with FakeFlowroute() as server:
        port = server.port
    with socket.socket() as probe, pytest.raises(OSError):
        probe.settimeout(1)
        probe.connect(("127.0.0.1", port))
