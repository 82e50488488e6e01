"""The guard's routes under the prefix: the challenge (the HTML page and its forms, or the
JSON flow, by the request's content type and ``Accept``), the recovery codes, the trusted
browsers (with ``trust_browser_for``), enrollment and the change of number (with
``on_enroll``), the OpenAPI document (of what is mounted), and the mounted verification API
(when it is on) for the rest."""

from __future__ import annotations

from collections.abc import Callable

from .. import Identity
from ..api.openapi import openapi_document
from ..api.verification import VerificationAPI
from ..engine import Verifier
from ..errors import StoreUnavailable
from ..messages import Request, Response, json_response
from .flows.browsers import BrowsersFlow
from .flows.enroll import EnrollFlow
from .flows.html import HtmlFlow
from .flows.json import JsonFlow, is_json, wants_json
from .flows.phone import PhoneFlow
from .flows.recovery import RecoveryFlow
from .options import GuardOptions
from .responses import not_found, unavailable

Route = Callable[[Request, "Identity | None"], Response]


def mounted_api(verifier: Verifier, options: GuardOptions) -> VerificationAPI | None:
    """The verification API under the prefix, when ``public_api`` or an API token turns
    it on; else None."""
    if not (options.public_api or verifier.settings.api_token is not None):
        return None
    # The API lives in a namespace of its own: an anonymous caller who creates codes or
    # fails checks for auth_id "alice" there never touches the logged-in user alice.
    return VerificationAPI(verifier.namespaced("api"), uniform_errors=True)


class PrefixRoutes:
    """Answers a request under the prefix (may do I/O: off the event loop on ASGI)."""

    def __init__(
        self,
        prefix: str,
        html: HtmlFlow,
        json: JsonFlow,
        api: VerificationAPI | None,
        recovery: RecoveryFlow | None = None,
        browsers: BrowsersFlow | None = None,
        enroll: EnrollFlow | None = None,
        phone: PhoneFlow | None = None,
    ) -> None:
        self.prefix = prefix
        self.api = api
        self.table: dict[tuple[str, str], Route] = {
            ("/challenge", "GET"): lambda r, i: (json.status if wants_json(r) else html.get)(r, i),
            ("/challenge", "POST"): lambda r, i: (json.check if is_json(r) else html.post)(r, i),
            ("/challenge/send", "POST"): lambda r, i: (json.send if is_json(r) else html.resend)(
                r, i
            ),
            ("/challenge/resend", "POST"): html.resend,
            ("/openapi.json", "GET"): self.openapi,
        }
        if recovery is not None:
            self.table[("/recovery", "GET")] = recovery.get
            self.table[("/recovery", "POST")] = recovery.post
        if browsers is not None:  # trusted browsers: only with trust_browser_for
            self.table[("/browsers", "GET")] = browsers.get
            self.table[("/browsers", "POST")] = browsers.post
        if enroll is not None:  # adding a first number: only with on_enroll
            self.table[("/enroll", "GET")] = enroll.get
            self.table[("/enroll", "POST")] = enroll.post
        if phone is not None:  # changing the number: only with on_enroll too
            self.table[("/phone", "GET")] = phone.get
            self.table[("/phone", "POST")] = phone.post

    def handle(self, request: Request, identity: Identity | None) -> Response:
        """The challenge page, its forms, the OpenAPI document, or the API; 404 else."""
        sub = request.path[len(self.prefix) :] or "/"
        method = "GET" if request.method == "HEAD" else request.method
        try:
            route = self.table.get((sub, method))
            if route is not None:
                return route(request, identity)
            if self.api is not None and not sub.startswith("/challenge"):
                return self.api.handle(request, sub)
            return not_found()
        except StoreUnavailable as exc:
            return unavailable(request, exc)

    def openapi(self, request: Request, identity: Identity | None) -> Response:
        """The OpenAPI document of what is mounted here."""
        document = openapi_document(
            api=self.api is not None,
            challenge=True,
            enroll=("/enroll", "POST") in self.table,
            browsers=("/browsers", "POST") in self.table,
        )
        return json_response(200, document)


__all__ = ["PrefixRoutes", "mounted_api"]
