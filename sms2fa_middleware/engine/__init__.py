"""The engine: start, check and cancel verifications -- the whole policy, and no HTTP.

Guarantees (each one a test):

* codes come from ``secrets``, have exactly the asked number of digits, live at most
  ``code_expiration`` seconds, are stored only as a keyed digest and compared in constant time;
* a code is stored (and so checkable) only once the SMS provider accepted it: a failed send
  leaves no new code pending;
* every guess first takes an attempt with one conditional UPDATE, so parallel wrong guesses in
  any number of processes never evaluate more guesses than allowed, and a right code succeeds
  exactly once;
* consecutive failed checks are capped per auth_id *across* codes, so asking for new codes
  never buys unlimited guesses;
* every SMS is paid for from budgets kept in the store (per auth_id cooldown, per recipient,
  per client address, overall), so four workers or four hosts share them.

By job: :mod:`..policy` (pure rules), :mod:`.sending` and :mod:`.checking` (the store work of
a start and of a check), :mod:`.verifier` (the sync :class:`Verifier`), :mod:`.aio` (its
async twin, :class:`AsyncVerifier`), :mod:`.timing` (the uniform-timing floor),
:mod:`.audit` (events), :mod:`.recovery` (single-use recovery codes), :mod:`.trust`
(trusted browsers), :mod:`.numbers` (what a change of number ends), :mod:`.results`,
:mod:`.spent` (refusals the store made, remembered until they end).
"""

from ..policy import MAX_AUTH_ID_LENGTH, check_auth_id
from .aio import AsyncVerifier
from .audit import AuditEvent
from .results import Pending, SendWait, Started, Verified
from .timing import TimingFloor
from .verifier import Verifier

__all__ = [
    "MAX_AUTH_ID_LENGTH",
    "AsyncVerifier",
    "AuditEvent",
    "Pending",
    "SendWait",
    "Started",
    "TimingFloor",
    "Verified",
    "Verifier",
    "check_auth_id",
]
