"""Database URLs: the default one (a SQLite file in the data directory), and the check that
says in one line what is wrong with a given one."""

from __future__ import annotations

import importlib.util

from ..errors import ConfigurationError
from .files import data_directory


def default_database_url() -> str:
    """``sqlite:///<data directory>/sms2fa.db`` (the directory is made when the store opens)."""
    return f"sqlite:///{data_directory()}/sms2fa.db"


def check_database_url(url: str) -> str:
    """The URL itself (or the default one), or a ConfigurationError that says what is wrong
    in one line: never the password, never a driver's traceback."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    what = "database_url (SMS2FA_DATABASE_URL)"
    if not url:
        return default_database_url()
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise ConfigurationError(
            f"{what} is not a database URL; expected e.g. sqlite:////var/lib/app/sms2fa.db "
            "or postgresql+psycopg://user:password@host/dbname"
        ) from None
    backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
    if backend == "sqlite":
        return url
    if backend != "postgresql":
        raise ConfigurationError(f"{what} names {backend!r}; use sqlite or postgresql")
    if driver not in ("", "psycopg", "psycopg2"):
        raise ConfigurationError(f"{what}: use the psycopg driver (postgresql+psycopg://...)")
    if importlib.util.find_spec("psycopg") is None:
        raise ConfigurationError(
            f"{what} is a PostgreSQL URL, but its driver is not installed: "
            "pip install 'sms2fa-middleware[postgres]'"
        )
    return url


__all__ = ["check_database_url", "default_database_url"]
