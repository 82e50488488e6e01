"""Test databases: the PostgreSQL server of SMS2FA_TEST_POSTGRES_URL, private databases on it,
and a TCP proxy that can be cut to take a database away.

PostgreSQL tests need SMS2FA_TEST_POSTGRES_URL (CI sets it). Without it they skip and say why;
with CI=true a missing variable or an unreachable server fails the run instead. Tests never
touch the database that variable names: each session works in a private database of its own
(``sms2fa_test_<random>``, see ``postgres_database_url`` in conftest.py), and a test that needs
a database to itself gets one from :func:`private_postgres`, so that runs sharing a server
(two developers, or a developer and CI) cannot disturb each other.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from sms2fa_middleware.store import Store, metadata

IN_CI = os.environ.get("CI", "").lower() == "true"
POSTGRES_URL = os.environ.get("SMS2FA_TEST_POSTGRES_URL")
PRIVATE_PREFIX = "sms2fa_test_"


def postgres_url_or_skip() -> str:
    """The server's URL; skips the test without it (fails it with CI=true)."""
    if POSTGRES_URL:
        return POSTGRES_URL
    if IN_CI:
        pytest.fail("CI=true but SMS2FA_TEST_POSTGRES_URL is not set")
    pytest.skip(
        "PostgreSQL tests need SMS2FA_TEST_POSTGRES_URL "
        "(e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)"
    )


def fresh_database(url: str) -> str:
    """Drop our tables so each test starts from an empty database."""
    store = Store(url)
    try:
        metadata.drop_all(store.engine)
    finally:
        store.dispose()
    return url


@contextmanager
def private_postgres(label: str = "") -> Iterator[str]:
    """A new, empty database on the test PostgreSQL server, dropped afterwards.

    It is named ``sms2fa_test_[<label>_]<random>``; its URL is that of the server's otherwise.
    """
    base = make_url(postgres_url_or_skip())
    name = PRIVATE_PREFIX + (f"{label}_" if label else "") + uuid.uuid4().hex[:12]
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield base.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@contextmanager
def new_database(kind: str, folder: Path, label: str = "") -> Iterator[str]:
    """A new, empty database: a SQLite file in ``folder``, or a private PostgreSQL database
    (see :func:`private_postgres` for ``label``)."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'sms2fa.db'}"
    else:
        with private_postgres(label) as url:
            yield url


def create_schema_concurrently(url: str, count: int = 4) -> list[BaseException]:
    """``count`` stores call create_schema() on ``url`` at the same instant, each from its own
    thread; what they raised. The stores are disposed of afterwards."""
    stores = [Store(url) for _ in range(count)]
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def create(store: Store) -> None:
        barrier.wait()
        try:
            store.create_schema()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for store in stores:
        store.dispose()
    return errors


def table_names(url: str) -> set[str]:
    """The names of the tables in the database at ``url``."""
    store = Store(url)
    try:
        return set(inspect(store.engine).get_table_names())
    finally:
        store.dispose()
