"""What the framework helpers (flask.py, starlette.py, django) share: the route-level
check's refusal and the start-up route check's report. Each framework module only finds its
routes and answers in its own response type."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from html import escape

from . import text
from .guard.paths import route_warnings
from .guard.responses import PAGE_HEADERS
from .guard.rule_checks import method_warnings

log = logging.getLogger("sms2fa")

REASON = "VerificationRequired"
#: Headers of the route-level refusal (its body is JSON; no cache may keep it).
HEADERS = {"content-type": "application/json", "cache-control": "no-store"}


def refusal_answer(path: str, accept: str) -> tuple[int, bytes, dict[str, str]]:
    """The route-level 403 as (status, body, headers): a short HTML page for a browser
    (``Accept`` names ``text/html``), the JSON of :func:`refusal` for anyone else. Logged
    as :func:`refusal` is."""
    data = refusal(path)
    if "text/html" not in accept:
        return 403, json.dumps(data).encode(), dict(HEADERS)
    title = text.forbidden_title()
    html = f"<!doctype html><title>{escape(title)}</title><p>{escape(data['message'])}</p>"
    return 403, html.encode(), dict(PAGE_HEADERS)


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


__all__ = ["HEADERS", "REASON", "checked_max_age", "logged", "refusal", "refusal_answer", "report"]
