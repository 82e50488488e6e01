"""Flask conveniences: a view decorator that double-checks the middleware, and a start-up
check of the app's routes against the patterns.

Defence in depth: the middleware decides which requests need a verified session; a view
decorated with :func:`verified_required` refuses (403) any request the middleware did not
verify -- so a route that the ``protect`` patterns miss fails closed instead of open::

    @app.get("/account")
    @verified_required
    def account(): ...
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import re
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from flask import Flask, request

from .guard.paths import route_warnings
from .wsgi import ENVIRON_KEY

log = logging.getLogger("sms2fa")

ViewT = TypeVar("ViewT", bound=Callable[..., Any])

_REFUSAL = json.dumps({
    "message": "This page needs SMS verification, which did not happen for this request.",
    "reason": "VerificationRequired",
})
_HEADERS = {"content-type": "application/json", "cache-control": "no-store"}


def _refuse() -> tuple[str, int, dict[str, str]]:
    # The path is the developer's clue: this view is decorated but protect=[...] missed it.
    log.warning("sms2fa: view for %r ran without a verified session; is its path in "
                "protect=[...]? Refused (403).", request.path)
    return _REFUSAL, 403, _HEADERS


def verified_required(view: ViewT) -> ViewT:
    """Refuse (403) the request unless the middleware verified it (``sms2fa.identity`` in
    the WSGI environ). Sync and async views."""
    if inspect.iscoroutinefunction(view):
        @functools.wraps(view)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            if request.environ.get(ENVIRON_KEY) is None:
                return _refuse()
            return await view(*args, **kwargs)
        return async_wrapper  # type: ignore[return-value]

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if request.environ.get(ENVIRON_KEY) is None:
            return _refuse()
        return view(*args, **kwargs)
    return wrapper  # type: ignore[return-value]


def check_routes(app: Flask, protect: Iterable[str], exclude: Iterable[str] = ()) -> list[str]:
    """Start-up check: log (and return) a warning for each route the patterns may leave open
    -- e.g. ``protect=["/admin/*"]`` with a route ``/admin`` -- and for each protect pattern
    that matches no route. Variable parts of a rule are tried as ``x``."""
    routes = [re.sub(r"<[^>]*>", "x", rule.rule) for rule in app.url_map.iter_rules()]
    warnings = route_warnings(routes, protect, exclude)
    for warning in warnings:
        log.warning("sms2fa: %s", warning)
    return warnings


__all__ = ["check_routes", "verified_required"]
