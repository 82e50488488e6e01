"""``{prefix}/recovery``: a verified user's recovery codes.

* ``GET`` -> a page with how many are left and a form that makes a new set (HTML), or
  ``{"remaining": n}`` (``Accept: application/json``);
* ``POST`` (the page's form, CSRF-checked like the challenge's) -> the new codes, shown
  once; with a JSON body ``{}`` -> ``{"codes": [...], "remaining": 10}`` (Origin-checked).

Only a live verified session may see or make them: without one, a browser goes through the
challenge and comes back here; an API client gets the 401.
"""

from __future__ import annotations

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
from ..responses import app_url, forbidden
from ..sessions import Sessions
from .gate import verified_or_where_to_go
from .html import read_form
from .json import is_json, wants_json
from .pages import CSRF_FIELD


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
            return forbidden(request)
        codes = self.verifier.new_recovery_codes(who.auth_id)
        return self._page(request, who, len(codes), codes)

    def _page(
        self, request: Request, who: Identity, left: int, codes: list[str] | None
    ) -> Response:
        headers = []
        nonce, set_nonce = self.csrf.nonce(request)
        if set_nonce:
            headers.append(set_nonce)
        renderer = self.options.renderer
        context = renderer.context(request, "recovery", 200, text.recovery_title())
        context.update(
            intro=text.recovery_intro(),
            action=app_url(request, f"{self.options.prefix}/recovery"),
            csrf_name=CSRF_FIELD,
            csrf_value=self.csrf.token(who.auth_id, nonce),
            left=left,
            left_text=text.recovery_left(left),
            codes=list(codes or ()),
            shown_once_text=text.recovery_shown_once() if codes else None,
            generate_label=text.recovery_generate_button(),
        )
        return renderer.respond(context, headers)


__all__ = ["RecoveryFlow"]
