"""Shared fixtures: every store test runs on a real SQLite file and on the real PostgreSQL.

PostgreSQL tests need SMS2FA_TEST_POSTGRES_URL (CI sets it). Without it they skip and say why;
with CI=true a missing variable or an unreachable server fails the run instead. They run in a
private database that this session creates on that server and drops at its end, never in the
database the variable names (see databases.py).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from databases import fresh_database, private_postgres

from sms2fa_middleware import Settings, Verifier
from sms2fa_middleware.testing import FakeFlowroute

SECRET = "test-secret-key-0123456789abcdef"


def in_threads(target: Callable[[int], object], n: int) -> None:
    """Run ``target(0)`` .. ``target(n - 1)`` each in a thread of its own; wait for them all."""
    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)


@pytest.fixture(scope="session", autouse=True)
def _data_directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Settings without a database_url put their SQLite file in the data directory: here a
    temporary one, not the developer's ~/.local/share/sms2fa."""
    previous = os.environ.get("SMS2FA_DATA_DIR")
    os.environ["SMS2FA_DATA_DIR"] = str(tmp_path_factory.mktemp("data"))
    yield
    if previous is None:
        del os.environ["SMS2FA_DATA_DIR"]
    else:
        os.environ["SMS2FA_DATA_DIR"] = previous


@pytest.fixture(scope="session")
def postgres_database_url() -> Iterator[str]:
    """This session's own database on the test PostgreSQL server (``sms2fa_test_<random>``),
    dropped at the end. Tests that share it call ``fresh_database()`` on it first."""
    with private_postgres() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """A real, empty database: a SQLite file, then this session's PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'sms2fa.db'}"
    return fresh_database(request.getfixturevalue("postgres_database_url"))


@pytest.fixture
def make_settings(database_url: str, fake_flowroute: FakeFlowroute) -> Callable[..., Settings]:
    """Settings on the test database and FakeFlowroute; keyword arguments override."""

    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "secret_key": SECRET,
            "database_url": database_url,
            **fake_flowroute.settings_kwargs(),
        }
        values.update(overrides)
        return Settings(**values)

    return build


@pytest.fixture
def make_verifier(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., Verifier]]:
    made: list[Verifier] = []

    def build(**overrides: Any) -> Verifier:
        verifier = Verifier(make_settings(**overrides))
        verifier.create_schema()  # tests write to its tables before its first call
        made.append(verifier)
        return verifier

    yield build
    for verifier in made:
        verifier.store.dispose()


@pytest.fixture
def verifier(make_verifier: Callable[..., Verifier]) -> Verifier:
    """A Verifier with the default policy (resend cooldown off, so tests can start twice)."""
    return make_verifier(resend_cooldown=0)
