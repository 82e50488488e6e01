"""Sending a code for the challenge flows: from the request's client address (so the
per-address budget counts the caller, not the proxy), once per waiting code for a page that
is reloaded, and with the status a page shows when it could not be sent."""

from __future__ import annotations

from .. import Identity
from ..engine import Started, Verifier
from ..errors import InvalidRecipient, RateLimited, SMSDeliveryFailed
from ..messages import Request, client_address


class CodeSender:
    """Sends codes for the HTML flow, the JSON flow and a protected request's challenge."""

    def __init__(self, verifier: Verifier) -> None:
        self.verifier = verifier
        self.trusted_proxies = verifier.settings.trusted_proxies

    def start(self, identity: Identity, request: Request) -> Started:
        """Send a code to ``identity``'s number (engine errors propagate)."""
        if identity.recipient is None:
            raise InvalidRecipient("No phone number on file")
        return self.verifier.start(
            identity.auth_id,
            identity.recipient,
            client_address=client_address(request, self.trusted_proxies),
        )

    def send(self, identity: Identity, request: Request) -> str | None:
        """Send a code; None, or the flash status key that explains why not."""
        if identity.recipient is None:  # callers answer no_phone first; typed, and safe
            return "bad_number"
        try:
            self.start(identity, request)
        except RateLimited:
            return "rate_limited"
        except SMSDeliveryFailed:
            return "send_failed"
        except InvalidRecipient:
            return "bad_number"
        return None

    def send_unless_waiting(self, identity: Identity, request: Request) -> str | None:
        """Send a code unless one for this number is already waiting (a reload sends none);
        None, or the status key as :meth:`send`."""
        pending = self.verifier.pending(identity.auth_id)
        if pending is not None and pending.recipient == identity.recipient:
            return None
        return self.send(identity, request)


__all__ = ["CodeSender"]
