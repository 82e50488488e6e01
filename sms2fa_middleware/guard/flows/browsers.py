"""``{prefix}/browsers``: a verified user's trusted browsers (``trust_browser_for``).

* ``GET`` -> a page listing them (when trusted, until when, last used, user agent, coarse
  network, "this browser"), each with a Revoke button, and "Revoke all" (HTML); or
  ``{"browsers": [...]}`` (``Accept: application/json``);
* ``POST`` (the page's forms, CSRF-checked like the challenge's: ``revoke=<id>`` or
  ``revoke=all``) -> the page again; with a JSON body ``{"revoke": "<id>" | "all"}`` ->
  ``{"revoked": n, "browsers": [...]}`` (Origin-checked).

Only a live verified session may see or revoke them: without one, a browser goes through the
challenge and comes back here; an API client gets the 401. Revoking deletes the row, so the
browser's cookie opens nothing any more (this browser's cookie is deleted too).
"""

from __future__ import annotations

from typing import Any

from ... import Identity, text
from ...engine.trust import TrustedBrowser
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
from ..csrf import Csrf, origin_ok
from ..options import GuardOptions
from ..refusals import Refusals
from ..responses import app_url, forbidden
from ..sessions import Sessions
from ..trust import GuardTrust
from .gate import verified_or_where_to_go
from .html import read_form
from .json import is_json, wants_json
from .pages import CSRF_FIELD


def _entry(browser: TrustedBrowser, current: str | None) -> dict[str, Any]:
    """One browser as the JSON answers list it."""
    return {
        "id": browser.id,
        "created_at": iso(browser.created_at),
        "expires_at": iso(browser.expires_at),
        "last_used": iso(browser.last_used),
        "user_agent": browser.user_agent,
        "network": browser.network,
        "this_browser": browser.id == current,
    }


def _page_entry(browser: TrustedBrowser, current: str | None) -> dict[str, Any]:
    """One browser as the page's context has it
    (:class:`~sms2fa_middleware.pages.TrustedBrowserEntry`): the JSON's keys, and its times
    in words in the request's language."""
    created = text.date_time(browser.created_at)
    expires = text.date_time(browser.expires_at)
    last_used = text.date_time(browser.last_used)
    return {
        **_entry(browser, current),
        "user_agent": browser.user_agent or "",
        "created_date": created,
        "expires_date": expires,
        "last_used_date": last_used,
        "created_text": text.browser_trusted_on(created),
        "expires_text": text.browser_trusted_until(expires),
        "last_used_text": text.browser_last_used(last_used),
    }


class BrowsersFlow:
    """The trusted-browsers page and its JSON twin."""

    def __init__(
        self,
        options: GuardOptions,
        sessions: Sessions,
        csrf: Csrf,
        refusals: Refusals,
        trust: GuardTrust,
    ) -> None:
        self.options = options
        self.sessions = sessions
        self.csrf = csrf
        self.refusals = refusals
        self.trust = trust

    def _verified(self, request: Request, identity: Identity | None) -> Identity | Response:
        return verified_or_where_to_go(
            self.sessions, self.refusals, request, identity, f"{self.options.prefix}/browsers"
        )

    def _listed(self, request: Request, who: Identity) -> list[dict[str, Any]]:
        current = self.trust.held(request, who)
        return [_entry(b, current) for b in self.trust.listed(who)]

    def get(self, request: Request, identity: Identity | None) -> Response:
        who = self._verified(request, identity)
        if isinstance(who, Response):
            return who
        if wants_json(request):
            return json_response(200, {"browsers": self._listed(request, who)})
        return self._page(request, who)

    def post(self, request: Request, identity: Identity | None) -> Response:
        """Revoke one trusted browser (``revoke=<id>``) or all (``revoke=all``)."""
        who = self._verified(request, identity)
        if isinstance(who, Response):
            return who
        if is_json(request):
            if not origin_ok(request, self.options.origins):
                return json_response(
                    403, {"message": text.origin_rejected(), "reason": "OriginRejected"}
                )
            try:
                data = json_object(request)
                only_keys(data, ("revoke",), ())
                which = data["revoke"]
                if not isinstance(which, str) or not which or len(which) > 64:
                    raise InvalidAPIUsage("'revoke' must be a browser's id or \"all\"")
                revoked, headers = self._revoke(request, who, which)
            except VerificationError as exc:
                return error_response(exc)
            body = {"revoked": revoked, "browsers": self._listed(request, who)}
            return json_response(200, body, headers)
        fields = read_form(request) or {}
        if not self.csrf.ok(request, who.auth_id, fields.get("csrf_token", "")):
            return forbidden(request)
        which = fields.get("revoke", "")
        if not which or len(which) > 64:
            return self._page(request, who, status=400)
        _, headers = self._revoke(request, who, which)
        response = self._page(request, who)
        response.headers.extend(headers)
        return response

    def _revoke(
        self, request: Request, who: Identity, which: str
    ) -> tuple[int, list[tuple[str, str]]]:
        """How many were revoked, and the header deleting this browser's cookie if it was."""
        current = self.trust.held(request, who)
        verifier = self.trust.verifier
        if which == "all":
            revoked = verifier.forget_browsers(who.auth_id)
        else:
            revoked = int(verifier.forget_browser(who.auth_id, which))
        https = request.scheme == "https"
        mine = current is not None and which in ("all", current)
        cookies = self.trust.cookies
        return revoked, [cookies.delete(https, cookies.trusted(https))] if mine else []

    def _page(self, request: Request, who: Identity, status: int = 200) -> Response:
        headers = []
        nonce, set_nonce = self.csrf.nonce(request)
        if set_nonce:
            headers.append(set_nonce)
        current = self.trust.held(request, who)
        renderer = self.options.renderer
        context = renderer.context(request, "browsers", status, text.browsers_title())
        context.update(
            intro=text.browsers_intro(),
            action=app_url(request, f"{self.options.prefix}/browsers"),
            csrf_name=CSRF_FIELD,
            csrf_value=self.csrf.token(who.auth_id, nonce),
            browsers=[_page_entry(b, current) for b in self.trust.listed(who)],
            none_text=text.browsers_none(),
            this_browser_text=text.this_browser(),
            revoke_label=text.revoke_button(),
            revoke_all_label=text.revoke_all_button(),
        )
        return renderer.respond(context, headers)


__all__ = ["BrowsersFlow"]
