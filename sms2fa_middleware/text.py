"""Every user-facing sentence of the middleware, in one place, through gettext.

Strings are looked up when a response is built, never at import. The guard speaks each
request's language (:mod:`sms2fa_middleware.languages`: ``Accept-Language``, or the
``language`` option) with :func:`speaking`, a context variable: concurrent requests in
different languages (threads, asyncio tasks) never see each other's. The catalogues are
``locale/<lang>/LC_MESSAGES/sms2fa.po`` (compiled to ``.mo``), extracted from this module
into ``locale/sms2fa.pot`` with Babel (``babel.cfg``).

An app may instead plug in its own translations once at start-up; they then serve every
request::

    import gettext
    from sms2fa_middleware import text
    text.use(gettext.translation("sms2fa", "locale", languages=["de"]), language="de")

Plurals go through ``ngettext`` with the count, so a language with other plural rules gets
them from its catalogue instead of from an English ``"s"``. The message ids are the English
sentences themselves (gettext's convention); ``{n}``-style fields are filled in after
translation.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import Protocol

from . import languages


class Translations(Protocol):
    """What :func:`use` needs: :class:`gettext.NullTranslations` and its subclasses have it."""

    def gettext(self, message: str, /) -> str: ...

    def ngettext(self, singular: str, plural: str, n: int, /) -> str: ...


class _English:
    def gettext(self, message: str, /) -> str:
        return message

    def ngettext(self, singular: str, plural: str, n: int, /) -> str:
        return singular if n == 1 else plural


_ENGLISH = _English()
#: The app's own translations (:func:`use`), and the language they are in.
_app: tuple[Translations, str] | None = None
#: This request's language (:func:`speaking`); English outside a request.
_spoken: ContextVar[str] = ContextVar("sms2fa_language", default=languages.DEFAULT)


def use(translations: Translations | None, language: str = languages.DEFAULT) -> None:
    """Translate the middleware's text with ``translations`` for every request, whatever it
    negotiates (None: back to the shipped catalogues); ``language`` is the tag the pages
    give in ``<html lang>``."""
    global _app
    _app = (translations, language) if translations is not None else None


@contextmanager
def speaking(language: str) -> Iterator[None]:
    """Speak ``language`` (a shipped one, :data:`languages.SHIPPED`) in this context, e.g.
    one request: a context variable, so other threads and tasks keep their own."""
    token = _spoken.set(language)
    try:
        yield
    finally:
        _spoken.reset(token)


def language() -> str:
    """The language the text is in now (a shipped code such as ``pt_BR``)."""
    return _app[1] if _app is not None else _spoken.get()


def html_attributes() -> str:
    """``lang="..." dir="..."`` for a page's ``<html>`` element."""
    now = language()
    return f'lang="{languages.html_tag(now)}" dir="{languages.direction(now)}"'


def _translations() -> Translations:
    if _app is not None:
        return _app[0]
    spoken = _spoken.get()
    return _ENGLISH if spoken == languages.DEFAULT else languages.translations(spoken)


def _(message: str) -> str:
    return _translations().gettext(message)


def _n(singular: str, plural: str, n: int) -> str:
    return _translations().ngettext(singular, plural, n).format(n=n)


def N_(message: str) -> str:
    """Marks a message for extraction; it is translated where it is used."""
    return message


def sms_template(org_name: str) -> str:
    """The default SMS (``{code}``, ``{org_name}`` filled in later), in this language."""
    if org_name:
        return _("Your {org_name} verification code is {code}. Don't share it with anyone.")
    return _("Your verification code is {code}. Don't share it with anyone.")


#: The one-time statuses the challenge page shows after a redirect (the flash cookie's value).
STATUS_MESSAGES = {
    "rate_limited": N_(
        "A code was sent very recently, or too many were asked for. Wait for the "
        "timer, then ask for a new one."
    ),
    "send_failed": N_("We could not send the text message. Try again in a moment."),
    "bad_number": N_("We cannot send codes to the phone number on your account."),
    "post_lost": N_(
        "Your last form was not sent, because this account needs a new code first. "
        "After you enter it, fill in the form again."
    ),
}


def status(key: str) -> str:
    """The sentence for a flash status (a key of :data:`STATUS_MESSAGES`)."""
    return _(STATUS_MESSAGES[key])


def code_sent_again() -> str:
    return _("We sent you a new code.")


def attempts_left(n: int) -> str:
    return _n("{n} attempt left.", "{n} attempts left.", n)


def too_many_wrong(minutes: int) -> str:
    return _n(
        "Too many wrong codes. Try again in {n} minute.",
        "Too many wrong codes. Try again in {n} minutes.",
        minutes,
    )


def enter_digits() -> str:
    return _("Enter the digits of the code we sent you.")


def wrong_code() -> str:
    return _("That code is not right, or it has expired.")


def last_attempt_wrong() -> str:
    return _("That code is not right, and it was the last attempt. Ask for a new code.")


def code_expired() -> str:
    return _("That code has expired. Ask for a new code.")


def number_changed() -> str:
    return _("Your phone number changed; ask for a new code.")


def page_title() -> str:
    return _("Enter your verification code")


def heading() -> str:
    return _("Check your phone")


def lead_sent(number_html: str) -> str:
    """``number_html`` is already-escaped HTML (the masked number in <strong>)."""
    return _("We sent a verification code by text message to {number}.").format(number=number_html)


def lead_to_send(number_html: str) -> str:
    return _("We need to send a verification code by text message to {number}.").format(
        number=number_html
    )


def needs_recent_code(seconds: int) -> str:
    """Why a verified user sees the challenge again: this page's ``max_age``."""
    if seconds % 60:
        return _n(
            "This page needs a code from the last {n} second.",
            "This page needs a code from the last {n} seconds.",
            seconds,
        )
    return _n(
        "This page needs a code from the last minute.",
        "This page needs a code from the last {n} minutes.",
        seconds // 60,
    )


def idle_too_long(seconds: int) -> str:
    """Why a verified user sees the challenge again: the session sat unused (``idle``)."""
    if seconds % 60:
        return _n(
            "You have been away for more than {n} second, so this page needs a new code.",
            "You have been away for more than {n} seconds, so this page needs a new code.",
            seconds,
        )
    return _n(
        "You have been away for more than {n} minute, so this page needs a new code.",
        "You have been away for more than {n} minutes, so this page needs a new code.",
        seconds // 60,
    )


def code_label() -> str:
    return _("Verification code")


def verify_button() -> str:
    return _("Verify")


def ask_for_new_code() -> str:
    return _("Ask for a new code to continue.")


def resend_button() -> str:
    return _("Send a new code")


def resend_wait() -> str:
    """A template with ``{time}``: the time left, as :func:`duration` words it ("25
    seconds", "14 minutes and 5 seconds"); the page's script words it again as it counts
    down."""
    return _("You can ask for a new code in {time}.")


def duration(seconds: int) -> str:
    """A time left in words, with the language's plurals: "1 second", "25 seconds", "10
    minutes", "14 minutes and 5 seconds" (minutes and seconds joined by
    :func:`duration_join`)."""
    minutes, rest = divmod(max(0, seconds), 60)
    worded_seconds = _n("{n} second", "{n} seconds", rest)
    if not minutes:
        return worded_seconds
    worded_minutes = _n("{n} minute", "{n} minutes", minutes)
    if not rest:
        return worded_minutes
    return duration_join().format(minutes=worded_minutes, seconds=worded_seconds)


def duration_join() -> str:
    """How minutes and seconds are joined: a template with ``{minutes}`` and ``{seconds}``
    (the page's script joins its own words with it too)."""
    return _("{minutes} and {seconds}")


#: Why no new code may be asked for yet, by the budget that refuses it (the page's timer
#: says until when); the resend cooldown has the "rate_limited" status's sentence.
HELD_MESSAGES = {
    "recipient": N_("We have sent as many codes to this number as we may for now."),
    "client_address": N_("Too many codes were asked for from your network for now."),
    "global": N_("We are sending too many codes right now."),
    "failed_checks": N_("Too many wrong codes: new codes are on hold for a while."),
}


def held(budget: str) -> str:
    """The sentence for a refusing budget (a key of :data:`HELD_MESSAGES`; another key gets
    the flash status "rate_limited"'s sentence)."""
    if budget in HELD_MESSAGES:
        return _(HELD_MESSAGES[budget])
    return status("rate_limited")


def log_out() -> str:
    return _("Log out")


def unavailable_title() -> str:
    return _("Try again shortly")


def unavailable() -> str:
    return _("Verification is unavailable for a moment. Reload the page in a few seconds.")


def forbidden_title() -> str:
    return _("Forbidden")


def forbidden() -> str:
    return _(
        "This form has expired or did not come from this site. Go back, reload the page "
        "and try again."
    )


def form_unreadable() -> str:
    return _(
        "This form could not be read: it must be sent as "
        "application/x-www-form-urlencoded or multipart/form-data."
    )


def origin_rejected() -> str:
    return _(
        "This request came from another site (its Origin is not this site's, nor a trusted origin)."
    )


def failed_title() -> str:
    return _("Something went wrong")


def identify_failed() -> str:
    return _("We could not tell who you are. Try again later.")


def no_phone_title() -> str:
    return _("No phone number on file")


def no_phone() -> str:
    return _(
        "This page needs a code sent by text message, and there is no mobile number on "
        "your account that we can send it to. Add one to your account, or ask the "
        "site's support for help."
    )


def add_phone() -> str:
    return _("Add a phone number")


# JSON answers: ``reason`` is the stable, machine-readable part; ``message`` is for people.


def needs_verification() -> str:
    return _("This resource needs SMS verification.")


def needs_verification_no_phone() -> str:
    return _(
        "This resource needs SMS verification, and there is no phone number on file "
        "for this account."
    )


def not_verified_here() -> str:
    """The route-level checks' 403 (Flask, Starlette/FastAPI, Django decorators)."""
    return _("This page needs SMS verification, which did not happen for this request.")


def log_in_first() -> str:
    return _("Log in first.")


def internal_error() -> str:
    return _("Internal error.")


def not_found() -> str:
    return _("Not found.")


__all__ = [
    "HELD_MESSAGES",
    "STATUS_MESSAGES",
    "Translations",
    "held",
    "html_attributes",
    "language",
    "speaking",
    "status",
    "use",
]


# -- recovery codes -------------------------------------------------------------------------


def recovery_summary() -> str:
    return _("Can't get a text? Use a recovery code")


def recovery_label() -> str:
    return _("Recovery code")


def recovery_button() -> str:
    return _("Use recovery code")


def recovery_left(n: int) -> str:
    return _n("{n} recovery code left", "{n} recovery codes left", n)


def wrong_recovery_code() -> str:
    return _("That recovery code is not right, or was used already.")


def enter_recovery_code() -> str:
    return _("Enter a recovery code as it was shown: ten letters and digits.")


def recovery_title() -> str:
    return _("Recovery codes")


def recovery_intro() -> str:
    return _(
        "Recovery codes sign you in when no text arrives. Each works once; "
        "making new ones voids the old ones."
    )


def recovery_generate_button() -> str:
    return _("Make new recovery codes")


def recovery_shown_once() -> str:
    return _("Keep these somewhere safe: they are shown only this once.")


def enroll_title() -> str:
    return _("Add your phone number")


def enroll_intro() -> str:
    return _(
        "Sign-in here needs a code sent by text message. Enter your mobile number: we "
        "text it a code, and it is added to your account once you enter that code."
    )


def enroll_phone_label() -> str:
    return _("Mobile number")


def enroll_send_button() -> str:
    return _("Text me a code")


def enroll_code_sent(masked: str) -> str:
    return _("We texted a code to {number}. Enter it to add this number.").format(number=masked)


def enroll_confirm_button() -> str:
    return _("Add this number")


def enroll_bad_number() -> str:
    return _(
        "We cannot send codes to that number. Enter a mobile number we send to, "
        "with its country code if it is not a local one."
    )


def enroll_already() -> str:
    return _("There is a phone number on your account already.")


def phone_title() -> str:
    """The change-of-number page's title, and the challenge page's link to it."""
    return _("Change your phone number")


def phone_intro(masked: str) -> str:
    return _(
        "Your codes go to {number}. To use another mobile number, enter it: we text it a "
        "code, and it replaces this one once you enter that code."
    ).format(number=masked)


def phone_new_label() -> str:
    return _("New mobile number")


def phone_code_sent(masked: str) -> str:
    return _("We texted a code to {number}. Enter it to switch to this number.").format(
        number=masked
    )


def phone_confirm_button() -> str:
    return _("Use this number")


def phone_same_number() -> str:
    return _("That is the number on your account already.")


def phone_changed(masked: str) -> str:
    return _(
        "Your phone number is now {number}. You were signed out everywhere else, no "
        "browser is trusted any more, and your recovery codes no longer work: make new ones."
    ).format(number=masked)


def continue_link() -> str:
    return _("Continue")


def number_changed_notice(org_name: str) -> str:
    """The SMS to the old number after a change (no code in it)."""
    if org_name:
        return _(
            "{org_name}: the phone number for your sign-in codes was changed. "
            "Not you? Contact support now."
        ).format(org_name=org_name)
    return _("The phone number for your sign-in codes was changed. Not you? Contact support now.")


def recovery_used_notice(org_name: str, left: int) -> str:
    """The SMS after a recovery code signed the user in (no code in it): how many are left."""
    said = _n(
        "A recovery code was used to sign in. {n} left. Not you? Change your password.",
        "A recovery code was used to sign in. {n} left. Not you? Change your password.",
        left,
    ).format(n=left)
    return f"{org_name}: {said}" if org_name else said


def trust_browser_label(days: int) -> str:
    return _n(
        "Trust this browser for {n} day (no code on this browser until then)",
        "Trust this browser for {n} days (no code on this browser until then)",
        days,
    ).format(n=days)


def browsers_title() -> str:
    return _("Trusted browsers")


def browsers_intro() -> str:
    return _(
        "These browsers sign you in without a code until their trust ends. "
        "Revoke any you do not recognise."
    )


def browsers_none() -> str:
    return _("No browser is trusted.")


def this_browser() -> str:
    return _("this browser")


def revoke_button() -> str:
    return _("Revoke")


def revoke_all_button() -> str:
    return _("Revoke all")


#: The months, for the dates the pages show (:func:`date_time`).
MONTHS = (
    N_("January"),
    N_("February"),
    N_("March"),
    N_("April"),
    N_("May"),
    N_("June"),
    N_("July"),
    N_("August"),
    N_("September"),
    N_("October"),
    N_("November"),
    N_("December"),
)


def date_time(moment: datetime) -> str:
    """A moment to the minute, in UTC, for people: "3 December 2026, 20:41 UTC". The order
    and the joining words are the catalogue's ("3 de diciembre de 2026, 20:41 UTC"); digits
    and the 24-hour clock are the same in every language, and UTC is said, not guessed at
    (the server does not know the reader's time zone)."""
    utc = moment.astimezone(timezone.utc)
    return _("{day} {month} {year}, {time} UTC").format(
        day=utc.day, month=_(MONTHS[utc.month - 1]), year=utc.year, time=f"{utc:%H:%M}"
    )


def browser_trusted_on(date: str) -> str:
    """``date``: :func:`date_time`'s words."""
    return _("Trusted on {date}").format(date=date)


def browser_trusted_until(date: str) -> str:
    return _("Trusted until {date}").format(date=date)


def browser_last_used(date: str) -> str:
    return _("Last used {date}").format(date=date)
