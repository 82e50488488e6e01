"""The one exception family of the engine.

Every failure a caller can act on is a :class:`VerificationError` with a stable ``reason``
string (the original service's names are kept). HTTP status codes are chosen in exactly one
place, :mod:`sms2fa_middleware.messages`; nothing here knows about HTTP.
"""

from __future__ import annotations


class VerificationError(Exception):
    """Base class: ``reason`` is machine-readable, ``message`` is safe to show to a user."""

    reason = "VerificationError"
    default_message = "Verification failed."

    def __init__(self, message: str | None = None, *, attempts_left: int = 0) -> None:
        self.message = message or self.default_message
        self.attempts_left = attempts_left
        super().__init__(self.message)

    def to_dict(self) -> dict[str, object]:
        """The JSON body the HTTP API answers with (no secrets in it, ever)."""
        return {"attempts_left": self.attempts_left, "message": self.message, "reason": self.reason}


class InvalidAPIUsage(VerificationError):
    """The request itself is malformed: a missing key, a wrong type, a value out of range."""

    reason = "InvalidAPIUsage"
    default_message = "Invalid request."

    def to_dict(self) -> dict[str, object]:
        return {"message": self.message, "reason": self.reason}


class InvalidRecipient(InvalidAPIUsage):
    """The phone number cannot be parsed, or policy refuses it (region, number type)."""

    default_message = "Invalid recipient."


class UnknownAuthId(VerificationError):
    reason = "UnknownAuthId"
    default_message = "Unknown auth id"


class ExpiredAuthCode(VerificationError):
    reason = "ExpiredAuthCode"
    default_message = "Expired code"


class InvalidAuthCode(VerificationError):
    reason = "InvalidAuthCode"
    default_message = "Invalid code"


class RateLimited(VerificationError):
    """A budget is spent; ``budget`` names which, ``retry_after`` says when to come back."""

    reason = "RateLimited"
    default_message = "Too many requests; try again later."

    def __init__(self, budget: str, retry_after: int, message: str | None = None) -> None:
        super().__init__(message)
        self.budget = budget
        self.retry_after = max(1, int(retry_after))

    def to_dict(self) -> dict[str, object]:
        return {
            "message": self.message,
            "reason": self.reason,
            "budget": self.budget,
            "retry_after": self.retry_after,
        }


class SMSDeliveryFailed(VerificationError):
    """The SMS provider refused or did not answer; no code is left pending."""

    reason = "SMSDeliveryFailed"
    default_message = "The verification code could not be sent; try again later."

    def to_dict(self) -> dict[str, object]:
        return {"message": self.message, "reason": self.reason}


class StoreUnavailable(VerificationError):
    """The database cannot be reached; nothing was changed."""

    reason = "ServiceUnavailable"
    default_message = "The verification store is unavailable; try again later."

    def to_dict(self) -> dict[str, object]:
        return {"message": self.message, "reason": self.reason}


class ConfigurationError(ValueError):
    """A setting is missing or out of range; raised at start-up (a middleware's first request
    or its ``check()``), never afterwards."""
