"""What the framework helpers (flask.py, starlette.py, django) share: the route-level
check's refusal and the start-up route check's report. Each framework module only finds its
routes and answers in its own response type."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping

from . import languages, text
from .guard import rendering
from .guard.options import GuardOptions
from .guard.paths import route_warnings
from .guard.rule_checks import method_warnings
from .messages import Request

log = logging.getLogger("sms2fa")

REASON = "VerificationRequired"
#: Headers of the route-level refusal (its body is JSON; no cache may keep it).
HEADERS = {"content-type": "application/json", "cache-control": "no-store"}


def refusal_answer(
    path: str,
    accept: str,
    request: Request | None = None,
    options: GuardOptions | None = None,
) -> tuple[int, bytes, dict[str, str]]:
    """The route-level 403 as (status, body, headers): the ``forbidden`` page for a browser
    (``Accept`` names ``text/html``; made by the middleware's ``render`` hook when it has
    one), the JSON of :func:`refusal` for anyone else. In the request's language: the
    middleware's ``language`` option (``options``, the middleware found on the request),
    else ``Accept-Language``. Logged as :func:`refusal` is. The hook may run: call it off
    the event loop."""
    with text.speaking(spoken(request, options)):
        data = refusal(path)
        if "text/html" not in accept:
            return 403, json.dumps(data).encode(), dict(HEADERS)
        renderer = options.renderer if options is not None else rendering.current()
        page = renderer.message(request, "forbidden", 403, text.forbidden_title(), data["message"])
    return page.status, page.body, dict(page.headers)


def spoken(request: Request | None, options: GuardOptions | None = None) -> str:
    """The language a route-level answer is in: as the middleware's pages (``options``), or
    by ``Accept-Language`` alone when no middleware is known; English without a request."""
    if request is None:
        return languages.DEFAULT
    if options is not None:
        return options.spoken(request, None)
    return languages.negotiate(request.header("accept-language"))


def refusal(path: str) -> dict[str, str]:
    """The JSON body of a 403 from a route-level check, logged with the path: the
    developer's clue that this view checks but ``protect=[...]`` missed its path."""
    log.warning(
        "sms2fa: view for %r ran without a verified session; is its path in "
        "protect=[...]? Refused (403).",
        path,
    )
    return {"message": text.not_verified_here(), "reason": REASON}


def checked_max_age(max_age: int | None) -> int | None:
    """A route-level ``max_age`` as given, or ValueError (checked when the view is
    decorated: a typo fails at import, not at a request)."""
    if max_age is not None and (
        isinstance(max_age, bool) or not isinstance(max_age, int) or max_age <= 0
    ):
        raise ValueError(f"max_age must be a positive number of seconds, got {max_age!r}")
    return max_age


def report(
    routes: Iterable[str] | Mapping[str, Iterable[str] | None],
    protect: Iterable[str],
    exclude: Iterable[str] = (),
    public: Iterable[str] = (),
) -> list[str]:
    """Log (and return) a warning for each route the patterns may leave open (a near miss of
    a protect pattern: :func:`~.guard.paths.route_warnings`) that neither ``exclude`` nor
    ``public`` (routes deliberately open) matches, and for each protect pattern or rule that
    matches no route. ``routes`` as a mapping of each sample path to the methods its route
    answers (None: unknown) also checks the rules' methods
    (:func:`~.guard.rule_checks.method_warnings`)."""
    protect = [protect] if isinstance(protect, str) else list(protect)
    warnings = route_warnings(list(routes), protect, exclude, public)
    if isinstance(routes, Mapping):
        warnings += method_warnings(routes, protect, exclude, public)
    return logged(warnings)


def logged(warnings: list[str]) -> list[str]:
    """Log each start-up warning; hand them back (``check_routes`` returns them)."""
    for warning in warnings:
        log.warning("sms2fa: %s", warning)
    return warnings


__all__ = [
    "HEADERS",
    "REASON",
    "checked_max_age",
    "logged",
    "refusal",
    "refusal_answer",
    "report",
    "spoken",
]
