"""Accessibility of every page the middleware serves, in headless Chromium, checked by axe-core.

A Flask app protected by the middleware (``tests.support.apps.serve``, real FakeFlowroute, a
SQLite file) is walked through: the challenge page (fresh with the resend wait running, then
after a wrong code), the recovery-codes page (before and after making codes), the trusted
browsers page, the change-of-number page (and its code form), the 403 after a bad CSRF
token, the enrollment page, the no-phone page and the failed-identify page; and the
enrollment page in the states a new user meets (number form, a refused number, code form, a
wrong code). On each, axe-core (the ``axe.min.js`` bundled by the ``axe-playwright-python``
package, injected through the DevTools protocol, so the page's Content-Security-Policy stays
as served) must find no WCAG 2.0/2.1 A or AA violation, and the page must not scroll
sideways. The walk runs twice: light at desktop width, and dark (``prefers-color-scheme:
dark``) at 320 px, so axe's color-contrast rule sees the dark colours. It runs over the
built-in pages, and over the package's Jinja2 templates (``flask_render``, its base.html);
dark at 320 px over its Django templates (``django_render``, a Django project served by
uvicorn). Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_browser import ARTIFACTS, TIMEOUT_MS, browser  # noqa: F401 - the fixture

try:
    from axe_playwright_python.base import AXE_FILE_PATH
    from playwright.sync_api import Browser, Page, expect
except ImportError:  # pragma: no cover - depends on the environment
    AXE_FILE_PATH = None

pytestmark = [pytest.mark.browser]

WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
ALICE = "+12065551234"


def _axe_script() -> str:
    if AXE_FILE_PATH is None:
        pytest.skip("axe-playwright-python is not installed (pip install -e '.[test]')")
    return Path(AXE_FILE_PATH).read_text(encoding="utf-8")


def _violations(page: Page, script: str) -> list[dict[str, Any]]:
    """axe-core's WCAG 2.1 AA violations on the page as it is now."""
    page.evaluate(script)
    result = page.evaluate(
        "(tags) => axe.run(document, {runOnly: {type: 'tag', values: tags},"
        " resultTypes: ['violations']})",
        WCAG_AA,
    )
    return list(result["violations"])


def _describe(violations: list[dict[str, Any]]) -> str:
    lines = []
    for v in violations:
        lines.append(f"{v['id']} ({v['impact']}): {v['help']}")
        for node in v["nodes"]:
            lines.append(f"    {node['target']}: {node.get('failureSummary', '')!r}")
    return "\n".join(lines)


def _identify(users: dict[str, str]) -> Callable[[Any], Any]:
    """alice has a phone; carol has none; anyone called "broken" makes identify() raise."""
    from sms2fa_middleware import Identity

    def identify(request: Any) -> Identity | None:
        user = request.headers.get("x-user")
        if user == "broken":
            raise RuntimeError("the user store is down")
        if user == "carol":
            return Identity("carol", None)
        return Identity(user, users[user]) if user in users else None

    return identify


def _render_with(pages: str) -> dict[str, Any]:
    """The ``serve`` options that make the pages: ours, or the package's Jinja2 templates
    (``flask_render`` with no template of the app's, so the package's base.html too)."""
    if pages == "built-in":
        return {}
    from sms2fa_middleware.flask import flask_render

    return {"render_with": flask_render}


@pytest.mark.parametrize("pages", ["built-in", "jinja2"])
@pytest.mark.parametrize("scheme,width", [("light", 1024), ("dark", 320)])
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_every_page_passes_axe(
    browser: Browser,  # noqa: F811 - the fixture
    make_settings: Callable[..., Any],
    fake_flowroute: Any,
    scheme: str,
    width: int,
    pages: str,
) -> None:
    from tests.support.apps import serve

    _axe_script()  # skips early without axe
    users = {"alice": ALICE}
    site = serve(
        "flask",
        make_settings(resend_cooldown=30),
        users,
        identify=_identify(users),
        trust_browser_for=30,
        on_enroll=lambda auth_id, number: users.__setitem__(auth_id, number),
        **_render_with(pages),
    )
    # Without on_enroll a user with no phone gets the no-phone page, not enrollment.
    plain = serve("flask", make_settings(), users, identify=_identify(users), **_render_with(pages))
    try:
        _axe_walk(browser, site.url, plain.url, fake_flowroute, scheme, width, pages)
    finally:
        site.stop()
        plain.stop()


# Dark and narrow only: the Django base.html has the Jinja2 one's styles, walked both ways
# above; this run is for the Django templates' markup (and keeps the file's time down).
@pytest.mark.parametrize("scheme,width", [("dark", 320)])
def test_every_page_from_the_packages_django_templates_passes_axe(
    browser: Browser,  # noqa: F811 - the fixture
    tmp_path: Path,
    fake_flowroute: Any,
    scheme: str,
    width: int,
) -> None:
    """The same walk over a Django project whose pages are the package's Django templates
    and base.html (``django_render()``, tests/support/template_apps/django_package), served
    by uvicorn: with ``on_enroll`` and without."""
    from tests.support import ROOT, SECRET
    from tests.support.servers import free_port, launch

    env = {
        **fake_flowroute.settings_env(),
        "SMS2FA_SECRET_KEY": SECRET,
        "SMS2FA_RESEND_COOLDOWN": "30",
        "DJANGO_SETTINGS_MODULE": "tests.support.template_apps.django_package.settings",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    app = ["uvicorn", "--factory", "django.core.asgi:get_asgi_application", "--log-level"]
    logs = [tmp_path / "enroll.log", tmp_path / "plain.log"]
    with contextlib.ExitStack() as servers:
        urls = []
        for log, enroll in zip(logs, ("1", "0"), strict=True):
            port = free_port()
            db = f"sqlite:///{tmp_path / f'sms2fa-{enroll}.db'}"
            url, _ = servers.enter_context(
                launch(
                    [*app, "warning", "--port", str(port)],
                    {**env, "SMS2FA_DATABASE_URL": db, "SMS2FA_TEST_ENROLL": enroll},
                    port,
                    path="/favicon.ico",
                    log_path=log,
                    cwd=ROOT,
                )
            )
            urls.append(url)
        _axe_walk(browser, urls[0], urls[1], fake_flowroute, scheme, width, "django")
    for log in logs:  # only the "broken" user's identify() error, nothing else
        output = log.read_text(errors="replace")
        assert "TemplateSyntaxError" not in output and "render(" not in output, output


def _axe_walk(
    browser: Browser,  # noqa: F811 - the fixture's type
    url: str,
    plain_url: str,
    fake: Any,
    scheme: str,
    width: int,
    pages: str,
) -> None:
    """``_walk`` over the site at ``url`` (with on_enroll) and ``plain_url`` (without) in
    ``scheme`` at ``width``; each page must pass axe, keep its policy, fit the width, and be
    made by ``pages`` ("built-in", or a template set: a <section class="sms2fa ...">)."""
    script = _axe_script()
    ARTIFACTS.mkdir(exist_ok=True)
    found: dict[str, list[dict[str, Any]]] = {}

    def check(page: Page, name: str) -> None:
        # The page is the template's (its <section class="sms2fa ...">), not a built-in one.
        assert page.locator("section.sms2fa").count() == (pages != "built-in"), name
        found[name] = _violations(page, script)
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{name}: the page scrolls sideways by {overflow}px at {width}px"
        # On a phone a page without a viewport meta is laid out 980 px wide and shrunk.
        assert page.evaluate("window.innerWidth") == width, f"{name}: no viewport meta"
        shot = f"a11y-{name}-{scheme}-{width}" + ("" if pages == "built-in" else f"-{pages}")
        page.screenshot(path=ARTIFACTS / f"{shot}.png", full_page=True)

    def open_as(user: str) -> Any:
        context = browser.new_context(
            extra_http_headers={"X-User": user},
            color_scheme=scheme,  # type: ignore[arg-type]
            viewport={"width": width, "height": 720},
            is_mobile=width < 600,  # the narrow run is a phone: it honours the viewport meta
        )
        context.set_default_timeout(TIMEOUT_MS)
        context.on(
            "console",
            lambda m: csp_errors.append(m.text) if "Content Security Policy" in m.text else None,
        )
        return context

    csp_errors: list[str] = []
    _walk(url, open_as, check, fake, plain_url)
    assert not csp_errors, f"a page broke its Content-Security-Policy: {csp_errors}"
    failed = {name: v for name, v in found.items() if v}
    assert not failed, "axe-core found WCAG 2.1 AA violations:\n" + "\n".join(
        f"[{name}]\n{_describe(v)}" for name, v in failed.items()
    )


def _walk(
    url: str,
    open_as: Callable[[str], Any],
    check: Callable[[Page, str], None],
    fake: Any,
    plain_url: str,
) -> None:
    """Every page, in the states a user meets them, each handed to ``check`` (``url``: with
    on_enroll; ``plain_url``: without, where a user with no phone meets the no-phone page)."""
    alice = open_as("alice")
    try:
        page = alice.new_page()
        page.goto(url + "/account")
        field = page.get_by_label("Verification code")
        expect(field).to_be_focused()  # focus lands on the code field
        assert page.evaluate("document.activeElement.id") == "code"
        expect(page.locator("#cooldown")).to_be_visible()  # the resend wait
        check(page, "challenge")

        field.fill("000000" if fake.last_code(ALICE) != "000000" else "111111")
        page.get_by_role("button", name="Verify").click()
        alert = page.get_by_role("alert")
        expect(alert).to_have_text("That code is not right, or it has expired.")
        assert alert.get_attribute("aria-live") in (None, "assertive")  # role=alert is live
        field = page.get_by_label("Verification code")
        expect(field).to_be_focused()  # and read with the error and the attempts left
        expect(field).to_have_accessible_description(
            "That code is not right, or it has expired. 2 attempts left."
        )
        check(page, "challenge-error")

        field.fill(fake.last_code(ALICE))
        page.get_by_role("checkbox").check()  # trust this browser: the browsers page lists it
        page.get_by_role("button", name="Verify").click()
        expect(page).to_have_url(url + "/account")

        page.goto(url + "/sms2fa/recovery")
        check(page, "recovery")
        page.get_by_role("button").click()
        expect(page.locator("#recovery-codes li")).to_have_count(10)
        check(page, "recovery-codes")

        page.goto(url + "/sms2fa/browsers")
        expect(page.locator("#trusted-browsers li")).to_have_count(1)
        check(page, "browsers")

        page.goto(url + "/sms2fa/phone")  # the code above is recent: no step-up
        check(page, "phone")
        page.get_by_label("New mobile number").fill("(312) 555-0199")
        page.get_by_role("button", name="Text me a code").click()
        field = page.get_by_label("Verification code")
        expect(field).to_be_focused()
        check(page, "phone-code")

        page.goto(url + "/sms2fa/recovery")
        page.evaluate("document.querySelector('[name=csrf_token]').value = 'forged'")
        page.get_by_role("button").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Forbidden")
        check(page, "forbidden")
    finally:
        alice.close()

    context = open_as("carol")
    try:
        page = context.new_page()
        page.goto(url + "/account")  # with on_enroll: the enrollment page
        expect(page.get_by_role("heading", level=1)).to_have_text("Add your phone number")
        check(page, "enroll")
    finally:
        context.close()

    for user, name in (("carol", "no-phone"), ("broken", "error")):
        context = open_as(user)
        try:
            page = context.new_page()
            answer = page.goto(plain_url + "/account")
            assert answer is not None and answer.status == (403 if user == "carol" else 500)
            check(page, name)
        finally:
            context.close()


@pytest.mark.parametrize("pages", ["built-in", "jinja2"])
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_part_of_the_challenge_page_passes_axe(
    browser: Browser,  # noqa: F811 - the fixture
    scheme: str,
    pages: str,
) -> None:
    """The challenge page with everything it can show at once (an error, a notice, the trust
    box, the recovery form opened, the log-out link, the resend wait), in an Arabic
    right-to-left page too; with no live code; the 503 page; built-in or from the package's
    Jinja2 templates; and axe does fail a page that breaks the rules (the check works)."""
    from sms2fa_middleware import text
    from sms2fa_middleware.errors import StoreUnavailable
    from sms2fa_middleware.guard import responses
    from sms2fa_middleware.guard.flows.pages import ChallengeView, challenge_context
    from sms2fa_middleware.guard.rendering import Renderer
    from sms2fa_middleware.messages import Request

    script = _axe_script()
    view = ChallengeView(
        masked_recipient="+1••••••••34",
        action="/sms2fa/challenge",
        resend_action="/sms2fa/challenge/resend",
        csrf_token="token",
        next_url="/account",
        code_length=6,
        attempts_left=2,
        resend_in=25,
        error="That code is not right, or it has expired.",
        notice="The form you sent was not sent.",
        logout_url="/logout",
        recovery_left=3,
        trust_days=30,
    )
    if pages == "built-in":
        renderer = Renderer()
    else:
        from flask import Flask

        from sms2fa_middleware.flask import flask_render

        renderer = Renderer(flask_render(Flask("a11y")))

    def challenge(view: ChallengeView) -> str:
        return renderer.respond(challenge_context(view)).body.decode()

    context = browser.new_context(color_scheme=scheme)  # type: ignore[arg-type]
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        for language in ("en", "ar"):
            with text.speaking(language):
                html = challenge(view)
            page.set_content(html)
            assert page.locator("section.sms2fa").count() == (pages != "built-in")
            page.locator("details.recovery summary").click()  # the recovery form shown
            violations = _violations(page, script)
            assert not violations, f"[{language}, {scheme}]\n{_describe(violations)}"
            if scheme == "dark":  # the page follows the scheme: light text on a dark ground
                light = page.evaluate(
                    "getComputedStyle(document.body).color.match(/[0-9]+/g).map(Number)"
                )
                assert min(light[:3]) > 128, light

        # The states the server walk does not reach: no live code (a new one to ask for,
        # held back by a spent budget), and the 503 when the store is down.
        held = replace(view, attempts_left=None, error=None, notice=None, held="Wait a while.")
        with renderer.active():
            unavailable = responses.unavailable(
                Request("GET", "/account", headers={"accept": "text/html"}), StoreUnavailable()
            )
        assert unavailable.status == 503
        for name, html in (
            ("held", challenge(held)),
            ("unavailable", unavailable.body.decode()),
        ):
            page.set_content(html)
            assert page.locator("section.sms2fa").count() == (pages != "built-in"), name
            violations = _violations(page, script)
            assert not violations, f"[{name}, {scheme}]\n{_describe(violations)}"

        page.set_content("<!doctype html><title>x</title><input><p style='color:#777'>faint")
        broken = {v["id"] for v in _violations(page, script)}
        assert {"html-has-lang", "label"} <= broken, broken
    finally:
        context.close()


@pytest.mark.parametrize("scheme,width", [("light", 1024), ("dark", 320)])
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_enroll_pages_pass_axe(
    browser: Browser,  # noqa: F811 - the fixture
    make_settings: Callable[..., Any],
    fake_flowroute: Any,
    scheme: str,
    width: int,
) -> None:
    """``{prefix}/enroll`` (``on_enroll``) in the states a new user meets it: the number
    form, a number refused, the code form once a code is out, and a wrong code."""
    from tests.support.apps import serve

    script = _axe_script()
    site = serve(
        "flask",
        make_settings(),
        {"alice": ALICE},
        identify=_identify({"alice": ALICE}),
        on_enroll=lambda auth_id, number: None,
    )
    context = browser.new_context(
        extra_http_headers={"X-User": "carol"},  # no phone on file
        color_scheme=scheme,  # type: ignore[arg-type]
        viewport={"width": width, "height": 720},
        is_mobile=width < 600,
    )
    context.set_default_timeout(TIMEOUT_MS)
    found: dict[str, list[dict[str, Any]]] = {}

    def check(page: Page, name: str) -> None:
        found[name] = _violations(page, script)
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{name}: the page scrolls sideways by {overflow}px at {width}px"
        assert page.evaluate("window.innerWidth") == width, f"{name}: no viewport meta"
        page.screenshot(path=ARTIFACTS / f"a11y-{name}-{scheme}-{width}.png", full_page=True)

    ARTIFACTS.mkdir(exist_ok=True)
    try:
        page = context.new_page()
        page.goto(site.url + "/account")
        expect(page.get_by_role("heading", name="Add your phone number")).to_be_visible()
        check(page, "enroll")

        page.get_by_label("Mobile number").fill("12")
        page.get_by_role("button", name="Text me a code").click()
        expect(page.get_by_role("alert")).to_contain_text("We cannot send codes to that number.")
        check(page, "enroll-refused")

        page.get_by_label("Mobile number").fill("(206) 555-0100")
        page.get_by_role("button", name="Text me a code").click()
        field = page.get_by_label("Verification code")
        expect(field).to_be_focused()
        check(page, "enroll-code")

        right = fake_flowroute.last_code("+12065550100")
        field.fill("000000" if right != "000000" else "111111")
        page.get_by_role("button", name="Add this number").click()
        expect(page.get_by_role("alert")).to_have_text("That code is not right, or it has expired.")
        check(page, "enroll-wrong-code")
    finally:
        context.close()
        site.stop()

    failed = {name: v for name, v in found.items() if v}
    assert not failed, "axe-core found WCAG 2.1 AA violations:\n" + "\n".join(
        f"[{name}]\n{_describe(v)}" for name, v in failed.items()
    )
