"""Three apps shaped like real third-party ones, each with sms2fa-middleware integrated
through the README's helpers only, in ``tests/real_apps/``:

* ``locallibrary`` -- a Django project after MDN's LocalLibrary tutorial (i18n off, the
  stock ``User`` and a ``Profile`` holding the phone, ``LogoutView``, the admin);
* ``microblog`` -- Flask + Flask-Login after Grinberg's Mega-Tutorial (remember-me, an
  ``/api`` with bearer tokens);
* ``fullstack`` -- a FastAPI JWT API (``OAuth2PasswordBearer``) for a single-page app served
  from another origin (CORS).

Each brings its own test suite, written as its authors would with the documented test
helpers: here it runs in a process of its own and must pass. Then each is served for real
(gunicorn / uvicorn, 2 workers) and walked as a user would: log in, the protected page, the
challenge, the code from FakeFlowroute, the page; log out, log in, challenged again.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from sms2fa_middleware.testing import FakeFlowroute
from tests.support.servers import free_port, launch

pytestmark = pytest.mark.slow

APPS = Path(__file__).resolve().parents[1] / "real_apps"
ROOT = Path(__file__).resolve().parents[2]
SECRET = "adopted-apps-secret-key-0123456789abcdef"
HTML = {"accept": "text/html"}
PASSWORD = "correct-horse-battery"


def run_suite(app: str) -> subprocess.CompletedProcess[str]:
    """The app's own suite, from its directory with its own pytest.ini and conftest (as its
    authors run it: ``python -m pytest``); our package and its pytest plugin as installed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMS2FA_", "DJANGO_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q"],
        cwd=APPS / app,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.parametrize(
    ("app", "at_least"), [("locallibrary", 20), ("microblog", 18), ("fullstack", 14)]
)
def test_the_apps_own_suite_passes(app: str, at_least: int) -> None:
    run = run_suite(app)
    assert run.returncode == 0, run.stdout + run.stderr
    passed = re.search(r"(\d+) passed", run.stdout)
    assert passed and int(passed.group(1)) >= at_least, run.stdout
    assert "failed" not in run.stdout and "error" not in run.stdout.lower()


# -- serving them -------------------------------------------------------------------------


def sms2fa_env(fake: FakeFlowroute, tmp_path: Path) -> dict[str, str]:
    return {
        **fake.settings_env(),
        "SMS2FA_SECRET_KEY": SECRET,
        "SMS2FA_DATABASE_URL": f"sqlite:///{tmp_path / 'sms2fa.db'}",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }


def run(args: list[str], cwd: Path, env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def form_value(page: requests.Response, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]+)"', page.text)
    assert found is not None, page.text
    return found.group(1)


def answer_challenge(
    browser: requests.Session, base: str, location: str, fake: FakeFlowroute, phone: str
) -> requests.Response:
    """The challenge page at ``location``, answered with the code FakeFlowroute got."""
    page = browser.get(base + location, headers=HTML)
    assert page.status_code == 200, page.text
    return browser.post(
        base + "/sms2fa/challenge",
        headers=HTML,
        allow_redirects=False,
        data={
            "csrf_token": form_value(page, "csrf_token"),
            "next": form_value(page, "next"),
            "code": fake.last_code(phone),
        },
    )


def challenged(response: requests.Response, target: str) -> str:
    """Assert the guard sent the browser to the challenge for ``target``; its location."""
    assert response.status_code == 303, (response.status_code, response.text[:300])
    location = response.headers["location"]
    assert location.startswith("/sms2fa/challenge?next="), location
    assert requests.utils.unquote(location.partition("next=")[2]) == target
    return location


@dataclass
class Served:
    base: str
    fake: FakeFlowroute
    tmp: Path


# -- locallibrary (Django, gunicorn) --------------------------------------------------------

LIBRARY_PHONE, LIBRARIAN_PHONE = "+12065550161", "+12065550162"
NEW_USERS = f"""
from django.contrib.auth.models import Permission, User
from catalog.models import Profile
reader = User.objects.create_user("reader", password={PASSWORD!r})
Profile.objects.create(user=reader, phone={LIBRARY_PHONE!r})
staff = User.objects.create_user("librarian", password={PASSWORD!r}, is_staff=True)
Profile.objects.create(user=staff, phone={LIBRARIAN_PHONE!r})
staff.user_permissions.add(Permission.objects.get(codename="add_author"))
"""


@pytest.fixture
def locallibrary(tmp_path: Path, fake_flowroute: FakeFlowroute) -> Iterator[Served]:
    env = {
        **sms2fa_env(fake_flowroute, tmp_path),
        "DJANGO_DB_PATH": str(tmp_path / "library.db"),
        "DJANGO_DEBUG": "False",
        "DJANGO_SETTINGS_MODULE": "locallibrary.settings",
    }
    cwd = APPS / "locallibrary"
    run(["manage.py", "migrate", "-v0"], cwd, env)
    run(["manage.py", "shell", "-c", NEW_USERS], cwd, env)
    port = free_port()
    args = ["gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}", "locallibrary.wsgi"]
    with launch(args, env, port, path="/catalog/", cwd=cwd, log_path=tmp_path / "gunicorn.log") as (
        base,
        _,
    ):
        yield Served(base, fake_flowroute, tmp_path)


def django_login(browser: requests.Session, base: str, username: str, login: str) -> None:
    page = browser.get(base + login)
    done = browser.post(
        base + login,
        data={
            "csrfmiddlewaretoken": form_value(page, "csrfmiddlewaretoken"),
            "username": username,
            "password": PASSWORD,
        },
        allow_redirects=False,
    )
    assert done.status_code == 302, done.text[:500]


def test_locallibrary_walk_over_gunicorn(locallibrary: Served) -> None:
    base, fake = locallibrary.base, locallibrary.fake
    browser = requests.Session()
    assert "Local Library Home" in browser.get(base + "/catalog/").text  # public
    anonymous = browser.get(base + "/catalog/mybooks/", allow_redirects=False)
    assert anonymous.status_code == 302  # the app's own LoginRequiredMixin (anonymous="app")
    assert anonymous.headers["location"] == "/accounts/login/?next=/catalog/mybooks/"

    django_login(browser, base, "reader", "/accounts/login/")
    location = challenged(
        browser.get(base + "/catalog/mybooks/", headers=HTML, allow_redirects=False),
        "/catalog/mybooks/",
    )
    assert len(fake.messages_to(LIBRARY_PHONE)) == 1
    done = answer_challenge(browser, base, location, fake, LIBRARY_PHONE)
    assert done.status_code == 303 and done.headers["location"] == "/catalog/mybooks/"
    assert "Borrowed books" in browser.get(base + "/catalog/mybooks/", headers=HTML).text

    # LogoutView (a POST with the CSRF token): the verified session ends with the login.
    home = browser.get(base + "/catalog/")
    out = browser.post(
        base + "/accounts/logout/",
        data={"csrfmiddlewaretoken": form_value(home, "csrfmiddlewaretoken")},
    )
    assert "Logged out!" in out.text
    django_login(browser, base, "reader", "/accounts/login/")
    challenged(
        browser.get(base + "/catalog/mybooks/", headers=HTML, allow_redirects=False),
        "/catalog/mybooks/",
    )


def test_an_unverified_librarian_can_log_out_of_the_admin(locallibrary: Served) -> None:
    """protect=["/admin"]: the admin needs a code, but its logout does not -- a staff user
    who will not (or cannot) enter one is not trapped logged in."""
    base = locallibrary.base
    browser = requests.Session()
    django_login(browser, base, "librarian", "/admin/login/")
    challenged(browser.get(base + "/admin/", headers=HTML, allow_redirects=False), "/admin/")
    home = browser.get(base + "/catalog/")
    out = browser.post(
        base + "/admin/logout/",
        headers=HTML,
        data={"csrfmiddlewaretoken": form_value(home, "csrfmiddlewaretoken")},
        allow_redirects=False,
    )
    assert out.status_code == 200 and "Logged out" in out.text, out.status_code
    assert "sessionid" not in browser.cookies  # Django's logout ran
    again = browser.get(base + "/admin/", headers=HTML, allow_redirects=False)
    assert again.status_code == 302 and again.headers["location"].startswith("/admin/login/")


# -- microblog (Flask + Flask-Login, gunicorn) -----------------------------------------------

SUSAN_PHONE = "+12065550171"


@pytest.fixture
def microblog(tmp_path: Path, fake_flowroute: FakeFlowroute) -> Iterator[Served]:
    cwd = APPS / "microblog"
    env = {
        **sms2fa_env(fake_flowroute, tmp_path),
        "DATABASE": str(tmp_path / "app.db"),
        "SECRET_KEY": "microblog-secret",
    }
    run(["-m", "flask", "--app", "app", "init-db"], cwd, env)
    port = free_port()
    args = ["gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}", "app:create_app()"]
    with launch(
        args, env, port, path="/auth/login", cwd=cwd, log_path=tmp_path / "gunicorn.log"
    ) as (base, _):
        registered = requests.post(
            base + "/auth/register",
            data={
                "username": "susan",
                "email": "susan@example.com",
                "password": PASSWORD,
                "phone": SUSAN_PHONE,
            },
            allow_redirects=False,
        )
        assert registered.headers["location"] == "/auth/login"
        yield Served(base, fake_flowroute, tmp_path)


def flask_login(browser: requests.Session, base: str, remember: bool = False) -> None:
    data = {"username": "susan", "password": PASSWORD}
    if remember:
        data["remember_me"] = "y"
    done = browser.post(base + "/auth/login", data=data, allow_redirects=False)
    assert done.headers["location"] == "/index", done.text[:300]


def test_microblog_walk_over_gunicorn(microblog: Served) -> None:
    base, fake = microblog.base, microblog.fake
    browser = requests.Session()
    anonymous = browser.get(base + "/edit_profile", allow_redirects=False)
    assert anonymous.status_code == 302  # Flask-Login's own login_required
    assert anonymous.headers["location"].startswith("/auth/login?next=")

    flask_login(browser, base)
    location = challenged(
        browser.get(base + "/edit_profile", headers=HTML, allow_redirects=False),
        "/edit_profile",
    )
    done = answer_challenge(browser, base, location, fake, SUSAN_PHONE)
    assert done.status_code == 303 and done.headers["location"] == "/edit_profile"
    saved = browser.post(base + "/edit_profile", headers=HTML, data={"about_me": "verified"})
    assert "Your changes have been saved." in saved.text

    browser.get(base + "/auth/logout")
    flask_login(browser, base)
    challenged(
        browser.get(base + "/edit_profile", headers=HTML, allow_redirects=False),
        "/edit_profile",
    )


def test_a_remember_me_user_is_challenged(microblog: Served) -> None:
    """Flask-Login signs the user in from ``remember_token`` alone (a browser restart: no
    session cookie); with anonymous="app" the middleware must see that user too, or the
    page would open with the password alone."""
    base, fake = microblog.base, microblog.fake
    first = requests.Session()
    flask_login(first, base, remember=True)
    restarted = requests.Session()  # the remember-me cookie only
    restarted.cookies.set("remember_token", first.cookies["remember_token"])
    assert set(restarted.cookies.keys()) == {"remember_token"}
    location = challenged(
        restarted.get(base + "/edit_profile", headers=HTML, allow_redirects=False),
        "/edit_profile",
    )
    assert len(fake.messages_to(SUSAN_PHONE)) == 1
    done = answer_challenge(restarted, base, location, fake, SUSAN_PHONE)
    assert done.status_code == 303
    assert "Edit Profile" in restarted.get(base + "/edit_profile", headers=HTML).text


def test_microblog_token_api_over_gunicorn(microblog: Served) -> None:
    """The bearer-token client completes the JSON flow; a token the app refuses (two spaces
    after Bearer: Flask-Login's request loader reads a token with a space in front) gets the
    app's own 401, as identify reads the header as the app does."""
    base, fake = microblog.base, microblog.fake
    client = requests.Session()
    token = client.post(base + "/api/tokens", auth=("susan", PASSWORD)).json()["token"]
    bearer = {"authorization": f"Bearer {token}"}
    refused = client.get(base + "/api/users/1", headers=bearer)
    assert refused.status_code == 401 and refused.json()["reason"] == "VerificationRequired"
    odd = client.get(base + "/api/users/1", headers={"authorization": f"Bearer  {token}"})
    assert odd.status_code == 401 and odd.json() == {"error": "Unauthorized"}
    assert client.post(base + "/sms2fa/challenge/send", headers=bearer, json={}).ok
    done = client.post(
        base + "/sms2fa/challenge", headers=bearer, json={"code": fake.last_code(SUSAN_PHONE)}
    )
    assert done.status_code == 200, done.text
    assert client.get(base + "/api/users/1", headers=bearer).json()["username"] == "susan"


# -- fullstack (FastAPI JWT API + a SPA on another origin, uvicorn) -------------------------

ADMIN, ADMIN_PHONE = "admin@example.com", "+12065550181"
NEW_ADMIN = f"""
from backend import db
db.init_db()
db.create_user({ADMIN!r}, {PASSWORD!r}, "Admin", phone={ADMIN_PHONE!r})
"""


def serve_fullstack(tree: Path, tmp_path: Path, fake: FakeFlowroute, spa: str) -> Iterator[Served]:
    env = {
        **sms2fa_env(fake, tmp_path),
        "DATABASE_PATH": str(tmp_path / "app.db"),
        "FRONTEND_ORIGIN": spa,
    }
    run(["-c", NEW_ADMIN], tree, env)
    port = free_port()
    args = ["uvicorn", "--workers", "2", "--port", str(port), "backend.main:app"]
    with launch(
        args,
        env,
        port,
        path="/api/utils/health-check/",
        cwd=tree,
        log_path=tmp_path / "uvicorn.log",
    ) as (base, _):
        yield Served(base, fake, tmp_path)


@pytest.fixture
def spa_port() -> int:
    return free_port()


@pytest.fixture
def fullstack(tmp_path: Path, fake_flowroute: FakeFlowroute, spa_port: int) -> Iterator[Served]:
    yield from serve_fullstack(
        APPS / "fullstack", tmp_path, fake_flowroute, f"http://localhost:{spa_port}"
    )


def bearer_token(client: requests.Session, base: str) -> dict[str, str]:
    answer = client.post(
        base + "/api/login/access-token", data={"username": ADMIN, "password": PASSWORD}
    )
    assert answer.status_code == 200, answer.text
    return {"authorization": f"Bearer {answer.json()['access_token']}"}


def test_fullstack_walk_over_uvicorn(fullstack: Served) -> None:
    base, fake = fullstack.base, fullstack.fake
    client = requests.Session()
    assert client.get(base + "/api/users/me").json() == {"detail": "Not authenticated"}

    bearer = bearer_token(client, base)
    refused = client.get(base + "/api/users/me", headers=bearer)
    assert refused.status_code == 401 and refused.json()["reason"] == "VerificationRequired"
    assert client.post(base + "/sms2fa/challenge/send", headers=bearer, json={}).ok
    code = fake.last_code(ADMIN_PHONE)
    assert client.post(base + "/sms2fa/challenge", headers=bearer, json={"code": code}).ok
    assert client.get(base + "/api/users/me", headers=bearer).json()["email"] == ADMIN

    assert client.post(base + "/api/logout", headers=bearer).ok
    bearer = bearer_token(client, base)  # logged in again: a new token, the same browser
    again = client.get(base + "/api/users/me", headers=bearer)
    assert again.status_code == 401 and again.json()["reason"] == "VerificationRequired"


def test_a_bearer_header_with_two_spaces_is_challenged_as_the_app_reads_it(
    fullstack: Served,
) -> None:
    """FastAPI's OAuth2PasswordBearer accepts ``Bearer  <token>`` (it strips the token);
    fastapi_identify reads the header through the same scheme, so the request is
    challenged, not let through unverified (anonymous="app") to a route that accepts it."""
    base, fake = fullstack.base, fullstack.fake
    client = requests.Session()
    token = bearer_token(client, base)["authorization"].split(" ", 1)[1]
    odd = {"authorization": f"Bearer  {token}"}
    refused = client.get(base + "/api/items/", headers=odd)
    assert refused.status_code == 401 and refused.json()["reason"] == "VerificationRequired"
    assert client.post(base + "/sms2fa/challenge/send", headers=odd, json={}).ok
    code = fake.last_code(ADMIN_PHONE)
    assert client.post(base + "/sms2fa/challenge", headers=odd, json={"code": code}).ok
    assert client.get(base + "/api/items/", headers=odd).json() == []


def preflight(client: requests.Session, url: str, origin: str) -> requests.Response:
    """The browser's CORS preflight for a credentialed JSON call with a bearer token."""
    return client.options(
        url,
        headers={
            "origin": origin,
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization,content-type",
        },
    )


def test_the_spa_on_another_origin_completes_the_json_flow(
    fullstack: Served, tmp_path: Path, spa_port: int
) -> None:
    """The SPA, served from http://localhost:<spa port>, calls the API on another port:
    preflights answered by CORSMiddleware (outside ours), then send -> check -> the API
    route, each with the SPA's Origin, which trusted_origins lets through."""
    base, fake = fullstack.base, fullstack.fake
    spa = f"http://localhost:{spa_port}"
    frontend = ["http.server", str(spa_port), "--bind", "127.0.0.1"]
    with launch(frontend, {}, spa_port, path="/index.html", cwd=APPS / "fullstack" / "frontend"):
        page = requests.get(f"http://127.0.0.1:{spa_port}/index.html")
        assert "/sms2fa/challenge/send" in page.text  # the SPA's own code calls the flow

        client = requests.Session()
        bearer = bearer_token(client, base)
        cors = {**bearer, "origin": spa, "accept": "application/json"}
        for path in ("/api/users/me", "/sms2fa/challenge/send", "/sms2fa/challenge"):
            allowed = preflight(client, base + path, spa)
            assert allowed.status_code == 200, (path, allowed.text)
            assert allowed.headers["access-control-allow-origin"] == spa
            assert allowed.headers["access-control-allow-credentials"] == "true"
            assert "authorization" in allowed.headers["access-control-allow-headers"].lower()

        refused = client.get(base + "/api/users/me", headers=cors)
        assert refused.status_code == 401 and refused.json()["reason"] == "VerificationRequired"
        assert refused.headers["access-control-allow-origin"] == spa  # the SPA may read it
        sent = client.post(base + "/sms2fa/challenge/send", headers=cors, json={})
        assert sent.status_code == 200, sent.text
        assert sent.headers["access-control-allow-origin"] == spa
        code = fake.last_code(ADMIN_PHONE)
        done = client.post(base + "/sms2fa/challenge", headers=cors, json={"code": code})
        assert done.status_code == 200 and done.json()["verified"] is True, done.text
        assert done.headers["access-control-allow-credentials"] == "true"
        me = client.get(base + "/api/users/me", headers=cors)
        assert me.status_code == 200 and me.json()["email"] == ADMIN
        assert me.headers["access-control-allow-origin"] == spa


@pytest.fixture
def fullstack_without_trusted_origins(
    tmp_path: Path, fake_flowroute: FakeFlowroute, spa_port: int
) -> Iterator[Served]:
    """The same app with the one line ``trusted_origins=[FRONTEND_ORIGIN]`` left out: CORS
    set up, the middleware not told."""
    tree = tmp_path / "fullstack"
    shutil.copytree(APPS / "fullstack", tree, ignore=shutil.ignore_patterns("__pycache__"))
    main = tree / "backend" / "main.py"
    source = main.read_text()
    line = "    trusted_origins=[FRONTEND_ORIGIN],\n"
    assert source.count(line) == 1
    main.write_text(source.replace(line, ""))
    yield from serve_fullstack(tree, tmp_path, fake_flowroute, f"http://localhost:{spa_port}")


def test_without_trusted_origins_the_spa_is_refused_in_json(
    fullstack_without_trusted_origins: Served, spa_port: int
) -> None:
    base, fake = fullstack_without_trusted_origins.base, fullstack_without_trusted_origins.fake
    spa = f"http://localhost:{spa_port}"
    client = requests.Session()
    cors = {**bearer_token(client, base), "origin": spa, "accept": "application/json"}
    assert preflight(client, base + "/sms2fa/challenge/send", spa).status_code == 200
    for path, body in (("/sms2fa/challenge/send", {}), ("/sms2fa/challenge", {"code": "123456"})):
        refused = client.post(base + path, headers=cors, json=body)
        assert refused.status_code == 403, refused.text
        assert refused.headers["content-type"] == "application/json"
        assert refused.json()["reason"] == "OriginRejected"
        assert "expired" not in refused.text.lower()
        assert refused.headers["access-control-allow-origin"] == spa  # readable by the SPA
    assert fake.messages == []


# -- the start-up route check on the three apps (sms2fa check-routes, as in CI) -------------

CHECKS = {
    "locallibrary": (
        "locallibrary.wsgi:application",
        {"DJANGO_SETTINGS_MODULE": "locallibrary.settings"},
        # /catalog/mybooks/* leaves the page itself open (its route is /catalog/mybooks/)
        ["/catalog/mybooks/*", "/catalog/*/create", "/admin"],
        "route '/catalog/mybooks/' is not protected, though protect has '/catalog/mybooks/*'",
    ),
    "microblog": (
        "microblog:app",
        {},
        ["/edit_profile/*", "/api"],
        "route '/edit_profile' is not protected, though protect has '/edit_profile/*'",
    ),
    "fullstack": (
        "backend.main:app",
        {},
        ["/api/users/me/*", "/api/items"],
        "route '/api/users/me' is not protected, though protect has '/api/users/me/*'",
    ),
}


@pytest.mark.parametrize("app", list(CHECKS))
def test_check_routes_on_the_apps(app: str, tmp_path: Path) -> None:
    """Quiet for each app's own patterns; a broken variant of them (a glob that leaves the
    page itself open) is found, and the exit status says so."""
    target, extra, broken, warning = CHECKS[app]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMS2FA_", "DJANGO_"))}
    env.update(extra)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env["DJANGO_DB_PATH"] = env["DATABASE"] = env["DATABASE_PATH"] = str(tmp_path / "app.db")

    def check(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sms2fa_middleware", "check-routes", target, *args],
            cwd=APPS / app,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    done = check()
    assert (done.returncode, done.stdout) == (0, ""), done.stdout + done.stderr
    done = check(*[arg for pattern in broken for arg in ("--protect", pattern)])
    assert done.returncode == 1, done.stdout + done.stderr
    assert warning in done.stdout
