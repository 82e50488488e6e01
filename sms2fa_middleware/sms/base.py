"""What every sender is: the protocol, and the one error a send raises."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


class SendError(Exception):
    """The message was not (or may not have been) sent. The text never holds the body."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@runtime_checkable
class Sender(Protocol):
    """Anything that can deliver one text message."""

    def send(self, to: str, body: str) -> str | None:
        """Send ``body`` to ``to`` (E.164); return the provider's message id, or raise SendError."""
        ...


__all__ = ["SendError", "Sender"]
