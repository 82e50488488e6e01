"""Honest timers: the challenge page's resend timer is what a send would be refused for --
the same seconds as the 429's ``retry_after``, whichever budget refuses (the cooldown, the
per-recipient budget, a lock after wrong codes) -- worded for what happened, and a resend
once it has run out goes through. The engine on a real SQLite file, then real Flask and
Starlette servers whose verifier reads an injected clock."""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from sms2fa_middleware import InvalidAuthCode, RateLimited, Settings, Verifier, text
from sms2fa_middleware.engine import AsyncVerifier, SendWait
from sms2fa_middleware.guard import Guard
from sms2fa_middleware.testing import FakeFlowroute
from sms2fa_middleware.text import held, status
from tests.support.apps import EXCLUDE, LOGIN_URL, PROTECT, Site
from tests.support.browsing import ALICE, Browser, wrong
from tests.support.clock import FakeClock

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

NUMBER = "+12065550123"


def refusal(verifier: Verifier, auth_id: str = "u1", number: str = NUMBER) -> RateLimited:
    with pytest.raises(RateLimited) as info:
        verifier.start(auth_id, number)
    return info.value


# -- the engine ----------------------------------------------------------------------------


def test_send_wait_is_the_429s_retry_after(
    make_settings: Callable[..., Settings], fake_flowroute: FakeFlowroute
) -> None:
    fake = FakeClock()
    verifier = Verifier(
        make_settings(resend_cooldown=30, recipient_send_limit=2, recipient_send_window=600),
        clock=fake,
    )
    verifier.create_schema()
    try:
        assert verifier.send_wait("u1", NUMBER) is None
        verifier.start("u1", NUMBER)
        wait = verifier.send_wait("u1", NUMBER)
        refused = refusal(verifier)
        assert wait == SendWait("resend_cooldown", refused.retry_after)
        assert refused.budget == "resend_cooldown"

        fake.advance(refused.retry_after)
        assert verifier.send_wait("u1", NUMBER) is None
        verifier.start("u1", NUMBER)  # the second of two: the recipient budget is spent
        wait = verifier.send_wait("u1", NUMBER)
        assert wait is not None and wait.budget == "recipient"
        assert wait.retry_after == 600 - 31 + 1  # the window's end, not the cooldown's
        fake.advance(31)  # past the cooldown: now the recipient budget refuses
        refused = refusal(verifier)
        assert (refused.budget, refused.retry_after) == ("recipient", 600 - 62 + 1)
        assert verifier.send_wait("u1", NUMBER) == SendWait("recipient", refused.retry_after)

        fake.advance(refused.retry_after)  # the timer ran out: a send goes through
        assert verifier.send_wait("u1", NUMBER) is None
        verifier.start("u1", NUMBER)
        assert len(fake_flowroute.messages_to(NUMBER)) == 3
    finally:
        verifier.store.dispose()


def test_send_wait_sees_a_lock_after_wrong_codes(
    make_settings: Callable[..., Settings], fake_flowroute: FakeFlowroute
) -> None:
    fake = FakeClock()
    verifier = Verifier(
        make_settings(resend_cooldown=0, max_failed_checks=2, lockout_seconds=120), clock=fake
    )
    verifier.create_schema()
    try:
        verifier.start("u1", NUMBER, retries=5)
        code = fake_flowroute.last_code(NUMBER)
        for refused_as in (InvalidAuthCode, InvalidAuthCode, RateLimited):  # then locked
            with pytest.raises(refused_as):
                verifier.check("u1", wrong(code))
        refused = refusal(verifier)
        assert refused.budget == "failed_checks"
        assert verifier.send_wait("u1", NUMBER) == SendWait("failed_checks", refused.retry_after)
        twin = asyncio.run(AsyncVerifier(verifier).send_wait("u1", NUMBER))
        assert twin == SendWait("failed_checks", refused.retry_after)  # the event-loop twin
        fake.advance(refused.retry_after)
        assert verifier.send_wait("u1", NUMBER) is None
    finally:
        verifier.store.dispose()


def test_the_time_left_reads_as_people_read_it() -> None:
    assert [text.duration(s) for s in (1, 59, 60, 61, 570, 3600)] == [
        "1 second",
        "59 seconds",
        "1 minute",
        "1 minute and 1 second",
        "9 minutes and 30 seconds",
        "60 minutes",
    ]


@pytest.mark.parametrize(
    ("language", "seconds", "worded"),
    [
        ("es", 1, "1 segundo"),
        ("es", 25, "25 segundos"),
        ("es", 61, "1 minuto y 1 segundo"),
        ("es", 570, "9 minutos y 30 segundos"),
        ("fr", 1, "1 seconde"),
        ("fr", 120, "2 minutes"),
        ("de", 61, "1 Minute und 1 Sekunde"),
        ("pt_BR", 30, "30 segundos"),
        ("ar", 1, "ثانية"),  # Arabic's six forms: one, two, few (3-10), many (11-99), other
        ("ar", 2, "ثانيتان"),
        ("ar", 3, "3 ثوانٍ"),
        ("ar", 11, "11 ثانية"),
        ("ar", 120, "دقيقتان"),
        ("ar", 605, "10 دقائق و5 ثوانٍ"),
    ],
)
def test_the_time_left_is_worded_in_the_requests_language(
    language: str, seconds: int, worded: str
) -> None:
    with text.speaking(language):
        assert text.duration(seconds) == worded


def test_the_pages_countdown_is_translated_before_any_script_runs() -> None:
    from sms2fa_middleware.guard.flows.pages import ChallengeView, Pages

    view = ChallengeView("+1••••34", "/c", "/c/resend", "t", "/account", 6, 3, resend_in=570)
    with text.speaking("es"):
        page = Pages().render_challenge(view).decode()
    assert "Puedes pedir un código nuevo en 9 minutos y 30 segundos." in page
    assert 'data-template="Puedes pedir un código nuevo en {time}."' in page
    assert 'data-join="{minutes} y {seconds}"' in page  # the script joins its words so


# -- on the page ---------------------------------------------------------------------------


@pytest.fixture
def clocked(
    make_site: Callable[..., Site],
    make_settings: Callable[..., Settings],
) -> Iterator[Callable[..., tuple[Site, FakeClock]]]:
    """A site whose guard's verifier reads a FakeClock; keywords go to the Settings."""

    def build(**settings: Any) -> tuple[Site, FakeClock]:
        fake = FakeClock()
        verifier = Verifier(make_settings(**settings), clock=fake)
        guard = Guard(verifier=verifier, protect=PROTECT, exclude=EXCLUDE, login_url=LOGIN_URL)
        return make_site(guard=guard), fake

    yield build


def timer(page: requests.Response) -> int | None:
    """The seconds the page's resend timer starts from; None when there is no timer (and
    the resend button is enabled)."""
    found = re.search(r'id="cooldown" data-seconds="(\d+)"', page.text)
    if found is None:
        assert re.search(r'id="resend"(?! disabled)', page.text), page.text[-600:]
        return None
    assert 'id="resend" disabled' in page.text
    return int(found.group(1))


def json_send(browser: Browser) -> requests.Response:
    return browser.api(
        "/sms2fa/challenge/send", "POST", json={}, headers={"Content-Type": "application/json"}
    )


def refused_json(browser: Browser, budget: str) -> int:
    answer = json_send(browser)
    assert answer.status_code == 429, answer.text
    body = answer.json()
    assert body["budget"] == budget
    assert answer.headers["retry-after"] == str(body["retry_after"])
    return int(body["retry_after"])


def json_status_wait(browser: Browser) -> int:
    """The JSON status's ``resend_after`` (GET the challenge as an API client)."""
    answer = browser.api("/sms2fa/challenge")
    assert answer.status_code == 200, answer.text
    return int(answer.json()["resend_after"])


def shows(page: requests.Response, sentence: str) -> bool:
    return html.escape(sentence) in page.text


@SQLITE_ONLY
def test_the_timer_is_the_429s_whichever_budget_refused(
    clocked: Callable[..., tuple[Site, FakeClock]], fake_flowroute: FakeFlowroute
) -> None:
    site, fake = clocked(resend_cooldown=30, recipient_send_limit=2, recipient_send_window=600)
    browser = Browser(site, "alice")
    browser.nav("/account")  # the first code
    page = browser.page()
    assert timer(page) == refused_json(browser, "resend_cooldown") == 31
    assert "You can ask for a new code in 31 seconds." in page.text
    assert not shows(page, held("recipient"))

    fake.advance(31)
    assert timer(browser.page()) is None
    resent = browser.resend()  # the second code: the recipient budget is spent now
    assert resent.status_code == 303
    page = browser.nav(resent.headers["location"])
    assert shows(page, "We sent you a new code.")
    assert shows(page, held("recipient"))
    assert timer(page) == 600 - 31 + 1
    assert "You can ask for a new code in 9 minutes and 30 seconds." in page.text

    fake.advance(31)  # the cooldown is over, the budget is not
    page = browser.page()
    assert json_status_wait(browser) == timer(page)  # API clients are told the same
    assert timer(page) == refused_json(browser, "recipient") == 600 - 62 + 1
    refused = browser.resend()
    page = browser.nav(refused.headers["location"])
    assert shows(page, held("recipient"))  # the flash names the budget, not "one of them"
    assert not shows(page, status("rate_limited"))
    assert timer(page) == 600 - 62 + 1
    assert len(fake_flowroute.messages_to(ALICE)) == 2

    fake.advance(timer(page) or 0)  # the timer ran out: the resend goes through
    assert timer(browser.page()) is None and json_status_wait(browser) == 0
    sent = browser.resend()
    assert "sms2fa_flash=sent" in sent.headers["set-cookie"]
    assert len(fake_flowroute.messages_to(ALICE)) == 3
    assert browser.submit(fake_flowroute.last_code(ALICE)).status_code == 303


@SQLITE_ONLY
def test_a_lock_holds_the_resend_button_as_long_as_it_lasts(
    clocked: Callable[..., tuple[Site, FakeClock]], fake_flowroute: FakeFlowroute
) -> None:
    site, fake = clocked(
        resend_cooldown=0, max_failed_checks=2, retries_allowed=5, lockout_seconds=120
    )
    browser = Browser(site, "alice")
    browser.nav("/account")
    code = fake_flowroute.last_code(ALICE)
    assert [browser.submit(wrong(code)).status_code for _ in range(2)] == [400, 400]
    locked = browser.submit(code)
    assert locked.status_code == 429 and "Too many wrong codes" in locked.text
    assert not shows(locked, held("failed_checks"))  # the error says it already
    page = browser.page()
    assert shows(page, held("failed_checks"))
    assert timer(page) == refused_json(browser, "failed_checks") == 121

    fake.advance(121)
    page = browser.page()
    assert timer(page) is None and not shows(page, held("failed_checks"))
    assert "sms2fa_flash=sent" in browser.resend().headers["set-cookie"]
    assert browser.submit(fake_flowroute.last_code(ALICE)).status_code == 303


@SQLITE_ONLY
def test_a_failed_delivery_says_so_and_leaves_no_timer(
    clocked: Callable[..., tuple[Site, FakeClock]], fake_flowroute: FakeFlowroute
) -> None:
    site, _ = clocked(resend_cooldown=30)
    browser = Browser(site, "alice")
    fake_flowroute.fail_next(500)
    first = browser.nav("/account")
    page = browser.nav(first.headers["location"])
    assert shows(page, status("send_failed"))
    assert timer(page) is None  # nothing went out: the budgets were given back
    assert "sms2fa_flash=sent" in browser.resend().headers["set-cookie"]
    assert len(fake_flowroute.messages_to(ALICE)) == 1


@SQLITE_ONLY
def test_a_used_up_or_expired_code_is_named_as_such(
    clocked: Callable[..., tuple[Site, FakeClock]], fake_flowroute: FakeFlowroute
) -> None:
    site, fake = clocked(resend_cooldown=0, retries_allowed=2, code_expiration=60)
    browser = Browser(site, "alice")
    browser.nav("/account")
    code = fake_flowroute.last_code(ALICE)
    first, last = browser.submit(wrong(code)), browser.submit(wrong(code))
    assert shows(first, text.wrong_code()) and not shows(first, text.last_attempt_wrong())
    assert shows(last, text.last_attempt_wrong())
    assert shows(last, text.ask_for_new_code()) and timer(last) is None

    assert "sms2fa_flash=sent" in browser.resend().headers["set-cookie"]
    fake.advance(61)  # the new code expires unused
    late = browser.submit(fake_flowroute.last_code(ALICE))
    assert late.status_code == 400 and shows(late, text.code_expired())
    assert shows(late, text.ask_for_new_code()) and timer(late) is None
