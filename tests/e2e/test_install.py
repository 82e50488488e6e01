"""The package as a user installs it: a Flask-only install in a virtualenv of its own.

`pip install '.[flask]'` must give a working WSGI middleware without uvicorn, starlette or
anyio (they belong to the `serve` and `starlette` extras), and a PostgreSQL URL without the
`postgres` extra must say which extra to install, in one line.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import venv
from pathlib import Path

import pytest

from tests.support import ROOT

pytestmark = pytest.mark.slow

# Runs inside the new virtualenv: a Flask app wrapped by the middleware, driven through
# Flask's test client against FakeFlowroute (a real HTTP server), from login to the page.
FLASK_FLOW = textwrap.dedent("""
    import importlib.util, re, sys, tempfile

    for absent in ("uvicorn", "starlette", "anyio", "psycopg"):
        assert importlib.util.find_spec(absent) is None, absent + " was installed"

    from flask import Flask, request
    from sms2fa_middleware import Identity, Settings
    from sms2fa_middleware.testing import FakeFlowroute
    from sms2fa_middleware.wsgi import SMS2FAMiddleware

    app = Flask("flask_only")

    @app.get("/account")
    def account():
        return "account of " + request.environ["sms2fa.identity"].auth_id

    def identify(req):
        return Identity("alice", "+12065550123") if req.cookies.get("user") else None

    with FakeFlowroute() as fake, tempfile.TemporaryDirectory() as folder:
        settings = Settings(secret_key="k" * 32, database_url=f"sqlite:///{folder}/t.db",
                            **fake.settings_kwargs())
        app.wsgi_app = SMS2FAMiddleware(app.wsgi_app, settings, protect=["/account"],
                                        identify=identify)
        client = app.test_client()
        client.set_cookie("user", "alice")
        html = {"Accept": "text/html"}
        challenge = client.get("/account", headers=html)
        assert challenge.status_code == 303, challenge.status_code
        page = client.get(challenge.headers["Location"], headers=html)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        code = fake.last_code("+12065550123")
        done = client.post("/sms2fa/challenge", headers={**html, "Origin": "http://localhost"},
                           data={"csrf_token": token, "next": "/account", "code": code})
        assert done.status_code == 303, (done.status_code, done.text)
        final = client.get("/account", headers=html)
        assert final.text == "account of alice", final.text
    print("FLASK-ONLY FLOW OK")
""")

POSTGRES_WITHOUT_DRIVER = textwrap.dedent("""
    from sms2fa_middleware import ConfigurationError, Settings
    try:
        Settings(secret_key="k" * 32, database_url="postgresql+psycopg://u:hunter2@db.example/x")
    except ConfigurationError as exc:
        print(exc)
""")


@pytest.fixture(scope="module")
def flask_only_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtualenv with `pip install '<this checkout>[flask]'` and nothing else."""
    home = tmp_path_factory.mktemp("flask-only")
    venv.create(home, with_pip=True)
    python = home / "bin" / "python"
    done = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            f"{ROOT}[flask]",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return python


def test_a_flask_only_install_protects_a_flask_app(flask_only_python: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [str(flask_only_python), "-c", FLASK_FLOW],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "FLASK-ONLY FLOW OK" in done.stdout


def test_a_postgresql_url_without_the_driver_names_the_extra(
    flask_only_python: Path, tmp_path: Path
) -> None:
    done = subprocess.run(
        [str(flask_only_python), "-c", POSTGRES_WITHOUT_DRIVER],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout
    assert "pip install 'sms2fa-middleware[postgres]'" in lines[0]
    assert "hunter2" not in lines[0]


def test_the_wheel_carries_license_templates_and_py_typed(tmp_path: Path) -> None:
    import zipfile

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--disable-pip-version-check",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = tmp_path.glob("sms2fa_middleware-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "sms2fa_middleware/py.typed" in names
    assert "sms2fa_middleware/templates/challenge.html" in names
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names), names
