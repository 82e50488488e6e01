"""SMS one-time-code second factor for WSGI and ASGI apps, and a standalone service."""

from __future__ import annotations

from .engine import AuditEvent, Pending, Started, Verified, Verifier
from .errors import (
    ConfigurationError,
    ExpiredAuthCode,
    InvalidAPIUsage,
    InvalidAuthCode,
    InvalidRecipient,
    RateLimited,
    SMSDeliveryFailed,
    StoreUnavailable,
    UnknownAuthId,
    VerificationError,
)
from .identity import Identity
from .settings import Settings

__version__ = "0.2.0.dev0"

__all__ = [
    "AuditEvent",
    "ConfigurationError",
    "ExpiredAuthCode",
    "Identity",
    "InvalidAPIUsage",
    "InvalidAuthCode",
    "InvalidRecipient",
    "Pending",
    "RateLimited",
    "SMSDeliveryFailed",
    "Settings",
    "Started",
    "StoreUnavailable",
    "UnknownAuthId",
    "VerificationError",
    "Verified",
    "Verifier",
]
