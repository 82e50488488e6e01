"""Audit events: what happened, to the ``sms2fa`` logger and an optional hook."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import NoReturn

from ..errors import RateLimited
from ..phones import mask
from ..policy import retry_after

log = logging.getLogger("sms2fa")


@dataclass(frozen=True)
class AuditEvent:
    """One thing that happened; never carries a code, a secret or a full phone number."""

    name: str  # started, sent, approved, failed, locked, rate_limited, send_failed, cancelled
    auth_id: str
    recipient: str | None = None  # masked
    reason: str | None = None
    detail: dict[str, object] = field(default_factory=dict)


class Audit:
    """Emits the events of one namespace (``""``: the default one)."""

    def __init__(self, on_event: Callable[[AuditEvent], None] | None, namespace: str = "") -> None:
        self.on_event = on_event
        self.namespace = namespace

    def emit(
        self,
        name: str,
        auth_id: str,
        recipient: str | None = None,
        reason: str | None = None,
        *,
        remembered: bool = False,
        **detail: object,
    ) -> None:
        """Log and hand on one event (the recipient masked). ``remembered``: a refusal
        answered from memory (:mod:`.spent`), which the store already refused once in this
        window: the hook gets it as ever, the log only at DEBUG (once per window is enough)."""
        # A failed send is the one event an operator must see without asking for INFO.
        level = logging.WARNING if name == "send_failed" else logging.INFO
        if remembered:
            level = logging.DEBUG
        logging_on = log.isEnabledFor(level)
        if not logging_on and self.on_event is None:
            return  # a wrong guess is the hot path: build nothing nobody reads
        if self.namespace:
            detail["namespace"] = self.namespace
        event = AuditEvent(name, auth_id, mask(recipient) if recipient else None, reason, detail)
        if logging_on:
            log.log(
                level,
                "sms2fa event=%s auth_id=%r recipient=%s reason=%s %s",
                name,
                auth_id,
                event.recipient,
                reason,
                " ".join(f"{k}={v}" for k, v in detail.items()),
            )
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:  # an audit hook must never break a verification
                log.exception("sms2fa: the on_event hook failed")

    def refuse(
        self,
        budget: str,
        auth_id: str,
        number: str | None,
        reset_at: datetime,
        now: datetime,
        remembered: bool = False,
    ) -> NoReturn:
        """Emit ``rate_limited`` and raise RateLimited for ``budget`` (``remembered``: see
        :meth:`emit`)."""
        wait = retry_after(reset_at, now)
        self.emit(
            "rate_limited", auth_id, number, reason=budget, remembered=remembered, retry_after=wait
        )
        raise RateLimited(budget, wait)
