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
from sqlalchemy import update

from sms2fa_middleware import Settings, Verifier
from sms2fa_middleware.store import Store, codes
from sms2fa_middleware.testing import FakeFlowroute
from tests.support import SECRET
from tests.support.databases import table_names
from tests.support.servers import free_port, running

NUMBER = "12065551234"


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any sms2fa or Flowroute setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMS2FA_", "FLOWROUTE_"))}
    env.update(extra)
    return env


def sms2fa(*args: str) -> list[str]:
    """The installed ``sms2fa`` script when there is one, else ``python -m``."""
    script = shutil.which("sms2fa")
    return [script, *args] if script else [sys.executable, "-m", "sms2fa_middleware", *args]


def run(
    args: list[str], env: Mapping[str, str], cwd: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, env=dict(env), cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


# -- serve --dev and the original README ---------------------------------------------------------


@pytest.fixture
def dev_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """``python -m sms2fa_middleware serve --dev`` in an empty folder; (port, console log)."""
    port = free_port()
    log = tmp_path / "console.log"
    args = ["sms2fa_middleware", "serve", "--dev", "--port", str(port)]
    env = clean_env(SMS2FA_DATA_DIR=str(tmp_path / "data"))
    with running(args, env, port, log_path=log, cwd=tmp_path, inherit_env=False):
        yield port, log


def curl(command: str, port: int) -> dict[str, Any]:
    """Run one of the README's curl lines (its port replaced); the decoded JSON answer."""
    command = command.replace("localhost:8000", f"localhost:{port}")
    if shutil.which("curl"):
        done = subprocess.run(
            ["bash", "-c", command], capture_output=True, text=True, timeout=30, check=True
        )
        body: dict[str, Any] = json.loads(done.stdout)
        return body
    # No curl here: the same method, header and body through requests.
    if command.startswith("curl -v -X POST"):
        data = re.search(r"-d '([^']*)'", command)
        assert data is not None
        response = requests.post(
            f"http://localhost:{port}",
            data=data.group(1),
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
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


def test_dev_server_answers_the_readme_curl_examples(
    dev_server: tuple[int, Path], tmp_path: Path
) -> None:
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
    assert verified == {
        "authenticated": True,
        "auth_id": "my_identifier",
        "message": "Success: Authorization code verified.",
        "sent_to": "+1••••••••34",
    }
    # The default database: sms2fa.db in the data directory, nothing in the working directory.
    assert (tmp_path / "data" / "sms2fa.db").exists()
    assert not list(tmp_path.glob("sms2fa.db*"))


# -- start-up failures ----------------------------------------------------------------------------


def test_serve_without_a_secret_key_refuses_to_start(tmp_path: Path) -> None:
    done = run(sms2fa("serve", "--port", str(free_port())), clean_env(), tmp_path)
    assert done.returncode != 0
    assert "SMS2FA_SECRET_KEY" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "sms2fa.db").exists()  # stopped before touching anything


def test_serve_with_an_empty_secret_key_refuses_to_start(tmp_path: Path) -> None:
    done = run(
        sms2fa("serve", "--port", str(free_port())), clean_env(SMS2FA_SECRET_KEY=""), tmp_path
    )
    assert done.returncode != 0
    assert "SMS2FA_SECRET_KEY" in done.stderr


@pytest.mark.parametrize("value", ["3", "11", "six"])
def test_serve_with_a_bad_code_length_names_the_variable_and_range(
    tmp_path: Path, value: str
) -> None:
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
    env = clean_env(SMS2FA_SECRET_KEY=SECRET, SMS2FA_DATABASE_URL=url, SMS2FA_SMS_BACKEND="console")
    done = run(sms2fa("serve", "--port", str(free_port())), env, tmp_path)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    # One line that names the setting, the place and the cause.
    line = done.stderr.strip().splitlines()[-1]
    assert "SMS2FA_DATABASE_URL" in line
    if where.startswith("sqlite"):
        assert "x.db" in line and "unable to open" in line, line
    else:
        assert f"127.0.0.1:{url.split(':')[-1].split('/')[0]}" in line
        assert "refused" in line.lower(), line


def test_help_lists_the_commands(tmp_path: Path) -> None:
    done = run([sys.executable, "-m", "sms2fa_middleware", "--help"], clean_env(), tmp_path)
    assert done.returncode == 0
    for command in ("serve", "demo", "migrate", "purge"):
        assert command in done.stdout


# -- migrate --------------------------------------------------------------------------------------


def test_migrate_creates_the_tables_and_can_run_again(tmp_path: Path, database_url: str) -> None:
    env = clean_env(SMS2FA_DATABASE_URL=database_url)  # no secret key, no SMS provider
    done = run(sms2fa("migrate"), env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert table_names(database_url) >= {"sms2fa_codes", "sms2fa_counters", "sms2fa_revocations"}
    store = Store(database_url)
    try:
        store.hit("kept", 60, datetime.now(timezone.utc))
        again = run(sms2fa("migrate"), env, tmp_path)
        assert again.returncode == 0, again.stderr
        assert store.peek("kept", datetime.now(timezone.utc))[0] == 1  # rows survive
    finally:
        store.dispose()


def test_migrate_on_an_unreachable_database_says_so(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'no' / 'such' / 'folder' / 'x.db'}"
    done = run(sms2fa("migrate"), clean_env(SMS2FA_DATABASE_URL=url), tmp_path)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "SMS2FA_DATABASE_URL" in done.stderr.strip().splitlines()[-1]


def test_migrate_help_says_it_is_safe_to_repeat(tmp_path: Path) -> None:
    done = run(sms2fa("migrate", "--help"), clean_env(), tmp_path)
    assert done.returncode == 0
    assert "safe" in done.stdout and "SMS2FA_DATABASE_URL" in done.stdout


# -- purge ----------------------------------------------------------------------------------------


def test_purge_deletes_expired_codes(tmp_path: Path, fake_flowroute: FakeFlowroute) -> None:
    url = f"sqlite:///{tmp_path / 'purge.db'}"
    verifier = Verifier(
        Settings(
            secret_key=SECRET,
            database_url=url,
            resend_cooldown=0,
            **fake_flowroute.settings_kwargs(),
        )
    )
    try:
        verifier.start("old", NUMBER)
        past = datetime.now(timezone.utc) - timedelta(seconds=1)
        verifier.store.run(
            lambda conn: conn.execute(
                update(codes).where(codes.c.auth_id == "old").values(expires_at=past)
            )
        )
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


# -- the command's own manners --------------------------------------------------------------------


def test_version_prints_the_package_version(tmp_path: Path) -> None:
    from sms2fa_middleware import __version__

    done = run(sms2fa("--version"), clean_env(), tmp_path)
    assert done.returncode == 0
    assert done.stdout.strip() == f"sms2fa {__version__}"


def test_help_is_plain_text_and_every_option_is_explained(tmp_path: Path) -> None:
    import argparse

    from sms2fa_middleware.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in [("sms2fa", parser), *commands.choices.items()]:
        for action in sub._actions:
            assert action.help, f"{name} {action.option_strings} has no help"
        done = run(sms2fa(*([] if sub is parser else [name]), "--help"), clean_env(), tmp_path)
        assert done.returncode == 0
        assert "``" not in done.stdout  # no raw reST
    assert set(commands.choices) == {"serve", "demo", "migrate", "purge", "check-routes", "rules"}


@pytest.mark.parametrize(
    "args, says",
    [
        (("serve", "--workers", "0"), "--workers: must be at least 1"),
        (("serve", "--workers", "many"), "--workers: expected a whole number"),
        (("serve", "--port", "70000"), "--port: must be between 1 and 65535"),
        (("demo", "--port", "-1"), "--port"),
        (("serve", "--header-timeout", "0"), "SMS2FA_SERVE_HEADER_TIMEOUT (--header-timeout)"),
        (
            ("serve", "--max-connections", "many"),
            "SMS2FA_SERVE_MAX_CONNECTIONS (--max-connections)",
        ),
    ],
)
def test_invalid_options_are_refused_clearly(
    tmp_path: Path, args: tuple[str, ...], says: str
) -> None:
    done = run(sms2fa(*args), clean_env(SMS2FA_SECRET_KEY=SECRET), tmp_path)
    assert done.returncode == 2
    assert says in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_a_busy_port_is_refused_before_any_url_is_printed(tmp_path: Path, command: str) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        extra = ("--dev",) if command == "serve" else ()
        done = run(sms2fa(command, "--port", str(port), *extra), clean_env(), tmp_path)
    assert done.returncode == 2
    assert f"127.0.0.1:{port}" in done.stderr and "--port" in done.stderr
    assert "http://" not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr


def test_serve_on_a_public_address_without_a_token_refuses(tmp_path: Path) -> None:
    """An open `serve` would be an SMS relay for anyone who reaches it."""
    env = clean_env(
        SMS2FA_SECRET_KEY=SECRET,
        SMS2FA_SMS_BACKEND="console",
        SMS2FA_DATA_DIR=str(tmp_path / "data"),
    )
    done = run(sms2fa("serve", "--host", "0.0.0.0", "--port", str(free_port())), env, tmp_path)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "SMS2FA_API_TOKEN" in lines[0] and "--public" in lines[0]
    assert not (tmp_path / "data").exists()  # refused before touching anything


def test_serve_on_a_public_address_starts_with_a_token_or_public(tmp_path: Path) -> None:
    port = free_port()
    base = clean_env(
        SMS2FA_SECRET_KEY=SECRET,
        SMS2FA_SMS_BACKEND="console",
        SMS2FA_DATA_DIR=str(tmp_path / "data"),
    )
    for extra_env, extra_args in (({"SMS2FA_API_TOKEN": "t" * 32}, ()), ({}, ("--public",))):
        args = ["sms2fa_middleware", "serve", "--host", "0.0.0.0", "--port", str(port), *extra_args]
        with running(
            args, {**base, **extra_env}, port, path="/health", cwd=tmp_path, inherit_env=False
        ) as url:
            assert requests.get(f"{url}/health", timeout=10).json() == {"status": "ok"}


def test_serve_without_a_provider_outside_development_refuses(tmp_path: Path) -> None:
    env = clean_env(SMS2FA_SECRET_KEY=SECRET, SMS2FA_DATA_DIR=str(tmp_path / "data"))
    done = run(sms2fa("serve", "--port", str(free_port())), env, tmp_path)
    assert done.returncode != 0
    assert "FLOWROUTE_ACCESS_KEY" in done.stderr and "SMS2FA_SMS_BACKEND=console" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_postgresql_url_that_is_malformed_is_one_line(tmp_path: Path) -> None:
    env = clean_env(
        SMS2FA_SECRET_KEY=SECRET,
        SMS2FA_SMS_BACKEND="console",
        SMS2FA_DATABASE_URL="postgresql+psycopg://postgres:s3cret@:x/y",
    )
    done = run(sms2fa("serve", "--port", str(free_port())), env, tmp_path)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "SMS2FA_DATABASE_URL" in done.stderr and "s3cret" not in done.stderr
