"""``{prefix}/enroll`` (with ``on_enroll``): a logged-in user with no phone on file adds one.

* ``GET`` -> a page with a number form, and a code form once a code is out (HTML); with
  ``Accept: application/json``, ``{"pending": bool, "sent_to": masked | null}``;
* ``POST`` a number (form field ``phone`` / JSON ``{"phone": "..."}``, any common format,
  read in ``default_region``) -> checked against the region and number-type policy (refused
  before any SMS), then a code is sent to it, bound to this browser (:mod:`..binding`);
* ``POST`` a code (``code``) -> right: ``on_enroll(auth_id, e164)``, the audit event
  ``enrolled``, the verified session for the new number, and back to ``next`` (303; JSON:
  ``{"verified": true, "enrolled": masked}``).

The number enrolled is the one the code went to (the engine keeps it with the code), never
one the client names at confirmation. A user who has a number already is sent to the
challenge (a browser) or refused 403 ``PhoneOnFile`` (an API client): changing a number is
``{prefix}/phone``'s job (:mod:`.phone`), which reuses this flow's number and code checks.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from ... import Identity, text
from ...engine import Verifier
from ...errors import (
    ExpiredAuthCode,
    InvalidAPIUsage,
    InvalidAuthCode,
    InvalidRecipient,
    RateLimited,
    VerificationError,
)
from ...messages import (
    Request,
    Response,
    error_response,
    iso,
    json_object,
    json_response,
    only_keys,
)
from ...phones import mask, normalise, on_file
from ..binding import Binding
from ..cookies import Cookies
from ..csrf import Csrf, origin_ok
from ..options import GuardOptions
from ..refusals import Refusals
from ..responses import (
    app_url,
    forbidden,
    internal_error,
    redirect,
    safe_next,
    with_next,
)
from ..sending import CodeSender
from ..sessions import Sessions
from .html import HtmlFlow, read_form
from .json import is_json, wants_json
from .pages import CSRF_FIELD

log = logging.getLogger("sms2fa")


class EnrollFlow:
    """The enrollment page and its JSON twin."""

    def __init__(
        self,
        verifier: Verifier,
        options: GuardOptions,
        cookies: Cookies,
        sessions: Sessions,
        csrf: Csrf,
        refusals: Refusals,
        sender: CodeSender,
        html: HtmlFlow,
        default_region: str,
        on_enroll: Callable[[str, str], Any],
    ) -> None:
        self.verifier = verifier
        self.options = options
        self.cookies = cookies
        self.sessions = sessions
        self.csrf = csrf
        self.refusals = refusals
        self.sender = sender
        self.html = html  # its flash cookie and its code check (the same errors)
        self.binding: Binding = html.binding
        self.region = default_region
        self.on_enroll = on_enroll

    def number(self, typed: object) -> str:
        """A typed number in E.164 within the sending policy, or :class:`InvalidRecipient`
        (the message never repeats the number)."""
        e164 = on_file(typed, self.region) if isinstance(typed, str) else None
        if e164 is None:
            raise InvalidRecipient("'phone' is not a phone number")
        s = self.verifier.settings
        return normalise(e164, s.allowed_regions, s.allowed_number_types)

    def _caller(
        self, request: Request, identity: Identity | None, next_url: str
    ) -> Response | None:
        """None when ``identity`` may enroll; else the answer."""
        if identity is None:
            return self.refusals.anonymous(request, next_url)
        if identity.recipient is not None:  # enrolled already: the challenge is theirs
            if wants_json(request) or is_json(request):
                return json_response(
                    403, {"message": text.enroll_already(), "reason": "PhoneOnFile"}
                )
            return redirect(self.refusals.challenge_url(request, next_url))
        return None

    def _pending(self, request: Request, identity: Identity) -> str | None:
        """The number this browser's waiting enrollment code went to, if one is out."""
        pending = self.verifier.pending(str(identity.auth_id))
        if pending is None or self.binding.held(request) is None:
            return None
        return pending.recipient

    def get(self, request: Request, identity: Identity | None) -> Response:
        values = request.query.get("next")
        next_url = safe_next(values[0] if values else None)
        refused = self._caller(request, identity, next_url)
        if refused is not None or identity is None:
            return refused or forbidden(request)
        sent_to = self._pending(request, identity)
        if wants_json(request):
            masked = mask(sent_to) if sent_to else None
            return json_response(200, {"pending": sent_to is not None, "sent_to": masked})
        return self._page(request, identity, next_url, sent_to, None, 200)

    def post(self, request: Request, identity: Identity | None) -> Response:
        if is_json(request):
            return self._post_json(request, identity)
        read = read_form(request)
        fields = read or {}
        next_url = safe_next(fields.get("next"))
        refused = self._caller(request, identity, next_url)
        if refused is not None or identity is None:
            return refused or forbidden(request)
        if read is None:
            return forbidden(request, text.form_unreadable(), 400)
        if not origin_ok(request, self.options.origins):
            return forbidden(request, text.origin_rejected())
        if not self.csrf.ok(request, str(identity.auth_id), fields.get("csrf_token", "")):
            return forbidden(request)
        here = with_next(app_url(request, f"{self.options.prefix}/enroll"), next_url)
        if "code" in fields:
            code = re.sub(r"[\s-]", "", fields["code"])
            error, status, number = self.check_code(identity, code, self.binding.for_check(request))
            if number is None:
                sent_to = self._pending(request, identity)
                return self._page(request, identity, next_url, sent_to, error, status)
            return self._enrolled(request, identity, number, next_url)
        try:
            number = self.number(fields.get("phone", ""))
        except InvalidRecipient:
            return self._page(request, identity, next_url, None, text.enroll_bad_number(), 400)
        nonce, header = self.binding.for_send(request)
        refused_by = self.sender.send(Identity(str(identity.auth_id), number), request, nonce)
        if refused_by:  # refused (a budget, the provider): said here, nothing to confirm
            codes = {"rate_limited": 429, "send_failed": 502}
            error = text.status(refused_by)
            status = codes.get(refused_by, 400)
            return self._page(request, identity, next_url, None, error, status)
        return redirect(here, header)

    def check_code(
        self, identity: Identity, code: str, binding: str
    ) -> tuple[str, int, str | None]:
        """("", 200, the number the code went to) when ``code`` is right in this browser,
        else (the page's error, status, None); the challenge's wording."""
        try:
            if not code.isascii() or not code.isdigit() or len(code) > 10:
                raise InvalidAPIUsage()
            verified = self.verifier.check(str(identity.auth_id), code, binding=binding)
        except RateLimited as exc:
            return text.too_many_wrong(max(1, (exc.retry_after + 59) // 60)), 429, None
        except InvalidAPIUsage:
            return text.enter_digits(), 400, None
        except InvalidAuthCode as exc:
            return (
                (text.wrong_code() if exc.attempts_left else text.last_attempt_wrong()),
                400,
                None,
            )
        except ExpiredAuthCode:
            return text.code_expired(), 400, None
        except VerificationError:  # no code to check (used up, or never sent)
            return text.wrong_code(), 400, None
        return "", 200, verified.recipient

    def _post_json(self, request: Request, identity: Identity | None) -> Response:
        refused = self._caller(request, identity, "/")
        if refused is not None or identity is None:
            return refused or forbidden(request)
        if not origin_ok(request, self.options.origins):
            return json_response(
                403, {"message": text.origin_rejected(), "reason": "OriginRejected"}
            )
        auth_id = str(identity.auth_id)
        try:
            data = json_object(request)
            only_keys(data, (), ("phone", "code"))
            if ("phone" in data) == ("code" in data):
                raise InvalidAPIUsage("give 'phone' (to send a code) or 'code' (to confirm)")
            if "phone" in data:
                number = self.number(data["phone"])
                nonce, header = self.binding.for_send(request)
                started = self.sender.start(Identity(auth_id, number), request, nonce)
                body = {
                    "sent_to": mask(started.recipient),
                    "expires_at": iso(started.expires_at),
                    "attempts_left": started.attempts_left,
                }
                return json_response(200, body, [header])
            code = data["code"]
            if not isinstance(code, str) or not code.isascii() or not code.isdigit():
                raise InvalidAPIUsage("'code' must be a string of digits")
            verified = self.verifier.check(auth_id, code, binding=self.binding.for_check(request))
        except InvalidRecipient:  # the number said nowhere: it may be anything typed
            return json_response(
                400, {"message": text.enroll_bad_number(), "reason": "InvalidRecipient"}
            )
        except VerificationError as exc:
            return error_response(exc)
        answer = self._enrolled(request, identity, verified.recipient, None)
        if answer.status != 303:
            return answer
        body = {
            "verified": True,
            "enrolled": mask(verified.recipient),
            "remember_for": self.options.remember_for,
        }
        cookies = [h for h in answer.headers if h[0] == "set-cookie"]
        return json_response(200, body, cookies)

    def _enrolled(
        self, request: Request, identity: Identity, number: str, next_url: str | None
    ) -> Response:
        """A right code for ``number``: the app stores it, then the verified session."""
        auth_id = str(identity.auth_id)
        try:
            run_to_completion(self.on_enroll(auth_id, number))
        except Exception as exc:  # the app's bug: no session for a number it did not keep
            log.error("sms2fa: on_enroll raised %s", type(exc).__name__)
            return internal_error(request)
        self.verifier.audit.emit("enrolled", auth_id, number)
        https = request.scheme == "https"
        return redirect(
            next_url or "/",
            self.sessions.set_cookie(https, Identity(auth_id, number)),
            self.cookies.delete(https, self.cookies.csrf(https)),
        )

    def _page(
        self,
        request: Request,
        identity: Identity,
        next_url: str,
        sent_to: str | None,
        error: str | None,
        status: int,
    ) -> Response:
        headers = []
        nonce, set_nonce = self.csrf.nonce(request)
        if set_nonce:
            headers.append(set_nonce)
        renderer = self.options.renderer
        context = renderer.context(request, "enroll", status, text.enroll_title())
        context.update(
            intro=text.enroll_intro(),
            action=app_url(request, f"{self.options.prefix}/enroll"),
            csrf_name=CSRF_FIELD,
            csrf_value=self.csrf.token(str(identity.auth_id), nonce),
            next_url=next_url,
            error=error,
            sent_to=mask(sent_to) if sent_to is not None else None,
            sent_text=text.enroll_code_sent(mask(sent_to)) if sent_to is not None else None,
            code_length=self.verifier.settings.code_length,
            phone_label=text.enroll_phone_label(),
            send_label=text.enroll_send_button(),
            code_label=text.code_label(),
            confirm_label=text.enroll_confirm_button(),
        )
        return renderer.respond(context, headers)


def run_to_completion(result: object) -> object:
    """An async hook's result awaited here (the guard's routes run in a worker thread with
    no event loop of its own, on WSGI and ASGI alike); a sync one's as it is."""
    if inspect.isawaitable(result):
        return asyncio.run(_awaited(result))
    return result


async def _awaited(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


__all__ = ["EnrollFlow", "run_to_completion"]
