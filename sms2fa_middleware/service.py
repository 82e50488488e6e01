"""Kept for the import string ``sms2fa_middleware.service:create_app`` (a uvicorn or gunicorn
command line written before 0.2): the service lives in :mod:`sms2fa_middleware.api.service`
(re-exports only)."""

from __future__ import annotations

from .api.service import PREFIX_ENV, VerificationService, create_app

__all__ = ["PREFIX_ENV", "VerificationService", "create_app"]
