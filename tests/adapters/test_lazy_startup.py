"""Lazy start-up: an app module that wraps itself at import works without SMS settings (CLI
commands, migrations, test imports); the first guarded request, ``check()``, ``flask sms2fa
check`` and ``manage.py check --deploy`` fail loudly, naming what is missing."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from sms2fa_middleware.errors import ConfigurationError
from sms2fa_middleware.settings import env_name
from sms2fa_middleware.testing import FakeFlowroute
from tests.support import ROOT, SECRET, in_threads

FLASK_APP = """
from flask import Flask
from sms2fa_middleware.wsgi import SMS2FAMiddleware

app = Flask(__name__)

@app.get("/public")
def public():
    return "public"

@app.get("/account")
def account():
    return "account"

app.wsgi_app = SMS2FAMiddleware(app.wsgi_app, protect=["/account"],
                                identify=lambda request: None)
"""


@pytest.fixture
def no_sms_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("SMS2FA_", "FLOWROUTE_")) and name != "SMS2FA_DATA_DIR":
            monkeypatch.delenv(name)


def _import(path: Path, source: str) -> Any:
    path.write_text(textwrap.dedent(source))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_flask_app_imports_and_passes_without_settings(
    tmp_path: Path, no_sms_settings: None
) -> None:
    app = _import(tmp_path / "lazy_flask_app.py", FLASK_APP).app
    client = app.test_client()
    assert client.get("/public").get_data(as_text=True) == "public"  # no settings read
    with pytest.raises(ConfigurationError, match="SMS2FA_SECRET_KEY"):
        client.get("/account")
    with pytest.raises(ConfigurationError, match="SMS2FA_SECRET_KEY"):
        app.wsgi_app.check()


def test_flask_cli_check(
    tmp_path: Path,
    no_sms_settings: None,
    monkeypatch: pytest.MonkeyPatch,
    fake_flowroute: FakeFlowroute,
) -> None:
    from sms2fa_middleware.flask import sms2fa_cli

    app = _import(tmp_path / "lazy_flask_cli.py", FLASK_APP).app
    failed = app.test_cli_runner().invoke(sms2fa_cli, ["check"])
    assert failed.exit_code == 1 and "SMS2FA_SECRET_KEY" in failed.output
    monkeypatch.setenv("SMS2FA_SECRET_KEY", SECRET)
    monkeypatch.setenv("SMS2FA_DATABASE_URL", f"sqlite:///{tmp_path / 'sms2fa.db'}")
    for key, value in fake_flowroute.settings_kwargs().items():
        monkeypatch.setenv(env_name(key), value)
    app = _import(tmp_path / "lazy_flask_cli2.py", FLASK_APP).app
    ok = app.test_cli_runner().invoke(sms2fa_cli, ["check"])
    assert ok.exit_code == 0, ok.output
    assert "settings OK" in ok.output


def test_asgi_lazy_guard_built_once(
    no_sms_settings: None, tmp_path: Path, fake_flowroute: FakeFlowroute
) -> None:
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    from sms2fa_middleware import Settings
    from sms2fa_middleware.asgi import SMS2FAMiddleware

    bare = SMS2FAMiddleware(Starlette(), protect=["/account"], identify=lambda r: None)
    with pytest.raises(ConfigurationError, match="SMS2FA_SECRET_KEY"):
        bare.check()
    with TestClient(bare) as client:
        assert client.get("/public").status_code == 404  # passed through: no settings read
    with pytest.raises(TypeError):  # options are still checked at once
        SMS2FAMiddleware(Starlette(), protect=["/account"], identify=None, protcet=["/x"])

    settings = Settings(
        secret_key=SECRET,
        database_url=f"sqlite:///{tmp_path / 'a.db'}",
        **fake_flowroute.settings_kwargs(),
    )
    app = SMS2FAMiddleware(Starlette(), settings, protect=["/account"], identify=lambda r: None)
    seen: list[object] = []
    in_threads(lambda i: seen.append(app.guard), 8)  # first uses at once: one guard
    assert len({id(g) for g in seen}) == 1
    assert app.check() is seen[0] and app.verifier is seen[0].verifier  # type: ignore[attr-defined]
    shared = SMS2FAMiddleware(Starlette(), identify=lambda r: None, guard=app.guard)
    assert shared.guard is app.guard and shared.paths is app.paths


DJANGO_SETTINGS = """
SECRET_KEY = "django-test-secret-key-0123456789-abcdefghijklmnop"
INSTALLED_APPS = ["django.contrib.auth", "django.contrib.contenttypes",
                  "sms2fa_middleware.django"]
MIDDLEWARE = ["django.contrib.sessions.middleware.SessionMiddleware",
              "django.contrib.auth.middleware.AuthenticationMiddleware",
              "sms2fa_middleware.django.SMS2FAMiddleware"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
SMS2FA = {"protect": ["/account"], "identify": lambda request: None}
ROOT_URLCONF = __name__
urlpatterns = []
"""


@pytest.mark.server
def test_django_deploy_check_reports_a_missing_secret(tmp_path: Path) -> None:
    (tmp_path / "lazy_django_settings.py").write_text(DJANGO_SETTINGS)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMS2FA_", "FLOWROUTE_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(ROOT)])
    env["DJANGO_SETTINGS_MODULE"] = "lazy_django_settings"
    command = [sys.executable, "-m", "django", "check"]
    plain = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert plain.returncode == 0, plain.stderr  # check and migrate need no SMS settings
    deploy = subprocess.run(
        [*command, "--deploy"], env=env, capture_output=True, text=True, timeout=120
    )
    assert deploy.returncode != 0
    assert "sms2fa.E001" in deploy.stderr and "SMS2FA_SECRET_KEY" in deploy.stderr
