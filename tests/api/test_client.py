"""SMSAuthClient against a real ``sms2fa serve`` (one worker) and a real FakeFlowroute."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from sms2fa_middleware.api.client import SMSAuthClient, SMSAuthError
from sms2fa_middleware.testing import FakeFlowroute
from tests.support import SECRET
from tests.support.servers import serve

NUMBER = "12065551234"
TOKEN = "client-test-token-0123456789abcdef"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeFlowroute]:
    with FakeFlowroute() as fake:
        yield fake


def _env(fake: FakeFlowroute, folder: Path, **extra: str) -> dict[str, str]:
    return {
        **fake.settings_env(),
        "SMS2FA_SECRET_KEY": SECRET,
        "SMS2FA_DATABASE_URL": f"sqlite:///{folder / 'client.db'}",
        "SMS2FA_RECIPIENT_SEND_LIMIT": "0",
        "SMS2FA_RESEND_COOLDOWN": "30",
        "SMS2FA_API_TOKEN": "",
        "SMS2FA_ALLOW_CUSTOM_MESSAGE": "1",  # test_create_auth_passes_options sends one
        **extra,
    }


@pytest.fixture(scope="module")
def base(fake: FakeFlowroute, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A served instance at "/" without a token, as the original ran."""
    with serve(_env(fake, tmp_path_factory.mktemp("client"))) as url:
        yield url


@pytest.fixture(scope="module")
def token_base(fake: FakeFlowroute, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A served instance that wants a bearer token, mounted under /sms2fa."""
    folder = tmp_path_factory.mktemp("client-token")
    with serve(_env(fake, folder, SMS2FA_API_TOKEN=TOKEN), prefix="/sms2fa") as url:
        yield url + "/sms2fa"


def _verify(client: SMSAuthClient, fake: FakeFlowroute, auth_id: str) -> dict[str, Any]:
    created = client.create_auth(auth_id, NUMBER)
    assert created["message"] == "Success: Verification code created."
    assert created["auth_id"] == auth_id
    assert created["attempts_left"] == 3
    assert created["expires_at"].endswith("Z")
    datetime.fromisoformat(created["expires_at"].replace("Z", "+00:00"))
    return client.authenticate_code(auth_id, fake.last_code(NUMBER))


@pytest.mark.server
def test_endpoint_without_scheme(base: str, fake: FakeFlowroute) -> None:
    client = SMSAuthClient(base.removeprefix("http://"))  # "127.0.0.1:PORT", as the README
    assert _verify(client, fake, "no-scheme") == {
        "authenticated": True,
        "auth_id": "no-scheme",
        "message": "Success: Authorization code verified.",
        "sent_to": "+1••••••••34",
    }


@pytest.mark.parametrize("suffix", ["", "/"])
def test_endpoint_with_scheme(base: str, fake: FakeFlowroute, suffix: str) -> None:
    client = SMSAuthClient(base + suffix)
    assert _verify(client, fake, f"scheme{suffix}")["authenticated"] is True


def test_create_auth_passes_options(base: str, fake: FakeFlowroute) -> None:
    client = SMSAuthClient(base)
    created = client.create_auth(
        "options", NUMBER, code_length=8, retries=5, message="Your code: {code}"
    )
    assert created["attempts_left"] == 5
    code = fake.last_code(NUMBER)
    assert len(code) == 8
    assert fake.messages[-1].body == f"Your code: {code}"


def test_wrong_code_raises_an_http_error_with_the_details(base: str, fake: FakeFlowroute) -> None:
    client = SMSAuthClient(base)
    client.create_auth("wrong", NUMBER)
    code = fake.last_code(NUMBER)
    bad = str((int(code) + 1) % 10 ** len(code)).zfill(len(code))
    for left in (2, 1, 0):
        with pytest.raises(requests.HTTPError) as caught:
            client.authenticate_code("wrong", bad)
        error = caught.value
        assert isinstance(error, SMSAuthError)
        assert error.reason == "InvalidAuthCode"
        assert error.message == "Invalid code"
        assert error.attempts_left == left
        assert error.response is not None and error.response.status_code == 400
    with pytest.raises(SMSAuthError) as caught:
        client.authenticate_code("wrong", code)
    assert caught.value.reason == "UnknownAuthId"
    assert caught.value.attempts_left == 0


def test_unknown_auth_id_raises(base: str) -> None:
    with pytest.raises(SMSAuthError) as caught:
        SMSAuthClient(base).authenticate_code("never-created", "123456")
    assert (caught.value.reason, caught.value.message, caught.value.attempts_left) == (
        "UnknownAuthId",
        "Unknown auth id",
        0,
    )


def test_bad_request_raises_invalid_api_usage(base: str, fake: FakeFlowroute) -> None:
    client = SMSAuthClient(base)
    seen = fake.requests_seen
    for auth_id, recipient in (("bad", "-12065551234"), ("a" * 121, NUMBER)):
        with pytest.raises(SMSAuthError) as caught:
            client.create_auth(auth_id, recipient)
        assert caught.value.reason == "InvalidAPIUsage"
        assert caught.value.message
        assert caught.value.attempts_left is None
        assert caught.value.response is not None and caught.value.response.status_code == 400
    with pytest.raises(SMSAuthError) as caught:
        client.authenticate_code("bad", "+0001268")
    assert caught.value.reason == "InvalidAPIUsage"
    assert fake.requests_seen == seen


def test_rate_limit_raises_with_retry_after(base: str, fake: FakeFlowroute) -> None:
    client = SMSAuthClient(base)
    client.create_auth("cooldown", NUMBER)
    with pytest.raises(SMSAuthError) as caught:
        client.create_auth("cooldown", NUMBER)
    assert caught.value.reason == "RateLimited"
    assert caught.value.retry_after is not None and 1 <= caught.value.retry_after <= 31
    assert caught.value.response is not None and caught.value.response.status_code == 429


def test_failed_send_raises_sms_delivery_failed(base: str, fake: FakeFlowroute) -> None:
    client = SMSAuthClient(base)
    fake.fail_next(500)
    with pytest.raises(SMSAuthError) as caught:
        client.create_auth("send-fails", NUMBER)
    assert caught.value.reason == "SMSDeliveryFailed"
    assert caught.value.response is not None and caught.value.response.status_code == 502
    assert _verify(client, fake, "send-fails")["authenticated"] is True


@pytest.mark.server
def test_token_option(token_base: str, fake: FakeFlowroute) -> None:
    seen = fake.requests_seen
    for client in (
        SMSAuthClient(token_base),
        SMSAuthClient(token_base, token="wrong-token", allow_http=True),
    ):
        with pytest.raises(SMSAuthError) as caught:
            client.create_auth("token", NUMBER)
        assert caught.value.reason == "Unauthorized"
        assert caught.value.response is not None and caught.value.response.status_code == 401
        with pytest.raises(SMSAuthError):
            client.authenticate_code("token", "123456")
    assert fake.requests_seen == seen
    client = SMSAuthClient(token_base.removeprefix("http://"), token=TOKEN, allow_http=True)
    assert _verify(client, fake, "token")["authenticated"] is True


@pytest.mark.parametrize(
    "endpoint",
    ["localhost:8000", "http://api.example/sms2fa", "HTTP://api.example", "ftp://api.example"],
)
def test_a_token_is_refused_over_plain_http(endpoint: str) -> None:
    with pytest.raises(ValueError, match="https://") as refused:
        SMSAuthClient(endpoint, token=TOKEN)
    assert TOKEN not in str(refused.value)
    assert "allow_http=True" in str(refused.value)
    # https, or no token at all, needs no permission.
    secure = SMSAuthClient("https://api.example/sms2fa", token=TOKEN)
    assert secure.session.headers["Authorization"] == f"Bearer {TOKEN}"
    assert secure.endpoint == "https://api.example/sms2fa/"
    assert "Authorization" not in SMSAuthClient("localhost:8000").session.headers
