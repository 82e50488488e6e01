"""Acceptance: the challenge page made by the app's own templates (the ``render`` option), in
headless Chromium.

Two small real shops (tests/support/template_apps): a Flask one served by werkzeug in a
thread, its pages through ``flask_render``; a Django one served by uvicorn (ASGI) in a
process, its pages through ``django_render``. Each has its own ``templates/base.html`` and
``static/style.css`` (and a logo), and its own ``sms2fa/challenge.html`` extending its base.
In the browser: the page is the shop's (its header, its title), its stylesheet loads (a
computed style it sets), its logo loads, its own nonce'd script runs, nothing breaks the
page's Content-Security-Policy (no ``securitypolicyviolation`` event, no console report),
our script counts the resend wait down in the page's language, and the code typed in the
shop's form reaches the protected page. Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sms2fa_middleware import Settings
from sms2fa_middleware.testing import FakeFlowroute
from tests.e2e.test_browser import ARTIFACTS, TIMEOUT_MS, browser  # noqa: F401 - the fixture
from tests.support import ROOT, SECRET
from tests.support.servers import free_port, launch

with contextlib.suppress(ImportError):  # without it, the browser fixture skips (or fails in CI)
    from playwright.sync_api import Browser, Page, expect

pytestmark = [pytest.mark.browser]

ALICE = "+12065551234"
BACKGROUND = "rgb(250, 240, 230)"  # body's, in each shop's style.css
NAV = "rgb(20, 60, 40)"
#: Collects what the page's policy blocks (the event a browser fires for each violation);
#: an init script runs before the page's own, outside its policy.
WATCH_CSP = (
    "window.__csp = [];"
    "document.addEventListener('securitypolicyviolation', function (e) {"
    "  window.__csp.push(e.violatedDirective + ' ' + e.blockedURI); });"
)


@pytest.fixture
def flask_shop(tmp_path: Path, fake_flowroute: FakeFlowroute) -> Iterator[str]:
    from werkzeug.serving import make_server

    from tests.support.template_apps.flask_shop import create_app

    settings = Settings(
        secret_key=SECRET,
        database_url=f"sqlite:///{tmp_path / 'shop.db'}",
        resend_cooldown=30,
        **fake_flowroute.settings_kwargs(),
    )
    server = make_server("127.0.0.1", 0, create_app(settings), threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def django_shop(tmp_path: Path, fake_flowroute: FakeFlowroute) -> Iterator[str]:
    port = free_port()
    env = {
        **fake_flowroute.settings_env(),
        "SMS2FA_SECRET_KEY": SECRET,
        "SMS2FA_DATABASE_URL": f"sqlite:///{tmp_path / 'shop.db'}",
        "SMS2FA_RESEND_COOLDOWN": "30",
        "DJANGO_SETTINGS_MODULE": "tests.support.template_apps.django_shop.settings",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    log = tmp_path / "django.log"
    args = ["uvicorn", "tests.support.template_apps.django_shop.asgi:application"]
    args += ["--port", str(port), "--log-level", "warning"]
    with launch(args, env, port, path="/login", log_path=log, cwd=ROOT) as (base, _):
        yield base
    output = log.read_text(errors="replace")
    assert "Traceback" not in output and "render(" not in output, output


def _open(browser: Browser, locale: str = "en-US") -> tuple[Any, Page, list[str]]:  # noqa: F811
    context = browser.new_context(locale=locale)
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(WATCH_CSP)
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda error: console.append(f"page error: {error}"))
    return context, page, console


def _the_shops_challenge(
    page: Page, base: str, console: list[str], framework: str, statics: list[str]
) -> None:
    """At the shop's challenge page: its look, loaded, and nothing blocked."""
    expect(page).to_have_url(re.compile(re.escape(base) + r"/sms2fa/challenge\?next=%2Faccount$"))
    expect(page.locator("#shop-challenge")).to_be_visible()  # the shop's own template
    expect(page.locator("nav#shop")).to_contain_text("Corner Shop")  # in the shop's base.html
    expect(page.locator("footer")).to_have_text(framework)
    expect(page).to_have_title(re.compile(r"\| Corner Shop$"))
    # The stylesheet loaded and applies ('self' styles); so did the logo ('self' images).
    expect(page.locator("body")).to_have_css("background-color", BACKGROUND)
    expect(page.locator("nav#shop")).to_have_css("background-color", NAV)
    assert page.evaluate("document.querySelector('nav#shop img').naturalWidth") > 0
    assert sorted(statics) == ["/static/logo.svg", "/static/style.css"], statics
    # The shop's own script ran by the page's nonce; ours counts down in the page's language.
    expect(page.locator("html")).to_have_attribute("data-shop-script", "ran")
    expect(page.get_by_label(re.compile("code|código", re.I))).to_have_attribute(
        "data-webotp", re.compile("^(waiting|unsupported)$")
    )
    assert page.evaluate("window.__csp") == []
    assert not [m for m in console if "Content Security Policy" in m], console


def _walk(browser: Browser, base: str, fake: FakeFlowroute, framework: str) -> None:  # noqa: F811
    ARTIFACTS.mkdir(exist_ok=True)
    context, page, console = _open(browser)
    statics: list[str] = []
    page.on(
        "response",
        lambda r: statics.append(r.url[len(base) :]) if "/static/" in r.url and r.ok else None,
    )
    try:
        page.goto(f"{base}/login?user=alice&next=/account")
        _the_shops_challenge(page, base, console, framework, statics)
        expect(page.locator("#cooldown")).to_have_text(
            re.compile(r"^You can ask for a new code in (1[0-9]|2[0-8]) seconds\.$"), timeout=5_000
        )
        page.screenshot(path=ARTIFACTS / f"app-templates-{framework.lower()}.png", full_page=True)

        page.get_by_label("Verification code").fill(
            "000000" if fake.last_code(ALICE) != "000000" else "111111"
        )
        page.get_by_role("button", name="Verify").click()
        expect(page.locator("#error")).to_have_text("That code is not right, or it has expired.")
        expect(page.locator("#shop-challenge")).to_be_visible()  # the error in the shop's page
        assert page.evaluate("window.__csp") == []

        page.get_by_label("Verification code").fill(fake.last_code(ALICE))
        page.get_by_role("button", name="Verify").click()
        expect(page).to_have_url(base + "/account")
        expect(page.locator("#account")).to_have_text("account of alice")
        assert not [m for m in console if "Content Security Policy" in m or "error" in m], console
    finally:
        context.close()

    spanish, page, console = _open(browser, locale="es-ES")
    try:
        page.goto(f"{base}/login?user=alice&next=/account")
        expect(page.locator("html")).to_have_attribute("lang", "es")
        expect(page).to_have_title("Escribe tu código de verificación | Corner Shop")
        # The server's sentence, then the script's, both Spanish with Spanish plurals.
        expect(page.locator("#cooldown")).to_have_text(
            re.compile(r"^Puedes pedir un código nuevo en (1[0-9]|2[0-8]) segundos\.$"),
            timeout=5_000,
        )
        assert page.evaluate("window.__csp") == []
        page.screenshot(
            path=ARTIFACTS / f"app-templates-{framework.lower()}-es.png", full_page=True
        )
    finally:
        spanish.close()


def test_a_flask_apps_template_makes_the_challenge(
    browser: Browser,  # noqa: F811 - the fixture
    flask_shop: str,
    fake_flowroute: FakeFlowroute,
) -> None:
    _walk(browser, flask_shop, fake_flowroute, "Flask")


def test_a_django_projects_template_makes_the_challenge(
    browser: Browser,  # noqa: F811 - the fixture
    django_shop: str,
    fake_flowroute: FakeFlowroute,
) -> None:
    _walk(browser, django_shop, fake_flowroute, "Django")


def test_the_packages_pages_in_the_shops_layout(
    browser: Browser,  # noqa: F811 - the fixture
    flask_shop: str,
    fake_flowroute: FakeFlowroute,
) -> None:
    """A page the shop has no template of (recovery codes) is the package's, in the shop's
    base.html: styled by its stylesheet, under the same policy."""
    context, page, console = _open(browser)
    try:
        page.goto(f"{flask_shop}/login?user=alice&next=/account")
        page.get_by_label("Verification code").fill(fake_flowroute.last_code(ALICE))
        page.get_by_role("button", name="Verify").click()
        expect(page.locator("#account")).to_be_visible()
        page.goto(flask_shop + "/sms2fa/recovery")
        expect(page.locator("section.sms2fa-recovery")).to_be_visible()
        expect(page.locator("nav#shop")).to_have_css("background-color", NAV)
        page.get_by_role("button", name="Make new recovery codes").click()
        expect(page.locator("#recovery-codes li")).to_have_count(10)
        assert page.evaluate("window.__csp") == []
        assert not [m for m in console if "Content Security Policy" in m], console
        page.screenshot(path=ARTIFACTS / "app-templates-flask-recovery.png", full_page=True)
    finally:
        context.close()
