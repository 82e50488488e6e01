"""Where the configuration comes from: debug mode and the database are chosen by
configuration, and the default SQLite file is in the data directory, not the working one.

From the defects of the original Flowroute sms-verification service."""

from __future__ import annotations

import warnings
from typing import Any

import pytest

from sms2fa_middleware import (
    ConfigurationError,
    Settings,
    Verifier,
)

with warnings.catch_warnings():  # starlette >= 1.0 would rather have httpx2
    warnings.simplefilter("ignore")


pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")


def test_debug_mode_is_not_hard_coded() -> None:
    """Defect: "DEBUG_MODE hard-coded": development mode is off unless asked for, and asking
    is configuration, not code."""
    assert Settings(secret_key="s" * 32).development is False
    assert Settings.from_env({"SMS2FA_SECRET_KEY": "s" * 32}).development is False
    assert Settings.from_env({"SMS2FA_DEVELOPMENT": "1"}).development is True
    # Production (the default) will not start without a real key.
    with pytest.raises(ConfigurationError, match="SMS2FA_SECRET_KEY"):
        Settings.from_env({})


def test_database_is_chosen_by_configuration_not_a_flag(tmp_path: Any) -> None:
    """Defect: "the test database selected by a flag in code"."""
    url = f"sqlite:///{tmp_path / 'chosen.db'}"
    settings = Settings.from_env(
        {"SMS2FA_SECRET_KEY": "s" * 32, "SMS2FA_DATABASE_URL": url, "SMS2FA_SMS_BACKEND": "console"}
    )
    assert settings.database_url == url
    verifier = Verifier(settings)
    try:
        verifier.create_schema()
        assert (tmp_path / "chosen.db").exists()
    finally:
        verifier.store.dispose()


def test_default_database_is_in_the_data_directory_not_the_working_directory(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SMS2FA_DATA_DIR", str(tmp_path / "data"))
    url = Settings(secret_key="s" * 32).database_url
    assert url == f"sqlite:///{tmp_path / 'data' / 'sms2fa.db'}"
    assert not (tmp_path / "data").exists()  # building Settings touches no disk
    verifier = Verifier(Settings(secret_key="s" * 32, sms_backend="console"))
    try:
        verifier.create_schema()
        assert (tmp_path / "data" / "sms2fa.db").exists()
        assert (tmp_path / "data").stat().st_mode & 0o777 == 0o700
    finally:
        verifier.store.dispose()
    monkeypatch.delenv("SMS2FA_DATA_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert Settings(secret_key="s" * 32).database_url == (
        f"sqlite:///{tmp_path / 'xdg' / 'sms2fa' / 'sms2fa.db'}"
    )
    assert list(tmp_path.glob("*.db")) == []
