"""The data directory: where the default SQLite database and development mode's secret key
live, made (mode 0700) only when something is written there."""

from __future__ import annotations

import logging
import os
import secrets
import time

from ..errors import ConfigurationError

log = logging.getLogger("sms2fa")


def data_directory() -> str:
    """Where the default SQLite database lives: ``$SMS2FA_DATA_DIR``, else
    ``$XDG_DATA_HOME/sms2fa``, else ``~/.local/share/sms2fa`` -- never the working directory,
    where a database (and its WAL and lock files) would land wherever the app is started."""
    configured = os.environ.get("SMS2FA_DATA_DIR") or os.path.join(
        os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share"), "sms2fa"
    )
    return os.path.abspath(configured)


def make_data_directory(database_path: str) -> None:
    """Create the data directory (mode 0700) if ``database_path`` is in it and it is missing;
    any other missing directory stays an error the user sees."""
    folder = os.path.dirname(os.path.abspath(database_path))
    if folder == data_directory():
        os.makedirs(folder, mode=0o700, exist_ok=True)


def development_key() -> str:
    """Development mode's secret key: made once, kept in the data directory (mode 0600).

    Every worker on this machine reads the same file, so ``gunicorn -w 2`` in development
    mode verifies a code in the worker that did not send it. Never used outside development.
    """
    folder = data_directory()
    path = os.path.join(folder, "development-secret-key")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):  # another worker may be writing it this very moment
            with open(path, encoding="ascii") as existing:
                key = existing.read().strip()
            if key:
                return key
            time.sleep(0.01)
        raise ConfigurationError(f"development mode: {path} is empty; delete it") from None
    key = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="ascii") as new:
        new.write(key)
    log.warning("sms2fa: development mode, using a throw-away secret key kept in %s", path)
    return key


__all__ = ["data_directory", "development_key", "make_data_directory"]
