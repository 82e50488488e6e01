"""Storage: SQLAlchemy Core tables and the atomic statements the engine is built on.

The same code runs on SQLite (the default: one file, WAL, shared safely by several processes)
and PostgreSQL (psycopg 3, for several hosts). The package, by job:

* :mod:`.schema` -- the tables, :class:`CodeRow`, UTC datetimes on every backend;
* :mod:`.statements` -- the hot statements, compiled once and run on the driver's cursor;
* :mod:`.backend` -- the small interface a database implements (connections, transactions,
  capabilities such as ``blocking_is_cheap``) and failures as StoreUnavailable;
* :mod:`.sqlite`, :mod:`.postgres` -- the two backends;
* :mod:`.files` -- the data directory (the default database, development mode's key);
  :mod:`.urls` -- the default database URL and the check of a given one;
* :mod:`.core` -- :class:`Store`, the domain's atomic operations over a backend;
  :mod:`.aio` -- the hot ones as the engine awaits them (the sync store run inline, or
  :mod:`.postgres_aio`: the same statements on psycopg's async connections);
  :mod:`.housekeeping` -- its cold paths (schema, revocations, purge, health);
  :mod:`.recovery` -- recovery codes (a set of keyed digests per auth_id, each used once).
"""

from .backend import Backend
from .core import Store, make_backend
from .schema import (
    NEVER,
    CodeRow,
    TrustedBrowserRow,
    UTCDateTime,
    codes,
    counters,
    metadata,
    revocations,
    trusted_browsers,
    utcnow,
)
from .sqlite import WriterLock
from .statements import Cursor

__all__ = [
    "NEVER",
    "Backend",
    "CodeRow",
    "Cursor",
    "Store",
    "TrustedBrowserRow",
    "UTCDateTime",
    "WriterLock",
    "codes",
    "counters",
    "make_backend",
    "metadata",
    "revocations",
    "trusted_browsers",
    "utcnow",
]
