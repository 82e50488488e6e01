"""What the sync and the async PostgreSQL stores share: the pool's bounds, the message for
missing tables, and how a one-statement guess is settled."""

from __future__ import annotations

from typing import Any

POOL_SIZE = 16  # connections kept per process (and per event loop, for the async store)
POOL_TIMEOUT = 5  # seconds a request waits for a free connection, then answers 503
CONNECT_TIMEOUT = 5  # seconds: a server that drops packets costs a 503, not a hung worker
MISSING_TABLES = (
    "sms2fa: the tables are missing: run `sms2fa migrate` (or Verifier.create_schema())"
)


def settle_attempt(
    params: dict[str, Any], found: tuple[Any, ...], limit: int, pad: bool
) -> tuple[int, Any, tuple[Any, ...] | None, dict[str, Any] | None]:
    """A one-statement attempt's row as (failures, reset_at, the code taken or None), and
    the counter change it still owes, if any: a slot that found no attempt to take is given
    back; ``pad`` writes the counter once more whatever the outcome. Shared by the sync
    backend and the async store."""
    failures, ends, *taken = found
    owed = None
    if taken[0] is None and failures <= limit:
        # Given back in a statement of its own: until it lands, a parallel guess may see one
        # failure too many (a 429 too early, never a guess too many).
        owed = params | {"count": -1, "b_amount": -1}
    elif pad:
        owed = params | {"count": 0, "b_amount": 0}
    return int(failures), ends, None if taken[0] is None else tuple(taken), owed


__all__ = ["CONNECT_TIMEOUT", "MISSING_TABLES", "POOL_SIZE", "POOL_TIMEOUT", "settle_attempt"]
