"""``INSTALLED_APPS = [..., "sms2fa_middleware.django"]``: registers the deploy check
(:mod:`.checks`). The middleware works without it."""

from __future__ import annotations

from django.apps import AppConfig


class SMS2FAConfig(AppConfig):  # type: ignore[misc]
    name = "sms2fa_middleware.django"
    label = "sms2fa"
    verbose_name = "SMS second factor"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the deploy check)
