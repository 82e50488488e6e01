"""No code, secret or full phone number in any log line, even at DEBUG: the engine, the
middleware and the API in-process, and a ``sms2fa serve`` subprocess.

From the defects of the original Flowroute sms-verification service and the abuse review."""

from __future__ import annotations

import logging
import os
import re
import sys
import warnings
from pathlib import Path

import phonenumbers
import pytest
import requests
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from sms2fa_middleware import Identity, Settings
from sms2fa_middleware.asgi import SMS2FAMiddleware
from sms2fa_middleware.testing import FakeFlowroute
from tests.support import SECRET, Client
from tests.support.servers import free_port, running

with warnings.catch_warnings():  # starlette >= 1.0 would rather have httpx2
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


ALICE = "+12065550100"


BOB = "12065550111"


CAROL = "+14155552671"


API_TOKEN = "api-token-" + "7" * 24


def _forbidden_strings(fake: FakeFlowroute, *extra: str) -> set[str]:
    """Everything that must never appear in a log line."""
    found = {SECRET, API_TOKEN, fake.secret_key, *extra}
    for number in (ALICE, BOB, CAROL):
        digits = number.lstrip("+")
        found |= {digits, "+" + digits, digits[1:]}  # E.164, 11-digit, national digits
        parsed = phonenumbers.parse("+" + digits)
        found |= {
            phonenumbers.format_number(parsed, style)
            for style in (
                phonenumbers.PhoneNumberFormat.NATIONAL,
                phonenumbers.PhoneNumberFormat.INTERNATIONAL,
            )
        }
    for message in fake.messages:
        found |= set(re.findall(r"(?<![0-9])[0-9]{4,10}(?![0-9])", message.body))
    return {s for s in found if s}


def _assert_clean(log_text: str, forbidden: set[str]) -> None:
    # Short digit strings (codes) are looked for as whole words, so that a code that happens
    # to be part of a hex message id or a longer number is not taken for a leak.
    leaked = sorted(
        s
        for s in forbidden
        if re.search(
            rf"(?<![0-9A-Za-z]){re.escape(s)}(?![0-9A-Za-z])"
            if s.isdigit() and len(s) <= 10
            else re.escape(s),
            log_text,
        )
    )
    assert not leaked, f"leaked into the log: {leaked}\n{log_text}"


def _wrong(code: str) -> str:
    return "".join(str((int(d) + 1) % 10) for d in code)


def _protected_app(fake: FakeFlowroute, database_url: str) -> SMS2FAMiddleware:
    users = {"alice": ALICE, "bob": BOB}

    async def account(request: StarletteRequest) -> PlainTextResponse:
        return PlainTextResponse(f"hello {request.state.sms2fa.auth_id}")

    def identify(request: StarletteRequest) -> Identity | None:
        user = request.cookies.get("user")
        return Identity(user, users[user]) if user in users else None

    settings = Settings(
        secret_key=SECRET,
        database_url=database_url,
        api_token=API_TOKEN,
        resend_cooldown=0,
        recipient_send_limit=0,
        address_send_limit=0,
        max_failed_checks=3,
        retries_allowed=5,  # the code outlives the failure cap, so the lock is what refuses
        **fake.settings_kwargs(),
    )
    return SMS2FAMiddleware(
        Starlette(routes=[Route("/account", account)]),
        settings,
        protect=["/account"],
        identify=identify,
    )


def _csrf(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, page
    return match.group(1)


_DEBUG_SERVE = """
import logging, sys
import uvicorn
logging.basicConfig(level=logging.DEBUG, format="%(name)s %(levelname)s %(message)s")
_run = uvicorn.run
def run(*args, **kwargs):
    kwargs["log_level"] = "debug"
    return _run(*args, **kwargs)
uvicorn.run = run
from sms2fa_middleware.cli import main
sys.exit(main(sys.argv[1:]))
"""

with warnings.catch_warnings():  # starlette >= 1.0 would rather have httpx2
    warnings.simplefilter("ignore")


pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
if sys.platform == "win32":  # pragma: no cover
    pytestmark = [pytestmark, pytest.mark.skip("POSIX only")]


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


def test_full_flow_at_debug_logs_no_code_secret_or_number(
    tmp_path: Path, fake_flowroute: FakeFlowroute, caplog: pytest.LogCaptureFixture
) -> None:
    """Middleware (challenge, wrong code, resend, right code, failed send, lockout) and the
    mounted API (create, wrong and right checks, a bad token), every logger at DEBUG."""
    fake = fake_flowroute
    html = {"accept": "text/html"}
    cookies: list[str] = []
    with caplog.at_level(logging.DEBUG):  # the root logger: every library inherits it
        app = _protected_app(fake, f"sqlite:///{tmp_path / 'flow.db'}")
        client = TestClient(app, follow_redirects=False)
        client.cookies.set("user", "alice")

        response = client.get("/account", headers=html)
        assert response.status_code == 303, response.text
        challenge = response.headers["location"]
        page = client.get(challenge, headers=html)
        assert page.status_code == 200
        token = _csrf(page.text)
        cookies.append(client.cookies["sms2fa_csrf"])
        first = fake.last_code(ALICE)
        form = {"csrf_token": token, "next": "/account"}
        assert (
            client.post("/sms2fa/challenge", data={**form, "code": _wrong(first)}).status_code
            == 400
        )
        assert client.post("/sms2fa/challenge/resend", data=form).status_code == 303
        second = fake.last_code(ALICE)
        response = client.post("/sms2fa/challenge", data={**form, "code": second})
        assert response.status_code == 303 and response.headers["location"] == "/account"
        cookies.append(client.cookies["sms2fa"])
        assert client.get("/account").text == "hello alice"

        client.cookies.clear()
        client.cookies.set("user", "bob")
        fake.fail_next(500)
        response = client.get("/account", headers=html)
        assert response.status_code == 303 and fake.messages_to(BOB) == []  # send failed
        response = client.get("/account", headers=html)  # sends now
        assert response.status_code == 303
        token = _csrf(client.get(response.headers["location"], headers=html).text)
        bob_code = fake.last_code(BOB)
        for _ in range(4):  # three wrong guesses lock bob out; the fourth is refused (429)
            client.post(
                "/sms2fa/challenge",
                data={"csrf_token": token, "next": "/account", "code": _wrong(bob_code)},
            )
        assert (
            client.post(
                "/sms2fa/challenge",
                data={"csrf_token": token, "next": "/account", "code": bob_code},
            ).status_code
            == 429
        )

        api = TestClient(app)
        bearer = {"authorization": f"Bearer {API_TOKEN}"}
        assert (
            api.post("/sms2fa/", json={"auth_id": "carol", "recipient": CAROL}).status_code == 401
        )
        assert (
            api.post(
                "/sms2fa/", json={"auth_id": "carol", "recipient": CAROL}, headers=bearer
            ).status_code
            == 200
        )
        carol_code = fake.last_code(CAROL)
        assert (
            api.get(
                "/sms2fa/", params={"auth_id": "carol", "code": _wrong(carol_code)}, headers=bearer
            ).status_code
            == 400
        )
        assert (
            api.post(
                "/sms2fa/check", json={"auth_id": "carol", "code": carol_code}, headers=bearer
            ).status_code
            == 200
        )
        app.verifier.store.dispose()

    # The test's own HTTP client (httpx) logs the URLs it asks for: those are this test's
    # logs, not the library's.
    records = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert any(r.name == "sms2fa" for r in records)  # the flow was logged at all
    assert any(r.levelno == logging.DEBUG for r in records)  # ... and at DEBUG
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    log_text = "\n".join(formatter.format(r) + f" {r.args!r}" for r in records)
    _assert_clean(log_text, _forbidden_strings(fake, *cookies, fake.access_key))


@pytest.mark.slow
def test_serve_at_debug_logs_no_code_secret_or_number(tmp_path: Path) -> None:
    """The same for a ``sms2fa serve`` process: its whole output at DEBUG."""
    log = tmp_path / "serve.log"
    (tmp_path / "debug_serve.py").write_text(_DEBUG_SERVE)
    port = free_port()
    with FakeFlowroute() as fake:
        env = {
            **fake.settings_env(),
            "SMS2FA_SECRET_KEY": SECRET,
            "SMS2FA_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}",
            "SMS2FA_API_TOKEN": API_TOKEN,
            "SMS2FA_RESEND_COOLDOWN": "0",
            "SMS2FA_MAX_FAILED_CHECKS": "3",
            "SMS2FA_RETRIES_ALLOWED": "5",  # the code outlives the cap: the lock refuses
        }
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(tmp_path), os.environ.get("PYTHONPATH", "")) if p
        )
        args = ["debug_serve", "serve", "--port", str(port), "--workers", "1"]
        with running(args, env, port, log_path=str(log)) as base:
            bearer = {"Authorization": f"Bearer {API_TOKEN}"}
            with requests.Session() as http:
                assert (
                    http.post(base + "/", json={"auth_id": "alice", "recipient": ALICE}).status_code
                    == 401
                )
                for auth_id, number in (("alice", ALICE), ("bob", BOB)):
                    assert (
                        http.post(
                            base + "/",
                            json={"auth_id": auth_id, "recipient": number},
                            headers=bearer,
                        ).status_code
                        == 200
                    )
                    code = fake.last_code(number)
                    assert (
                        http.get(
                            base + "/",
                            params={"auth_id": auth_id, "code": _wrong(code)},
                            headers=bearer,
                        ).status_code
                        == 400
                    )
                    assert (
                        http.get(
                            base + "/", params={"auth_id": auth_id, "code": code}, headers=bearer
                        ).status_code
                        == 200
                    )
                fake.fail_next(500)
                assert (
                    http.post(
                        base + "/", json={"auth_id": "carol", "recipient": CAROL}, headers=bearer
                    ).status_code
                    == 502
                )
                assert (
                    http.post(
                        base + "/", json={"auth_id": "carol", "recipient": CAROL}, headers=bearer
                    ).status_code
                    == 200
                )
                code = fake.last_code(CAROL)
                for _ in range(4):
                    http.post(
                        base + "/check",
                        json={"auth_id": "carol", "code": _wrong(code)},
                        headers=bearer,
                    )
                assert (
                    http.post(
                        base + "/check", json={"auth_id": "carol", "code": code}, headers=bearer
                    ).status_code
                    == 429
                )
        output = log.read_text(errors="replace")
        assert "sms2fa DEBUG" in output or "urllib3.connectionpool DEBUG" in output, output
        assert "event=approved" in output, output
        _assert_clean(output, _forbidden_strings(fake, fake.access_key))
