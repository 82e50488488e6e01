"""``{prefix}/phone`` (with ``on_enroll``): a verified user changes their phone number.

* ``GET`` -> a page with the number on file (masked), a form for the new one, and a code
  form once a code is out (HTML: the page ``phone``,
  :class:`~sms2fa_middleware.pages.PhoneContext`, through the ``render`` hook); with
  ``Accept: application/json``, ``{"phone": masked, "pending": bool, "sent_to": masked |
  null}``;
* ``POST`` a number (form field ``phone`` / JSON ``{"phone": "..."}``) -> checked as
  enrollment checks it (the region and number-type policy, refused before any SMS) and
  refused if it is the number on file; then a code is sent to it, bound to this browser;
* ``POST`` a code (``code``) -> right: ``on_enroll(auth_id, e164)`` (the app stores the new
  number, as it stores a first one), then what a change of number voids ends: every verified
  session of the user (:meth:`.Sessions.revoke`: other browsers), every trusted browser, the
  recovery codes; the OLD number is texted a notice with no code in it, the audit event
  ``number_changed`` is emitted (both numbers masked), and this browser gets a fresh verified
  session for the new number and the page again, saying what ended and linking to new
  recovery codes (JSON: ``{"verified": true, "changed_to": masked, "remember_for": s,
  "recovery_codes_left": 0}``).

Every request needs a verified session whose code was entered at most ``account_max_age``
seconds ago (5 minutes by default): a fresh proof of the number on file (or a recovery code,
the way in for a user whose phone is lost) before it can be replaced. An older session is
sent to the challenge with ``?max_age=`` and comes back here; an API client gets the 401
with ``max_age`` and RFC 9470's challenge. The number changed to is the one the code went
to (the engine keeps it with the code), never one the client names at confirmation.

If ``on_enroll`` raises, nothing changes (500, logged). If the store cannot be written
after it did, the answer is a 503: the app has the new number, and the old number's
sessions and trusted browsers open nothing any more anyway (they are signed over it).
"""

from __future__ import annotations

import logging
import re

from ... import Identity, text
from ...errors import InvalidAPIUsage, InvalidRecipient, UnknownAuthId, VerificationError
from ...messages import (
    Request,
    Response,
    error_response,
    iso,
    json_object,
    json_response,
    only_keys,
)
from ...phones import mask
from ..cookies import cookie_value
from ..csrf import origin_ok
from ..responses import (
    app_url,
    forbidden,
    internal_error,
    redirect,
    safe_next,
    with_next,
)
from .enroll import EnrollFlow, run_to_completion
from .gate import verified_or_where_to_go
from .html import read_form
from .json import is_json, wants_json
from .pages import CSRF_FIELD

log = logging.getLogger("sms2fa")

#: The flash status the page after a change shows once.
CHANGED = "number_changed"


class PhoneFlow:
    """The change-of-number page and its JSON twin (enrollment's checks, a fresh session
    first, and the change's consequences after)."""

    def __init__(self, enroll: EnrollFlow) -> None:
        self.enroll = enroll
        self.verifier = enroll.verifier
        self.options = enroll.options
        self.cookies = enroll.cookies
        self.sessions = enroll.sessions
        self.csrf = enroll.csrf
        self.refusals = enroll.refusals
        self.sender = enroll.sender
        self.binding = enroll.binding
        self.path = f"{self.options.prefix}/phone"

    def _fresh(
        self, request: Request, identity: Identity | None, next_url: str
    ) -> Identity | Response:
        """The user, if their session's code is recent enough; else where to go first (the
        challenge, coming back here with ``next_url`` kept)."""
        return verified_or_where_to_go(
            self.sessions,
            self.refusals,
            request,
            identity,
            with_next(self.path, next_url),
            self.options.account_max_age,
        )

    def _pending(self, request: Request, who: Identity) -> str | None:
        """The new number this browser's waiting code went to, if one is out (a code for
        the number on file is the challenge's, not a change's)."""
        pending = self.verifier.pending(who.auth_id)
        if pending is None or pending.recipient == who.recipient:
            return None
        return pending.recipient if self.binding.held(request) is not None else None

    def _new_number(self, who: Identity, typed: object) -> tuple[str | None, str, str]:
        """(the E.164 number, "", "") when ``typed`` may replace ``who``'s number, else
        (None, the sentence, the JSON reason); nothing is sent either way."""
        try:
            number = self.enroll.number(typed)
        except InvalidRecipient:  # the number said nowhere: it may be anything typed
            return None, text.enroll_bad_number(), "InvalidRecipient"
        if number == who.recipient:
            return None, text.phone_same_number(), "SameNumber"
        return number, "", ""

    def get(self, request: Request, identity: Identity | None) -> Response:
        values = request.query.get("next")
        next_url = safe_next(values[0] if values else None)
        who = self._fresh(request, identity, next_url)
        if isinstance(who, Response):
            return who
        sent_to = self._pending(request, who)
        if wants_json(request):
            body = {
                "phone": mask(who.recipient or ""),
                "pending": sent_to is not None,
                "sent_to": mask(sent_to) if sent_to else None,
            }
            return json_response(200, body)
        https = request.scheme == "https"
        done = cookie_value(request.header("cookie"), self.cookies.flash(https)) == CHANGED
        return self._page(request, who, next_url, sent_to, None, 200, done)

    def post(self, request: Request, identity: Identity | None) -> Response:
        if is_json(request):
            return self._post_json(request, identity)
        read = read_form(request)
        fields = read or {}
        next_url = safe_next(fields.get("next"))
        who = self._fresh(request, identity, next_url)
        if isinstance(who, Response):
            return who
        if read is None:
            return forbidden(request, text.form_unreadable(), 400)
        if not origin_ok(request, self.options.origins):
            return forbidden(request, text.origin_rejected())
        if not self.csrf.ok(request, who.auth_id, fields.get("csrf_token", "")):
            return forbidden(request)
        if "code" in fields:
            code = re.sub(r"[\s-]", "", fields["code"])
            error, status, number = self._check(request, who, code)
            if number is None:
                sent_to = self._pending(request, who)
                return self._page(request, who, next_url, sent_to, error, status)
            changed = self._change(request, who, number)
            if isinstance(changed, Response):
                return changed
            here = with_next(app_url(request, self.path), next_url)
            return redirect(here, *changed, self.enroll.html.flash(request, CHANGED))
        number, error, _ = self._new_number(who, fields.get("phone", ""))
        if number is None:
            return self._page(request, who, next_url, None, error, 400)
        nonce, header = self.binding.for_send(request)
        to = Identity(who.auth_id, number)
        # The user has just entered a code (the step-up's): this is no resend of it.
        self.verifier.end_cooldown(who.auth_id)
        refused_by = self.sender.send(to, request, nonce)
        if refused_by:  # refused (a budget, the provider): said here, nothing to confirm
            status = {"rate_limited": 429, "send_failed": 502}.get(refused_by, 400)
            error = text.status(refused_by)
            # Say for how long (the cooldown of a code sent to another new number just now).
            wait = self.sender.wait(to, request) if refused_by == "rate_limited" else None
            if wait is not None:
                later = text.resend_wait().format(time=text.duration(wait.retry_after))
                error = f"{text.held(wait.budget)} {later}"
            return self._page(request, who, next_url, None, error, status)
        return redirect(with_next(app_url(request, self.path), next_url), header)

    def _check(self, request: Request, who: Identity, code: str) -> tuple[str, int, str | None]:
        """As enrollment's check, for a code sent to a new number only: with none out,
        nothing is checked (no attempt is spent on a code that could change nothing)."""
        pending = self.verifier.pending(who.auth_id)
        if pending is None or pending.recipient == who.recipient:
            return text.wrong_code(), 400, None  # none, or the challenge's for the old number
        error, status, number = self.enroll.check_code(who, code, self.binding.for_check(request))
        if number == who.recipient:  # the challenge's code, sent in between: no change
            return text.wrong_code(), 400, None
        return error, status, number

    def _post_json(self, request: Request, identity: Identity | None) -> Response:
        who = self._fresh(request, identity, "/")
        if isinstance(who, Response):
            return who
        if not origin_ok(request, self.options.origins):
            return json_response(
                403, {"message": text.origin_rejected(), "reason": "OriginRejected"}
            )
        try:
            data = json_object(request)
            only_keys(data, (), ("phone", "code"))
            if ("phone" in data) == ("code" in data):
                raise InvalidAPIUsage("give 'phone' (to send a code) or 'code' (to confirm)")
            if "phone" in data:
                number, error, reason = self._new_number(who, data["phone"])
                if number is None:
                    return json_response(400, {"message": error, "reason": reason})
                nonce, header = self.binding.for_send(request)
                self.verifier.end_cooldown(who.auth_id)  # as for the form: no resend
                started = self.sender.start(Identity(who.auth_id, number), request, nonce)
                body = {
                    "sent_to": mask(started.recipient),
                    "expires_at": iso(started.expires_at),
                    "attempts_left": started.attempts_left,
                }
                return json_response(200, body, [header])
            code = data["code"]
            if not isinstance(code, str) or not code.isascii() or not code.isdigit():
                raise InvalidAPIUsage("'code' must be a string of digits")
            pending = self.verifier.pending(who.auth_id)
            if pending is None or pending.recipient == who.recipient:
                raise UnknownAuthId(text.wrong_code())  # no code out for a new number
            verified = self.verifier.check(
                who.auth_id, code, binding=self.binding.for_check(request)
            )
            if verified.recipient == who.recipient:  # the challenge's code, sent in between
                raise UnknownAuthId(text.wrong_code())
        except VerificationError as exc:
            return error_response(exc)
        changed = self._change(request, who, verified.recipient)
        if isinstance(changed, Response):
            return changed
        body = {
            "verified": True,
            "changed_to": mask(verified.recipient),
            "remember_for": self.options.remember_for,
            "recovery_codes_left": 0,
        }
        return json_response(200, body, changed)

    def _change(
        self, request: Request, who: Identity, number: str
    ) -> list[tuple[str, str]] | Response:
        """A right code for ``number``: the app stores it, then what the old number stood
        for ends; the Set-Cookie headers of this browser's new session, or the 500."""
        auth_id, old = who.auth_id, who.recipient or ""
        try:
            run_to_completion(self.enroll.on_enroll(auth_id, number))
        except Exception as exc:  # the app's bug: nothing changes for a number it did not keep
            log.error("sms2fa: on_enroll raised %s", type(exc).__name__)
            return internal_error(request)
        # Every session issued until now (other browsers', this one's old one) and every
        # trusted browser; then the recovery codes, the notice to the old number, the event.
        revoked_ms = self.sessions.revoke(auth_id, browsers=True)
        self.verifier.number_changed(auth_id, old, number)
        https = request.scheme == "https"
        headers = [
            self.sessions.set_cookie(https, Identity(auth_id, number), after_ms=revoked_ms),
            self.cookies.delete(https, self.cookies.csrf(https)),
        ]
        trusted = self.cookies.trusted(https)
        if cookie_value(request.header("cookie"), trusted) is not None:
            headers.append(self.cookies.delete(https, trusted))  # its row is gone
        return headers

    def _page(
        self,
        request: Request,
        who: Identity,
        next_url: str,
        sent_to: str | None,
        error: str | None,
        status: int,
        done: bool = False,
    ) -> Response:
        headers = []
        if done:  # shown once: a reload does not repeat it
            https = request.scheme == "https"
            headers.append(self.cookies.delete(https, self.cookies.flash(https)))
        nonce, set_nonce = self.csrf.nonce(request)
        if set_nonce:
            headers.append(set_nonce)
        masked = mask(who.recipient or "")
        renderer = self.options.renderer
        context = renderer.context(request, "phone", status, text.phone_title())
        context.update(
            intro=text.phone_intro(masked),
            masked_number=masked,
            action=app_url(request, self.path),
            csrf_name=CSRF_FIELD,
            csrf_value=self.csrf.token(who.auth_id, nonce),
            next_url=next_url,
            error=error,
            sent_to=mask(sent_to) if sent_to is not None else None,
            sent_text=text.phone_code_sent(mask(sent_to)) if sent_to is not None else None,
            changed_text=text.phone_changed(masked) if done else None,
            recovery_url=app_url(request, f"{self.options.prefix}/recovery"),
            recovery_text=text.recovery_generate_button(),
            continue_text=text.continue_link(),
            code_length=self.verifier.settings.code_length,
            phone_label=text.phone_new_label(),
            send_label=text.enroll_send_button(),
            code_label=text.code_label(),
            confirm_label=text.phone_confirm_button(),
        )
        return renderer.respond(context, headers)


__all__ = ["CHANGED", "PhoneFlow"]
