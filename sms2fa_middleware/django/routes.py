"""The routes as Django resolves them: every URL pattern in every language (``i18n_patterns``),
``re_path`` regexes turned into sample paths, which resolved routes are protected
(:class:`Routes`, the middleware's second line), and the start-up check of the URLconf."""

from __future__ import annotations

import dataclasses
import fnmatch
import importlib
import logging
import re
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings as django_settings
from django.core.signals import setting_changed

from .. import route_checks
from ..guard import PROTECTED
from ..guard.paths import (
    KIND_CACHE_KEY_MAX,
    KIND_CACHE_SIZE,
    PathPatterns,
    PathPolicy,
    normalize,
    route_warnings,
)
from ..guard.rules import Rule

log = logging.getLogger("sms2fa")

# The stdlib's regex parser turns a re_path into a sample path (``sre_parse`` before 3.11,
# where importing it warns that it moved).
_NEW_RE = sys.version_info >= (3, 11)
_sre: Any = importlib.import_module("re._constants" if _NEW_RE else "sre_constants")
_sre_parse: Any = importlib.import_module("re._parser" if _NEW_RE else "sre_parse")

_CANDIDATES = "xa0-_A "  # tried in turn for a character class: the first it accepts


def _in_class(items: list[tuple[Any, Any]], char: str) -> bool:
    """Whether ``char`` is in a parsed character class (``[...]``)."""
    negate, hit, code = False, False, ord(char)
    for op, arg in items:
        if op is _sre.NEGATE:
            negate = True
        elif op is _sre.LITERAL:
            hit = hit or code == arg
        elif op is _sre.RANGE:
            hit = hit or arg[0] <= code <= arg[1]
        elif op is _sre.CATEGORY:
            name = str(arg)
            test = (
                char.isdigit()
                if "DIGIT" in name
                else char.isspace()
                if "SPACE" in name
                else char.isalnum() or char == "_"
                if "WORD" in name
                else False
            )
            hit = hit or (test != ("NOT" in name))
    return hit != negate


def _regex_sample(parsed: Any, groups: dict[int, str]) -> str:
    """A string a parsed regex matches: the first branch, each repeat at least once,
    ``x`` (or the first candidate a class accepts) for each variable character."""
    out = []
    for op, arg in parsed:
        if op is _sre.LITERAL:
            out.append(chr(arg))
        elif op is _sre.NOT_LITERAL:
            out.append("x" if arg != ord("x") else "a")
        elif op is _sre.ANY:
            out.append("x")
        elif op is _sre.IN:
            out.append(next((c for c in _CANDIDATES if _in_class(arg, c)), "x"))
        elif op is _sre.CATEGORY:
            out.append(next((c for c in _CANDIDATES if _in_class([(op, arg)], c)), "x"))
        elif op is _sre.BRANCH:
            out.append(_regex_sample(arg[1][0], groups))
        elif op is _sre.SUBPATTERN:
            text = _regex_sample(arg[-1], groups)
            if arg[0] is not None:
                groups[arg[0]] = text
            out.append(text)
        elif op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT, getattr(_sre, "POSSESSIVE_REPEAT", None)):
            low, high, item = arg
            out.append(_regex_sample(item, groups) * min(max(low, 1), high))
        elif op is _sre.GROUPREF:
            out.append(groups.get(arg, ""))
        elif op is _sre.GROUPREF_EXISTS:
            out.append(_regex_sample(arg[1], groups))
        elif op is getattr(_sre, "ATOMIC_GROUP", None):
            out.append(_regex_sample(arg, groups))
        # AT (anchors), ASSERT and ASSERT_NOT (lookarounds) match no text of their own
    return "".join(out)


def _sample(pattern: Any) -> str:
    """One URL pattern as a sample path piece: a ``path()`` route with each ``<converter>``
    as ``x``; a ``re_path()`` regex as a string it matches (the first alternative, each
    repeat once, ``x`` for a variable character); a language prefix as the active language's."""
    from django.urls.resolvers import RegexPattern

    text = str(pattern)
    if isinstance(pattern, RegexPattern):  # before the converters test: it has them too
        try:
            sample = _regex_sample(_sre_parse.parse(text), {})
        except Exception:  # an odd regex: the old reading of its text
            sample = ""
        if not pattern.regex.match(sample):
            text = re.sub(r"\((?:[^()\\]|\\.)*\)[?*+]?", "x", text)
            text = re.sub(r"\\[AZ]|[\^$]", "", text)
            return re.sub(r"\\(.)", r"\1", text)
        return sample
    return re.sub(r"<[^>]*>", "x", text)


def sample_path(pattern: Any) -> str:
    """One URL pattern (``path()`` or ``re_path()``, Django's or Channels') as a sample path
    piece, variable parts filled with ``x``: what :func:`route_paths` joins."""
    return _sample(pattern)


def _join_route(route1: str, route2: str) -> str:
    """Two routes joined as Django joins them into ``ResolverMatch.route``."""
    return route2 if not route1 else route1 + route2.removeprefix("^")


def _view_path(callback: Any) -> str:
    """A view's dotted path, as Django names an unnamed URL pattern's ``view_name``."""
    func = getattr(callback, "view_class", callback)
    if not hasattr(func, "__name__"):
        return f"{type(func).__module__}.{type(func).__name__}"
    return f"{func.__module__}.{func.__name__}"


@dataclasses.dataclass
class UrlPattern:
    """One URL pattern of a URLconf (includes followed) as Django resolves it, in every
    language: ``routes`` are its ``ResolverMatch.route`` values, ``samples`` a path each
    (variable parts filled in), ``prefixes`` the language prefixes its paths start with
    (``"fr/"``; ``""`` outside ``i18n_patterns``), ``ignorecase`` whether a regex on its way
    is case-insensitive, ``view_name`` as ``ResolverMatch.view_name``."""

    routes: list[str]
    samples: list[str]
    prefixes: set[str]
    ignorecase: bool
    view_name: str


def _languages() -> list[str]:
    codes = [str(django_settings.LANGUAGE_CODE)]
    if django_settings.USE_I18N:
        codes += [str(code) for code, _ in django_settings.LANGUAGES]
    return list(dict.fromkeys(codes))


def url_patterns(urlconf: str | None = None) -> list[UrlPattern]:
    """Every URL pattern of the project's URLconf (or ``urlconf``), in every language of
    ``settings.LANGUAGES`` when a pattern depends on the language (``i18n_patterns``,
    translated routes)."""
    from django.urls import LocalePrefixPattern, URLResolver, get_resolver
    from django.urls.resolvers import RegexPattern
    from django.utils import translation
    from django.utils.functional import Promise

    found: dict[tuple[int, ...], UrlPattern] = {}
    by_language = False

    def walk(
        entries: Iterable[Any],
        chain: tuple[int, ...],
        route: str,
        sample: str,
        prefix: str | None,
        ignorecase: bool,
        namespaces: list[str],
    ) -> None:
        nonlocal by_language
        for entry in entries:
            pattern = entry.pattern
            here = sample + _sample(pattern)
            locale = isinstance(pattern, LocalePrefixPattern)
            by_language = (
                by_language
                or locale
                or isinstance(getattr(pattern, "_route", getattr(pattern, "_regex", None)), Promise)
            )
            folded = ignorecase or (
                isinstance(pattern, RegexPattern) and bool(pattern.regex.flags & re.IGNORECASE)
            )
            key, joined = (*chain, id(entry)), _join_route(route, str(pattern))
            mine = here if locale and prefix is None else prefix
            if isinstance(entry, URLResolver):
                walk(
                    entry.url_patterns,
                    key,
                    joined,
                    here,
                    mine,
                    folded,
                    [*namespaces, entry.namespace] if entry.namespace else namespaces,
                )
                continue
            name = ":".join([*namespaces, entry.name or _view_path(entry.callback)])
            leaf = found.setdefault(key, UrlPattern([], [], set(), folded, name))
            if joined not in leaf.routes:
                leaf.routes.append(joined)
            if "/" + here not in leaf.samples:
                leaf.samples.append("/" + here)
            leaf.prefixes.add(mine or "")

    resolver = get_resolver(urlconf)
    languages = _languages()
    with translation.override(languages[0]):
        walk(resolver.url_patterns, (), "", "", None, False, [])
    if by_language:
        for language in languages[1:]:
            with translation.override(language):
                walk(resolver.url_patterns, (), "", "", None, False, [])
    return list(found.values())


def route_paths(urlconf: str | None = None) -> list[str]:
    """Sample paths for a project's URL patterns (includes followed; every language's prefix
    under ``i18n_patterns``), variable parts filled in (see :func:`url_patterns`)."""
    return [sample for pattern in url_patterns(urlconf) for sample in pattern.samples]


def _case_variants(path: str) -> list[str]:
    return list(dict.fromkeys((path.upper(), path.lower())))


class Routes:
    """Which resolved routes are protected: the second line, after the path rules.

    Django may send more than one path to one URL pattern: ``i18n_patterns`` serve it under
    every language's prefix (``/fr/account/``, ``/de/account/``), a case-insensitive regex
    (``(?i)``) in every letter case (``/BILLING/``). So a request the path rules let through
    is protected when Django resolved it to a URL pattern that ``protect_views`` names, or
    one of whose paths in any language is protected (its sample, or the request's own path
    with its language prefix swapped for another language's), or, for a case-insensitive
    pattern, whose path case-folded is matched by the case-folded patterns. A route that is
    not in the URLconf's table (a URLconf built at run time) is read every way: fail closed.
    """

    def __init__(
        self, protect: Iterable[str], exclude: Iterable[str], prefix: str, views: Iterable[str] = ()
    ) -> None:
        protect, exclude = tuple(protect), tuple(exclude)
        self.policy = PathPolicy(protect, exclude, prefix)
        self.folded = PathPolicy(
            [p.lower() for p in protect], [e.lower() for e in exclude], prefix.lower()
        )
        self.views = tuple(views)
        self._view_answers: dict[str, bool] = {}
        self._tables: dict[tuple[int, tuple[str, ...]], tuple[Any, dict[str, UrlPattern]]] = {}
        self._answers: dict[tuple[str | None, str, str], bool] = {}
        self._generation = _URLCONF_GENERATION[0]

    def protects(self, match: Any, path: str, urlconf: str | None = None) -> bool:
        """Whether the route Django resolved (``request.resolver_match``) for ``path``
        (``request.path_info``) is protected."""
        if self.views and self.view_protected(str(match.view_name)):
            return True
        if self._generation != _URLCONF_GENERATION[0]:  # settings changed (tests): start over
            self._generation = _URLCONF_GENERATION[0]
            self._answers.clear()
            self._tables.clear()
        key = (urlconf, str(match.route), path)
        answer = self._answers.get(key)
        if answer is None:
            answer = self._protects(str(match.route), path, urlconf)
            if len(path) <= KIND_CACHE_KEY_MAX:
                if len(self._answers) >= KIND_CACHE_SIZE:
                    self._answers.clear()  # a flood of distinct paths: stay bounded
                self._answers[key] = answer
        return answer

    def view_protected(self, view_name: str) -> bool:
        """Whether ``protect_views`` names this ``view_name`` (``"billing"``,
        ``"accounts:*"``, a view's dotted path)."""
        answer = self._view_answers.get(view_name)
        if answer is None:
            answer = any(fnmatch.fnmatchcase(view_name, name) for name in self.views)
            if len(self._view_answers) < KIND_CACHE_SIZE:
                self._view_answers[view_name] = answer
        return answer

    def _protects(self, route: str, path: str, urlconf: str | None) -> bool:
        table = self.table(urlconf)
        pattern = table.get(route)
        if pattern is None:  # not a route of the table: every language, every case
            from django.utils.translation import get_language

            prefixes = {p for known in table.values() for p in known.prefixes}
            pattern = UrlPattern([route], [], {*prefixes, "", f"{get_language()}/"}, True, "")
        elif pattern.samples and any(
            self._path_protected(sample, pattern.ignorecase) for sample in pattern.samples
        ):
            return True
        if len(pattern.prefixes) <= 1 and not pattern.ignorecase:
            return False  # one spelling: the path rules decided already
        return any(
            self._path_protected(other, pattern.ignorecase)
            for other in _other_languages(path, pattern.prefixes)
        )

    def _path_protected(self, path: str, ignorecase: bool) -> bool:
        if self.policy.classify(path) == PROTECTED:
            return True
        return ignorecase and self.folded.classify(path.lower()) == PROTECTED

    def table(self, urlconf: str | None = None) -> dict[str, UrlPattern]:
        """The URLconf's patterns by ``ResolverMatch.route`` (built on first use, again when
        Django builds a new resolver, e.g. after ROOT_URLCONF or LANGUAGES changed)."""
        from django.urls import get_resolver

        resolver = get_resolver(urlconf)
        key = (id(resolver), tuple(_languages()))
        hit = self._tables.get(key)
        if hit is not None and hit[0] is resolver:
            return hit[1]
        table: dict[str, UrlPattern] = {}
        for pattern in url_patterns(urlconf):
            for route in pattern.routes:
                known = table.get(route)
                if known is None:
                    table[route] = pattern
                else:  # two patterns, one route text: the same paths; either protects
                    table[route] = UrlPattern(
                        known.routes,
                        known.samples + pattern.samples,
                        known.prefixes | pattern.prefixes,
                        known.ignorecase or pattern.ignorecase,
                        known.view_name,
                    )
        if len(self._tables) >= 8:
            self._tables.clear()
        self._tables[key] = (resolver, table)
        return table


#: Bumped when a setting that shapes the URLconf's routes changes (override_settings in
#: tests): every Routes forgets what it worked out.
_URLCONF_GENERATION = [0]
_URLCONF_SETTINGS = frozenset({"ROOT_URLCONF", "LANGUAGES", "LANGUAGE_CODE", "USE_I18N"})


def _settings_changed(sender: Any, setting: str = "", **kwargs: Any) -> None:
    if setting in _URLCONF_SETTINGS:
        _URLCONF_GENERATION[0] += 1


setting_changed.connect(_settings_changed, dispatch_uid="sms2fa_middleware.django.routes")


def _other_languages(path: str, prefixes: set[str]) -> set[str]:
    """``path`` with its language prefix swapped for each of ``prefixes`` (itself included)."""
    body = path[1:] if path.startswith("/") else path
    out = {path}
    for prefix in prefixes:
        if body.startswith(prefix):
            rest = body[len(prefix) :]
            out |= {"/" + other + rest for other in prefixes}
    return out


# -- start-up check of the URL patterns --------------------------------------------------------


def check_routes(
    protect: Iterable[str] | None = None,
    exclude: Iterable[str] | None = None,
    urlconf: str | None = None,
    protect_views: Iterable[str] | None = None,
    public: Iterable[str] | None = None,
) -> list[str]:
    """Start-up check: log (and return) a warning for each URL pattern the ``protect``
    patterns may leave open -- a near miss such as ``protect=["/admin/*"]`` with a route
    ``/admin/`` (:func:`~sms2fa_middleware.guard.paths.route_warnings`) --, each protect
    pattern that matches no route, each URL pattern that protect matches in one language or
    letter case but not in another (``/account/`` but not ``/fr/account/``; ``(?i)^billing/$``
    as ``/BILLING/``: the middleware still protects those once Django has resolved them), and
    each ``protect_views`` name that names no URL pattern. A rule (``{"path": ..., "methods":
    ...}``) is checked by its path only: Django views do not declare the methods they
    answer, so a rule's ``methods`` are not compared with the routes' (the Flask and
    Starlette checks do). Every language of
    ``settings.LANGUAGES`` is sampled. A route that ``exclude`` or ``public`` (routes
    deliberately open; the audit's only) matches is not warned about. Defaults:
    ``settings.SMS2FA``'s, and ``settings.SMS2FA_PUBLIC_ROUTES`` for ``public``."""
    config: Mapping[str, Any] = getattr(django_settings, "SMS2FA", None) or {}
    protect = config.get("protect", ()) if protect is None else protect
    exclude = config.get("exclude", ()) if exclude is None else exclude
    views = config.get("protect_views", ()) if protect_views is None else protect_views
    if public is None:
        public = getattr(django_settings, "SMS2FA_PUBLIC_ROUTES", None) or ()
    protect = [protect] if isinstance(protect, str) else list(protect)
    exclude = [exclude] if isinstance(exclude, str) else list(exclude)
    public = [public] if isinstance(public, str) else list(public)
    views = [views] if isinstance(views, str) else list(views)
    patterns = url_patterns(urlconf)
    warnings: list[str] = []
    if protect:
        samples = [sample for pattern in patterns for sample in pattern.samples]
        warnings += route_warnings(samples, protect, exclude, public)
        # A rule is checked by its path; its methods are not: a Django view does not
        # declare the methods it answers (Flask and Starlette routes do).
        paths = [p if isinstance(p, str) else Rule.parse(p).path for p in protect]
        warnings += _spelling_warnings(patterns, paths, [*exclude, *public])
        if any(not isinstance(p, str) and Rule.parse(p).methods is not None for p in protect):
            log.info(
                "sms2fa: protect rules' methods are not checked against the URLconf "
                "(Django views do not declare the methods they answer)"
            )
    for name in views:
        if not any(fnmatch.fnmatchcase(p.view_name, name) for p in patterns):
            warnings.append(f"protect_views name {name!r} matches no URL pattern")
    return route_checks.logged(warnings)


def _spelling_warnings(
    patterns: Iterable[UrlPattern], protect: list[str], exclude: list[str]
) -> list[str]:
    """The URL patterns that protect matches in some language or letter case only."""
    policy, excluded = PathPolicy(protect, (), "/\x00"), PathPatterns(exclude)
    warnings = []
    for pattern in patterns:
        spellings = list(pattern.samples)
        if pattern.ignorecase:
            spellings += [v for s in pattern.samples for v in _case_variants(s)]
        covered = [s for s in spellings if policy.protects(normalize(s))]
        if not covered:
            continue
        for spelling in dict.fromkeys(spellings):
            if spelling in covered or excluded.match(normalize(spelling)):
                continue
            why = "another language" if spelling in pattern.samples else "another letter case"
            warnings.append(
                f"route {spelling!r} is not matched by protect, though the same URL pattern "
                f"is at {covered[0]!r} ({why}); the middleware protects it once Django has "
                f"resolved it -- name it in protect too, or use protect_views"
            )
    return warnings


__all__ = ["Routes", "UrlPattern", "check_routes", "route_paths", "sample_path", "url_patterns"]
