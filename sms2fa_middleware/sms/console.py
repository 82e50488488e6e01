"""A development sender: prints the message to stderr under a banner nobody can miss."""

from __future__ import annotations

import logging
import sys
import threading
import uuid
from typing import TextIO

from ..phones import mask

log = logging.getLogger("sms2fa")

_BANNER = "=" * 64


class ConsoleSender:
    """Prints every message instead of sending it. Never use it in production."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        log.warning("sms2fa: console SMS backend: codes are printed, not sent (development only)")

    def send(self, to: str, body: str) -> str:
        stream = self._stream or sys.stderr
        message_id = "console-" + uuid.uuid4().hex
        with self._lock:
            stream.write(
                f"\n{_BANNER}\n  SMS2FA CONSOLE BACKEND -- NOT SENT, DEVELOPMENT ONLY\n"
                f"  to: {mask(to)}\n  {body}\n{_BANNER}\n"
            )
            stream.flush()
        return message_id
