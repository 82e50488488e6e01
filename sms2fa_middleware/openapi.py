"""Kept for ``from sms2fa_middleware.openapi import openapi_document``: the document lives in
:mod:`sms2fa_middleware.api.openapi` (re-exports only)."""

from __future__ import annotations

from .api.openapi import openapi_document

__all__ = ["openapi_document"]
