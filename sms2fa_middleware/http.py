"""Kept for imports written before 0.2 split this module (re-exports only, no code).

The request/response messages now live in :mod:`sms2fa_middleware.messages`, the API in
:mod:`sms2fa_middleware.api.verification`. Import from there in new code.
"""

from __future__ import annotations

from .api.failed_auth import FailedAuthorizations
from .api.verification import EngineCall, VerificationAPI
from .messages import (
    MAX_BODY,
    Request,
    Response,
    client_address,
    error_response,
    iso,
    json_object,
    json_response,
    only_keys,
    too_large,
    wire,
)

__all__ = [
    "MAX_BODY",
    "EngineCall",
    "FailedAuthorizations",
    "Request",
    "Response",
    "VerificationAPI",
    "client_address",
    "error_response",
    "iso",
    "json_object",
    "json_response",
    "only_keys",
    "too_large",
    "wire",
]
