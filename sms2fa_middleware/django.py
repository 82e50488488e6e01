"""Django adapter: ``SMS2FAMiddleware`` in ``settings.MIDDLEWARE``, configured by ``SMS2FA``.

List it after Django's AuthenticationMiddleware, so ``request.user`` is there::

    MIDDLEWARE = [
        ...,
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "sms2fa_middleware.django.SMS2FAMiddleware",
        ...,
    ]
    SMS2FA = {"protect": ["/account"], "login_url": "/login/"}

By default the identity is the logged-in ``request.user``: ``str(user.pk)`` and its
``phone_attribute`` (``"phone_number"``; a dotted path such as ``"profile.phone"`` follows
relations). ``identify`` (a callable or its dotted path) replaces that. ``settings`` holds
:class:`~sms2fa_middleware.Settings` keywords (default: ``Settings.from_env()``); every other
key is a keyword of the WSGI/ASGI middleware (``exclude``, ``prefix``, ``remember_for``, ...).

Like wsgi.py and asgi.py, this module only translates between Django and the
:class:`~sms2fa_middleware.guard.Guard`; the policy is the guard's. Paths are matched as
Django routes them: ``request.path_info`` (decoded, relative to SCRIPT_NAME / root_path).
The middleware answers the pages under the prefix itself (no urls.py change). It works under
WSGI and ASGI: under ASGI a sync ``identify`` (``request.user`` reads the database) and all
store work run in threads, never on the event loop. A verified request carries its identity
in ``request.sms2fa``; every request that went through carries the middleware in
``request.sms2fa_middleware``. Logging out (``django.contrib.auth.logout``) revokes the
user's verified sessions on every device.

Routes, not only paths: Django may send other paths to a protected URL pattern -- every
language's prefix under ``i18n_patterns``, every letter case of a ``(?i)`` regex. The path
decision stays the first line (in ``__call__``); ``process_view`` then checks the route
Django resolved (:class:`Routes`), and ``protect_views`` protects URL names
(``"billing"``, ``"accounts:*"``). A protected route gets the same decision as a protected
path.

Defence in depth: :func:`verified_required` refuses (403) a request the middleware did not
verify, so a view that the ``protect`` patterns miss fails closed.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import importlib
import logging
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from asgiref.sync import async_to_sync, iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings as django_settings
from django.contrib.auth.signals import user_logged_out
from django.core.exceptions import DisallowedHost, ImproperlyConfigured, ObjectDoesNotExist
from django.core.signals import setting_changed
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.utils.module_loading import import_string

from . import Identity
from .guard import PASS, PROTECTED, Guard
from .guard.decision import Verdict
from .guard.paths import (
    KIND_CACHE_KEY_MAX,
    KIND_CACHE_SIZE,
    PathPatterns,
    PathPolicy,
    normalize,
    route_warnings,
)
from .guard.private import make_private
from .http import MAX_BODY, Request, Response, too_large
from .settings import Settings

log = logging.getLogger("sms2fa")

Identify = Callable[[HttpRequest], Any]
ViewT = TypeVar("ViewT", bound=Callable[..., Any])

#: The keys of ``settings.SMS2FA`` that are this module's own; the rest go to the Guard.
_OWN_KEYS = ("identify", "phone_attribute", "settings", "protect_views")
_AUTH_MIDDLEWARE = "django.contrib.auth.middleware.AuthenticationMiddleware"


class UserIdentity:
    """The default ``identify``: the authenticated ``request.user`` as
    ``Identity(str(user.pk), <its phone attribute>)``, or None for an anonymous request.

    ``phone_attribute`` is an attribute of the user, or a dotted path through relations
    (``"profile.phone_number"``); a missing related row or an empty value means no phone
    on file. A ``PhoneNumber`` (django-phonenumber-field) is read as E.164.
    """

    def __init__(self, phone_attribute: str = "phone_number") -> None:
        self.phone_attribute = phone_attribute
        self._path = phone_attribute.split(".")

    def __call__(self, request: HttpRequest) -> Identity | None:
        user = request.user
        if not user.is_authenticated:
            return None
        return Identity(str(user.pk), self.phone(user))

    def phone(self, user: Any) -> str | None:
        value = user
        for name in self._path:
            try:
                value = getattr(value, name)
            except ObjectDoesNotExist:  # no profile row (yet): no phone on file
                return None
            if value is None:
                return None
        value = getattr(value, "as_e164", value)
        return value if isinstance(value, str) else str(value)

    def check(self) -> None:
        """Start-up check: the user model has the phone attribute's first step."""
        from django.contrib.auth import get_user_model

        model = get_user_model()
        if not hasattr(model, self._path[0]):
            raise ImproperlyConfigured(
                f"SMS2FA: the user model {model.__name__} has no attribute "
                f"{self._path[0]!r}; set SMS2FA['phone_attribute'] (e.g. "
                f"'profile.phone_number') or SMS2FA['identify']")


class Installed:
    """What one ``SMS2FA`` settings dict builds: the guard and ``identify``. Built once per
    dict and shared by the middleware instances of a process (Django's test client makes
    one per client)."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        options = dict(config)
        raw_settings = options.pop("settings", None)
        identify = options.pop("identify", None)
        phone_attribute = options.pop("phone_attribute", "phone_number")
        protect_views = options.pop("protect_views", ())
        if isinstance(protect_views, str):
            protect_views = [protect_views]
        if not all(isinstance(name, str) and name for name in protect_views):
            raise ImproperlyConfigured("SMS2FA['protect_views'] must be a list of URL names "
                                       "such as ['billing', 'accounts:*']")
        if protect_views and not options.get("protect"):
            # Protection by view only: the path rules then protect nothing but the prefix,
            # which the guard answers before any protect pattern is looked at.
            options["protect"] = ["/" + str(options.get("prefix", "sms2fa")).strip("/")]
        if isinstance(raw_settings, Settings):
            sms_settings = raw_settings
        elif raw_settings is None:
            sms_settings = Settings.from_env()
        elif isinstance(raw_settings, Mapping):
            sms_settings = Settings(**raw_settings)
        else:
            raise ImproperlyConfigured("SMS2FA['settings'] must be a dict of Settings "
                                       "keywords or a Settings")
        if "login_url" not in options and str(django_settings.LOGIN_URL).startswith("/"):
            options["login_url"] = str(django_settings.LOGIN_URL)
        try:
            self.guard = Guard(sms_settings, **options)
        except TypeError as exc:  # an unknown key
            raise ImproperlyConfigured(f"SMS2FA: {exc}") from None
        if isinstance(identify, str):
            identify = import_string(identify)
        if identify is None:
            default = UserIdentity(phone_attribute)
            default.check()
            identify = default
        elif not callable(identify):
            raise ImproperlyConfigured("SMS2FA['identify'] must be a callable or its dotted path")
        self.identify: Identify = identify
        self.identify_is_async = iscoroutinefunction(identify)
        self.default_identify = isinstance(identify, UserIdentity)
        #: Which resolved routes are protected (the second line, after the path rules).
        self.routes = Routes(self.guard.options.protect, self.guard.options.exclude,
                             self.guard.options.prefix, tuple(protect_views))

    def auth_id(self, request: HttpRequest, user: Any) -> str | None:
        """The auth_id of ``user``, who is logging out on ``request`` (blocking)."""
        if self.default_identify:
            return str(user.pk)
        raw = (async_to_sync(self.identify)(request) if self.identify_is_async
               else self.identify(request))
        identity = self.guard.identity(raw)
        return identity.auth_id if identity is not None else None


_INSTALLED: dict[int, tuple[object, Installed]] = {}


def installed() -> Installed:
    """The :class:`Installed` for the current ``settings.SMS2FA`` (built on first use)."""
    config = getattr(django_settings, "SMS2FA", None)
    if not isinstance(config, Mapping):
        raise ImproperlyConfigured('settings.SMS2FA must be a dict such as '
                                   '{"protect": ["/account"], "login_url": "/login/"}')
    hit = _INSTALLED.get(id(config))
    if hit is not None and hit[0] is config:  # the dict itself is kept: no id reuse
        return hit[1]
    built = Installed(config)
    if len(_INSTALLED) >= 8:  # settings overridden test after test: stay bounded
        _INSTALLED.clear()
    _INSTALLED[id(config)] = (config, built)
    return built


class SMS2FAMiddleware:
    """Demand a verified SMS second factor on the ``protect``ed paths of a Django project."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
        self.installed = installed()
        if self.installed.default_identify:
            _check_order()
        self.guard = self.installed.guard
        self.identify = self.installed.identify
        self._kinds = self.guard.kinds
        self.routes = self.installed.routes
        if self.is_async:  # Django awaits an async process_view in an async chain
            self.process_view = self._aprocess_view  # type: ignore[method-assign]
        user_logged_out.connect(_logged_out, dispatch_uid="sms2fa_middleware.django")

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        kind = self._classify(request)
        if kind == PASS:  # the hot path: one dict lookup (process_view checks the route)
            return self._done(request, self.get_response(request))
        answer = self._guard(request, kind)
        return answer if answer is not None else self._done(request, self.get_response(request))

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        kind = self._classify(request)
        if kind == PASS:
            return self._done(request, await self.get_response(request))
        answer = await self._aguard(request, kind)
        if answer is not None:
            return answer
        return self._done(request, await self.get_response(request))

    def process_view(self, request: HttpRequest, view: Any, args: Any,
                     kwargs: Any) -> HttpResponseBase | None:
        """The second line: once Django has resolved the request, a route that is protected
        (in any language, any letter case, or by ``protect_views``) gets the guard's decision,
        though the path rules let the request through. Django calls the async twin
        (:meth:`_aprocess_view`) in an async chain (set in ``__init__``)."""
        if not self._route_protects(request):
            return None
        return self._guard(request, PROTECTED)

    async def _aprocess_view(self, request: HttpRequest, view: Any, args: Any,
                             kwargs: Any) -> HttpResponseBase | None:
        if not self._route_protects(request):
            return None
        return await self._aguard(request, PROTECTED)

    def _guard(self, request: HttpRequest, kind: int) -> HttpResponseBase | None:
        """The guard's decision for a PROTECTED or PREFIX request (blocking): None lets it
        through to the view (``request.sms2fa`` set when verified), else the answer."""
        guard = self.guard
        identity, failure = None, None
        try:
            raw = (async_to_sync(self.identify)(request) if self.installed.identify_is_async
                   else self.identify(request))
            identity = guard.identity(raw)
        except Exception as exc:  # a bug in identify, or a value that is no identity
            failure = exc
        if guard.revocations_stale():
            guard.refresh_revocations()
        verdict = self._decide(request, kind, identity, failure)
        return None if verdict.to_app else self._answer(request, verdict)

    async def _aguard(self, request: HttpRequest, kind: int) -> HttpResponseBase | None:
        """:meth:`_guard` under ASGI: identify and the store work off the event loop."""
        guard = self.guard
        identity, failure = None, None
        try:
            if self.installed.identify_is_async:
                raw = await self.identify(request)
            else:  # request.user and most identify()s read the database: not on the loop
                raw = await sync_to_async(self.identify)(request)
            identity = guard.identity(raw)
        except Exception as exc:  # a bug in identify, or a value that is no identity
            failure = exc
        if guard.revocations_stale():
            await sync_to_async(guard.refresh_revocations, thread_sensitive=False)()
        verdict = self._decide(request, kind, identity, failure)
        if verdict.to_app:
            return None
        return await sync_to_async(self._answer, thread_sensitive=False)(request, verdict)

    def _decide(self, request: HttpRequest, kind: int, identity: Identity | None,
                failure: Exception | None) -> Verdict:
        """The guard's one decision (shared by both paths, and by :meth:`process_view`)."""
        request._sms2fa_kind = kind  # decided: process_view need not ask again
        verdict = self.guard.decide(kind, identity, failure, request.META.get("HTTP_COOKIE", ""),
                                    request.is_secure())
        if verdict.to_app:
            request.sms2fa = verdict.identity
            request._sms2fa_private = verdict.private
        return verdict

    def _answer(self, request: HttpRequest, verdict: Verdict) -> HttpResponse:
        """The guard's own answer (blocking: the store, maybe an SMS); a request under the
        prefix has its (small) body read first."""
        body = b""
        if verdict.reads_body:
            length = request.META.get("CONTENT_LENGTH") or "0"
            if length.isdigit() and int(length) > MAX_BODY:
                return _django(too_large())
            body = request.body
            if len(body) > MAX_BODY:  # no Content-Length (chunked, under ASGI)
                return _django(too_large())
        return _django(self.guard.answer(verdict, _request(request, body)))

    def _classify(self, request: HttpRequest) -> int:
        """PASS, PROTECTED or PREFIX for Django's ``path_info`` (already decoded and relative
        to SCRIPT_NAME: the path Django routes); attaches the middleware to the request."""
        request.sms2fa_middleware = self
        request.sms2fa = None
        path = request.path_info
        kind = self._kinds.get(path)
        if kind is None:
            kind = self.guard.remember(path, path)
        request._sms2fa_kind = kind
        return kind

    def _route_protects(self, request: HttpRequest) -> bool:
        """Whether the route Django resolved for a request the path rules let through is
        protected after all (see :class:`Routes`)."""
        if getattr(request, "_sms2fa_kind", PASS) != PASS:
            return False  # decided in __call__ already
        match = request.resolver_match
        if match is None:
            return False
        return self.routes.protects(match, request.path_info, getattr(request, "urlconf", None))

    @staticmethod
    def _done(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        # A verified page, when the decision says so: no shared cache may keep it.
        if getattr(request, "_sms2fa_private", False):
            make_private(response.headers)
        for _, value in getattr(request, "_sms2fa_logged_out", ()):  # delete the cookie
            response.cookies.load(value)
        return response

    def revoke(self, auth_id: object) -> None:
        """End ``auth_id``'s verified sessions on every worker and host (logout, a new
        number). Any id ``identify`` gives (``user.pk`` by default). It writes to the
        store: from async code, ``await sync_to_async(middleware.revoke)(user.pk)``."""
        self.guard.revoke(str(auth_id))

    def revoke_session(self, request: HttpRequest,
                       response: HttpResponseBase) -> HttpResponseBase:
        """End only ``request``'s verified session ("forget this device") on every worker
        and host, and delete its cookie on ``response``; the user's other devices stay
        verified (Django's ``logout()`` ends them all). Writes to the store, as
        :meth:`revoke` does."""
        for _, value in self.guard.revoke_session(request.META.get("HTTP_COOKIE", "")):
            response.cookies.load(value)
        return response


def _check_order() -> None:
    """The default identify reads ``request.user``: AuthenticationMiddleware must run first."""
    names = list(django_settings.MIDDLEWARE)
    ours = next((i for i, n in enumerate(names) if n.endswith(".SMS2FAMiddleware")), None)
    if ours is not None and not any(n.endswith("AuthenticationMiddleware")
                                    for n in names[:ours]):
        raise ImproperlyConfigured(
            f"SMS2FA: list {_AUTH_MIDDLEWARE!r} before 'sms2fa_middleware.django."
            "SMS2FAMiddleware' in MIDDLEWARE (it reads request.user), or set SMS2FA['identify']")


def _logged_out(sender: Any, request: HttpRequest | None = None, user: Any = None,
                **kwargs: Any) -> None:
    """``user_logged_out``: revoke the user's verified sessions (all their devices) and this
    device's session, whose cookie the response then deletes. The signal is sent before the
    session is flushed, so ``identify`` still sees the user."""
    if request is None or user is None:
        return
    middleware = getattr(request, "sms2fa_middleware", None)
    chosen = middleware.installed if isinstance(middleware, SMS2FAMiddleware) else None
    if chosen is None:  # a logout outside a request through the middleware (a test, a shell)
        chosen = installed()
    auth_id = chosen.auth_id(request, user)
    if auth_id is not None:
        chosen.guard.revoke(auth_id)
    request._sms2fa_logged_out = chosen.guard.revoke_session(
        request.META.get("HTTP_COOKIE", ""))


def _request(request: HttpRequest, body: bytes = b"") -> Request:
    """The sans-IO request for the guard: the path as Django routes it (``path_info``),
    the scheme as Django sees it (SECURE_PROXY_SSL_HEADER)."""
    meta = request.META
    return Request(
        method=request.method or "GET",
        path=request.path_info,
        query_string=meta.get("QUERY_STRING", ""),
        headers={name.lower(): value for name, value in request.headers.items()},
        body=body,
        client=meta.get("REMOTE_ADDR"),
        scheme=request.scheme or "http",
        root_path=request.path[:len(request.path) - len(request.path_info)],  # SCRIPT_NAME
        host=_host(request),
        trusted_origins=tuple(getattr(django_settings, "CSRF_TRUSTED_ORIGINS", ())),
    )


def _host(request: HttpRequest) -> str:
    """The host Django trusts (ALLOWED_HOSTS, USE_X_FORWARDED_HOST); "" when it refuses it,
    so an Origin cannot match it."""
    try:
        return str(request.get_host())
    except DisallowedHost:
        return ""


def _django(response: Response) -> HttpResponse:
    """The guard's answer as a Django response; cookies go to ``response.cookies`` (Django
    writes each as its own Set-Cookie header)."""
    out = HttpResponse(response.body, status=response.status)
    del out["content-type"]  # the guard's own, or none (a redirect)
    for name, value in response.headers:
        if name.lower() == "set-cookie":
            out.cookies.load(value)
        else:
            out[name] = value
    return out


# -- route-level check ---------------------------------------------------------------------

_REFUSAL = {
    "message": "This page needs SMS verification, which did not happen for this request.",
    "reason": "VerificationRequired",
}


def _refuse(request: HttpRequest) -> JsonResponse:
    # The path is the developer's clue: this view is decorated but protect=[...] missed it.
    log.warning("sms2fa: view for %r ran without a verified session; is its path in "
                "protect=[...]? Refused (403).", request.path)
    response = JsonResponse(_REFUSAL, status=403)
    response["cache-control"] = "no-store"
    return response


def verified_required(view: ViewT) -> ViewT:
    """Refuse (403 JSON) the request unless the middleware verified it (``request.sms2fa``).
    Sync and async function views; ``method_decorator(verified_required)`` on classes."""
    if iscoroutinefunction(view):
        @functools.wraps(view)
        async def async_wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            if getattr(request, "sms2fa", None) is None:
                return _refuse(request)
            return await view(request, *args, **kwargs)
        return async_wrapper  # type: ignore[return-value]

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        if getattr(request, "sms2fa", None) is None:
            return _refuse(request)
        return view(request, *args, **kwargs)
    return wrapper  # type: ignore[return-value]


# -- the routes as Django resolves them -----------------------------------------------------------

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
            test = (char.isdigit() if "DIGIT" in name else char.isspace() if "SPACE" in name
                    else char.isalnum() or char == "_" if "WORD" in name else False)
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

    def walk(entries: Iterable[Any], chain: tuple[int, ...], route: str, sample: str,
             prefix: str | None, ignorecase: bool, namespaces: list[str]) -> None:
        nonlocal by_language
        for entry in entries:
            pattern = entry.pattern
            here = sample + _sample(pattern)
            locale = isinstance(pattern, LocalePrefixPattern)
            by_language = by_language or locale or isinstance(
                getattr(pattern, "_route", getattr(pattern, "_regex", None)), Promise)
            folded = ignorecase or (isinstance(pattern, RegexPattern)
                                    and bool(pattern.regex.flags & re.IGNORECASE))
            key, joined = (*chain, id(entry)), _join_route(route, str(pattern))
            mine = here if locale and prefix is None else prefix
            if isinstance(entry, URLResolver):
                walk(entry.url_patterns, key, joined, here, mine, folded,
                     [*namespaces, entry.namespace] if entry.namespace else namespaces)
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

    def __init__(self, protect: Iterable[str], exclude: Iterable[str], prefix: str,
                 views: Iterable[str] = ()) -> None:
        protect, exclude = tuple(protect), tuple(exclude)
        self.policy = PathPolicy(protect, exclude, prefix)
        self.folded = PathPolicy([p.lower() for p in protect], [e.lower() for e in exclude],
                                 prefix.lower())
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
        elif pattern.samples and any(self._path_protected(sample, pattern.ignorecase)
                                     for sample in pattern.samples):
            return True
        if len(pattern.prefixes) <= 1 and not pattern.ignorecase:
            return False  # one spelling: the path rules decided already
        return any(self._path_protected(other, pattern.ignorecase)
                   for other in _other_languages(path, pattern.prefixes))

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
                        known.routes, known.samples + pattern.samples,
                        known.prefixes | pattern.prefixes,
                        known.ignorecase or pattern.ignorecase, known.view_name)
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
            rest = body[len(prefix):]
            out |= {"/" + other + rest for other in prefixes}
    return out


# -- start-up check of the URL patterns --------------------------------------------------------

def check_routes(protect: Iterable[str] | None = None, exclude: Iterable[str] | None = None,
                 urlconf: str | None = None,
                 protect_views: Iterable[str] | None = None) -> list[str]:
    """Start-up check: log (and return) a warning for each URL pattern the ``protect``
    patterns may leave open -- e.g. ``protect=["/admin/*"]`` with a route ``/admin/`` --,
    each protect pattern that matches no route, each URL pattern that protect matches in
    one language or letter case but not in another (``/account/`` but not ``/fr/account/``;
    ``(?i)^billing/$`` as ``/BILLING/``: the middleware still protects those once Django has
    resolved them), and each ``protect_views`` name that names no URL pattern. Every
    language of ``settings.LANGUAGES`` is sampled. Defaults: ``settings.SMS2FA``'s."""
    config: Mapping[str, Any] = getattr(django_settings, "SMS2FA", None) or {}
    protect = config.get("protect", ()) if protect is None else protect
    exclude = config.get("exclude", ()) if exclude is None else exclude
    views = config.get("protect_views", ()) if protect_views is None else protect_views
    protect = [protect] if isinstance(protect, str) else list(protect)
    exclude = [exclude] if isinstance(exclude, str) else list(exclude)
    views = [views] if isinstance(views, str) else list(views)
    patterns = url_patterns(urlconf)
    warnings: list[str] = []
    if protect:
        samples = [sample for pattern in patterns for sample in pattern.samples]
        warnings += route_warnings(samples, protect, exclude)
        warnings += _spelling_warnings(patterns, protect, exclude)
    for name in views:
        if not any(fnmatch.fnmatchcase(p.view_name, name) for p in patterns):
            warnings.append(f"protect_views name {name!r} matches no URL pattern")
    for warning in warnings:
        log.warning("sms2fa: %s", warning)
    return warnings


def _spelling_warnings(patterns: Iterable[UrlPattern], protect: list[str],
                       exclude: list[str]) -> list[str]:
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
                f"resolved it -- name it in protect too, or use protect_views")
    return warnings


__all__ = ["Identity", "Routes", "SMS2FAMiddleware", "UrlPattern", "UserIdentity", "check_routes",
           "installed", "route_paths", "url_patterns", "verified_required"]
