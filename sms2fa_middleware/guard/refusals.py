"""What a protected request without a verified session gets, and the answers every flow
shares: not logged in, no phone on file, verification required, and where to come back to.
(Sending the code is :mod:`.sending`'s.)
"""

from __future__ import annotations

from typing import NamedTuple

from .. import text
from ..messages import Request, Response, json_response
from .options import GuardOptions
from .responses import (
    app_url,
    came_from,
    is_htmx,
    is_navigation,
    redirect,
    request_target,
    wants_html,
    with_next,
)


class Fresh(NamedTuple):
    """What a step-up asks of a session (seconds; None: no bound): a code entered at most
    ``max_age`` ago, a session used within ``idle``. Carried in the challenge URL's query
    (``?max_age=300``, ``?idle=900``), which may only make the page stricter, so a client
    may set it."""

    max_age: int | None = None
    idle: int | None = None

    @property
    def query(self) -> str:
        """``?max_age=…&idle=…`` (only what is set), or ""."""
        parts = [f"{k}={v}" for k, v in zip(self._fields, self, strict=True) if v is not None]
        return "?" + "&".join(parts) if parts else ""

    @classmethod
    def of(cls, request: Request) -> Fresh:
        """What a challenge URL's query asks (a value that is no number is ignored)."""
        return cls(*(_seconds(request, name) for name in cls._fields))


ANY = Fresh()


class Refusals:
    """Answers for requests the guard cannot let through."""

    def __init__(self, options: GuardOptions) -> None:
        self.options = options

    def challenge_url(self, request: Request, next_url: str, fresh: Fresh = ANY) -> str:
        """The challenge page's URL (from the app's root path), coming back to ``next_url``;
        with ``fresh`` (step-up), a session that does not meet it is not enough there
        either."""
        return with_next(
            app_url(request, f"{self.options.prefix}/challenge{fresh.query}"), next_url
        )

    def target(self, request: Request) -> str:
        """Where to come back to after verifying: where a GET was going; for anything
        else (a form post, an HTMX call), the page it came from."""
        if request.method in ("GET", "HEAD") and not is_htmx(request):
            return request_target(request)
        return came_from(request)

    def verification_required(
        self, request: Request, next_url: str, fresh: Fresh = ANY
    ) -> Response:
        """401 for a request that is not a browser's (an API client, a script), with where
        to verify in the body and in ``WWW-Authenticate``. With ``max_age`` (a session
        verified too long ago for a rule), also ``max_age`` in the body and RFC 9470's
        ``Bearer error="insufficient_user_authentication", ..., max_age=N`` challenge; with
        ``idle`` (a session unused too long: it has ended), ``idle`` in the body."""
        challenge = app_url(request, f"{self.options.prefix}/challenge")
        body: dict[str, object] = {
            "message": text.needs_verification(),
            "reason": "VerificationRequired",
            "challenge": with_next(challenge + fresh.query, next_url),
        }
        headers = [("www-authenticate", f'SMS2FA challenge="{challenge}"')]
        max_age = fresh.max_age
        if fresh.idle is not None:
            body["idle"] = fresh.idle
        if max_age is not None:
            body["max_age"] = max_age
            headers.append(
                (
                    "www-authenticate",
                    (
                        'Bearer error="insufficient_user_authentication", '
                        'error_description="More recent authentication is required", '
                        f"max_age={max_age}"
                    ),
                )
            )
        return json_response(401, body, headers)

    def anonymous(self, request: Request, next_url: str) -> Response:
        """Not logged in: a browser goes to ``login_url`` (HTMX by ``HX-Redirect``), anyone
        else gets 401 LoginRequired."""
        login_url = self.options.login_url
        answer = json_response(401, {"message": text.log_in_first(), "reason": "LoginRequired"})
        if login_url is None or not wants_html(request):
            return answer
        location = with_next(app_url(request, login_url), next_url)
        if is_htmx(request):
            answer.headers.append(("hx-redirect", location))
            return answer
        return redirect(location)

    def no_phone(self, request: Request, next_url: str) -> Response:
        """No phone on file: to ``enroll_url`` if there is one (else ``{prefix}/enroll``
        with ``on_enroll``), else a page (or JSON) saying so. Nothing is sent, and no code
        can be asked for."""
        enroll_url = self.options.enroll_url  # the app's own page wins over ours
        if enroll_url is None and self.options.on_enroll is not None:
            enroll_url = f"{self.options.prefix}/enroll"
        enroll = with_next(app_url(request, enroll_url), next_url) if enroll_url else None
        if enroll is not None and is_navigation(request):
            return redirect(enroll)
        if not wants_html(request):
            data = {"message": text.needs_verification_no_phone(), "reason": "NoPhoneOnFile"}
            if enroll_url is not None:
                data["enroll"] = enroll_url
            return json_response(403, data)
        link = (enroll, text.add_phone()) if enroll else None
        return self.options.renderer.message(
            request, "no_phone", 403, text.no_phone_title(), text.no_phone(), link
        )


def _seconds(request: Request, name: str) -> int | None:
    """A number of seconds from the query (absent or not a number: None)."""
    values = request.query.get(name)
    value = values[0] if values else ""
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 9 else None


__all__ = ["ANY", "Fresh", "Refusals"]
