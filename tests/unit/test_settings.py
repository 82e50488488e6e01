"""Settings: defaults, every environment name, validation at start-up, secrets, templates."""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

import pytest

from sms2fa_middleware import ConfigurationError, Settings
from sms2fa_middleware.settings import (
    DEFAULT_FLOWROUTE_URL,
    DEFAULT_NUMBER_TYPES,
    DEFAULT_REGIONS,
    check_template,
    env_name,
)
from sms2fa_middleware.sms import sender_from_settings
from sms2fa_middleware.sms.console import ConsoleSender
from sms2fa_middleware.sms.flowroute import FlowrouteSender

KEY = "a-secret-key-of-32-characters-xx"
FLOWROUTE = {
    "flowroute_access_key": "access",
    "flowroute_secret_key": "secret",
    "flowroute_number": "12065550100",
}


# -- defaults -------------------------------------------------------------------------------


def test_defaults_are_the_secure_ones() -> None:
    s = Settings(secret_key=KEY)
    assert s.secret_key == (KEY,)
    assert s.development is False
    assert s.api_token is None
    assert s.code_length == 6
    assert s.code_expiration == 600
    assert s.retries_allowed == 3
    assert s.database_url.startswith("sqlite:////")  # an absolute path, in the data directory
    assert s.database_url.endswith("/sms2fa.db")
    assert s.flowroute_url == DEFAULT_FLOWROUTE_URL == "https://api.flowroute.com/v2.1"
    assert s.sms_backend is None
    assert s.backend == "console"  # no Flowroute keys
    assert s.recipient_send_limit == 5 and s.recipient_send_window == 600
    assert s.address_send_limit > 0
    assert s.resend_cooldown == 30
    assert 1 <= s.max_failed_checks <= 100
    assert s.trusted_proxies == 0
    assert s.allowed_regions == DEFAULT_REGIONS
    assert "US" in s.allowed_regions and "JM" not in s.allowed_regions
    assert s.allowed_number_types == DEFAULT_NUMBER_TYPES
    assert "TOLL_FREE" not in s.allowed_number_types
    assert "PREMIUM_RATE" not in s.allowed_number_types
    assert "{code}" in s.message_template


def test_settings_are_frozen_and_replace_validates_again() -> None:
    s = Settings(secret_key=KEY)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.code_length = 4  # type: ignore[misc]
    assert s.replace(code_length=8).code_length == 8
    assert s.code_length == 6
    with pytest.raises(ConfigurationError, match="SMS2FA_CODE_LENGTH"):
        s.replace(code_length=11)


def test_secrets_are_not_in_repr() -> None:
    s = Settings(
        secret_key=KEY,
        api_token="api-token-value-xyz-0123456789abcdef",
        flowroute_access_key="access-value-xyz",
        flowroute_secret_key="flowroute-secret-value-xyz",
        flowroute_number="12065550100",
    )
    text = repr(s) + str(s)
    for secret in (
        KEY,
        "api-token-value-xyz-0123456789abcdef",
        "access-value-xyz",
        "flowroute-secret-value-xyz",
    ):
        assert secret not in text
    assert "12065550100" in text  # not a secret: the sender's own number


# -- the environment ------------------------------------------------------------------------

# Every field: (environment name, raw value, expected field value). A new field without a row
# here fails test_every_field_has_a_documented_environment_name.
ENV_CASES: dict[str, tuple[str, str, Any]] = {
    "secret_key": ("SMS2FA_SECRET_KEY", KEY, (KEY,)),
    "development": ("SMS2FA_DEVELOPMENT", "yes", True),
    "api_token": ("SMS2FA_API_TOKEN", "tok-" + "3" * 32, "tok-" + "3" * 32),
    "sms_backend": ("SMS2FA_SMS_BACKEND", "flowroute", "flowroute"),
    "flowroute_access_key": ("FLOWROUTE_ACCESS_KEY", "acc", "acc"),
    "flowroute_secret_key": ("FLOWROUTE_SECRET_KEY", "sec", "sec"),
    "flowroute_number": ("FLOWROUTE_NUMBER", "12065550199", "12065550199"),
    "flowroute_url": ("SMS2FA_FLOWROUTE_URL", "http://127.0.0.1:9/v2.1", "http://127.0.0.1:9/v2.1"),
    "sms_timeout": ("SMS2FA_SMS_TIMEOUT", "2.5", 2.5),
    "database_url": ("SMS2FA_DATABASE_URL", "sqlite:///x.db", "sqlite:///x.db"),
    "code_length": ("SMS2FA_CODE_LENGTH", "8", 8),
    "code_expiration": ("SMS2FA_CODE_EXPIRATION", "300", 300),
    "retries_allowed": ("SMS2FA_RETRIES_ALLOWED", "5", 5),
    "org_name": ("SMS2FA_ORG_NAME", "Acme", "Acme"),
    "auth_message": ("SMS2FA_AUTH_MESSAGE", "{org_name}: {code}", "{org_name}: {code}"),
    "recipient_send_limit": ("SMS2FA_RECIPIENT_SEND_LIMIT", "7", 7),
    "recipient_send_window": ("SMS2FA_RECIPIENT_SEND_WINDOW", "1200", 1200),
    "address_send_limit": ("SMS2FA_ADDRESS_SEND_LIMIT", "9", 9),
    "address_send_window": ("SMS2FA_ADDRESS_SEND_WINDOW", "900", 900),
    "global_send_limit": ("SMS2FA_GLOBAL_SEND_LIMIT", "1000", 1000),
    "resend_cooldown": ("SMS2FA_RESEND_COOLDOWN", "0", 0),
    "max_failed_checks": ("SMS2FA_MAX_FAILED_CHECKS", "7", 7),
    "lockout_seconds": ("SMS2FA_LOCKOUT_SECONDS", "60", 60),
    "trusted_proxies": ("SMS2FA_TRUSTED_PROXIES", "2", 2),
    "allowed_regions": ("SMS2FA_ALLOWED_REGIONS", "US, CA", ("US", "CA")),
    "allowed_number_types": ("SMS2FA_ALLOWED_NUMBER_TYPES", "MOBILE", ("MOBILE",)),
    "uniform_errors": ("SMS2FA_UNIFORM_ERRORS", "true", True),
    "default_region": ("SMS2FA_DEFAULT_REGION", "ca", "CA"),
    "address_check_limit": ("SMS2FA_ADDRESS_CHECK_LIMIT", "50", 50),
    "address_check_window": ("SMS2FA_ADDRESS_CHECK_WINDOW", "300", 300),
    "lockout_max_seconds": ("SMS2FA_LOCKOUT_MAX_SECONDS", "3600", 3600),
    "allow_custom_message": ("SMS2FA_ALLOW_CUSTOM_MESSAGE", "1", True),
    "failed_auth_limit": ("SMS2FA_FAILED_AUTH_LIMIT", "7", 7),
    "failed_auth_window": ("SMS2FA_FAILED_AUTH_WINDOW", "60", 60),
}


@pytest.mark.parametrize("token", ["x", "short-token", "t" * 31, " " * 40])
def test_a_short_api_token_is_refused_without_repeating_it(token: str) -> None:
    with pytest.raises(ConfigurationError, match="SMS2FA_API_TOKEN") as refused:
        Settings.from_env({"SMS2FA_SECRET_KEY": KEY, "SMS2FA_API_TOKEN": token})
    assert "32 characters" in str(refused.value)
    if token.strip():
        assert token not in str(refused.value).replace("SMS2FA_API_TOKEN", "")
    assert Settings(secret_key=KEY, api_token="t" * 32).api_token == "t" * 32


def test_every_field_has_a_documented_environment_name() -> None:
    fields = {f.name for f in dataclasses.fields(Settings)}
    assert fields == set(ENV_CASES)
    for name, (variable, _, _) in ENV_CASES.items():
        assert env_name(name) == variable
    # The original service's names are kept.
    assert env_name("flowroute_access_key") == "FLOWROUTE_ACCESS_KEY"
    assert env_name("code_length") == "SMS2FA_CODE_LENGTH"


def test_from_env_reads_every_variable() -> None:
    environ = {variable: raw for variable, raw, _ in ENV_CASES.values()}
    # SMS2FA_DEFAULT_REGION is still read, and says it is deprecated.
    with pytest.warns(DeprecationWarning, match="default_region"):
        s = Settings.from_env(environ)
    for name, (variable, _, expected) in ENV_CASES.items():
        assert getattr(s, name) == expected, variable
    assert s.backend == "flowroute"


def test_from_env_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMS2FA_SECRET_KEY", KEY)
    monkeypatch.setenv("SMS2FA_CODE_LENGTH", "9")
    monkeypatch.setenv("SMS2FA_RETRIES_ALLOWED", "4")
    s = Settings.from_env()
    assert s.code_length == 9 and s.retries_allowed == 4 and s.secret_key == (KEY,)


def test_from_env_ignores_empty_variables() -> None:
    s = Settings.from_env({"SMS2FA_SECRET_KEY": KEY, "SMS2FA_CODE_LENGTH": ""})
    assert s.code_length == 6


def test_keyword_arguments_override_the_environment() -> None:
    environ = {"SMS2FA_SECRET_KEY": KEY, "SMS2FA_CODE_LENGTH": "8", "SMS2FA_ORG_NAME": "FromEnv"}
    s = Settings.from_env(environ, code_length=5, org_name="FromKwargs")
    assert s.code_length == 5
    assert s.org_name == "FromKwargs"
    # A value given as a keyword is not read from the environment at all.
    s = Settings.from_env({**environ, "SMS2FA_CODE_LENGTH": "abc"}, code_length=4)
    assert s.code_length == 4


@pytest.mark.parametrize(
    ("variable", "raw", "low", "high"),
    [
        ("SMS2FA_CODE_LENGTH", "3", 4, 10),
        ("SMS2FA_CODE_LENGTH", "11", 4, 10),
        ("SMS2FA_CODE_EXPIRATION", "29", 30, 3600),
        ("SMS2FA_CODE_EXPIRATION", "3601", 30, 3600),
        ("SMS2FA_RETRIES_ALLOWED", "0", 1, 20),
        ("SMS2FA_RETRIES_ALLOWED", "21", 1, 20),
        ("SMS2FA_MAX_FAILED_CHECKS", "101", 1, 100),
        ("SMS2FA_SMS_TIMEOUT", "0.5", 1, 60),
    ],
)
def test_out_of_range_names_variable_and_range(
    variable: str, raw: str, low: int, high: int
) -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env({"SMS2FA_SECRET_KEY": KEY, variable: raw})
    message = str(info.value)
    assert variable in message
    assert f"between {low} and {high}" in message
    assert raw in message


@pytest.mark.parametrize(
    "variable",
    [
        "SMS2FA_CODE_LENGTH",
        "SMS2FA_CODE_EXPIRATION",
        "SMS2FA_RETRIES_ALLOWED",
        "SMS2FA_SMS_TIMEOUT",
    ],
)
@pytest.mark.parametrize("raw", ["six", "6.5x", "0x10", " "])
def test_non_number_names_the_variable(variable: str, raw: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env({"SMS2FA_SECRET_KEY": KEY, variable: raw})
    assert variable in str(info.value)
    assert "number" in str(info.value)


def test_bad_boolean_names_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="SMS2FA_DEVELOPMENT"):
        Settings.from_env({"SMS2FA_SECRET_KEY": KEY, "SMS2FA_DEVELOPMENT": "maybe"})


@pytest.mark.parametrize("raw", ["USA", "XX", "1"])
def test_unknown_default_region_names_the_variable(raw: str) -> None:
    # The variable is deprecated (it warns first), and a bad value is still refused.
    with (
        pytest.raises(ConfigurationError, match="SMS2FA_DEFAULT_REGION"),
        pytest.warns(DeprecationWarning, match="default_region"),
    ):
        Settings.from_env({"SMS2FA_SECRET_KEY": KEY, "SMS2FA_DEFAULT_REGION": raw})


@pytest.mark.parametrize("raw", ["0", "false", "No", "off"])
def test_false_booleans(raw: str) -> None:
    assert (
        Settings.from_env({"SMS2FA_SECRET_KEY": KEY, "SMS2FA_DEVELOPMENT": raw}).development
        is False
    )


@pytest.mark.parametrize("value", ["6", 6.5, True, None])
def test_keyword_numbers_must_be_numbers(value: object) -> None:
    with pytest.raises(ConfigurationError, match=r"code_length \(SMS2FA_CODE_LENGTH\)"):
        Settings(secret_key=KEY, code_length=value)  # type: ignore[arg-type]


def test_keyword_out_of_range_names_field_and_variable() -> None:
    with pytest.raises(
        ConfigurationError,
        match=r"code_expiration \(SMS2FA_CODE_EXPIRATION\) must be between 30 "
        r"and 3600",
    ):
        Settings(secret_key=KEY, code_expiration=10)


def test_long_expiration_is_allowed_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="sms2fa"):
        Settings(secret_key=KEY, code_expiration=3600)
    assert any("600" in r.getMessage() for r in caplog.records)


# -- the secret key -------------------------------------------------------------------------


def test_secret_key_is_required() -> None:
    with pytest.raises(ConfigurationError, match="SMS2FA_SECRET_KEY"):
        Settings()
    with pytest.raises(ConfigurationError, match="SMS2FA_SECRET_KEY"):
        Settings.from_env({})
    with pytest.raises(ConfigurationError, match="SMS2FA_SECRET_KEY"):
        Settings(secret_key=" , ")


def test_short_secret_key_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="at least 16"):
        Settings(secret_key="short")
    with pytest.raises(ConfigurationError, match="at least 16"):
        Settings(secret_key=f"{KEY},short")


@pytest.mark.server
def test_development_makes_one_throw_away_key_per_machine_and_warns(
    caplog: pytest.LogCaptureFixture,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every worker in development mode shares one key (gunicorn -w 2 must verify a code
    sent by the other worker), kept in the data directory, readable by its owner only."""
    import subprocess
    import sys

    monkeypatch.setenv("SMS2FA_DATA_DIR", str(tmp_path / "data"))
    with caplog.at_level(logging.WARNING, logger="sms2fa"):
        a = Settings.from_env({"SMS2FA_DEVELOPMENT": "1"})
    b = Settings(development=True)
    assert len(a.secret_key) == 1 and len(a.secret_key[0]) >= 32
    assert a.secret_key == b.secret_key
    key_file = tmp_path / "data" / "development-secret-key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("development" in r.getMessage() for r in warnings)
    assert a.secret_key[0] not in caplog.text
    # Another process (another worker) gets the same key; another data directory another.
    script = (
        "from sms2fa_middleware import Settings\nprint(Settings(development=True).secret_key[0])"
    )
    other = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, "SMS2FA_DATA_DIR": str(tmp_path / "data")},
        check=True,
    )
    assert other.stdout.strip() == a.secret_key[0]
    monkeypatch.setenv("SMS2FA_DATA_DIR", str(tmp_path / "elsewhere"))
    assert Settings(development=True).secret_key != a.secret_key


def test_comma_list_rotates_keys() -> None:
    new, old = "new-key-0123456789abcdef", "old-key-0123456789abcdef"
    s = Settings.from_env({"SMS2FA_SECRET_KEY": f" {new} , {old} ,"})
    assert s.secret_key == (new, old)
    assert Settings(secret_key=[new, old]).secret_key == (new, old)


# -- message templates ----------------------------------------------------------------------


def test_default_template_uses_org_name() -> None:
    s = Settings(secret_key=KEY, org_name="Acme")
    assert "{org_name}" in s.message_template and "{code}" in s.message_template
    assert "{org_name}" not in Settings(secret_key=KEY).message_template


def test_custom_template_wins() -> None:
    s = Settings(secret_key=KEY, auth_message="{code} is your {org_name} code")
    assert s.message_template == "{code} is your {org_name} code"


@pytest.mark.parametrize(
    "template",
    [
        "Welcome!",  # no {code}
        "{org_name} welcomes you",  # no {code}
        "{code} {user}",  # unknown placeholder
        "{code} {0}",
        "{code} {}",
        "{code.real}",
        "{code[0]}",
        "{code",  # not a template at all
        "{code:x}",  # a format spec that fails (or bloats the message) at send time
        "{code:>999}",
        "{code!r}",
    ],
)
def test_bad_templates_are_refused(template: str) -> None:
    with pytest.raises(ConfigurationError, match="SMS2FA_AUTH_MESSAGE"):
        Settings(secret_key=KEY, auth_message=template)
    with pytest.raises(ConfigurationError):
        check_template(template)


def test_good_template_passes_and_may_escape_braces() -> None:
    assert check_template("{{literal}} {code} from {org_name}") == (
        "{{literal}} {code} from {org_name}"
    )


# -- SMS backend ----------------------------------------------------------------------------


def test_backend_is_flowroute_when_keys_are_set() -> None:
    s = Settings(secret_key=KEY, **FLOWROUTE)
    assert s.backend == "flowroute"
    sender = sender_from_settings(s)
    assert isinstance(sender, FlowrouteSender)
    sender.close()


def test_without_keys_production_refuses_to_fall_back_to_the_console() -> None:
    """Outside development, no provider and no backend named is an error naming the
    FLOWROUTE_* variables: a production process never prints codes by accident."""
    s = Settings(secret_key=KEY)
    with pytest.raises(ConfigurationError) as caught:
        sender_from_settings(s)
    for name in (
        "FLOWROUTE_ACCESS_KEY",
        "FLOWROUTE_SECRET_KEY",
        "FLOWROUTE_NUMBER",
        "SMS2FA_SMS_BACKEND=console",
    ):
        assert name in str(caught.value)


def test_backend_is_console_without_keys_in_development(caplog: pytest.LogCaptureFixture) -> None:
    s = Settings(secret_key=KEY, development=True)
    assert s.backend == "console"
    with caplog.at_level(logging.WARNING, logger="sms2fa"):
        assert isinstance(sender_from_settings(s), ConsoleSender)
    assert "console" in caplog.text.lower()


def test_console_may_be_chosen_explicitly_outside_development() -> None:
    s = Settings(secret_key=KEY, sms_backend="console")
    assert isinstance(sender_from_settings(s), ConsoleSender)


def test_backend_can_be_forced_to_console() -> None:
    s = Settings(secret_key=KEY, sms_backend="console", **FLOWROUTE)
    assert s.backend == "console"
    s = Settings.from_env(
        {
            "SMS2FA_SECRET_KEY": KEY,
            "SMS2FA_SMS_BACKEND": "console",
            "FLOWROUTE_ACCESS_KEY": "a",
            "FLOWROUTE_SECRET_KEY": "b",
            "FLOWROUTE_NUMBER": "12065550100",
        }
    )
    assert s.backend == "console"


def test_flowroute_backend_needs_its_keys() -> None:
    with pytest.raises(ConfigurationError, match="FLOWROUTE_ACCESS_KEY"):
        Settings(secret_key=KEY, sms_backend="flowroute")
    with pytest.raises(ConfigurationError, match="FLOWROUTE_NUMBER"):
        Settings(
            secret_key=KEY,
            sms_backend="flowroute",
            flowroute_access_key="a",
            flowroute_secret_key="b",
        )


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="SMS2FA_SMS_BACKEND"):
        Settings.from_env({"SMS2FA_SECRET_KEY": KEY, "SMS2FA_SMS_BACKEND": "twilio"})


@pytest.mark.parametrize("number", ["+12065550100", "1206555", "1-206-555-0100", "abc"])
def test_flowroute_number_must_be_digits(number: str) -> None:
    with pytest.raises(ConfigurationError, match="FLOWROUTE_NUMBER"):
        Settings(secret_key=KEY, **{**FLOWROUTE, "flowroute_number": number})


def test_unknown_number_type_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="allowed_number_types"):
        Settings(secret_key=KEY, allowed_number_types="MOBILE,CELLPHONE")


# -- the database URL: one clear line at start-up ------------------------------------------------


@pytest.mark.parametrize(
    "url", ["not a url", "postgresql://user:hunter2@:notaport/db", "://nothing"]
)
def test_a_malformed_database_url_is_one_clear_error_without_the_password(url: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings(secret_key=KEY, database_url=url)
    message = str(caught.value)
    assert "SMS2FA_DATABASE_URL" in message
    assert "hunter2" not in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "url, named",
    [("mysql://root@localhost/test", "'mysql'"), ("postgresql+asyncpg://localhost/db", "psycopg")],
)
def test_an_unsupported_database_says_what_to_use(url: str, named: str) -> None:
    with pytest.raises(ConfigurationError, match="SMS2FA_DATABASE_URL") as caught:
        Settings(secret_key=KEY, database_url=url)
    assert named in str(caught.value)


def test_a_postgresql_url_is_accepted_when_the_driver_is_installed() -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    assert Settings(secret_key=KEY, database_url=url).database_url == url


def test_default_region_in_settings_is_deprecated_for_the_middleware_option() -> None:
    with pytest.warns(DeprecationWarning, match="default_region"):
        assert Settings(secret_key=KEY, default_region="ca").default_region == "CA"
    from sms2fa_middleware.guard import GuardOptions

    assert GuardOptions(protect=["/a"], default_region="gb").default_region == "GB"
    with pytest.raises(ValueError, match="default_region"):
        GuardOptions(protect=["/a"], default_region="zz")
