"""Shared fixtures: every store test runs on a real SQLite file and on the real PostgreSQL.

PostgreSQL tests need SMS2FA_TEST_POSTGRES_URL (CI sets it). Without it they skip and say why;
with CI=true a missing variable or an unreachable server fails the run instead.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sms2fa_middleware import Settings, Verifier
from sms2fa_middleware.store import Store, metadata
from sms2fa_middleware.testing import FakeFlowroute

IN_CI = os.environ.get("CI", "").lower() == "true"
POSTGRES_URL = os.environ.get("SMS2FA_TEST_POSTGRES_URL")
SECRET = "test-secret-key-0123456789abcdef"


def postgres_url_or_skip() -> str:
    if POSTGRES_URL:
        return POSTGRES_URL
    if IN_CI:
        pytest.fail("CI=true but SMS2FA_TEST_POSTGRES_URL is not set")
    pytest.skip("PostgreSQL tests need SMS2FA_TEST_POSTGRES_URL "
                "(e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)")


def fresh_database(url: str) -> str:
    """Drop our tables so each test starts from an empty database."""
    store = Store(url)
    try:
        metadata.drop_all(store.engine)
    finally:
        store.dispose()
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """A real, empty database: a SQLite file, then the PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'sms2fa.db'}"
    return fresh_database(postgres_url_or_skip())


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
        made.append(verifier)
        return verifier

    yield build
    for verifier in made:
        verifier.store.dispose()


@pytest.fixture
def verifier(make_verifier: Callable[..., Verifier]) -> Verifier:
    """A Verifier with the default policy (resend cooldown off, so tests can start twice)."""
    return make_verifier(resend_cooldown=0)
