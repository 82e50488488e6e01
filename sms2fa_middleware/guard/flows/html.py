"""The HTML challenge flow: a browser is sent to the challenge page, which shows the masked
number, a code form and a resend form; a right code sets the verified cookie and goes back to
``next``. Every form carries a CSRF token (:mod:`..csrf`); a check that consumes an attempt
is never triggered by a GET.
"""

from __future__ import annotations

import io
import re
import secrets
from urllib.parse import parse_qs, urlsplit

from ... import Identity, text
from ...engine import SendWait, Verifier
from ...errors import (
    ExpiredAuthCode,
    InvalidAPIUsage,
    InvalidAuthCode,
    RateLimited,
    VerificationError,
)
from ...messages import MAX_BODY, Request, Response
from ...phones import mask
from ..binding import Binding
from ..cookies import Cookies, cookie_value
from ..csrf import Csrf, origin_ok
from ..options import GuardOptions
from ..refusals import ANY, Fresh, Refusals
from ..responses import (
    app_url,
    forbidden,
    is_speculative,
    redirect,
    safe_next,
    with_next,
)
from ..sending import CodeSender
from ..sessions import Sessions
from ..trust import GuardTrust
from .pages import ChallengeView, challenge_context

FLASH_MAX_AGE = 60
#: Joins two flash statuses in the one cookie ("post_lost.rate_limited").
FLAGS = "."


FORM_PARTS = 16  # the challenge forms have three fields; a browser adds nothing else


def read_form(request: Request) -> dict[str, str] | None:
    """A posted form's fields (first value of each): urlencoded, or ``multipart/form-data``
    as browsers and Django's test client may send it (files are ignored). None when the
    body is no form this can read: another content type, or a malformed one."""
    media_type = request.media_type
    if media_type == "application/x-www-form-urlencoded":
        try:
            parsed = parse_qs(request.body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            return None
        return {k: v[0] for k, v in parsed.items()}
    if media_type != "multipart/form-data":
        return None
    # werkzeug's parser (already a dependency), bounded as the body itself is: the adapters
    # refuse a body over MAX_BODY before it gets here. Imported here: the guard loads
    # without any web framework, and only a multipart post needs it.
    from werkzeug.exceptions import HTTPException
    from werkzeug.formparser import FormDataParser
    from werkzeug.http import parse_options_header

    parser = FormDataParser(
        max_form_memory_size=MAX_BODY,
        max_content_length=MAX_BODY,
        max_form_parts=FORM_PARTS,
        silent=False,
    )
    _, options = parse_options_header(request.header("content-type"))
    try:
        _, fields, _ = parser.parse(
            io.BytesIO(request.body), media_type, len(request.body), options
        )
    except (HTTPException, ValueError):  # no boundary, malformed parts, too many, too large
        return None
    return {k: fields[k] for k in fields}


def form(request: Request) -> dict[str, str]:
    """:func:`read_form`, with {} for a body that is no readable form."""
    return read_form(request) or {}


class HtmlFlow:
    """The challenge page and its two forms (code, resend)."""

    def __init__(
        self,
        verifier: Verifier,
        options: GuardOptions,
        cookies: Cookies,
        sessions: Sessions,
        csrf: Csrf,
        refusals: Refusals,
        sender: CodeSender,
        trust: GuardTrust | None = None,
    ) -> None:
        self.verifier = verifier
        self.trust = trust
        self.options = options
        self.cookies = cookies
        self.sessions = sessions
        self.csrf = csrf
        self.refusals = refusals
        self.sender = sender
        self.binding = Binding(cookies)

    def flash(self, request: Request, status: str) -> tuple[str, str]:
        """A one-time status for the next challenge page (kept out of the URL)."""
        https = request.scheme == "https"
        return self.cookies.set(https, self.cookies.flash(https), status, FLASH_MAX_AGE)

    def start(
        self,
        request: Request,
        identity: Identity,
        next_url: str,
        lost: bool = False,
        fresh: Fresh = ANY,
    ) -> Response:
        """A browser request without a verified session (or, ``fresh``, with one older or
        idle longer than a rule allows): send a code (unless one is waiting) and go to the
        challenge page. ``lost``: it was a form post, which the page says was not kept."""
        status, headers = self._send_first(identity, request)
        if lost:  # the lost post is said whatever else is (a cooldown must not hide it)
            status = "post_lost" + (f"{FLAGS}{status}" if status else "")
        if status:
            headers.append(self.flash(request, status))
        return redirect(self.refusals.challenge_url(request, next_url, fresh), *headers)

    def htmx(
        self, request: Request, identity: Identity, next_url: str, fresh: Fresh = ANY
    ) -> Response:
        """An HTMX request: 401, and ``HX-Redirect`` sends the whole page to the challenge
        (a redirect would be followed by the XHR and swapped into a fragment)."""
        status, headers = self._send_first(identity, request)
        response = self.refusals.verification_required(request, next_url, fresh)
        response.headers.append(
            ("hx-redirect", self.refusals.challenge_url(request, next_url, fresh))
        )
        response.headers.extend(headers)
        if status:
            response.headers.append(self.flash(request, status))
        return response

    def _send_first(
        self, identity: Identity, request: Request
    ) -> tuple[str | None, list[tuple[str, str]]]:
        """The code a protected request's challenge starts with: None, or the status key
        of why it could not be sent, and the challenge nonce's Set-Cookie. None and no SMS
        for a prefetch or prerender: a browser's guess sends nothing, costs no budget and
        stores no code; the person who then opens the page asks for the code there."""
        if is_speculative(request):
            return None, []
        held = self.binding.held(request) is not None
        nonce, header = self.binding.for_send(request)
        # A browser without a nonce cannot hold the waiting code (it was sent for another):
        # it gets its own, else it would be shown a form no code it can get will pass.
        status = self.sender.send_unless_waiting(identity, request, nonce, could_hold=held)
        return status, [header]

    def get(self, request: Request, identity: Identity | None) -> Response:
        values = request.query.get("next")
        return self.page(
            request,
            identity,
            safe_next(values[0] if values else None),
            fresh=Fresh.of(request),
        )

    def page(
        self,
        request: Request,
        identity: Identity | None,
        next_url: str,
        error: str | None = None,
        status: int = 200,
        fresh: Fresh = ANY,
    ) -> Response:
        """The challenge page (or where the user must go instead). ``fresh`` (step-up): a
        session verified longer ago than its ``max_age``, or unused for longer than its
        ``idle``, does not skip the page, which says why."""
        if identity is None:
            return self.refusals.anonymous(request, next_url)
        if identity.recipient is None:
            return self.refusals.no_phone(request, next_url)
        https = request.scheme == "https"
        session = self.sessions.session(request.header("cookie"), https, identity)
        if session is not None and session.meets(*fresh, self.sessions.now_ms()):
            return redirect(next_url)
        headers: list[tuple[str, str]] = []
        notice = None
        flag = cookie_value(request.header("cookie"), self.cookies.flash(https))
        if flag:  # shown once: a reload does not repeat it
            headers.append(self.cookies.delete(https, self.cookies.flash(https)))
        # What refuses a new code now, and until when: the timer and its wording, worked
        # out as a send would be refused (so they match a 429's retry_after).
        wait = self.sender.wait(identity, request)
        for one in (flag or "").split(FLAGS)[:2]:
            if one == "sent":
                notice = text.code_sent_again()
            elif one == "post_lost":
                notice = text.status(one)
            elif error is None and one == "rate_limited" and wait is not None:
                error = text.held(wait.budget)  # which budget refused, not "one of them"
            elif error is None and one in text.STATUS_MESSAGES:
                error = text.status(one)
        nonce, set_nonce = self.csrf.nonce(request)
        if set_nonce:
            headers.append(set_nonce)
        script_nonce = secrets.token_urlsafe(16)
        view = self._view(
            request, identity, next_url, nonce, error, notice, script_nonce, wait, fresh
        )
        return self.options.renderer.respond(
            challenge_context(view, status, request.native), headers
        )

    def _view(
        self,
        request: Request,
        identity: Identity,
        next_url: str,
        nonce: str,
        error: str | None,
        notice: str | None,
        script_nonce: str,
        wait: SendWait | None,
        fresh: Fresh = ANY,
    ) -> ChallengeView:
        pending = self.verifier.pending(identity.auth_id)
        if pending is not None and pending.recipient != identity.recipient:
            pending = None
        action = app_url(request, f"{self.options.prefix}/challenge")
        age = fresh.query  # kept through the forms
        if notice is None and error is None:  # say why a verified user sees the page again
            if fresh.max_age is not None:
                notice = text.needs_recent_code(fresh.max_age)
            elif fresh.idle is not None:
                notice = text.idle_too_long(fresh.idle)
        return ChallengeView(
            masked_recipient=mask(identity.recipient or ""),
            action=action + age,
            resend_action=f"{action}/resend{age}",
            csrf_token=self.csrf.token(identity.auth_id, nonce),
            next_url=next_url,
            code_length=self.verifier.settings.code_length,
            attempts_left=pending.attempts_left if pending else None,
            resend_in=wait.retry_after if wait is not None else 0,
            error=error,
            notice=notice,
            script_nonce=script_nonce,
            logout_url=app_url(request, link) if (link := self.options.logout_link) else None,
            recovery_left=self.verifier.recovery_codes_left(identity.auth_id),
            trust_days=self.trust.days if self.trust is not None else 0,
            change_number_url=self._change_number_url(request, next_url),
            # More than the cooldown after a send: say what holds the next code back.
            held=text.held(wait.budget)
            if wait is not None and wait.budget != "resend_cooldown"
            else None,
        )

    def _change_number_url(self, request: Request, next_url: str) -> str | None:
        """``{prefix}/phone`` (coming back to ``next_url``) when numbers can change there,
        unless this challenge is that page's own step-up."""
        if self.options.on_enroll is None:
            return None
        phone = app_url(request, f"{self.options.prefix}/phone")
        if urlsplit(next_url).path == phone:
            return None
        return with_next(phone, next_url)

    def _checked_form(
        self, request: Request, identity: Identity | None
    ) -> tuple[dict[str, str], str, Response | None]:
        """The form, its safe ``next``, and a refusal (or None when the post may go on)."""
        read = read_form(request)
        fields = read if read is not None else {}
        next_url = safe_next(fields.get("next"))
        if identity is None:
            return fields, next_url, self.refusals.anonymous(request, next_url)
        if identity.recipient is None:
            return fields, next_url, self.refusals.no_phone(request, next_url)
        # Say what went wrong where it is known; "expired" is left for a missing or stale
        # token (or nonce cookie), which is what a reload cures.
        if read is None:
            return fields, next_url, forbidden(request, text.form_unreadable(), 400)
        if not origin_ok(request, self.options.origins):
            return fields, next_url, forbidden(request, text.origin_rejected())
        if not self.csrf.ok(request, identity.auth_id, fields.get("csrf_token", "")):
            return fields, next_url, forbidden(request)
        return fields, next_url, None

    def resend(self, request: Request, identity: Identity | None) -> Response:
        _, next_url, refused = self._checked_form(request, identity)
        if refused is not None or identity is None:
            return refused or forbidden(request)
        nonce, header = self.binding.for_send(request)
        status = self.sender.send(identity, request, nonce) or "sent"
        return redirect(
            self.refusals.challenge_url(request, next_url, Fresh.of(request)),
            self.flash(request, status),
            header,
        )

    def post(self, request: Request, identity: Identity | None) -> Response:
        """The code form: right -> the verified cookie and back to ``next``; wrong -> the
        page again, with what went wrong."""
        fields, next_url, refused = self._checked_form(request, identity)
        if refused is not None or identity is None:
            return refused or forbidden(request)
        if "recovery_code" in fields:  # "Can't get a text?"
            error, status = self._recover(identity, fields["recovery_code"])
        else:
            code = re.sub(r"[\s-]", "", fields.get("code", ""))
            error, status = self._check(identity, code, self.binding.for_check(request))
        if error is not None:
            return self.page(
                request,
                identity,
                next_url,
                error=error,
                status=status,
                fresh=Fresh.of(request),
            )
        https = request.scheme == "https"  # a fresh verified session; the nonce is spent
        headers = [
            self.sessions.set_cookie(https, identity),
            self.cookies.delete(https, self.cookies.csrf(https)),
        ]
        if fields.get("trust") and "code" in fields and self.trust and self.trust.enabled:
            headers.append(self.trust.trust(request, identity))  # the box was ticked
        return redirect(next_url, *headers)

    def _recover(self, identity: Identity, code: str) -> tuple[str | None, int]:
        """(None, 200) when recovery ``code`` is one of ``identity``'s unused ones (now
        spent, and texted about), else (the page's error, status)."""
        try:
            self.verifier.use_recovery_code(identity.auth_id, code, recipient=identity.recipient)
        except RateLimited as exc:
            return text.too_many_wrong(max(1, (exc.retry_after + 59) // 60)), 429
        except InvalidAPIUsage:
            return text.enter_recovery_code(), 400
        except VerificationError:
            return text.wrong_recovery_code(), 400
        return None, 200

    def _check(self, identity: Identity, code: str, binding: str) -> tuple[str | None, int]:
        """(None, 200) when ``code`` verifies ``identity`` in this browser (``binding``: its
        challenge nonce), else (the page's error, status)."""
        try:
            if not code.isascii() or not code.isdigit() or len(code) > 10:
                raise InvalidAPIUsage()
            verified = self.verifier.check(identity.auth_id, code, binding=binding)
        except RateLimited as exc:
            return text.too_many_wrong(max(1, (exc.retry_after + 59) // 60)), 429
        except InvalidAPIUsage:
            return text.enter_digits(), 400
        except InvalidAuthCode as exc:  # wrong; say so when it was the last attempt
            return (text.wrong_code() if exc.attempts_left else text.last_attempt_wrong()), 400
        except ExpiredAuthCode:
            return text.code_expired(), 400
        except VerificationError:  # no code to check (used up, or never sent)
            return text.wrong_code(), 400
        if verified.recipient != identity.recipient:
            # The number changed while the code was out: it proves nothing about the new one.
            return text.number_changed(), 400
        return None, 200


__all__ = ["HtmlFlow", "form", "read_form"]
