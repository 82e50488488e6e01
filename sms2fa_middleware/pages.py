"""The pages the middleware serves, as an app's own templates see them: each page's name, its
context (a :class:`~typing.TypedDict` per page, documented key by key), the ``render`` hook's
type, and the templates the package ships.

``render`` (a middleware option) is called for every page the middleware serves, with the
page's name and its context; it returns the page's HTML (``str`` or ``bytes``), or None for
the built-in page. It may be a plain function or an ``async def`` (or return an awaitable).
It runs while the request is answered, off the event loop on ASGI: a sync hook in the worker
thread the answer is made in, an async one awaited on the app's event loop (the worker
thread waits). What stays the middleware's whatever the hook returns: the status, the
security headers (``Content-Security-Policy`` with this response's nonce, ``X-Frame-Options``,
``no-store``...), the CSRF token and its cookie, and its own script (the resend countdown and
WebOTP), which it adds before ``</body>`` when the page has not put it there.

The adapters render with the app's own engine: :func:`sms2fa_middleware.flask.flask_render`,
:func:`sms2fa_middleware.starlette.jinja2_render`, :func:`sms2fa_middleware.django.django_render`.
Each looks up ``sms2fa/<page>.html`` in the app's templates, then in the package's
(:data:`JINJA2_TEMPLATES`, :data:`DJANGO_TEMPLATES`), which extend ``layout`` (the app's
base template, or the package's ``sms2fa/base.html``).

Pages (:data:`PAGES`): ``challenge`` (:class:`ChallengeContext`), ``enroll``
(:class:`EnrollContext`), ``phone`` (:class:`PhoneContext`), ``recovery``
(:class:`RecoveryContext`), ``browsers`` (:class:`BrowsersContext`) and the plain pages
``no_phone``, ``forbidden``, ``error`` and ``unavailable`` (:class:`MessageContext`). Every
sentence in a context is in the request's language already (:mod:`sms2fa_middleware.text`);
nothing in one is HTML: templates escape it as they escape anything.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypedDict

#: The package's templates: ``jinja2/sms2fa/<page>.html`` (Flask, Starlette, any Jinja2
#: environment) and ``django/sms2fa/<page>.html`` (Django's template language).
TEMPLATES = Path(__file__).parent / "templates"
JINJA2_TEMPLATES = TEMPLATES / "jinja2"
DJANGO_TEMPLATES = TEMPLATES / "django"

#: Every page's name, as the hook receives it.
PAGES = (
    "challenge",
    "enroll",
    "phone",
    "recovery",
    "browsers",
    "no_phone",
    "forbidden",
    "error",
    "unavailable",
)
#: The plain pages: a title, a sentence, maybe a link (:class:`MessageContext`).
MESSAGE_PAGES = ("no_phone", "forbidden", "error", "unavailable")

#: The hook's result: the page's HTML, or None for the built-in page; or an awaitable of it.
Rendered = str | bytes | None
#: ``render(page, context)``: see the module's docstring.
Render = Callable[[str, Mapping[str, Any]], Rendered | Awaitable[Rendered]]


def chosen_pages(pages: Iterable[str] | None) -> frozenset[str]:
    """The pages a helper renders (None: all), each checked: a typo fails at start-up."""
    chosen = frozenset(PAGES if pages is None else ([pages] if isinstance(pages, str) else pages))
    unknown = sorted(chosen - set(PAGES))
    if unknown:
        raise ValueError(f"unknown page(s) {', '.join(unknown)}; the pages are {', '.join(PAGES)}")
    return chosen


def template_names(page: str) -> list[str]:
    """The templates that may make ``page``, the first found wins: ``sms2fa/<page>.html``,
    then, for a plain page, ``sms2fa/message.html``."""
    names = [f"sms2fa/{page}.html"]
    if page in MESSAGE_PAGES:
        names.append("sms2fa/message.html")
    return names


def template_values(
    context: Mapping[str, Any], layout: str | None = None, *, request: bool = True
) -> dict[str, Any]:
    """The variables a page's template gets: the context, and ``layout`` (the template the
    packaged pages extend) when one is named; ``request=False`` leaves the context's
    ``request`` out (Flask's templates have their own)."""
    values = dict(context)
    if not request:
        values.pop("request", None)
    if layout is not None:
        values["layout"] = layout
    return values


class PageContext(TypedDict):
    """What every page's context has."""

    #: The page's name (one of :data:`PAGES`).
    page: str
    #: The HTTP status the page is served with (the hook cannot change it).
    status: int
    #: The page's title, for ``<title>`` and its ``<h1>``.
    title: str
    #: The request's language as a BCP 47 tag, for ``<html lang>`` ("es", "pt-BR").
    lang: str
    #: The text's direction, for ``<html dir>``: "ltr", or "rtl" (Arabic).
    dir: str
    #: The nonce this response's Content-Security-Policy allows scripts by: a script of the
    #: page's own is ``<script nonce="{{ csp_nonce }}">`` (no other inline script runs).
    csp_nonce: str
    #: The "Log out" link's URL (the ``logout_url`` option, from the app's root), or None.
    logout_url: str | None
    #: The link's text ("Log out").
    logout_text: str
    #: The framework's request, the object ``identify`` is given (werkzeug's on WSGI,
    #: Starlette's on ASGI, Django's ``HttpRequest``): for ``url_for`` and the app's own
    #: context. None where there is none (a page made outside a request).
    request: Any


class ChallengeContext(PageContext):
    """``challenge``: the code form, the resend form, the recovery-code form. Our script
    finds the code field by ``id="code"`` (WebOTP fills it), the resend button by
    ``id="resend"`` and the countdown by ``id="cooldown"`` with ``data-seconds`` (its
    ``retry_after``) and ``data-template`` (its ``retry_after_template``)."""

    #: "Check your phone".
    heading: str
    #: "We sent a verification code by text message to +1••••23." (or "We need to send...").
    lead: str
    #: The number the code goes to, masked ("+1••••••••23"): never the whole number.
    masked_number: str
    #: Where the code form (and the recovery-code form) posts.
    action: str
    #: Where the "Send a new code" form posts.
    resend_action: str
    #: The CSRF field's name ("csrf_token") and value: a hidden field in every form.
    csrf_name: str
    csrf_value: str
    #: Where to go once verified: a hidden field ``next`` in every form.
    next_url: str
    #: Digits in a code (the field's size).
    code_length: int
    #: Attempts left for the code that is out; None when no code is out (ask for one).
    attempts_left: int | None
    #: "3 attempts left." (None when no code is out).
    attempts_text: str | None
    #: What went wrong ("That code is not right, or it has expired."), or None.
    error: str | None
    #: A notice ("We sent you a new code."), or None.
    notice: str | None
    #: Why no new code may be asked for until the countdown ends (a spent budget), or None.
    held: str | None
    #: Seconds until a new code may be asked for (0: now). The resend button is disabled
    #: while it is above 0; our script counts it down and enables the button.
    retry_after: int
    #: "You can ask for a new code in 25 seconds." (None when ``retry_after`` is 0).
    retry_after_text: str | None
    #: The same sentence with ``{time}`` for the time left, for ``data-template``.
    retry_after_template: str
    #: How the time left joins minutes and seconds ("{minutes} and {seconds}"), for
    #: ``data-join``: our script words the time in the page's language as it counts down.
    retry_after_join: str
    #: Unused recovery codes (0: no recovery form).
    recovery_left: int
    #: "2 recovery codes left".
    recovery_left_text: str
    #: Days a browser is trusted when its box is ticked (0: no box); the box's name is
    #: ``trust``, its value ``1``.
    trust_days: int
    #: "Trust this browser for 30 days (no code on this browser until then)" (None: no box).
    trust_text: str | None
    #: Labels: the code field, the Verify button, the resend button, what to do with no
    #: code out, and the recovery form's summary, field (``recovery_code``) and button.
    code_label: str
    verify_label: str
    resend_label: str
    new_code_text: str
    recovery_summary: str
    recovery_label: str
    recovery_button: str
    #: The "Change your phone number" link's URL (``{prefix}/phone``, with ``on_enroll``;
    #: None: no link) and its text.
    change_number_url: str | None
    change_number_text: str


class EnrollContext(PageContext):
    """``enroll``: a number form (field ``phone``), and a code form once a code is out
    (field ``code``); both post to ``action``."""

    intro: str
    action: str
    csrf_name: str
    csrf_value: str
    next_url: str
    #: What went wrong (a number we cannot send to, a wrong code), or None.
    error: str | None
    #: The masked number the code went to, when one is out (then show the code form).
    sent_to: str | None
    #: "We texted a code to +1••••23. Enter it to add this number." (None: no code out).
    sent_text: str | None
    code_length: int
    phone_label: str
    send_label: str
    code_label: str
    confirm_label: str


class PhoneContext(PageContext):
    """``phone`` (``{prefix}/phone``, with ``on_enroll``): the number on file, masked; a number
    form (field ``phone``), and a code form once a code is out for the new number (field
    ``code``), both posting to ``action``; after a change, a notice saying what ended, with
    links to new recovery codes and onwards (``next_url``)."""

    #: "Your codes go to +1••••34. To use another mobile number, enter it: ..."
    intro: str
    #: The number on file, masked ("+1••••••••34"): never the whole number.
    masked_number: str
    action: str
    csrf_name: str
    csrf_value: str
    #: Where to go afterwards: a hidden field ``next`` in every form, and the "Continue" link.
    next_url: str
    #: What went wrong (a number we cannot send to, the same number, a refused send, a
    #: wrong code), or None.
    error: str | None
    #: The masked new number a code went to, when one is out (then show the code form).
    sent_to: str | None
    #: "We texted a code to +1••••99. Enter it to switch to this number." (None: no code out).
    sent_text: str | None
    #: Shown once, on the page after a change: "Your phone number is now +1••••99. You were
    #: signed out everywhere else, ... make new ones." (None: no change just made). Show it
    #: with links to ``recovery_url`` and ``next_url``.
    changed_text: str | None
    #: The recovery-codes page (``{prefix}/recovery``: the old codes no longer work) and the
    #: link's text ("Make new recovery codes").
    recovery_url: str
    recovery_text: str
    #: The link onwards after a change ("Continue").
    continue_text: str
    #: Digits in a code.
    code_length: int
    #: Labels: the new number's field, its button, the code field, the confirm button.
    phone_label: str
    send_label: str
    code_label: str
    confirm_label: str


class RecoveryContext(PageContext):
    """``recovery``: how many recovery codes are left, and a form (no field but the CSRF
    token) that makes a new set, shown once."""

    intro: str
    action: str
    csrf_name: str
    csrf_value: str
    #: Unused recovery codes.
    left: int
    left_text: str
    #: The new codes, on the page that made them (shown only this once); else empty.
    codes: list[str]
    #: "Keep these somewhere safe: they are shown only this once." (None without codes).
    shown_once_text: str | None
    generate_label: str


class TrustedBrowserEntry(TypedDict):
    """One trusted browser: its times as ISO 8601 (UTC, as the JSON answers have them), and
    in words in the request's language, to the minute ("3 December 2026, 20:41 UTC")."""

    id: str
    #: When it was trusted, when its trust ends, when it last opened a page without a code
    #: (ISO 8601, UTC: ``2026-12-03T20:41:05.123456Z``).
    created_at: str
    expires_at: str
    last_used: str
    #: The same times in words: "3 December 2026, 20:41 UTC".
    created_date: str
    expires_date: str
    last_used_date: str
    #: The same as sentences: "Trusted on 3 December 2026, 20:41 UTC", "Trusted until ...",
    #: "Last used ...".
    created_text: str
    expires_text: str
    last_used_text: str
    #: Its User-Agent as sent when it was trusted ("" when none was).
    user_agent: str
    #: The coarse network it was trusted from ("203.0.113.0/24").
    network: str
    #: Whether it is the browser asking.
    this_browser: bool


class BrowsersContext(PageContext):
    """``browsers``: the trusted browsers, each with a Revoke form (field ``revoke``: its
    id), and "Revoke all" (``revoke=all``); all post to ``action``."""

    intro: str
    action: str
    csrf_name: str
    csrf_value: str
    browsers: list[TrustedBrowserEntry]
    #: "No browser is trusted." (for an empty list).
    none_text: str
    this_browser_text: str
    revoke_label: str
    revoke_all_label: str


class MessageContext(PageContext):
    """``no_phone``, ``forbidden`` (an expired or foreign form: 403, or 400 for a body that
    is no form), ``error`` (500) and ``unavailable`` (503): a title and one sentence."""

    sentence: str
    #: A link onwards (``no_phone``: where to add a number, when there is such a page).
    link_url: str | None
    link_text: str | None


__all__ = [
    "DJANGO_TEMPLATES",
    "JINJA2_TEMPLATES",
    "MESSAGE_PAGES",
    "PAGES",
    "TEMPLATES",
    "BrowsersContext",
    "ChallengeContext",
    "EnrollContext",
    "MessageContext",
    "PageContext",
    "PhoneContext",
    "RecoveryContext",
    "Render",
    "Rendered",
    "TrustedBrowserEntry",
    "chosen_pages",
    "template_names",
    "template_values",
]
