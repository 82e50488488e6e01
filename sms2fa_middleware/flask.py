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
import re
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from flask import Flask, request

from . import route_checks
from .wsgi import ENVIRON_KEY

ViewT = TypeVar("ViewT", bound=Callable[..., Any])


def _refuse() -> tuple[str, int, dict[str, str]]:
    return json.dumps(route_checks.refusal(request.path)), 403, route_checks.HEADERS


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


def route_paths(app: Flask) -> list[str]:
    """Sample paths for a Flask app's URL rules (blueprints included), variables as ``x``."""
    return [re.sub(r"<[^>]*>", "x", rule.rule) for rule in app.url_map.iter_rules()]


def check_routes(app: Flask, protect: Iterable[str], exclude: Iterable[str] = (),
                 public: Iterable[str] = ()) -> list[str]:
    """Start-up check: log (and return) a warning for each route the patterns may leave open
    -- a near miss such as ``protect=["/admin/*"]`` with a route ``/admin``, see
    :func:`~sms2fa_middleware.guard.paths.route_warnings` -- unless ``exclude`` or
    ``public`` (routes deliberately open) matches it, and for each protect pattern that
    matches no route. Variable parts of a rule are tried as ``x``."""
    return route_checks.report(route_paths(app), protect, exclude, public)


__all__ = ["check_routes", "route_paths", "verified_required"]
