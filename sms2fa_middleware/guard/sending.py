"""Sending a code for the challenge flows: from the request's client address (so the
per-address budget counts the caller, not the proxy), once per waiting code for a page that
is reloaded, and with the status a page shows when it could not be sent."""

from __future__ import annotations

from .. import Identity
from ..engine import SendWait, Started, Verifier
from ..errors import InvalidAPIUsage, InvalidRecipient, RateLimited, SMSDeliveryFailed
from ..messages import Request, client_address
from ..sms.bound import otp_domain
from .origins import own_origin


class CodeSender:
    """Sends codes for the HTML flow, the JSON flow and a protected request's challenge."""

    def __init__(self, verifier: Verifier, domain: str | bool | None = None) -> None:
        self.verifier = verifier
        self.trusted_proxies = verifier.settings.trusted_proxies
        self.domain = domain  # the otp_domain option

    def otp_domain(self, request: Request) -> str | None:
        """The domain the SMS's code is bound to (``@domain #code``): the option's, or the
        host this request came to -- the one the framework trusts, as the Origin check
        reads it -- or None (opted out, or the host is an IP address)."""
        if self.domain is False:
            return None
        if isinstance(self.domain, str):
            return self.domain
        origin = own_origin(request)
        return None if origin is None else otp_domain(origin[1])

    def start(self, identity: Identity, request: Request, binding: str | None = None) -> Started:
        """Send a code to ``identity``'s number (engine errors propagate); ``binding``: the
        challenge nonce it verifies with (:mod:`.binding`)."""
        if identity.recipient is None:
            raise InvalidRecipient("No phone number on file")
        return self.verifier.start(
            identity.auth_id,
            identity.recipient,
            client_address=client_address(request, self.trusted_proxies),
            otp_domain=self.otp_domain(request),
            binding=binding,
        )

    def wait(self, identity: Identity, request: Request) -> SendWait | None:
        """What would refuse a code for ``identity`` now, and for how long (the seconds a
        429 would give): the page's timer. None: a code may be asked for now, or none can
        be sent to this number at all (the send says so)."""
        if identity.recipient is None:
            return None
        try:
            return self.verifier.send_wait(
                identity.auth_id,
                identity.recipient,
                client_address=client_address(request, self.trusted_proxies),
                otp_domain=self.otp_domain(request),
            )
        except InvalidAPIUsage:  # a number no code can go to: the send reports it
            return None

    def send(self, identity: Identity, request: Request, binding: str | None = None) -> str | None:
        """Send a code; None, or the flash status key that explains why not."""
        if identity.recipient is None:  # callers answer no_phone first; typed, and safe
            return "bad_number"
        try:
            self.start(identity, request, binding)
        except RateLimited:
            return "rate_limited"
        except SMSDeliveryFailed:
            return "send_failed"
        except InvalidRecipient:
            return "bad_number"
        return None

    def send_unless_waiting(
        self,
        identity: Identity,
        request: Request,
        binding: str | None = None,
        could_hold: bool = True,
    ) -> str | None:
        """Send a code unless one for this number is already waiting (a reload sends none);
        None, or the status key as :meth:`send`. ``could_hold`` False: the asking browser
        cannot hold the waiting code (it has no challenge nonce yet), so one is sent."""
        pending = self.verifier.pending(identity.auth_id) if could_hold else None
        if pending is not None and pending.recipient == identity.recipient:
            return None
        return self.send(identity, request, binding)


__all__ = ["CodeSender"]
