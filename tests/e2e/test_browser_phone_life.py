"""The life of a phone in a real browser: ``sms2fa demo`` driven by headless Chromium.

A new user (carol, no number on file) logs in and is sent to add a phone; she types a
national-format number and the code the demo's fake phone (``/phone``) shows, and lands on
her account page. From there she makes recovery codes, logs out, and logs back in with one
("Can't get a text?"); the fake phone gets the notice, and a spent code does not work twice.
She then ticks "Trust this browser" with an SMS code: after logging out, a new login in the
same browser passes without a code and without a text. Her trusted-browsers page lists this
browser; she revokes it, and the next login is challenged again.

Everything is asserted as the user sees it (headings, sentences, the masked number, the
fake phone's texts). Screenshots of each page go to ``test-artifacts/``: ``enroll.png``,
``enroll-code.png``, ``recovery-codes.png``, ``recovery-code-entry.png``,
``trusted-browsers.png`` and ``demo-home.png``. The pages' accessibility (axe-core) is
checked in ``test_accessibility.py``. Fixtures and skips as in ``test_browser.py``.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import pytest

from tests.e2e.test_browser import ARTIFACTS, TIMEOUT_MS, browser, demo  # noqa: F401 - fixtures

with contextlib.suppress(ImportError):  # without it, the browser fixture skips (or fails)
    from playwright.sync_api import Browser, BrowserContext, Page, expect
    from playwright.sync_api import Error as PlaywrightError

pytestmark = pytest.mark.browser

TYPED = "(206) 555-0100"  # as a user types it: national format, read in the US
DIGITS = "12065550100"  # as the fake phone shows the recipient
MASKED = "+1••••••••00"
TRUST = "Trust this browser for 30 days (no code on this browser until then)"
VERIFIED = "Hello, carol: you are verified by SMS."
# A user waits for the resend timer (the demo's: 10 s) before asking for a new code.
RESEND_WAIT_MS = 20_000


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:  # noqa: F811 - the fixture
    made = browser.new_context(viewport={"width": 1024, "height": 768})
    made.set_default_timeout(TIMEOUT_MS)
    try:
        yield made
    finally:
        made.close()


def _log_in(page: Page, base: str, user: str = "carol") -> None:
    page.goto(base + "/login")
    page.get_by_label("User name").fill(user)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_text(f"Logged in as {user}.")).to_be_visible()


def _log_out(page: Page, base: str) -> None:
    page.goto(base + "/")
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_text("Not logged in.")).to_be_visible()


def _texts(phone: Page, base: str) -> list[str]:
    """The texts to carol's number the fake phone shows, oldest first."""
    try:
        phone.goto(base + "/phone")
    except PlaywrightError as error:
        # The open phone page reloads itself every 2 s: a reload of the same page may
        # overtake ours, and shows the inbox just the same.
        if "interrupted by another navigation" not in str(error):
            raise
        phone.wait_for_load_state()
    shown = phone.locator("#inbox li", has_text=f"to {DIGITS}").locator("code")
    return list(reversed(shown.all_inner_texts()))


def _code(text: str) -> str:
    found = re.search(r"verification code is ([0-9]{6})", text)
    assert found, f"no code in the text {text!r}"
    return found.group(1)


def _assert_challenged(page: Page, base: str) -> None:
    expect(page).to_have_url(re.compile(re.escape(base) + r"/sms2fa/challenge\?next=%2Faccount$"))
    expect(page.get_by_role("heading", name="Check your phone")).to_be_visible()
    expect(page.locator("main strong")).to_have_text(MASKED)
    assert "555-0100" not in page.content() and DIGITS not in page.content()


def test_enroll_recover_trust_and_revoke_in_a_browser(
    context: BrowserContext,
    demo: str,  # noqa: F811 - the fixture
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page, phone = context.new_page(), context.new_page()
    page.bring_to_front()

    # The demo's home page says what to try.
    page.goto(demo + "/")
    expect(page.get_by_role("heading", name="What to try")).to_be_visible()
    expect(page.locator("#try")).to_contain_text("Log in as a new name, e.g. carol")
    page.screenshot(path=ARTIFACTS / "demo-home.png", full_page=True)

    # A user name the demo cannot take is said so, and logs nobody in.
    page.goto(demo + "/login")
    page.get_by_label("User name").fill("<b>")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text(
        "A user name is a letter, then letters, digits, - or _."
    )

    # -- enrollment: a new user is sent to add a phone ---------------------------------
    _log_in(page, demo)
    page.get_by_role("link", name="Your account", exact=True).click()
    expect(page).to_have_url(demo + "/sms2fa/enroll?next=%2Faccount")
    expect(page).to_have_title("Add your phone number")
    expect(page.get_by_role("heading", name="Add your phone number")).to_be_visible()
    expect(page.get_by_label("Verification code")).to_have_count(0)  # no code out yet
    page.screenshot(path=ARTIFACTS / "enroll.png", full_page=True)

    page.get_by_label("Mobile number").fill(TYPED)
    page.get_by_role("button", name="Text me a code").click()
    expect(page.get_by_role("status")).to_have_text(
        f"We texted a code to {MASKED}. Enter it to add this number."
    )
    assert "555-0100" not in page.content()  # the page shows the number masked only
    field = page.get_by_label("Verification code")
    expect(field).to_be_focused()
    page.screenshot(path=ARTIFACTS / "enroll-code.png", full_page=True)

    texts = _texts(phone, demo)
    assert len(texts) == 1, texts
    page.bring_to_front()
    field.fill(_code(texts[0]))
    page.get_by_role("button", name="Add this number").click()
    expect(page).to_have_url(demo + "/account")
    expect(page.locator("#verified")).to_have_text(VERIFIED)

    # -- recovery codes, from the account page -----------------------------------------
    page.get_by_role("link", name="Recovery codes").click()
    expect(page.get_by_role("heading", name="Recovery codes")).to_be_visible()
    expect(page.locator("#recovery-left")).to_have_text("0 recovery codes left")
    page.get_by_role("button", name="Make new recovery codes").click()
    expect(page.get_by_role("status")).to_have_text(
        "Keep these somewhere safe: they are shown only this once."
    )
    shown = page.locator("#recovery-codes li")
    expect(shown).to_have_count(10)
    expect(page.locator("#recovery-left")).to_have_text("10 recovery codes left")
    codes = shown.all_inner_texts()
    assert all(re.fullmatch(r"[a-z0-9]{5}-[a-z0-9]{5}", c) for c in codes), codes
    page.screenshot(path=ARTIFACTS / "recovery-codes.png", full_page=True)

    # -- log out, log in with a recovery code --------------------------------------------
    _log_out(page, demo)
    _log_in(page, demo)
    page.goto(demo + "/account")
    _assert_challenged(page, demo)
    page.get_by_text("Can't get a text? Use a recovery code").click()
    expect(page.locator("#recovery-left")).to_have_text("10 recovery codes left")
    page.get_by_label("Recovery code").fill(codes[0].upper())  # typed in any case
    page.screenshot(path=ARTIFACTS / "recovery-code-entry.png", full_page=True)
    page.get_by_role("button", name="Use recovery code").click()
    expect(page).to_have_url(demo + "/account")
    expect(page.locator("#verified")).to_have_text(VERIFIED)
    notice = _texts(phone, demo)[-1]
    assert notice.startswith("A recovery code was used to sign in. 9 left."), notice
    assert codes[0] not in notice
    page.bring_to_front()

    _log_out(page, demo)  # a spent code does not work twice
    _log_in(page, demo)
    page.goto(demo + "/account")
    _assert_challenged(page, demo)
    page.get_by_text("Can't get a text? Use a recovery code").click()
    expect(page.locator("#recovery-left")).to_have_text("9 recovery codes left")
    page.get_by_label("Recovery code").fill(codes[0])
    page.get_by_role("button", name="Use recovery code").click()
    expect(page.get_by_role("alert")).to_have_text(
        "That recovery code is not right, or was used already."
    )
    expect(page).to_have_url(re.compile(r"/sms2fa/challenge"))

    # -- trust this browser, with an SMS code --------------------------------------------
    # The last text went out moments ago: like a user, wait for the timer, then ask.
    resend = page.get_by_role("button", name="Send a new code")
    expect(resend).to_be_enabled(timeout=RESEND_WAIT_MS)
    sent_before = len(_texts(phone, demo))
    page.bring_to_front()
    resend.click()
    _assert_challenged(page, demo)
    texts = _texts(phone, demo)
    assert len(texts) == sent_before + 1, texts
    page.bring_to_front()
    page.get_by_label("Verification code").fill(_code(texts[-1]))
    trust = page.get_by_role("checkbox", name=TRUST)
    expect(trust).not_to_be_checked()  # opt-in
    trust.check()
    page.get_by_role("button", name="Verify").click()
    expect(page).to_have_url(demo + "/account")
    expect(page.locator("#verified")).to_have_text(VERIFIED)

    _log_out(page, demo)  # a new login in this browser: no code, no text
    sent_before = len(_texts(phone, demo))
    page.bring_to_front()
    _log_in(page, demo)
    page.goto(demo + "/account")
    expect(page).to_have_url(demo + "/account")
    expect(page.locator("#verified")).to_have_text(VERIFIED)
    assert len(_texts(phone, demo)) == sent_before
    page.bring_to_front()

    # -- the trusted browsers: listed, revoked -------------------------------------------
    page.get_by_role("link", name="Trusted browsers").click()
    expect(page.get_by_role("heading", name="Trusted browsers")).to_be_visible()
    listed = page.locator("#trusted-browsers li")
    expect(listed).to_have_count(1)
    expect(listed).to_contain_text("HeadlessChrome")  # its user agent
    expect(listed).to_contain_text("(this browser)")
    expect(listed).to_contain_text("127.0.0.0/24")  # the coarse network, not the address
    page.screenshot(path=ARTIFACTS / "trusted-browsers.png", full_page=True)
    listed.get_by_role("button", name="Revoke").click()
    expect(page.get_by_text("No browser is trusted.")).to_be_visible()
    expect(page.locator("#trusted-browsers li")).to_have_count(0)

    _log_out(page, demo)  # revoked: the next login asks for a code again
    _log_in(page, demo)
    page.goto(demo + "/account")
    _assert_challenged(page, demo)
