"""End to end in a real browser: ``sms2fa demo`` driven by headless Chromium via Playwright.

The demo runs as a subprocess (``python -m sms2fa_middleware demo``) on a free port with its
own SQLite file; Chromium logs in as alice, is challenged, reads the code on the demo's fake
phone (``/phone``) in a second tab, types a wrong code, then the right one, and lands on the
protected page. A second test does the same with JavaScript disabled. Screenshots of the
challenge page (desktop and phone-sized) go to ``test-artifacts/`` at the repository root.

Needs Chromium (``/usr/bin/chromium``, or the path in ``SMS2FA_CHROMIUM``) and the Python
``playwright`` package -- not Playwright's own browser download. Without them the tests skip
and say why; with ``CI=true`` they fail instead.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.servers import free_port, running

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the environment
    sync_playwright = None  # type: ignore[assignment]

pytestmark = pytest.mark.browser

IN_CI = os.environ.get("CI", "").lower() == "true"
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("SMS2FA_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 10_000

ALICE_DIGITS = "12065550123"  # demo.USERS["alice"], as the fake phone shows it
ALICE_MASKED = "+1••••••••23"
VERIFIED_TEXT = "Hello, alice: you are verified by SMS."


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


# -- the demo server ---------------------------------------------------------------------


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[str]:
    """``python -m sms2fa_middleware demo`` on a free port and a fresh SQLite file."""
    port = free_port()
    env = {
        "SMS2FA_DATABASE_URL": f"sqlite:///{tmp_path / 'demo.db'}",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "PYTHONUNBUFFERED": "1",
    }
    log = tmp_path / "demo.log"
    args = ["sms2fa_middleware", "demo", "--port", str(port)]
    with running(args, env, port, path="/", log_path=log, cwd=tmp_path) as base:
        yield base
    text = log.read_text(errors="replace")
    assert "Traceback" not in text, f"the demo logged an error:\n{text}"


# -- the browser -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if sync_playwright is None:
        _unavailable(
            "the Python package 'playwright' is not installed "
            "(pip install playwright; no 'playwright install' needed)"
        )
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        _unavailable(
            f"Chromium is not installed at {CHROMIUM} "
            "(apt-get install chromium, or set SMS2FA_CHROMIUM)"
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def _log_in(page: Page, base: str) -> None:
    page.goto(base + "/login")
    page.get_by_label("User name").fill("alice")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_text("Logged in as alice.")).to_be_visible()


def _read_code(phone: Page, base: str) -> str:
    """The code in the newest message to alice on the fake phone, and only one was sent."""
    phone.goto(base + "/phone")
    to_alice = phone.locator("#inbox li", has_text=f"to {ALICE_DIGITS}")
    expect(to_alice).to_have_count(1)
    body = to_alice.first.locator("code").inner_text()
    codes = re.findall(r"(?<![0-9])[0-9]{4,10}(?![0-9])", body)
    assert codes, f"no code in the SMS {body!r}"
    return codes[-1]


def _assert_challenge_page(page: Page, base: str) -> None:
    expect(page).to_have_url(re.compile(re.escape(base) + r"/sms2fa/challenge\?next=%2Faccount$"))
    expect(page).to_have_title("Enter your verification code")
    expect(page.get_by_role("heading", name="Check your phone")).to_be_visible()
    expect(page.locator("strong")).to_have_text(ALICE_MASKED)
    assert "0123" not in page.content()  # the full number never reaches the page
    field = page.get_by_label("Verification code")
    expect(field).to_be_visible()
    expect(field).to_have_attribute("name", "code")
    expect(field).to_have_attribute("autocomplete", "one-time-code")
    expect(field).to_have_attribute("inputmode", "numeric")
    expect(field).to_have_attribute("type", "text")
    expect(field).to_have_value("")
    expect(page.locator("#attempts")).to_have_text("3 attempts left.")
    expect(page.get_by_role("button", name="Verify")).to_be_enabled()
    resend = page.get_by_role("button", name="Send a new code")
    expect(resend).to_be_visible()
    expect(resend).to_be_disabled()  # the cooldown has just started
    expect(page.locator("#cooldown")).to_contain_text("You can ask for a new code in")


def _wrong(code: str) -> str:
    return "".join(str((int(d) + 1) % 10) for d in code)


# -- the tests -----------------------------------------------------------------------------


def test_sms_challenge_in_a_browser(browser: Browser, demo: str) -> None:
    context = browser.new_context(viewport={"width": 1024, "height": 768})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    csp_errors: list[str] = []
    page.on(
        "console",
        lambda m: (
            csp_errors.append(m.text)
            if m.type == "error" and "Content Security Policy" in m.text
            else None
        ),
    )
    page_errors: list[Any] = []
    page.on("pageerror", lambda error: page_errors.append(error))
    try:
        _log_in(page, demo)
        page.goto(demo + "/account")
        _assert_challenge_page(page, demo)
        expect(page.get_by_label("Verification code")).to_be_focused()  # autofocus

        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=ARTIFACTS / "challenge.png", full_page=True)
        mobile = browser.new_context(
            storage_state=context.storage_state(),
            viewport={"width": 390, "height": 844},
            device_scale_factor=2,
            is_mobile=True,
            has_touch=True,
        )
        try:
            phone_sized = mobile.new_page()
            phone_sized.goto(page.url)  # a GET of the page: no new SMS
            _assert_challenge_page(phone_sized, demo)
            overflow = phone_sized.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"the page scrolls sideways on a phone by {overflow}px"
            box = phone_sized.get_by_label("Verification code").bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
            phone_sized.screenshot(path=ARTIFACTS / "challenge-mobile.png")
        finally:
            mobile.close()

        phone = context.new_page()  # the fake phone in a second tab
        code = _read_code(phone, demo)
        page.bring_to_front()

        field = page.get_by_label("Verification code")
        field.fill(_wrong(code))
        page.get_by_role("button", name="Verify").click()
        expect(page.get_by_role("alert")).to_have_text("That code is not right, or it has expired.")
        expect(page.locator("#attempts")).to_have_text("2 attempts left.")
        expect(page).to_have_url(re.compile(r"/sms2fa/challenge"))
        expect(page.locator("strong")).to_have_text(ALICE_MASKED)
        page.screenshot(path=ARTIFACTS / "challenge-error.png", full_page=True)
        phone.reload()  # a wrong code sends no new SMS
        expect(phone.locator("#inbox li", has_text=f"to {ALICE_DIGITS}")).to_have_count(1)

        field.fill(code)
        page.get_by_role("button", name="Verify").click()
        expect(page).to_have_url(demo + "/account")
        expect(page.locator("#verified")).to_have_text(VERIFIED_TEXT)

        page.goto(demo + "/account")  # the verified session sticks: no new challenge
        expect(page).to_have_url(demo + "/account")
        expect(page.locator("#verified")).to_be_visible()
        assert not csp_errors, f"the page broke its Content-Security-Policy: {csp_errors}"
        assert not page_errors, f"JavaScript errors: {page_errors}"
    finally:
        context.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_form_post_and_htmx_after_verification_lapsed(
    browser: Browser, make_settings: Callable[..., Any], fake_flowroute: Any
) -> None:
    """Issue 12: a browser's form post whose verification lapsed goes to the challenge, says
    the post was not kept, and comes back to the form; an htmx call gets HX-Redirect."""
    from tests.support.apps import serve

    number = "+12065551234"
    site = serve("flask", make_settings(resend_cooldown=0), {"alice": number})
    context = browser.new_context(extra_http_headers={"X-User": "alice"})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()

    def verify() -> None:
        expect(page).to_have_url(re.compile(r"/sms2fa/challenge\?next="))
        page.get_by_label("Verification code").fill(fake_flowroute.last_code(number))
        page.get_by_role("button", name="Verify").click()

    try:
        page.goto(site.url + "/account")
        verify()
        expect(page).to_have_url(site.url + "/account")
        page.goto(site.url + "/public/form")
        site.middleware.revoke("alice")  # the verification lapses (a logout elsewhere)

        page.locator("#note").fill("a note")
        page.locator("#send").click()
        expect(page).to_have_url(site.url + "/sms2fa/challenge?next=%2Fpublic%2Fform")
        expect(page.get_by_role("status").first).to_contain_text("was not sent")
        verify()
        expect(page).to_have_url(site.url + "/public/form")  # back where the post was

        site.middleware.revoke("alice")
        page.locator("#htmx").click()
        expect(page).to_have_url(site.url + "/sms2fa/challenge?next=%2Fpublic%2Fform")
        verify()
        expect(page).to_have_url(site.url + "/public/form")
    finally:
        context.close()
        site.stop()


def test_sms_challenge_without_javascript(browser: Browser, demo: str) -> None:
    context = browser.new_context(java_script_enabled=False)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        _log_in(page, demo)
        page.goto(demo + "/account")
        _assert_challenge_page(page, demo)

        code = _read_code(context.new_page(), demo)
        page.bring_to_front()
        page.get_by_label("Verification code").fill(code)
        page.get_by_role("button", name="Verify").click()
        expect(page).to_have_url(demo + "/account")
        expect(page.locator("#verified")).to_have_text(VERIFIED_TEXT)
    finally:
        context.close()


# -- WebOTP wiring ----------------------------------------------------------------------
# The challenge page's WebOTP wiring in headless Chromium (``sms2fa demo``, as
# test_browser.py runs it). Chromium here cannot receive an SMS, so this shows the wiring:
# the SMS the demo's fake phone shows ends with ``@localhost #code`` (the page was opened as
# ``localhost``), the page's one script runs under its Content-Security-Policy nonce (the
# field says what WebOTP did: ``data-webotp``), nothing breaks the policy, and typing the code
# still works (the form's submit stops the wait).


def test_webotp_is_wired_under_the_csp(browser: Browser, demo: str) -> None:
    base = demo.replace("127.0.0.1", "localhost")
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    page_errors: list[Any] = []
    page.on("pageerror", lambda error: page_errors.append(error))
    try:
        _log_in(page, base)
        answer = page.goto(base + "/account")
        assert answer is not None
        expect(page).to_have_url(re.compile(r"/sms2fa/challenge"))
        csp = answer.headers["content-security-policy"]
        nonce = re.search(r"'nonce-([^']+)'", csp)
        assert nonce is not None, csp
        field = page.get_by_label("Verification code")
        expect(field).to_have_attribute("autocomplete", "one-time-code")
        # The script ran: it marked the field (waiting where the browser has WebOTP).
        expect(field).to_have_attribute("data-webotp", re.compile(r"^(waiting|unsupported)$"))
        assert f'<script nonce="{nonce.group(1)}">' in (answer.text() or "")
        # The same script counts the resend cooldown down (the demo's: 10 s; the server
        # wrote 10 or 9, so 8 or fewer is the script's, in the page's words).
        expect(page.locator("#cooldown")).to_have_text(
            re.compile(r"^You can ask for a new code in [1-8] seconds?\.$"), timeout=5_000
        )

        phone = context.new_page()
        phone.goto(base + "/phone")
        sms = phone.locator("#inbox li", has_text=f"to {ALICE_DIGITS}").first.locator("code")
        body = sms.inner_text()
        found = re.search(r"@localhost #([0-9]{4,10})\s*$", body)
        assert found, f"the SMS has no origin-bound last line: {body!r}"

        page.bring_to_front()
        field.fill(found.group(1))
        page.get_by_role("button", name="Verify").click()
        expect(page).to_have_url(base + "/account")
        expect(page.locator("#verified")).to_have_text(VERIFIED_TEXT)
        assert not [m for m in console if "Content Security Policy" in m], console
        assert not page_errors, f"JavaScript errors: {page_errors}"
    finally:
        context.close()


def test_the_challenge_in_spanish_and_arabic(browser: Browser, demo: str) -> None:
    """A browser set to Spanish gets the page, its count-down and the SMS in Spanish; one
    set to Arabic gets a right-to-left page."""
    context = browser.new_context(locale="es-ES")  # Accept-Language: es-ES
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        _log_in(page, demo)  # the demo's own login page is English
        page.goto(demo + "/account")
        expect(page).to_have_title("Escribe tu código de verificación")
        expect(page.locator("html")).to_have_attribute("lang", "es")
        expect(page.get_by_role("heading", name="Revisa tu teléfono")).to_be_visible()
        expect(page.locator("#attempts")).to_have_text("Te quedan 3 intentos.")
        expect(page.locator("#cooldown")).to_contain_text("Puedes pedir un código nuevo en")
        phone = context.new_page()
        phone.goto(demo + "/phone")
        sms = phone.locator("#inbox li", has_text=f"to {ALICE_DIGITS}").first
        expect(sms).to_contain_text("Tu código de verificación es")
        code = _read_code(phone, demo)
        page.bring_to_front()
        page.get_by_label("Código de verificación").fill(code)
        page.get_by_role("button", name="Verificar").click()
        expect(page.locator("#verified")).to_have_text(VERIFIED_TEXT)
        ARTIFACTS.mkdir(exist_ok=True)
    finally:
        context.close()
    arabic = browser.new_context(locale="ar")
    arabic.set_default_timeout(TIMEOUT_MS)
    try:
        page = arabic.new_page()
        _log_in(page, demo)
        page.goto(demo + "/account")
        expect(page.locator("html")).to_have_attribute("dir", "rtl")
        expect(page.get_by_role("heading", name="تحقّق من هاتفك")).to_be_visible()
        assert page.evaluate("getComputedStyle(document.body).direction") == "rtl"
        page.screenshot(path=ARTIFACTS / "challenge-ar.png", full_page=True)
    finally:
        arabic.close()
