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

Defence in depth: :func:`verified_required` refuses (403) a request the middleware did not
verify, so a view that the ``protect`` patterns miss fails closed.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from asgiref.sync import async_to_sync, iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings as django_settings
from django.contrib.auth.signals import user_logged_out
from django.core.exceptions import DisallowedHost, ImproperlyConfigured, ObjectDoesNotExist
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.utils.cache import patch_cache_control, patch_vary_headers
from django.utils.module_loading import import_string

from . import Identity
from .guard import PASS, PROTECTED, Guard
from .guard.identity import log_failure
from .guard.paths import route_warnings
from .guard.private import CDN_ONLY
from .guard.responses import internal_error
from .http import MAX_BODY, Request, Response, too_large
from .settings import Settings

log = logging.getLogger("sms2fa")

Identify = Callable[[HttpRequest], Any]
ViewT = TypeVar("ViewT", bound=Callable[..., Any])

#: The keys of ``settings.SMS2FA`` that are this module's own; the rest go to the Guard.
_OWN_KEYS = ("identify", "phone_attribute", "settings")
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
        self.private_responses = bool(options.get("private_responses", True))
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
        user_logged_out.connect(_logged_out, dispatch_uid="sms2fa_middleware.django")

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        kind = self._classify(request)
        if kind == PASS:
            return self.get_response(request)  # the hot path: one dict lookup
        guard = self.guard
        try:
            raw = (async_to_sync(self.identify)(request) if self.installed.identify_is_async
                   else self.identify(request))
            identity = guard.identity(raw)
        except Exception as exc:  # a bug in identify, or a value that is no identity
            log_failure(exc)
            return _django(internal_error(_request(request)))
        if kind == PROTECTED:
            if identity is None and guard.anonymous_to_app:
                return self.get_response(request)  # the app's own login_required answers
            if guard.revocations_stale():
                guard.refresh_revocations()
            if guard.is_verified(request.META.get("HTTP_COOKIE", ""), request.is_secure(),
                                 identity):
                request.sms2fa = identity
                return self._private(self.get_response(request))
            return _django(guard.deny(_request(request), identity))
        return _django(self._prefix(request, identity))

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        kind = self._classify(request)
        if kind == PASS:
            return await self.get_response(request)
        guard = self.guard
        try:
            if self.installed.identify_is_async:
                raw = await self.identify(request)
            else:  # request.user and most identify()s read the database: not on the loop
                raw = await sync_to_async(self.identify)(request)
            identity = guard.identity(raw)
        except Exception as exc:  # a bug in identify, or a value that is no identity
            log_failure(exc)
            return _django(internal_error(_request(request)))
        if kind == PROTECTED:
            if identity is None and guard.anonymous_to_app:
                return await self.get_response(request)
            if guard.revocations_stale():
                await sync_to_async(guard.refresh_revocations, thread_sensitive=False)()
            if guard.is_verified(request.META.get("HTTP_COOKIE", ""), request.is_secure(),
                                 identity):
                request.sms2fa = identity
                return self._private(await self.get_response(request))
            response = await sync_to_async(guard.deny, thread_sensitive=False)(
                _request(request), identity)
            return _django(response)
        answer = await sync_to_async(self._prefix, thread_sensitive=False)(request, identity)
        return _django(answer)

    def _classify(self, request: HttpRequest) -> int:
        """PASS, PROTECTED or PREFIX for Django's ``path_info`` (already decoded and relative
        to SCRIPT_NAME: the path Django routes); attaches the middleware to the request."""
        request.sms2fa_middleware = self
        request.sms2fa = None
        path = request.path_info
        kind = self._kinds.get(path)
        return self.guard.remember(path, path) if kind is None else kind

    def _prefix(self, request: HttpRequest, identity: Identity | None) -> Response:
        """A request under the prefix: read its (small) body, let the guard answer."""
        length = request.META.get("CONTENT_LENGTH") or "0"
        if length.isdigit() and int(length) > MAX_BODY:
            return too_large()
        body = request.body
        if len(body) > MAX_BODY:  # no Content-Length (chunked, under ASGI)
            return too_large()
        return self.guard.handle_prefix(_request(request, body), identity)

    def _private(self, response: HttpResponseBase) -> HttpResponseBase:
        # A page only this verified user may see: no shared cache may keep it.
        if not self.installed.private_responses:
            return response
        headers = response.headers
        for name in CDN_ONLY:  # a CDN follows these before Cache-Control
            if name in headers:
                del headers[name]
        if "vary" not in headers and "cache-control" not in headers:  # the usual case: fast
            headers["Vary"] = "Cookie"
            headers["Cache-Control"] = "private"
        else:
            patch_vary_headers(response, ("Cookie",))
            patch_cache_control(response, private=True)
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
    """``user_logged_out``: revoke the user's verified sessions (all their devices). The
    signal is sent before the session is flushed, so ``identify`` still sees the user."""
    if request is None or user is None:
        return
    middleware = getattr(request, "sms2fa_middleware", None)
    chosen = middleware.installed if isinstance(middleware, SMS2FAMiddleware) else None
    if chosen is None:  # a logout outside a request through the middleware (a test, a shell)
        chosen = installed()
    auth_id = chosen.auth_id(request, user)
    if auth_id is not None:
        chosen.guard.revoke(auth_id)


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


# -- start-up check of the URL patterns --------------------------------------------------------

def _sample(pattern: Any) -> str:
    """One URL pattern's text as a sample path piece, variable parts filled with ``x``."""
    text = str(pattern)
    if getattr(pattern, "regex", None) is not None and not hasattr(pattern, "converters"):
        # A re_path: drop anchors, fill groups, unescape what is left.
        text = re.sub(r"\((?:[^()\\]|\\.)*\)[?*+]?", "x", text)
        text = re.sub(r"\\[AZ]|[\^$]", "", text)
        text = re.sub(r"\\(.)", r"\1", text)
    return re.sub(r"<[^>]*>", "x", text)


def sample_path(pattern: Any) -> str:
    """One URL pattern (``path()`` or ``re_path()``, Django's or Channels') as a sample path
    piece, variable parts filled with ``x``: what :func:`route_paths` joins."""
    return _sample(pattern)


def route_paths(urlconf: str | None = None) -> list[str]:
    """Sample paths for a project's URL patterns (includes followed), variables as ``x``."""
    from django.urls import URLResolver, get_resolver

    out: list[str] = []

    def walk(patterns: Iterable[Any], base: str) -> None:
        for entry in patterns:
            full = base + _sample(entry.pattern)
            if isinstance(entry, URLResolver):
                walk(entry.url_patterns, full)
            else:
                out.append("/" + full)

    walk(get_resolver(urlconf).url_patterns, "")
    return out


def check_routes(protect: Iterable[str] | None = None, exclude: Iterable[str] | None = None,
                 urlconf: str | None = None) -> list[str]:
    """Start-up check: log (and return) a warning for each URL pattern the ``protect``
    patterns may leave open -- e.g. ``protect=["/admin/*"]`` with a route ``/admin/`` -- and
    for each protect pattern that matches no route. Defaults: ``settings.SMS2FA``'s."""
    config: Mapping[str, Any] = getattr(django_settings, "SMS2FA", None) or {}
    protect = config.get("protect", ()) if protect is None else protect
    exclude = config.get("exclude", ()) if exclude is None else exclude
    warnings: list[str] = route_warnings(route_paths(urlconf), protect, exclude)
    for warning in warnings:
        log.warning("sms2fa: %s", warning)
    return warnings


__all__ = ["Identity", "SMS2FAMiddleware", "UserIdentity", "check_routes", "installed",
           "route_paths", "sample_path", "verified_required"]
