"""``{prefix}/recovery``: a verified user's recovery codes.

* ``GET`` -> a page with how many are left and a form that makes a new set (HTML), or
  ``{"remaining": n}`` (``Accept: application/json``);
* ``POST`` (the page's form, CSRF-checked like the challenge's) -> the new codes, shown
  once; with a JSON body ``{}`` -> ``{"codes": [...], "remaining": 10}`` (Origin-checked).

Only a live verified session may see or make them: without one, a browser goes through the
challenge and comes back here; an API client gets the 401.
"""

from __future__ import annotations

import secrets
from html import escape

from ... import Identity, text
from ...engine import Verifier
from ...errors import VerificationError
from ...messages import (
    Request,
    Response,
    error_response,
    json_object,
    json_response,
    only_keys,
)
from ..csrf import Csrf, origin_ok
from ..options import GuardOptions
from ..refusals import Refusals
from ..responses import PAGE_HEADERS, app_url, forbidden, html_start
from ..sessions import Sessions
from .gate import verified_or_where_to_go
from .html import read_form
from .json import is_json, wants_json


class RecoveryFlow:
    """The recovery-codes page and its JSON twin."""

    def __init__(
        self,
        verifier: Verifier,
        options: GuardOptions,
        sessions: Sessions,
        csrf: Csrf,
        refusals: Refusals,
    ) -> None:
        self.verifier = verifier
        self.options = options
        self.sessions = sessions
        self.csrf = csrf
        self.refusals = refusals

    def _verified(
        self, request: Request, identity: Identity | None, fresh: bool = False
    ) -> Identity | Response:
        """The user if the request may go on; ``fresh``: with a recent code."""
        return verified_or_where_to_go(
            self.sessions,
            self.refusals,
            request,
            identity,
            f"{self.options.prefix}/recovery",
            self.options.account_max_age if fresh else None,
        )

    def get(self, request: Request, identity: Identity | None) -> Response:
        who = self._verified(request, identity)
        if isinstance(who, Response):
            return who
        left = self.verifier.recovery_codes_left(who.auth_id)
        if wants_json(request):
            return json_response(200, {"remaining": left})
        return self._page(request, who, left, None)

    def post(self, request: Request, identity: Identity | None) -> Response:
        """Make a new set (the old one stops working) and show it once."""
        who = self._verified(request, identity, fresh=True)
        if isinstance(who, Response):
            return who
        if is_json(request):
            if not origin_ok(request, self.options.origins):
                return json_response(
                    403, {"message": text.origin_rejected(), "reason": "OriginRejected"}
                )
            try:
                if request.body.strip():
                    only_keys(json_object(request), (), ())
                codes = self.verifier.new_recovery_codes(who.auth_id)
            except VerificationError as exc:
                return error_response(exc)
            return json_response(200, {"codes": codes, "remaining": len(codes)})
        fields = read_form(request) or {}
        if not self.csrf.ok(request, who.auth_id, fields.get("csrf_token", "")):
            return forbidden()
        codes = self.verifier.new_recovery_codes(who.auth_id)
        return self._page(request, who, len(codes), codes)

    def _page(
        self, request: Request, who: Identity, left: int, codes: list[str] | None
    ) -> Response:
        headers = [self.options.csp.header(secrets.token_urlsafe(16))]
        nonce, set_nonce = self.csrf.nonce(request)
        if set_nonce:
            headers.append(set_nonce)
        shown = ""
        if codes:
            items = "".join(f"<li><code>{escape(c)}</code></li>" for c in codes)
            shown = (
                f'<p class="notice" role="status">{escape(text.recovery_shown_once())}</p>'
                f'<ol id="recovery-codes">{items}</ol>'
            )
        action = app_url(request, f"{self.options.prefix}/recovery")
        body = (
            f"{html_start(text.recovery_title())}<main><h1>{escape(text.recovery_title())}</h1>"
            f"<p>{escape(text.recovery_intro())}</p>{shown}"
            f'<p id="recovery-left">{escape(text.recovery_left(left))}</p>'
            f'<form method="post" action="{escape(action)}">'
            f'<input type="hidden" name="csrf_token" '
            f'value="{escape(self.csrf.token(who.auth_id, nonce))}">'
            f'<button type="submit">{escape(text.recovery_generate_button())}</button>'
            f"</form></main></body></html>"
        )
        return Response(200, body.encode(), [*PAGE_HEADERS, *headers])


__all__ = ["RecoveryFlow"]
