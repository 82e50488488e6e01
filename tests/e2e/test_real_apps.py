"""Proof on real third-party apps: Flask's tutorial app "flaskr" and FastAPI's OAuth2/JWT
tutorial (``docs_src/security/tutorial004.py``), each taken from the sdist of the installed
Flask / FastAPI, with the README's integration applied as a developer would (the patches in
``tests/real_apps/``).

For each: the app's own, unmodified test files pass with the middleware installed -- only
their conftest and fixture data change, using the documented helpers of
``sms2fa_middleware.testing`` -- and a user completes the whole flow over a real server.
The sdists are downloaded once (``pip download``) into the pytest cache.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import requests

from sms2fa_middleware.testing import FakeFlowroute
from tests.support import ROOT
from tests.support.servers import free_port, launch

pytestmark = pytest.mark.slow

PATCHES = ROOT / "tests" / "real_apps"
SECRET = "real-apps-secret-key-0123456789abcdef"
HTML = {"accept": "text/html"}
# Starlette asks TestClient users to move to httpx2 (a warning FastAPI's config turns into
# an error); this project's own pytest config ignores it the same way.
HTTPX_NOTICE = "ignore:Using `httpx` with `starlette.testclient`"


def sdist(request: pytest.FixtureRequest, name: str) -> Path:
    """The sdist of the installed version of ``name``, downloaded once into the cache."""
    pinned = version(name)
    known = getattr(request.config, "cache", None)  # None under -p no:cacheprovider
    cache = (
        known.mkdir("sms2fa-real-apps")
        if known is not None
        else request.getfixturevalue("tmp_path_factory").mktemp("sdists")
    )
    found = sorted(cache.glob(f"{name.lower()}-{pinned}.tar.gz"))
    if not found:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--no-binary",
                ":all:",
                "--no-deps",
                f"{name}=={pinned}",
                "-d",
                str(cache),
            ],
            check=True,
            timeout=600,
        )
        found = sorted(cache.glob(f"{name.lower()}-{pinned}.tar.gz"))
    assert found, f"pip download left no {name}-{pinned}.tar.gz in {cache}"
    return found[0]


def extract(archive: Path, members: dict[str, str], into: Path) -> Path:
    """Extract the sdist's files under each ``members`` key (a path inside the sdist's top
    folder) to the value (a path under ``into``)."""
    with tarfile.open(archive) as tar:
        top = tar.getmembers()[0].name.split("/")[0]
        for inside, outside in members.items():
            prefix = f"{top}/{inside}"
            chosen = [
                m
                for m in tar.getmembers()
                if m.isfile() and (m.name == prefix or m.name.startswith(prefix + "/"))
            ]
            assert chosen, f"{inside} is not in {archive.name}: the sdist's layout changed"
            for member in chosen:
                target = into / outside / member.name[len(prefix) :].lstrip("/")
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                assert source is not None
                target.write_bytes(source.read())
    return into


def apply(patch: str, tree: Path) -> None:
    subprocess.run(
        ["git", "apply", "--verbose", str(PATCHES / patch)],
        cwd=tree,
        check=True,
        capture_output=True,
    )


def changed_test_files(patch: str) -> list[str]:
    return re.findall(r"^\+\+\+ b/(\S+)", (PATCHES / patch).read_text(), re.M)


def run_suite(tree: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # Its own pytest configuration; our plugin comes from its entry point, as for any user.
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )


def app_env(fake: FakeFlowroute, tmp_path: Path) -> dict[str, str]:
    return {
        **fake.settings_env(),
        "SMS2FA_SECRET_KEY": SECRET,
        "SMS2FA_DATABASE_URL": f"sqlite:///{tmp_path / 'sms2fa.db'}",
    }


def csrf_token(page: requests.Response) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found is not None, page.text
    return found.group(1)


# -- flaskr ----------------------------------------------------------------------------------


@pytest.fixture
def flaskr(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """flaskr and its tests from the Flask sdist, with the integration applied."""
    tree = extract(sdist(request, "flask"), {"examples/tutorial": "flaskr-project"}, tmp_path)
    tree = tmp_path / "flaskr-project"
    apply("flaskr-app.patch", tree)
    return tree


def test_flaskr_own_suite_passes_with_the_middleware(flaskr: Path) -> None:
    apply("flaskr-tests.patch", flaskr)
    # Only the conftest and the fixture data changed: no test, no assertion.
    assert changed_test_files("flaskr-tests.patch") == ["tests/conftest.py", "tests/data.sql"]
    run = run_suite(flaskr)
    assert run.returncode == 0, run.stdout + run.stderr
    passed = re.search(r"(\d+) passed", run.stdout)
    assert passed and int(passed.group(1)) >= 20, run.stdout
    assert "failed" not in run.stdout and "error" not in run.stdout.lower()


def test_flaskr_register_login_post_over_a_real_server(
    flaskr: Path, tmp_path: Path, fake_flowroute: FakeFlowroute
) -> None:
    """register -> log in -> new post -> challenge -> code -> the post is created, on
    gunicorn; logging out revokes the verified session."""
    env = app_env(fake_flowroute, tmp_path)
    subprocess.run(
        [sys.executable, "-m", "flask", "--app", "flaskr", "init-db"],
        cwd=flaskr,
        env={**os.environ, **env},
        check=True,
        capture_output=True,
    )
    port = free_port()
    phone = "+12065550177"
    with launch(
        ["gunicorn", "-b", f"127.0.0.1:{port}", "flaskr:create_app()"],
        env,
        port,
        path="/hello",
        cwd=flaskr,
        log_path=tmp_path / "gunicorn.log",
    ) as (base, _):
        browser = requests.Session()
        browser.headers.update(HTML)
        registered = browser.post(
            base + "/auth/register",
            allow_redirects=False,
            data={"username": "alice", "password": "pw", "phone": phone},
        )
        assert registered.headers["location"] == "/auth/login"
        login = {"username": "alice", "password": "pw"}
        assert (
            browser.post(base + "/auth/login", data=login, allow_redirects=False).headers[
                "location"
            ]
            == "/"
        )

        challenged = browser.get(base + "/create", allow_redirects=False)
        assert challenged.status_code == 303
        assert challenged.headers["location"] == "/sms2fa/challenge?next=%2Fcreate"
        assert len(fake_flowroute.messages_to(phone)) == 1
        page = browser.get(base + challenged.headers["location"])
        assert page.status_code == 200
        done = browser.post(
            base + "/sms2fa/challenge",
            allow_redirects=False,
            data={
                "csrf_token": csrf_token(page),
                "next": "/create",
                "code": fake_flowroute.last_code(phone),
            },
        )
        assert done.status_code == 303 and done.headers["location"] == "/create"

        assert browser.get(base + "/create").status_code == 200
        created = browser.post(
            base + "/create",
            allow_redirects=False,
            data={"title": "Verified by SMS", "body": "hello"},
        )
        assert created.status_code == 302 and created.headers["location"] == "/"
        assert "Verified by SMS" in browser.get(base + "/").text

        browser.get(base + "/auth/logout")  # revokes: the next post needs a new code
        browser.post(base + "/auth/login", data=login)
        again = browser.get(base + "/create", allow_redirects=False)
        assert again.status_code == 303 and again.headers["location"].startswith("/sms2fa/")


# -- FastAPI tutorial004 -------------------------------------------------------------------


@pytest.fixture
def tutorial004(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    if sys.version_info < (3, 11):
        pytest.skip("FastAPI's tutorial004 uses datetime.UTC (Python 3.11+)")
    """FastAPI's docs_src/security and the tutorial004 tests from the FastAPI sdist, with
    FastAPI's own pytest configuration, and the integration applied."""
    archive = sdist(request, "fastapi")
    tests = "tests/test_tutorial/test_security"
    tree = extract(
        archive,
        {
            "docs_src/security": "docs_src/security",
            "tests/__init__.py": "tests/__init__.py",
            "tests/utils.py": "tests/utils.py",
            "tests/test_tutorial/__init__.py": "tests/test_tutorial/__init__.py",
            f"{tests}/__init__.py": f"{tests}/__init__.py",
            f"{tests}/test_tutorial004.py": f"{tests}/test_tutorial004.py",
            "pyproject.toml": "fastapi-pyproject.toml",
        },
        tmp_path / "fastapi-project",
    )
    config = (tree / "fastapi-pyproject.toml").read_text()
    section = re.search(r"^\[tool\.pytest\]\n.*?(?=^\[)", config, re.M | re.S)
    assert section is not None, "FastAPI's pyproject.toml has no [tool.pytest] any more"
    # Its xdist_group marker is declared by pytest-xdist, which FastAPI's own runs have.
    (tree / "pyproject.toml").write_text(
        section.group(0) + 'markers = ["xdist_group: pytest-xdist\'s"]\n'
    )
    apply("tutorial004-app.patch", tree)
    return tree


def test_fastapi_tutorial004_own_suite_passes_with_the_middleware(tutorial004: Path) -> None:
    apply("tutorial004-tests.patch", tutorial004)
    assert changed_test_files("tutorial004-tests.patch") == [
        "tests/test_tutorial/test_security/conftest.py"
    ]  # a new conftest; no test changed
    # tutorial004_non_an is the same app without Annotated, left without the middleware.
    run = run_suite(
        tutorial004,
        "-W",
        HTTPX_NOTICE,
        "-k",
        "not non_an",
        "tests/test_tutorial/test_security/test_tutorial004.py",
    )
    assert run.returncode == 0, run.stdout + run.stderr
    passed = re.search(r"(\d+) passed", run.stdout)
    assert passed and int(passed.group(1)) >= 12, run.stdout
    assert "failed" not in run.stdout


def test_fastapi_tutorial004_over_a_real_server(
    tutorial004: Path, tmp_path: Path, fake_flowroute: FakeFlowroute
) -> None:
    """token -> /users/me refused (401 VerificationRequired) -> the JSON flow with the
    bearer token (send, then the code) -> /users/me, on uvicorn: what an API client that is
    no browser does. Anonymous requests keep the app's own 401."""
    phone = "+12065550123"  # johndoe's, in the patch
    port = free_port()
    args = ["uvicorn", "docs_src.security.tutorial004:app", "--port", str(port)]
    with launch(
        args,
        app_env(fake_flowroute, tmp_path),
        port,
        path="/docs",
        cwd=tutorial004,
        log_path=tmp_path / "uvicorn.log",
    ) as (base, _):
        client = requests.Session()
        anonymous = client.get(base + "/users/me/")
        assert anonymous.status_code == 401
        assert anonymous.json() == {"detail": "Not authenticated"}
        assert anonymous.headers["www-authenticate"] == "Bearer"

        token = client.post(
            base + "/token", data={"username": "johndoe", "password": "secret"}
        ).json()["access_token"]
        bearer = {"authorization": f"Bearer {token}"}
        refused = client.get(base + "/users/me/", headers=bearer)
        assert refused.status_code == 401
        assert refused.json()["reason"] == "VerificationRequired"
        challenge = base + refused.json()["challenge"].partition("?")[0]
        assert challenge == base + "/sms2fa/challenge"

        status = client.get(challenge, headers={**bearer, "accept": "application/json"})
        assert status.json()["pending"] is False and fake_flowroute.messages == []
        sent = client.post(challenge + "/send", headers=bearer, json={})
        assert sent.status_code == 200, sent.text
        assert sent.json()["sent_to"] == "+1••••••••23" and phone not in sent.text
        assert len(fake_flowroute.messages_to(phone)) == 1
        wrong = client.post(challenge, headers=bearer, json={"code": "0" * 7})
        assert wrong.status_code == 400 and "set-cookie" not in wrong.headers
        assert client.get(base + "/users/me/", headers=bearer).status_code == 401
        done = client.post(
            challenge, headers=bearer, json={"code": fake_flowroute.last_code(phone)}
        )
        assert done.status_code == 200 and done.json()["verified"] is True, done.text
        assert "sms2fa" in done.headers["set-cookie"]  # the session cookie: kept by the jar

        me: Any = client.get(base + "/users/me/", headers=bearer).json()
        assert me["username"] == "johndoe" and "phone" not in me
        assert client.get(base + "/users/me/items/", headers=bearer).json() == [
            {"item_id": "Foo", "owner": "johndoe"}
        ]
