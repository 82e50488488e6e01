"""SMS senders: one small protocol, a Flowroute v2.1 sender and a console sender for development."""

from __future__ import annotations

from ..settings import Settings
from .base import Sender, SendError
from .segments import segments

__all__ = ["SendError", "Sender", "segments", "sender_from_settings"]


def sender_from_settings(settings: Settings) -> Sender:
    """The sender the settings ask for: Flowroute when its keys are set; the console only
    when asked for by name, or in development mode.

    Outside development, no keys and no backend named is a ConfigurationError: a production
    process must never fall back to printing codes.
    """
    settings.require_provider()
    if settings.backend == "flowroute":
        from .flowroute import FlowrouteSender

        assert settings.flowroute_access_key and settings.flowroute_secret_key
        assert settings.flowroute_number
        return FlowrouteSender(
            access_key=settings.flowroute_access_key,
            secret_key=settings.flowroute_secret_key,
            from_number=settings.flowroute_number,
            base_url=settings.flowroute_url,
            timeout=settings.sms_timeout,
        )
    from .console import ConsoleSender

    return ConsoleSender()
