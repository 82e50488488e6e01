"""Smaller items of adoption round three, each with what proves it:

* ``logout_url`` passes unverified under a protect pattern (``protect=["/admin"]`` must not
  trap a user who cannot enter a code at the admin's logout; Django's default is the
  admin's logout, proved over a real server in test_real_apps_adopted.py);
* the "your form was not sent" sentence survives a post that arrives in the resend cooldown;
* the route-level refusals (``verified_required``) are a page for a browser, JSON else;
* examples/django_app refuses to start without its secret outside development mode;
* ``sms2fa_env`` makes a module-level app's middleware read the environment again;
* the README says how to install before the first release.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import Client
from werkzeug.wrappers import Request, Response

from sms2fa_middleware import Identity, Settings
from sms2fa_middleware.guard import GuardOptions
from sms2fa_middleware.testing import FakeFlowroute, settings_for_tests
from sms2fa_middleware.wsgi import SMS2FAMiddleware

ROOT = Path(__file__).resolve().parents[2]
PHONE = "+12065550191"
HTML = {"accept": "text/html"}


@Request.application
def page(request: Request) -> Response:
    return Response(f"{request.method} {request.path}")


def wsgi(settings: Settings, **options: Any) -> SMS2FAMiddleware:
    return SMS2FAMiddleware(
        page, settings, identify=lambda request: Identity("u1", PHONE), **options
    )


# -- logout_url -----------------------------------------------------------------------------


def test_logout_url_passes_unverified_under_a_protect_pattern(
    sms2fa_settings: Settings, fake_flowroute: FakeFlowroute
) -> None:
    app = wsgi(sms2fa_settings, protect=["/admin"], logout_url="/admin/logout")
    client = Client(app)
    assert client.get("/admin/", headers=HTML).status_code == 303  # the challenge
    out = client.post("/admin/logout/", headers=HTML)
    assert out.status_code == 200 and out.get_data(as_text=True) == "POST /admin/logout/"
    assert client.get("/admin/logout-all", headers=HTML).status_code == 303  # segments only
    assert len(fake_flowroute.messages) == 1  # the logout sent no code


def test_logout_url_options() -> None:
    options = GuardOptions(protect=["/admin"], exclude=["/admin/health"], logout_url="/admin/out")
    assert options.exclude == ("/admin/health", "/admin/out")
    assert options.logout_url == ("/admin/out",)
    several = GuardOptions(protect=["/a"], logout_url=["/a/out", "/b/out"])
    assert several.exclude == ("/a/out", "/b/out")
    assert GuardOptions.from_mapping({"protect": ["/a"], "logout_url": "/a/out"}).exclude == (
        "/a/out",
    )
    with pytest.raises(ValueError, match="must start with '/'"):
        SMS2FAMiddleware(page, identify=lambda r: None, protect=["/a"], logout_url="out")


# -- the lost post in the resend cooldown ------------------------------------------------------


def test_the_lost_post_sentence_survives_the_resend_cooldown(
    sms2fa_settings: Settings, fake_flowroute: FakeFlowroute
) -> None:
    """Verified, then the session lost (logged out, a new browser): a form post comes while
    the last code's resend wait still runs. No code can be sent yet -- the page says so --
    and it must still say the form was not sent."""
    app = wsgi(sms2fa_settings, protect=["/account"])
    first = Client(app)
    assert first.get("/account", headers=HTML).status_code == 303
    done = first.post("/sms2fa/challenge", json={"code": fake_flowroute.last_code(PHONE)})
    assert done.status_code == 200

    browser = Client(app)  # no verified cookie; the code is spent, its resend wait is not
    posted = browser.post(
        "/account",
        headers={**HTML, "referer": "http://localhost/account"},
        data={"title": "a post the guard cannot keep"},
    )
    assert posted.status_code == 303
    challenge = browser.get(posted.headers["location"], headers=HTML).get_data(as_text=True)
    assert "Your last form was not sent" in challenge
    assert "A code was sent very recently" in challenge  # and why no new code came
    assert len(fake_flowroute.messages) == 1
    again = browser.get(posted.headers["location"], headers=HTML).get_data(as_text=True)
    assert "Your last form was not sent" not in again  # shown once


# -- route-level refusals: a page for a browser, JSON else ---------------------------------------


def test_flask_verified_required_answers_browsers_with_a_page() -> None:
    from flask import Flask

    from sms2fa_middleware.flask import verified_required

    app = Flask(__name__)

    @app.get("/account")
    @verified_required
    def account() -> str:
        return "account"

    client = app.test_client()
    browser = client.get("/account", headers=HTML)
    assert browser.status_code == 403 and browser.mimetype == "text/html"
    assert "needs SMS verification" in browser.get_data(as_text=True)
    assert browser.headers["cache-control"] == "no-store"
    api = client.get("/account", headers={"accept": "application/json"})
    assert api.status_code == 403 and api.get_json()["reason"] == "VerificationRequired"


def test_starlette_verified_required_answers_browsers_with_a_page() -> None:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from sms2fa_middleware.starlette import verified_required

    @verified_required
    async def account(request: Any) -> PlainTextResponse:
        return PlainTextResponse("account")

    with TestClient(Starlette(routes=[Route("/account", account)])) as client:
        browser = client.get("/account", headers=HTML)
        assert browser.status_code == 403
        assert browser.headers["content-type"].startswith("text/html")
        assert "needs SMS verification" in browser.text
        api = client.get("/account")
        assert api.status_code == 403 and api.json()["reason"] == "VerificationRequired"


def test_django_verified_required_answers_browsers_with_a_page(project: None) -> None:
    from django.http import HttpRequest, HttpResponse
    from django.test import RequestFactory

    from sms2fa_middleware.django import verified_required

    @verified_required
    def account(request: HttpRequest) -> HttpResponse:
        return HttpResponse("account")

    browser = account(RequestFactory().get("/account/", headers=HTML))
    assert browser.status_code == 403 and browser["content-type"].startswith("text/html")
    assert b"needs SMS verification" in browser.content
    api = account(RequestFactory().get("/account/"))
    assert api.status_code == 403 and api["content-type"] == "application/json"
    assert b'"VerificationRequired"' in api.content


ES = {"accept": "text/html", "accept-language": "es-MX,en;q=0.5"}
NOT_HERE_ES = "Esta página necesita verificación por SMS, y esta solicitud no la tuvo."
NOT_HERE_FR = (
    "Cette page exige une vérification par SMS, qui n\u2019a pas eu lieu pour cette requête."
)


def _spanish(page: str) -> None:
    """The route-level 403 page in Spanish: its language, title and sentence."""
    assert '<html lang="es" dir="ltr">' in page
    assert "<title>Prohibido</title>" in page and f"<p>{NOT_HERE_ES}</p>" in page


def test_the_route_level_refusal_speaks_the_requests_language(
    make_settings: Any, fake_flowroute: Any
) -> None:
    """Accept-Language without a middleware (a view whose path the middleware never saw);
    through a middleware, its ``language`` option first and its ``render`` hook's page."""
    from flask import Flask

    from sms2fa_middleware.flask import verified_required
    from sms2fa_middleware.wsgi import SMS2FAMiddleware

    app = Flask(__name__)

    @app.get("/report")
    @verified_required
    def report() -> str:
        return "report"

    client = app.test_client()
    _spanish(client.get("/report", headers=ES).get_data(as_text=True))
    api = client.get("/report", headers={"accept-language": "es"}).get_json()
    assert api == {"message": NOT_HERE_ES, "reason": "VerificationRequired"}

    def render(page: str, context: Any) -> str:
        return f"<main lang={context['lang']}>{page}: {context['sentence']}</main>"

    app.wsgi_app = SMS2FAMiddleware(  # type: ignore[method-assign]
        app.wsgi_app,
        make_settings(),
        protect=["/account"],
        identify=lambda request: None,
        language=lambda request, identity: "fr",  # the user's saved language
        render=render,
    )
    page = client.get("/report", headers=ES)
    assert page.status_code == 403 and page.headers["cache-control"] == "no-store"
    assert page.get_data(as_text=True).startswith(f"<main lang=fr>forbidden: {NOT_HERE_FR}</main>")
    assert "'nonce-" in page.headers["content-security-policy"]


def test_starlette_and_django_refusals_in_spanish(project: None) -> None:
    from django.http import HttpRequest, HttpResponse
    from django.test import RequestFactory
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from sms2fa_middleware.django import verified_required as django_verified_required
    from sms2fa_middleware.starlette import require_verified, verified_required

    @verified_required
    async def report(request: Any) -> PlainTextResponse:
        return PlainTextResponse("report")

    async def required(request: Any) -> PlainTextResponse:
        require_verified(request)  # FastAPI's dependency, called by hand: HTTPException 403
        return PlainTextResponse("never")

    app = Starlette(routes=[Route("/report", report), Route("/required", required)])
    with TestClient(app) as client:
        _spanish(client.get("/report", headers=ES).text)
        refused = client.get("/required", headers={"accept-language": "es"})
        assert refused.status_code == 403 and NOT_HERE_ES in refused.text

    @django_verified_required
    def django_report(request: HttpRequest) -> HttpResponse:
        return HttpResponse("report")

    @django_verified_required
    async def async_report(request: HttpRequest) -> HttpResponse:
        return HttpResponse("report")

    _spanish(django_report(RequestFactory().get("/report/", headers=ES)).content.decode())
    import asyncio

    answer = asyncio.run(async_report(RequestFactory().get("/report/", headers=ES)))
    _spanish(answer.content.decode())


# -- examples/django_app outside development --------------------------------------------------


def test_the_django_example_refuses_to_start_without_its_secret(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMS2FA_", "FLOWROUTE_"))}
    env.update(
        PYTHONPATH=str(ROOT),
        DJANGO_DB_PATH=str(tmp_path / "django.db"),
        SMS2FA_DATABASE_URL=f"sqlite:///{tmp_path / 'sms2fa.db'}",
    )
    env.pop("DJANGO_SETTINGS_MODULE", None)

    def check(**extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "manage.py", "check"],
            cwd=ROOT / "examples" / "django_app",
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=120,
        )

    production = check(DJANGO_DEBUG="0")
    assert production.returncode != 0
    assert "SMS2FA_SECRET_KEY" in production.stderr
    assert check(DJANGO_DEBUG="1").returncode == 0  # local development: codes on the console
    with FakeFlowroute() as fake:
        ready = check(DJANGO_DEBUG="0", SMS2FA_SECRET_KEY="s" * 40, **fake.settings_env())
    assert ready.returncode == 0, ready.stderr


# -- sms2fa_env and a module-level app --------------------------------------------------------


def test_a_module_level_app_reads_the_environment_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What sms2fa_env does between tests: a middleware built once (at import) and reading
    ``Settings.from_env()`` gets the new test's settings, not the first test's."""
    from sms2fa_middleware.guard.app import reset_from_env

    app = SMS2FAMiddleware(page, identify=lambda r: None, protect=["/account"])
    given = wsgi(settings_for_tests(tmp_path / "given.db"), protect=["/account"])
    keys = []
    for name in ("first", "second"):
        settings = settings_for_tests(tmp_path / f"{name}.db")
        monkeypatch.setenv("SMS2FA_SECRET_KEY", settings.secret_keys[0])
        monkeypatch.setenv("SMS2FA_DATABASE_URL", settings.database_url)
        monkeypatch.setenv("SMS2FA_SMS_BACKEND", "console")
        reset_from_env()
        keys.append(app.guard.settings.secret_keys[0])
        assert app.guard.settings.database_url == settings.database_url
    assert keys[0] != keys[1]
    before = given.guard
    reset_from_env()
    assert given.guard is before  # settings given in code are never re-read


# -- README -----------------------------------------------------------------------------------


def test_the_readme_says_how_to_install_before_the_first_release() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "pip install 'sms2fa-middleware[flask] @ git+https://github.com/" in readme
    assert "pip install -e '.[flask]'" in readme
