"""The ``sms2fa`` command, run as a real process, in a clean environment."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import SECRET
from servers import free_port, running
from sqlalchemy import update

from sms2fa_middleware import Settings, Verifier
from sms2fa_middleware.store import codes
from sms2fa_middleware.testing import FakeFlowroute

NUMBER = "12065551234"


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any sms2fa or Flowroute setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SMS2FA_", "FLOWROUTE_"))}
    env.update(extra)
    return env


def sms2fa(*args: str) -> list[str]:
    """The installed ``sms2fa`` script when there is one, else ``python -m``."""
    script = shutil.which("sms2fa")
    return [script, *args] if script else [sys.executable, "-m", "sms2fa_middleware", *args]


def run(args: list[str], env: Mapping[str, str], cwd: Path,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=dict(env), cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


# -- serve --dev and the original README ---------------------------------------------------------


@pytest.fixture
def dev_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """``python -m sms2fa_middleware serve --dev`` in an empty folder; (port, console log)."""
    port = free_port()
    log = tmp_path / "console.log"
    args = ["sms2fa_middleware", "serve", "--dev", "--port", str(port)]
    with running(args, clean_env(), port, log_path=log, cwd=tmp_path, inherit_env=False):
        yield port, log


def curl(command: str, port: int) -> dict[str, Any]:
    """Run one of the README's curl lines (its port replaced); the decoded JSON answer."""
    command = command.replace("localhost:8000", f"localhost:{port}")
    if shutil.which("curl"):
        done = subprocess.run(["bash", "-c", command], capture_output=True, text=True,
                              timeout=30, check=True)
        body: dict[str, Any] = json.loads(done.stdout)
        return body
    # No curl here: the same method, header and body through requests.
    if command.startswith("curl -v -X POST"):
        data = re.search(r"-d '([^']*)'", command)
        assert data is not None
        response = requests.post(f"http://localhost:{port}", data=data.group(1),
                                 headers={"Content-Type": "application/json"}, timeout=30)
    else:
        url = re.search(r'"(http[^"]+)"', command)
        assert url is not None
        response = requests.get(url.group(1), timeout=30)
    result: dict[str, Any] = response.json()
    return result


# The README's two commands, word for word but for the phone number.
README_POST = (
    """curl -v -X POST -d '{"auth_id": "my_identifier", "recipient": "my_phone_number"}' """
    """-H "Content-Type: application/json" localhost:8000"""
)
README_GET = 'curl -X GET "http://localhost:8000?auth_id=my_identifier&code=1234"'


def test_dev_server_answers_the_readme_curl_examples(dev_server: tuple[int, Path],
                                                     tmp_path: Path) -> None:
    port, log = dev_server
    created = curl(README_POST.replace("my_phone_number", NUMBER), port)
    assert created["message"] == "Success: Verification code created."
    assert created["auth_id"] == "my_identifier"
    # The README's own GET, code 1234: a wrong guess (codes are 6 digits), answered as documented.
    wrong = curl(README_GET, port)
    assert wrong == {"attempts_left": 2, "message": "Invalid code", "reason": "InvalidAuthCode"}
    # The code is on the server's console (development mode: nothing is sent).
    console = log.read_text(errors="replace")
    found = re.findall(r"verification code is (\d+)", console)
    assert len(found) == 1, console
    code = found[0]
    assert len(code) == 6
    assert NUMBER not in console  # the number is masked even there
    assert "NOT SENT" in console
    verified = curl(README_GET.replace("code=1234", f"code={code}"), port)
    assert verified == {"authenticated": True, "auth_id": "my_identifier",
                        "message": "Success: Authorization code verified.",
                        "sent_to": "+1••••••••34"}
    # The default database: sms2fa.db in the working directory.
    assert (tmp_path / "sms2fa.db").exists()


# -- start-up failures ----------------------------------------------------------------------------


def test_serve_without_a_secret_key_refuses_to_start(tmp_path: Path) -> None:
    done = run(sms2fa("serve", "--port", str(free_port())), clean_env(), tmp_path)
    assert done.returncode != 0
    assert "SMS2FA_SECRET_KEY" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "sms2fa.db").exists()  # stopped before touching anything


def test_serve_with_an_empty_secret_key_refuses_to_start(tmp_path: Path) -> None:
    done = run(sms2fa("serve", "--port", str(free_port())), clean_env(SMS2FA_SECRET_KEY=""),
               tmp_path)
    assert done.returncode != 0
    assert "SMS2FA_SECRET_KEY" in done.stderr


@pytest.mark.parametrize("value", ["3", "11", "six"])
def test_serve_with_a_bad_code_length_names_the_variable_and_range(tmp_path: Path,
                                                                   value: str) -> None:
    env = clean_env(SMS2FA_SECRET_KEY=SECRET, SMS2FA_CODE_LENGTH=value)
    done = run(sms2fa("serve", "--port", str(free_port())), env, tmp_path)
    assert done.returncode != 0
    assert "SMS2FA_CODE_LENGTH" in done.stderr
    if value != "six":
        assert re.search(r"\b4\b.*\b10\b", done.stderr), done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("where", ["sqlite folder missing", "postgres port closed"])
def test_serve_with_an_unreachable_database_says_so(tmp_path: Path, where: str) -> None:
    if where.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'no' / 'such' / 'folder' / 'x.db'}"
    else:
        url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test"
    env = clean_env(SMS2FA_SECRET_KEY=SECRET, SMS2FA_DATABASE_URL=url)
    done = run(sms2fa("serve", "--port", str(free_port())), env, tmp_path)
    assert done.returncode != 0
    assert "SMS2FA_DATABASE_URL" in done.stderr
    assert "Traceback" not in done.stderr


def test_help_lists_the_commands(tmp_path: Path) -> None:
    done = run([sys.executable, "-m", "sms2fa_middleware", "--help"], clean_env(), tmp_path)
    assert done.returncode == 0
    for command in ("serve", "demo", "purge"):
        assert command in done.stdout


# -- purge ----------------------------------------------------------------------------------------


def test_purge_deletes_expired_codes(tmp_path: Path, fake_flowroute: FakeFlowroute) -> None:
    url = f"sqlite:///{tmp_path / 'purge.db'}"
    verifier = Verifier(Settings(secret_key=SECRET, database_url=url, resend_cooldown=0,
                                 **fake_flowroute.settings_kwargs()))
    try:
        verifier.start("old", NUMBER)
        past = datetime.now(timezone.utc) - timedelta(seconds=1)
        verifier.store.run(lambda conn: conn.execute(
            update(codes).where(codes.c.auth_id == "old").values(expires_at=past)))
        verifier.start("live", NUMBER)
        assert verifier.store.count_codes() == 2

        env = clean_env(SMS2FA_SECRET_KEY=SECRET, SMS2FA_DATABASE_URL=url)
        done = run(sms2fa("purge"), env, tmp_path)
        assert done.returncode == 0, done.stderr
        purged = re.search(r"purged (\d+)", done.stdout)
        assert purged is not None and int(purged.group(1)) >= 1, done.stdout
        assert verifier.store.count_codes() == 1
        assert verifier.pending("live") is not None
        assert verifier.store.get_code("old") is None

        again = run(sms2fa("purge"), env, tmp_path)
        assert again.returncode == 0
        assert "purged 0" in again.stdout
    finally:
        verifier.store.dispose()


def test_purge_without_a_secret_key_refuses(tmp_path: Path) -> None:
    done = run(sms2fa("purge"), clean_env(), tmp_path)
    assert done.returncode != 0
    assert "SMS2FA_SECRET_KEY" in done.stderr
