"""The hot statements: SQLAlchemy Core, compiled once per dialect, run on the driver's cursor.

SQLAlchemy's execution layer costs several times the statement itself, and on SQLite that
time is spent holding the one write lock every process queues for (figures:
bench/RESULTS.md). The SQL, the bind order and the type conversions are still SQLAlchemy's,
taken from its compiler. Schema, pooling and the cold paths use SQLAlchemy as usual.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Dialect, Integer, String, bindparam, case, delete, exists, select, update
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from .schema import CodeRow, UTCDateTime, codes, counters

Cursor = Any  # a DBAPI cursor (sqlite3 or psycopg): DBAPI has no common type to name
Upsert = Any  # the dialect's ``insert`` with ``on_conflict_do_update``


class Prepared:
    """A Core statement compiled once for one dialect and run straight on a DBAPI cursor."""

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        self.sql = compiled.string
        self._order = compiled.positiontup  # None for named paramstyles (psycopg)
        self._fixed: dict[str, Any] = {}  # values the statement itself carries (``- 1``)
        self._to_db: dict[str, Callable[[Any], Any]] = {}
        for bind, name in compiled.bind_names.items():
            if not bind.required:
                self._fixed[name] = bind.effective_value
            if (convert := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None:
                self._to_db[name] = convert
        self._from_db = []
        for i, column in enumerate(getattr(statement, "exported_columns", ())):
            if convert := column.type.dialect_impl(dialect).result_processor(dialect, None):
                self._from_db.append((i, convert))

    def values(self, params: dict[str, Any]) -> Any:
        """The parameters as the driver takes them (converted, in the statement's order).

        Shared by the sync cursors here and the async PostgreSQL store (:mod:`.aio`)."""
        values = self._fixed | params
        for name, convert in self._to_db.items():
            values[name] = convert(values[name])
        return values if self._order is None else [values[name] for name in self._order]

    def row(self, row: Any) -> tuple[Any, ...] | None:
        """A row the driver returned, converted to Python values (None stays None)."""
        if row is None or not self._from_db:
            return row  # type: ignore[no-any-return]
        values = list(row)
        for i, convert in self._from_db:
            values[i] = convert(values[i])
        return tuple(values)

    def execute(self, cursor: Cursor, params: dict[str, Any]) -> Cursor:
        cursor.execute(self.sql, self.values(params))
        return cursor

    def first(self, cursor: Cursor, params: dict[str, Any]) -> tuple[Any, ...] | None:
        """The first row, converted to Python values; None if there is none."""
        return self.row(self.execute(cursor, params).fetchone())


# Bind names must differ from column names in INSERT and UPDATE statements.
AUTH_ID = bindparam("b_auth_id", type_=String)
NOW = bindparam("b_now", type_=UTCDateTime)
KEY = bindparam("b_key", type_=String)


def reserve_attempt_statement() -> Any:
    """Take one attempt from a live code, returning what a guess is checked against."""
    return (
        update(codes)
        .where(codes.c.auth_id == AUTH_ID, codes.c.attempts_left > 0, codes.c.expires_at > NOW)
        .values(attempts_left=codes.c.attempts_left - 1)
        .returning(codes.c.recipient, codes.c.digest, codes.c.attempts_left, codes.c.expires_at)
    )


def hit_statement(upsert: Upsert, if_pending: bool = False) -> Any:
    """Add ``b_amount`` to a fixed-window counter; a window that has passed starts again.

    ``if_pending``: only if auth_id ``b_auth_id`` has a code (else no row is written)."""
    insert_counter = upsert(counters)
    if if_pending:
        insert_counter = insert_counter.from_select(
            ["key", "count", "reset_at"],
            select(
                bindparam("key", type_=String),
                bindparam("count", type_=Integer),
                bindparam("reset_at", type_=UTCDateTime),
            ).where(exists().where(codes.c.auth_id == AUTH_ID)),
        )
    expired = counters.c.reset_at <= NOW
    amount = bindparam("b_amount", type_=Integer)
    return insert_counter.on_conflict_do_update(
        index_elements=[counters.c.key],
        set_={
            "count": case((expired, amount), else_=counters.c.count + amount),
            "reset_at": case(
                (expired, bindparam("b_reset_at", type_=UTCDateTime)), else_=counters.c.reset_at
            ),
        },
    ).returning(counters.c.count, counters.c.reset_at)


class Statements:
    """The hot statements of one dialect, compiled once."""

    def __init__(self, upsert: Upsert, dialect: Dialect) -> None:
        insert_code = upsert(codes)  # its values come from the parameters at execution
        self.put_code = Prepared(
            insert_code.on_conflict_do_update(
                index_elements=[codes.c.auth_id],
                set_={
                    c.name: insert_code.excluded[c.name]
                    for c in codes.columns
                    if c.name != "auth_id"
                },
            ),
            dialect,
        )
        delete_code = delete(codes).where(codes.c.auth_id == AUTH_ID)
        self.delete_code = Prepared(delete_code, dialect)
        self.delete_this_code = Prepared(
            delete_code.where(codes.c.digest == bindparam("b_digest")), dialect
        )
        self.reserve_attempt = Prepared(reserve_attempt_statement(), dialect)
        self.get_code = Prepared(
            select(
                codes.c.recipient, codes.c.digest, codes.c.attempts_left, codes.c.expires_at
            ).where(codes.c.auth_id == AUTH_ID),
            dialect,
        )
        self.hit = Prepared(hit_statement(upsert), dialect)
        self.peek = Prepared(
            select(counters.c.count, counters.c.reset_at).where(
                counters.c.key == KEY, counters.c.reset_at > NOW
            ),
            dialect,
        )
        self.reset = Prepared(delete(counters).where(counters.c.key == KEY), dialect)
        self.reset_two = Prepared(
            delete(counters).where(
                (counters.c.key == KEY) | (counters.c.key == bindparam("b_key2", type_=String))
            ),
            dialect,
        )
        self.extend = Prepared(
            update(counters)
            .where(counters.c.key == KEY)
            .values(reset_at=bindparam("b_until", type_=UTCDateTime)),
            dialect,
        )


Attempt = tuple[int, datetime, CodeRow | None]
"""What a guess took: (failures so far, when they reset, the code row or None)."""


# The parameters of the hot statements and the shape of a guess's answer, shared by the sync
# Store (.core) and the async PostgreSQL one (.postgres_aio).


def code_params(row: CodeRow, now: datetime, message_id: str | None) -> dict[str, Any]:
    return {
        "auth_id": row.auth_id,
        "recipient": row.recipient,
        "digest": row.digest,
        "attempts_left": row.attempts_left,
        "created_at": now,
        "expires_at": row.expires_at,
        "message_id": message_id,
    }


def counter_params(key: str, window: int, now: datetime, amount: int) -> dict[str, Any]:
    reset_at = now + timedelta(seconds=window)
    return {
        "key": key,
        "count": amount,
        "reset_at": reset_at,
        "b_amount": amount,
        "b_now": now,
        "b_reset_at": reset_at,
    }


def attempt_params(
    auth_id: str, failure_key: str, window: int, limit: int, now: datetime
) -> dict[str, Any]:
    return counter_params(failure_key, window, now, 1) | {"b_auth_id": auth_id, "b_limit": limit}


def attempt(auth_id: str, found: tuple[int, datetime, tuple[Any, ...] | None]) -> Attempt:
    failures, ends, taken = found
    return failures, ends, None if taken is None else CodeRow(auth_id, *taken)
