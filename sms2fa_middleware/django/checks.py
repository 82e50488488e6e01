"""A deploy check: ``manage.py check --deploy`` reads and checks the ``SMS2FA`` settings
(the secret key, the SMS provider, the options) and fails loudly, before the first request
would. Registered when this package is imported -- list ``"sms2fa_middleware.django"`` in
``INSTALLED_APPS`` so ``manage.py`` imports it. A plain ``manage.py check`` (and
``migrate``) does not run it: they work without SMS settings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings as django_settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from ..errors import ConfigurationError
from .conf import installed

MIDDLEWARE = "sms2fa_middleware.django.SMS2FAMiddleware"


def check_sms2fa(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """sms2fa.E001: the ``SMS2FA`` configuration cannot start; sms2fa.W001: development mode
    (codes may be printed, the secret key is made up) in a deploy."""
    if MIDDLEWARE not in getattr(django_settings, "MIDDLEWARE", ()) and not isinstance(
        getattr(django_settings, "SMS2FA", None), Mapping
    ):
        return []  # not used by this project
    try:
        built = installed().guard  # the SMS settings are read and checked here
    except (ImproperlyConfigured, ConfigurationError, ValueError, TypeError) as exc:
        return [
            checks.Error(
                f"SMS2FA cannot start: {exc}",
                id="sms2fa.E001",
                hint="set the SMS2FA_* and FLOWROUTE_* environment variables "
                "(docs/settings.md), or SMS2FA['settings']",
            )
        ]
    if built.settings.development:
        return [
            checks.Warning(
                "SMS2FA runs in development mode (codes may be printed to the console)",
                id="sms2fa.W001",
                hint="unset SMS2FA_DEVELOPMENT in production",
            )
        ]
    return []


checks.register(check_sms2fa, checks.Tags.security, deploy=True)

__all__ = ["check_sms2fa"]
