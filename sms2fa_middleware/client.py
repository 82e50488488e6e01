"""Kept for ``from sms2fa_middleware.client import SMSAuthClient``: the client lives in
:mod:`sms2fa_middleware.api.client` (re-exports only)."""

from __future__ import annotations

from .api.client import SMSAuthClient, SMSAuthError

__all__ = ["SMSAuthClient", "SMSAuthError"]
