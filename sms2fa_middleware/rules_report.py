"""``sms2fa rules check --method POST /account/delete --app module:app``: which ``protect``
entries match a request and what it must bring -- the path rules as the middleware around
the app has them (Django: ``settings.SMS2FA``), without a request or a database."""

from __future__ import annotations

import sys
from typing import Any

from .app_routes import app_chain
from .errors import ConfigurationError
from .guard.options import GuardOptions
from .guard.paths import PASS, PREFIX, PathPolicy, readings
from .guard.rules import PLAIN, Rule, strictest, summary

#: Keywords of an adapter that are not path options.
_NOT_OPTIONS = frozenset(("identify", "settings", "guard"))


def find_options(app: Any) -> GuardOptions:
    """The options of the SMS2FAMiddleware around ``app`` (or in a Starlette app's
    ``user_middleware``; Django: ``settings.SMS2FA``). ConfigurationError if there is none."""
    from .guard.app import GuardedApp

    chain = app_chain(app)
    django_base = sys.modules.get("django.core.handlers.base")
    if django_base is not None and any(isinstance(o, django_base.BaseHandler) for o in chain):
        from .django.conf import installed

        return installed().guard.options
    for obj in chain:
        if isinstance(obj, GuardedApp):
            return obj.options
        for middleware in getattr(obj, "user_middleware", None) or ():
            cls, kwargs = getattr(middleware, "cls", None), getattr(middleware, "kwargs", {})
            if isinstance(cls, type) and issubclass(cls, GuardedApp) and "protect" in kwargs:
                return GuardOptions.from_keywords(
                    {k: v for k, v in kwargs.items() if k not in _NOT_OPTIONS}
                )
    raise ConfigurationError(f"no SMS2FAMiddleware around {type(app).__name__}")


def describe(rule: Rule) -> str:
    """A rule as one would write it in ``protect``."""
    return "rule: " + summary(rule)


def _name(value: Any) -> str:
    return f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', value)}"


def _bounds(max_age: int | None, idle: int | None) -> str:
    age = f"a code at most {max_age} s old" if max_age is not None else "any verified session"
    return age + (f", used within {idle} s" if idle is not None else "")


def explain(options: GuardOptions, method: str, path: str) -> list[str]:
    """Lines saying which entries match ``method path`` and what the request must bring.
    ``when`` rules are not asked (there is no request): what each adds when true is said."""
    method = method.upper()
    paths = PathPolicy(options.protect, options.exclude, options.prefix, options.rules)
    kind = paths.remember(path, path)
    demand = paths.demands.get(path)
    lines = [f"{method} {path}"]
    if kind == PREFIX:
        return [*lines, f"  under the prefix {options.prefix}: the guard's own routes"]
    canonical = readings(path)
    if any(paths.protects(c) for c in canonical):
        lines.append("  a plain protect pattern: every method, any verified session")
    elif any(PathPolicy(options.protect, (), options.prefix).protects(c) for c in canonical):
        lines.append("  a plain protect pattern, but exclude wins")
    for rule in demand.rules if demand is not None else ():
        covers = "covers" if rule.covers(method) else "does not cover"
        lines.append(f"  {describe(rule)} -- {covers} {method}")
    if kind == PASS:
        return [*lines, "effective: not protected (to the app, unverified)"]
    need = demand.for_method(method) if demand is not None else PLAIN
    if not need.protected and not need.pending:
        return [*lines, f"effective: not protected for {method} (to the app, unverified)"]
    if need.protected:
        bounds = _bounds(need.max_age, strictest(need.idle, options.idle))
        lines.append(f"effective: verification required, {bounds}")
    else:
        lines.append("effective: protected only when a rule's when says true")
    for rule in need.pending:
        stricter = need.add(rule)
        bounds = _bounds(stricter.max_age, strictest(stricter.idle, options.idle))
        lines.append(f"  when {_name(rule.when)} says true: verification required, {bounds}")
    return lines


__all__ = ["describe", "explain", "find_options"]
