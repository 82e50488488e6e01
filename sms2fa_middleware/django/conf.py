"""The ``SMS2FA`` settings dict, read once: the guard, ``identify`` (by default the
logged-in ``request.user``), and which resolved routes are protected."""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

from asgiref.sync import async_to_sync, iscoroutinefunction
from django.apps import apps
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured, ObjectDoesNotExist
from django.core.signals import setting_changed
from django.http import HttpRequest
from django.urls import NoReverseMatch, get_script_prefix, reverse
from django.utils.module_loading import import_string

from ..guard import Guard
from ..guard.options import GuardOptions
from ..guard.paths import PathPolicy
from ..identity import Identity
from ..settings import Settings, env_name
from .routes import Routes

Identify = Callable[[HttpRequest], Any]

AUTH_MIDDLEWARE = "django.contrib.auth.middleware.AuthenticationMiddleware"
#: What ``Settings.from_env()`` reads.
ENV_NAMES = tuple(sorted(env_name(field.name) for field in dataclasses.fields(Settings)))


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
                f"'profile.phone_number') or SMS2FA['identify']"
            )


def admin_logout_url() -> tuple[str, ...]:
    """The admin's logout path, when the admin is installed and routed: by default it passes
    unverified, so ``protect=["/admin"]`` never keeps a staff user who cannot enter a code
    logged in (``SMS2FA["logout_url"]`` replaces it)."""
    if not apps.is_installed("django.contrib.admin"):
        return ()
    try:
        url = reverse("admin:logout")
    except NoReverseMatch:  # installed but not in the URLconf
        return ()
    prefix = get_script_prefix()  # paths are matched as Django routes them: path_info
    return ("/" + url[len(prefix) :] if url.startswith(prefix) else url,)


class Installed:
    """What one ``SMS2FA`` settings dict builds: the guard and ``identify``. Built once per
    dict (see :func:`installed` for when again) and shared by the middleware instances of a
    process (Django's test client makes one per client)."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        options = dict(config)
        raw_settings = options.pop("settings", None)
        identify = options.pop("identify", None)
        phone_attribute = options.pop("phone_attribute", "phone_number")
        protect_views = options.pop("protect_views", ())
        if isinstance(protect_views, str):
            protect_views = [protect_views]
        if not all(isinstance(name, str) and name for name in protect_views):
            raise ImproperlyConfigured(
                "SMS2FA['protect_views'] must be a list of URL names "
                "such as ['billing', 'accounts:*']"
            )
        if protect_views and not options.get("protect"):
            # Protection by view only: the path rules then protect nothing but the prefix,
            # which the guard answers before any protect pattern is looked at.
            options["protect"] = ["/" + str(options.get("prefix", "sms2fa")).strip("/")]
        if not (raw_settings is None or isinstance(raw_settings, (Settings, Mapping))):
            raise ImproperlyConfigured(
                "SMS2FA['settings'] must be a dict of Settings keywords or a Settings"
            )
        self._raw_settings = raw_settings
        if "login_url" not in options and str(django_settings.LOGIN_URL).startswith("/"):
            options["login_url"] = str(django_settings.LOGIN_URL)
        if "logout_url" not in options:
            options["logout_url"] = admin_logout_url()
        for hook in ("on_event", "on_enroll", "render"):  # a dotted path, as for identify
            if isinstance(options.get(hook), str):
                options[hook] = import_string(options[hook])
        try:
            self.options = GuardOptions.from_keywords(options)
        except (TypeError, ValueError) as exc:  # an unknown key, or a value that is wrong
            raise ImproperlyConfigured(f"SMS2FA: {exc}") from None
        #: The path rules need no SMS settings: built now. The guard, which does, is built
        #: at first use (``manage.py migrate``, ``check`` and ``sms2fa check-routes`` need
        #: no secret key), like the WSGI and ASGI middleware's.
        opts = self.options
        self.paths = PathPolicy(opts.protect, opts.exclude, opts.prefix, opts.rules)
        self._guard: Guard | None = None
        self._lock = threading.Lock()
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
        self.routes = Routes(opts.protect, opts.exclude, opts.prefix, tuple(protect_views))

    @property
    def guard(self) -> Guard:
        """The guard, built at first use: the SMS settings are read and checked then
        (``SMS2FA['settings']``, else ``Settings.from_env()``)."""
        guard = self._guard
        if guard is not None:
            return guard
        with self._lock:  # two first requests at once build one guard
            if self._guard is None:
                raw = self._raw_settings
                if isinstance(raw, Settings):
                    sms_settings = raw
                elif raw is None:
                    sms_settings = Settings.from_env()
                else:
                    sms_settings = Settings(**raw)
                self._guard = Guard(sms_settings, options=self.options, paths=self.paths)
            return self._guard

    def auth_id(self, request: HttpRequest, user: Any) -> str | None:
        """The auth_id of ``user``, who is logging out on ``request`` (blocking)."""
        if self.default_identify:
            return str(user.pk)
        raw = (
            async_to_sync(self.identify)(request)
            if self.identify_is_async
            else self.identify(request)
        )
        identity = self.guard.identity(raw)
        return identity.auth_id if identity is not None else None


class _Built:
    """One cache entry: the dict, what it held when built (its values themselves: a value
    replaced in place is seen) and the environment ``Settings.from_env()`` read (so a test's
    new FakeFlowroute in the environment is seen too)."""

    __slots__ = ("config", "env", "installed", "values")

    def __init__(self, config: Mapping[str, Any], installed: Installed) -> None:
        self.config, self.values, self.env = config, dict(config), _env_read_by(config)
        self.installed = installed

    def current(self, config: Mapping[str, Any]) -> bool:
        values = self.values
        return (
            self.config is config
            and len(config) == len(values)
            and all(values.get(key, _MISSING) is value for key, value in config.items())
            and self.env == _env_read_by(config)
        )


_MISSING = object()
_INSTALLED: dict[int, _Built] = {}


def _env_read_by(config: Mapping[str, Any]) -> tuple[str | None, ...]:
    """The environment ``Settings.from_env()`` reads, when the dict has no ``settings``."""
    if config.get("settings") is not None:
        return ()
    return tuple(os.environ.get(name) for name in ENV_NAMES)


def installed() -> Installed:
    """The :class:`Installed` for the current ``settings.SMS2FA``: built on first use, and
    again when the dict, one of its values, or (without ``settings``) the ``SMS2FA_*``
    environment changed, or after :func:`reset`. Each middleware instance reads it once,
    when Django builds it (a test ``Client`` builds its own)."""
    config = getattr(django_settings, "SMS2FA", None)
    if not isinstance(config, Mapping):
        raise ImproperlyConfigured(
            "settings.SMS2FA must be a dict such as "
            '{"protect": ["/account"], "login_url": "/login/"}'
        )
    hit = _INSTALLED.get(id(config))
    if hit is not None and hit.current(config):  # the dict itself is kept: no id reuse
        return hit.installed
    built = Installed(config)
    if len(_INSTALLED) >= 8:  # settings overridden test after test: stay bounded
        _INSTALLED.clear()
    _INSTALLED[id(config)] = _Built(config, built)
    return built


def reset() -> None:
    """Forget what :func:`installed` built: the next middleware Django builds (the next test
    ``Client``'s) reads ``settings.SMS2FA`` and the environment afresh. Done on
    ``override_settings(SMS2FA=...)`` and by the testing fixtures; call it after changing
    the settings in any other way."""
    _INSTALLED.clear()


def _setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == "SMS2FA":  # override_settings(SMS2FA=...) entered or left
        reset()


setting_changed.connect(_setting_changed, dispatch_uid="sms2fa_middleware.django.conf")


def check_order() -> None:
    """The default identify reads ``request.user``: AuthenticationMiddleware must run first."""
    names = list(django_settings.MIDDLEWARE)
    ours = next((i for i, n in enumerate(names) if n.endswith(".SMS2FAMiddleware")), None)
    if ours is not None and not any(n.endswith("AuthenticationMiddleware") for n in names[:ours]):
        raise ImproperlyConfigured(
            f"SMS2FA: list {AUTH_MIDDLEWARE!r} before 'sms2fa_middleware.django."
            "SMS2FAMiddleware' in MIDDLEWARE (it reads request.user), or set SMS2FA['identify']"
        )


__all__ = [
    "AUTH_MIDDLEWARE",
    "Identify",
    "Installed",
    "UserIdentity",
    "check_order",
    "installed",
    "reset",
]
