"""The challenge page's WebOTP wiring in headless Chromium (``sms2fa demo``, as
test_browser.py runs it). Chromium here cannot receive an SMS, so this shows the wiring:
the SMS the demo's fake phone shows ends with ``@localhost #code`` (the page was opened as
``localhost``), the page's one script runs under its Content-Security-Policy nonce (the
field says what WebOTP did: ``data-webotp``), nothing breaks the policy, and typing the code
still works (the form's submit stops the wait)."""

from __future__ import annotations

import contextlib
import re
from typing import Any

import pytest
from test_browser import (  # noqa: F401
    ALICE_DIGITS,
    TIMEOUT_MS,
    VERIFIED_TEXT,
    _log_in,
    browser,
    demo,
)

# Without playwright the browser fixture skips (or fails with CI=true) before expect is used.
with contextlib.suppress(ImportError):
    from playwright.sync_api import Browser, expect

pytestmark = pytest.mark.browser


def test_webotp_is_wired_under_the_csp(browser: Browser, demo: str) -> None:  # noqa: F811
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
        # The same script counts the resend cooldown down (the demo's: 30 s).
        expect(page.locator("#cooldown")).to_have_text(
            re.compile(r"^You can ask for a new code in (1[0-9]|2[0-8]) s\.$"), timeout=5_000
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
