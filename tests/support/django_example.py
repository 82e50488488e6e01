"""The Django example project (examples/django_app) for the Django and Channels tests: its
users, set up in this process or served for real, and a browser's steps through it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import requests

from sms2fa_middleware import Identity
from sms2fa_middleware.testing import FakeFlowroute

from . import ROOT, SECRET
from .servers import free_port, launch

EXAMPLE = ROOT / "examples" / "django_app"
ALICE, ALICE_PHONE, PASSWORD = "alice", "+12065550123", "correct-horse"
BOB, BOB_PHONE = "bob", "+12065550124"
CAROL, CAROL_PHONE = "carol", "+12065550125"  # her own resend cooldown: the logout test's
HTML = {"accept": "text/html"}
MARKER = "SMS2FA-EXAMPLE-ACCOUNT"  # in the account page only (accounts/templates)


_SET_UP: list[bool] = []  # the process's Django is set up once, whichever module asks first


def set_up_project(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The example project set up in this process on a SQLite file, migrated, with users
    alice (a phone) and nophone (none); once per process (test_django_routing uses it too)."""
    import django

    if _SET_UP:
        return

    db = tmp_path_factory.mktemp("django") / "django.db"
    saved = {k: os.environ.get(k) for k in ("DJANGO_SETTINGS_MODULE", "DJANGO_DB_PATH")}
    os.environ.update(DJANGO_SETTINGS_MODULE="project.settings", DJANGO_DB_PATH=str(db))
    sys.path.insert(0, str(EXAMPLE))
    try:
        django.setup()
        from django.conf import settings

        # The fastest hasher: each login hashes the password, and the default takes ~0.3 s.
        settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test.utils import setup_test_environment

    setup_test_environment()
    call_command("migrate", verbosity=0)
    users = get_user_model().objects
    users.create_user(ALICE, password=PASSWORD, phone_number=ALICE_PHONE)
    users.create_user("nophone", password=PASSWORD)
    _SET_UP.append(True)


def orm_identify(request: Any) -> Identity | None:
    """A sync identify that reads the database itself (for SMS2FA['identify'])."""
    from django.contrib.auth import get_user_model

    pk = request.session.get("_auth_user_id")
    user = get_user_model().objects.filter(pk=pk).first() if pk else None
    return Identity(user.username, user.phone_number) if user else None


def raising_identify(request: Any) -> Identity | None:
    raise RuntimeError("secret" + "-detail-of-the-bug")  # the log shows this source line


FORM = "application/x-www-form-urlencoded"  # what a browser posts (the test client: multipart)


def form_body(data: dict[str, str]) -> str:
    return urlencode(data)


def csrf(html: str, name: str = "csrf_token") -> str:
    found = re.search(rf'name="{name}" value="([^"]+)"', html)
    assert found is not None, html[:500]
    return found.group(1)


# Two workers each: a logout must reach the worker that did not serve it (two prove it as
# four do; the original report was with two gunicorn workers).
SERVERS = {
    "uvicorn": ["uvicorn", "project.asgi:application", "--port", "{port}", "--workers", "2"],
    "gunicorn": ["gunicorn", "-w", "2", "-b", "127.0.0.1:{port}", "project.wsgi:application"],
}


class Server:
    def __init__(self, name: str, base: str, port: int, fake: FakeFlowroute) -> None:
        self.name, self.base, self.port, self.fake = name, base, port, fake


def prepare_example(env: dict[str, str], users: list[tuple[str, str]]) -> None:
    """Migrate the example's database and add ``users`` (name, phone; PASSWORD each) with its
    ``manage.py`` commands, in one process (each start of Django costs a second or more)."""
    calls = ["call_command('migrate', verbosity=0)"] + [
        f"call_command('add_user', {name!r}, password={PASSWORD!r}, phone={phone!r})"
        for name, phone in users
    ]
    script = "from django.core.management import call_command; " + "; ".join(calls)
    subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=EXAMPLE,
        env=env,
        check=True,
        capture_output=True,
    )


@contextmanager
def serve_example(kind: str, tmp: Path) -> Iterator[Server]:
    """The example project served for real by ``kind`` (a key of SERVERS): migrated, alice,
    bob and carol added, SMS via FakeFlowroute."""
    with FakeFlowroute() as fake:
        env = {
            **os.environ,
            **fake.settings_env(),
            "SMS2FA_SECRET_KEY": SECRET,
            "SMS2FA_DATABASE_URL": f"sqlite:///{tmp / 'sms2fa.db'}",
            "DJANGO_DB_PATH": str(tmp / "django.db"),
            "DJANGO_DEBUG": "0",
        }
        env.pop("DJANGO_SETTINGS_MODULE", None)
        prepare_example(env, [(ALICE, ALICE_PHONE), (BOB, BOB_PHONE), (CAROL, CAROL_PHONE)])
        port = free_port()
        args = [a.replace("{port}", str(port)) for a in SERVERS[kind]]
        with launch(
            args, env, port, path="/", log_path=tmp / "server.log", cwd=EXAMPLE, inherit_env=False
        ) as (base, _):
            yield Server(kind, base, port, fake)


def log_in(server: Server, user: str = ALICE) -> requests.Session:
    browser = requests.Session()
    form = browser.get(server.base + "/login/?next=/account/", headers=HTML)
    done = browser.post(
        server.base + "/login/",
        headers=HTML,
        allow_redirects=False,
        data={
            "username": user,
            "password": PASSWORD,
            "next": "/account/",
            "csrfmiddlewaretoken": csrf(form.text, "csrfmiddlewaretoken"),
        },
    )
    assert done.status_code == 302 and done.headers["location"] == "/account/", done.text[:300]
    return browser


def verify(
    server: Server, browser: requests.Session, phone: str = ALICE_PHONE
) -> requests.Response:
    challenge = browser.get(server.base + "/account/", headers=HTML, allow_redirects=False)
    assert challenge.status_code == 303, (server.name, challenge.text[:300])
    assert challenge.headers["location"] == "/sms2fa/challenge?next=%2Faccount%2F"
    page = browser.get(server.base + challenge.headers["location"], headers=HTML)
    assert page.status_code == 200 and 'name="code"' in page.text
    done = browser.post(
        server.base + "/sms2fa/challenge",
        headers=HTML,
        allow_redirects=False,
        data={
            "csrf_token": csrf(page.text),
            "next": "/account/",
            "code": server.fake.last_code(phone),
        },
    )
    assert done.status_code == 303 and done.headers["location"] == "/account/"
    return browser.get(server.base + "/account/", headers=HTML, allow_redirects=False)
