"""The JSON challenge flow, for API clients (docs/middleware.md, "API clients"):

* ``GET {prefix}/challenge`` with ``Accept: application/json`` -> the pending code's status;
* ``POST {prefix}/challenge/send`` (JSON ``{}``) -> sends a code;
* ``POST {prefix}/challenge`` (JSON ``{"code": "..."}``, optionally ``"trust": true``) ->
  ``{"verified": true, "remember_for": s}`` and the verified-session cookie; with ``trust``
  (and ``trust_browser_for`` on) also ``"trusted_for": s`` and the trusted-browser cookie.

No CSRF token: a JSON content type forces a CORS preflight, which no other origin passes
unless the app allows it. The Origin check still applies. A client without a cookie jar
sends the cookie's value back itself (``Cookie: sms2fa=<value>``), and so the challenge
cookie the send set: a code verifies only with it (:mod:`..binding`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ... import Identity, text
from ...engine import Verifier
from ...errors import InvalidAPIUsage, VerificationError
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
from ..binding import Binding
from ..csrf import origin_ok
from ..options import GuardOptions
from ..refusals import Refusals
from ..sending import CodeSender
from ..sessions import Sessions
from ..trust import GuardTrust


def is_json(request: Request) -> bool:
    """A JSON body (``application/json`` or ``+json``)."""
    media = request.media_type
    return media == "application/json" or media.endswith("+json")


def wants_json(request: Request) -> bool:
    """Asks for JSON and not for a page."""
    accept = request.header("accept")
    return "json" in accept and "text/html" not in accept


class JsonFlow:
    """Status, send and check for API clients."""

    def __init__(
        self,
        verifier: Verifier,
        options: GuardOptions,
        sessions: Sessions,
        refusals: Refusals,
        sender: CodeSender,
        binding: Binding,
        trust: GuardTrust | None = None,
    ) -> None:
        self.trust = trust
        self.verifier = verifier
        self.options = options
        self.sessions = sessions
        self.refusals = refusals
        self.sender = sender
        self.binding = binding

    def _caller(
        self, request: Request, identity: Identity | None, post: bool
    ) -> Identity | Response:
        """The identity, when it may go on (logged in, a phone on file, our origin)."""
        if identity is None:
            return self.refusals.anonymous(request, "/")
        if identity.recipient is None:
            return self.refusals.no_phone(request, "/")
        if post and not origin_ok(request, self.options.origins):
            return json_response(
                403, {"message": text.origin_rejected(), "reason": "OriginRejected"}
            )
        return identity

    def _code(
        self,
        who: Identity,
        request: Request,
        recipient: str,
        expires_at: datetime | None,
        attempts_left: int,
    ) -> dict[str, Any]:
        """What a client may know of a code: never the code, the number only masked;
        ``resend_after`` as the challenge page's timer (a send's 429 ``retry_after``)."""
        wait = self.sender.wait(who, request)
        return {
            "sent_to": mask(recipient),
            "expires_at": iso(expires_at) if expires_at is not None else None,
            "attempts_left": attempts_left,
            "resend_after": wait.retry_after if wait is not None else 0,
        }

    def status(self, request: Request, identity: Identity | None) -> Response:
        who = self._caller(request, identity, post=False)
        if isinstance(who, Response):
            return who
        pending = self.verifier.pending(who.auth_id)
        if pending is not None and pending.recipient != who.recipient:
            pending = None
        left = {"recovery_codes_left": self.verifier.recovery_codes_left(who.auth_id)}
        if pending is None:
            return json_response(
                200,
                {
                    "pending": False,
                    **self._code(who, request, who.recipient or "", None, 0),
                    **left,
                },
            )
        return json_response(
            200,
            {
                "pending": True,
                **self._code(
                    who, request, pending.recipient, pending.expires_at, pending.attempts_left
                ),
                **left,
            },
        )

    def send(self, request: Request, identity: Identity | None) -> Response:
        who = self._caller(request, identity, post=True)
        if isinstance(who, Response):
            return who
        try:
            if request.body.strip():
                only_keys(json_object(request), (), ())
            nonce, header = self.binding.for_send(request)
            started = self.sender.start(who, request, nonce)
        except VerificationError as exc:
            return error_response(exc)
        return json_response(
            200,
            self._code(who, request, started.recipient, started.expires_at, started.attempts_left),
            [header],  # the code verifies only with this cookie sent back
        )

    def check(self, request: Request, identity: Identity | None) -> Response:
        who = self._caller(request, identity, post=True)
        if isinstance(who, Response):
            return who
        try:
            data: dict[str, Any] = json_object(request)
            if "recovery_code" in data:  # no text arrived: a recovery code instead
                return self._recover(request, who, data)
            only_keys(data, ("code",), ("trust",))
            code = data["code"]
            trust = data.get("trust", False)
            if not isinstance(trust, bool):
                raise InvalidAPIUsage("'trust' must be true or false")
            if not isinstance(code, str) or not code.isascii() or not code.isdigit():
                raise InvalidAPIUsage("'code' must be a string of digits")
            verified = self.verifier.check(
                who.auth_id, code, binding=self.binding.for_check(request)
            )
        except VerificationError as exc:
            return error_response(exc)
        if verified.recipient != who.recipient:
            # The number changed while the code was out: it proves nothing about the new one.
            return json_response(
                400,
                {
                    "message": text.number_changed(),
                    "reason": "RecipientChanged",
                    "attempts_left": 0,
                },
            )
        headers = [self.sessions.set_cookie(request.scheme == "https", who)]
        body: dict[str, Any] = {"verified": True, "remember_for": self.options.remember_for}
        if trust and self.trust is not None and self.trust.enabled:
            headers.append(self.trust.trust(request, who))
            body["trusted_for"] = self.trust.seconds
        return json_response(200, body, headers)

    def _recover(self, request: Request, who: Identity, data: dict[str, Any]) -> Response:
        """``{"recovery_code": "..."}``: spend one, and the verified session as for a code."""
        only_keys(data, ("recovery_code",), ())
        code = data["recovery_code"]
        if not isinstance(code, str):
            raise InvalidAPIUsage("'recovery_code' must be a string")
        left = self.verifier.use_recovery_code(who.auth_id, code, recipient=who.recipient)
        cookie = self.sessions.set_cookie(request.scheme == "https", who)
        body = {
            "verified": True,
            "remember_for": self.options.remember_for,
            "recovery_codes_left": left,
        }
        return json_response(200, body, [cookie])


__all__ = ["JsonFlow", "is_json", "wants_json"]
