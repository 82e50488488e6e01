"""``sms2fa check-routes module:app``: load an app the way servers name it, find the Flask,
Starlette/FastAPI or Django application inside the middleware around it, and run that
framework's start-up route check (the patterns default to the wrapping SMS2FAMiddleware's)."""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Iterable
from typing import Any

from .errors import ConfigurationError

log = logging.getLogger("sms2fa")


def load_app(target: str) -> Any:
    """The object ``module:attr`` names (``module`` alone: its ``app`` or ``application``),
    imported with the working directory on ``sys.path`` as servers do."""
    module_name, _, attr = target.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:  # whatever the import raises (sys.exit too:
        # its status would read as "warnings"): say what, exit 2
        raise ConfigurationError(
            f"cannot import {module_name!r}: {type(exc).__name__}: {exc}"
        ) from None
    names = [attr] if attr else ["app", "application"]
    for name in names:
        obj: Any = module
        try:
            for part in name.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            continue
        return obj
    raise ConfigurationError(f"{module_name!r} has no {' or '.join(names)!r}")


def app_chain(app: Any, limit: int = 32) -> list[Any]:
    """``app`` and what it wraps: middleware's ``.app``, Flask's ``.wsgi_app`` (a bound
    method's ``__self__``)."""
    seen: dict[int, Any] = {}
    todo = [app]
    while todo and len(seen) < limit:
        obj = todo.pop(0)
        if obj is None or id(obj) in seen:
            continue
        seen[id(obj)] = obj
        for attr in ("wsgi_app", "app", "__self__"):
            try:  # any object may stand here; a property that raises is skipped
                todo.append(getattr(obj, attr, None))
            except Exception as exc:
                log.debug("sms2fa: %s.%s raised %r", type(obj).__name__, attr, exc)
    return list(seen.values())


def _options(chain: list[Any]) -> tuple[list[Any] | None, list[str]]:
    """``protect`` (its rules too) and ``exclude`` of the first SMS2FAMiddleware in
    ``chain`` (wrapping the app, or in a Starlette app's ``user_middleware``); ``(None, [])``
    if none."""
    from .guard.app import GuardedApp

    for obj in chain:
        if isinstance(obj, GuardedApp):  # its options, not its guard: no settings needed
            options = obj.options
            return [*options.protect, *options.rules], list(options.exclude)
        for middleware in getattr(obj, "user_middleware", None) or ():
            cls, kwargs = getattr(middleware, "cls", None), getattr(middleware, "kwargs", {})
            if isinstance(cls, type) and issubclass(cls, GuardedApp) and "protect" in kwargs:
                exclude = _as_list(kwargs.get("exclude", ()))
                return _as_list(kwargs["protect"]), exclude + _as_list(kwargs.get("logout_url", ()))
    return None, []


def _as_list(patterns: Any) -> list[str]:
    return [patterns] if isinstance(patterns, str) else list(patterns)


def check_app(
    app: Any,
    protect: Iterable[str] | None = None,
    exclude: Iterable[str] | None = None,
    public: Iterable[str] = (),
) -> list[str]:
    """The start-up check of a Flask, Starlette/FastAPI or Django app (a Django WSGI/ASGI
    handler: ``settings.SMS2FA`` is read), found through the middleware wrapping it.
    ``protect``/``exclude`` default to the wrapping SMS2FAMiddleware's."""
    chain = app_chain(app)
    django_base = sys.modules.get("django.core.handlers.base")
    if django_base is not None and any(isinstance(o, django_base.BaseHandler) for o in chain):
        from .django import check_routes as check_django

        return check_django(protect, exclude, public=list(public) or None)
    found_protect, found_exclude = _options(chain)
    protect = found_protect if protect is None else list(protect)
    exclude = found_exclude if exclude is None else list(exclude)
    if not protect:
        raise ConfigurationError(
            "no protect patterns: pass --protect, or point at the app SMS2FAMiddleware wraps"
        )
    for obj in chain:
        if hasattr(obj, "url_map") and hasattr(obj, "view_functions"):
            from .flask import check_routes as check_flask

            return check_flask(obj, protect, exclude, public)
        if hasattr(obj, "routes") and hasattr(obj, "router"):
            from .starlette import check_routes as check_starlette

            return check_starlette(obj, protect, exclude, public)
    raise ConfigurationError(
        f"{type(app).__name__} is not a Flask, Starlette, FastAPI or "
        "Django application (nor middleware around one)"
    )


__all__ = ["app_chain", "check_app", "load_app"]
