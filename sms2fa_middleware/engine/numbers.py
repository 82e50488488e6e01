"""A user's phone number changed: what the engine ends and says.

A change of number is a reset of the second factor, so what stood in for the old number
ends with it: the recovery codes (the user makes new ones), and -- through
:meth:`Verifier.revoke`, which the caller makes as well (the guard does, so that this
process knows at once) -- every verified session and trusted browser. The old number is
texted a notice with no code in it, so whoever holds that phone learns of the change and can
raise the alarm if it was not theirs; the audit event ``number_changed`` carries both
numbers masked.
"""

from __future__ import annotations

import logging

from .. import text
from ..phones import mask
from ..policy import Keys, check_auth_id
from ..settings import Settings
from ..sms import Sender, SendError
from ..store import Store
from .audit import Audit

log = logging.getLogger("sms2fa")


class NumberChanges:
    """Ends what a change of number voids, and tells the old number."""

    def __init__(self, settings: Settings, store: Store, keys: Keys, audit: Audit) -> None:
        self.settings, self.store, self.keys, self.audit = settings, store, keys, audit

    def changed(self, auth_id: str, old: str, new: str, sender: Sender) -> int:
        """``auth_id``'s number went from ``old`` to ``new`` (E.164): its recovery codes are
        dropped (how many is returned), ``old`` gets the notice, the event is emitted."""
        key = self.keys.auth(check_auth_id(auth_id))
        dropped = self.store.delete_recovery_codes(key)
        notified = self._notify(auth_id, old, sender)
        self.audit.emit(
            "number_changed",
            auth_id,
            new,
            previous=mask(old),
            recovery_codes_dropped=dropped,
            notified=notified,
        )
        return dropped

    def _notify(self, auth_id: str, old: str, sender: Sender) -> bool:
        """Text ``old`` that the number changed (in the language spoken now); a failed
        notice does not undo the change (the app stored it already): it is audited."""
        try:
            sender.send(old, text.number_changed_notice(self.settings.org_name))
        except SendError as exc:
            self.audit.emit("send_failed", auth_id, old, reason="NumberChangeNotice")
            log.warning("sms2fa: the number-change notice was not sent (%s)", type(exc).__name__)
            return False
        return True


__all__ = ["NumberChanges"]
