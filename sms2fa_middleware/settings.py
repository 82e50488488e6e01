"""Settings: one frozen object, built from keyword arguments or from the environment.

Every value is checked once, when the object is built, so a bad configuration stops the
process at start-up with a message naming the setting (and its environment variable) and
the allowed range -- never on the first request.

Defaults are the secure ones (6 digits, 10 minutes, 3 guesses, budgets on, North American
mobile numbers only); loosening any of them is a deliberate, visible act.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import string
import warnings
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigurationError
from .store.files import development_key
from .store.urls import check_database_url

log = logging.getLogger("sms2fa")

#: North American Numbering Plan regions Flowroute delivers to: the US, Canada and the US
#: territories. Caribbean NANP countries (a favourite of SMS pumping) are left out on purpose.
DEFAULT_REGIONS = ("US", "CA", "PR", "VI", "GU", "AS", "MP")
#: ``phonenumbers`` cannot tell mobile from fixed line in North America, so both pass;
#: toll-free, premium-rate, shared-cost, VoIP, pager, ... are refused.
DEFAULT_NUMBER_TYPES = ("MOBILE", "FIXED_LINE_OR_MOBILE")
DEFAULT_FLOWROUTE_URL = "https://api.flowroute.com/v2.1"

# Environment names kept from the original service; every other field is SMS2FA_<NAME>.
_ENV_NAMES = {
    "flowroute_access_key": "FLOWROUTE_ACCESS_KEY",
    "flowroute_secret_key": "FLOWROUTE_SECRET_KEY",
    "flowroute_number": "FLOWROUTE_NUMBER",
}


def env_name(field_name: str) -> str:
    """The environment variable that sets ``field_name``."""
    return _ENV_NAMES.get(field_name, "SMS2FA_" + field_name.upper())


def _range(low: int, high: int) -> dict[str, Any]:
    return {"range": (low, high)}


@dataclass(frozen=True)
class Settings:
    """Every knob of the engine. Build with ``Settings(**kwargs)`` or ``Settings.from_env()``."""

    # Secrets and mode
    #: One key, or several to rotate (a tuple, or a comma list): the first one signs.
    secret_key: str | tuple[str, ...] = field(default=(), repr=False)
    development: bool = False
    api_token: str | None = field(default=None, repr=False)

    # SMS provider
    sms_backend: str | None = None  # "flowroute" | "console"; None picks by the keys present
    flowroute_access_key: str | None = field(default=None, repr=False)
    flowroute_secret_key: str | None = field(default=None, repr=False)
    flowroute_number: str | None = None
    flowroute_url: str = DEFAULT_FLOWROUTE_URL
    sms_timeout: float = field(default=10.0, metadata=_range(1, 60))

    # Storage: empty means a SQLite file in the data directory (store/urls.py)
    database_url: str = ""

    # Codes
    code_length: int = field(default=6, metadata=_range(4, 10))
    code_expiration: int = field(default=600, metadata=_range(30, 3600))
    retries_allowed: int = field(default=3, metadata=_range(1, 20))
    org_name: str = ""
    auth_message: str | None = None

    # Budgets (all kept in the store, so every worker and host shares them); 0 turns one off.
    recipient_send_limit: int = field(default=5, metadata=_range(0, 1000))
    recipient_send_window: int = field(default=600, metadata=_range(1, 86400))
    address_send_limit: int = field(default=20, metadata=_range(0, 100000))
    address_send_window: int = field(default=600, metadata=_range(1, 86400))
    global_send_limit: int = field(default=0, metadata=_range(0, 10_000_000))  # per hour
    resend_cooldown: int = field(default=30, metadata=_range(0, 3600))
    max_failed_checks: int = field(default=10, metadata=_range(1, 100))
    lockout_seconds: int = field(default=900, metadata=_range(1, 86400))
    trusted_proxies: int = field(default=0, metadata=_range(0, 10))

    # Checks per client address (the HTTP API only), and escalating locks: each lock after
    # max_failed_checks failures lasts twice the one before, from lockout_seconds up to
    # lockout_max_seconds; a right code starts the escalation again.
    address_check_limit: int = field(default=100, metadata=_range(0, 1_000_000))
    address_check_window: int = field(default=600, metadata=_range(1, 86400))
    lockout_max_seconds: int = field(default=86400, metadata=_range(1, 30 * 86400))
    # Wrong API tokens per client address (the HTTP API only): past the limit, every call
    # from that address is refused until its window ends, whatever token it sends.
    failed_auth_limit: int = field(default=10, metadata=_range(0, 1_000_000))
    failed_auth_window: int = field(default=600, metadata=_range(1, 86400))

    # A per-request `message` in the API: off unless enabled, and then one SMS segment at most.
    allow_custom_message: bool = False

    # Pumping defence
    allowed_regions: str | tuple[str, ...] = DEFAULT_REGIONS  # a tuple, or a comma list
    allowed_number_types: str | tuple[str, ...] = DEFAULT_NUMBER_TYPES

    # Enumeration: unknown / expired / wrong / locked answers look alike.
    uniform_errors: bool = False

    # The middleware's identify(): the region a national-format number ("(206) 555-0123")
    # is read in. Numbers with a "+" keep their own country code.
    default_region: str = "US"

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def secret_keys(self) -> tuple[str, ...]:
        """The secret keys, the signing one first (``secret_key`` as a tuple)."""
        return tuple(self.secret_key)  # a tuple already, once __post_init__ has run

    @property
    def flowroute_configured(self) -> bool:
        return bool(
            self.flowroute_access_key and self.flowroute_secret_key and self.flowroute_number
        )

    @property
    def backend(self) -> str:
        """The SMS backend in force: the one asked for, else flowroute when keys are set."""
        if self.sms_backend:
            return self.sms_backend
        return "flowroute" if self.flowroute_configured else "console"

    def require_provider(self) -> Settings:
        """These settings, if they can send codes; else a ConfigurationError naming the
        FLOWROUTE_* variables. Outside development the console must be asked for by name: a
        production process never falls back to printing codes. Checked when a sender is made;
        call it yourself to fail before anything else starts."""
        if self.sms_backend is None and not self.flowroute_configured and not self.development:
            raise ConfigurationError(
                "no SMS provider is configured: set FLOWROUTE_ACCESS_KEY, FLOWROUTE_SECRET_KEY "
                "and FLOWROUTE_NUMBER (or SMS2FA_SMS_BACKEND=console to print codes, for "
                "development)"
            )
        return self

    @property
    def message_template(self) -> str:
        if self.auth_message:
            return self.auth_message
        if self.org_name:
            return "Your {org_name} verification code is {code}. Don't share it with anyone."
        return "Your verification code is {code}. Don't share it with anyone."

    def replace(self, **changes: Any) -> Settings:
        """A copy with some values changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build from the environment (names in docs/settings.md); keyword arguments win."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name in overrides:
                continue  # keyword arguments win, even over a malformed variable
            raw = environ.get(env_name(f.name))
            if raw is None or raw == "":
                continue
            values[f.name] = _convert(f, raw)
        values.update(overrides)
        return cls(**values)


def _validate(settings: Settings) -> None:
    """Check every value once, in a fixed order; store the normalised forms."""
    _normalise_lists(settings)
    _check_ranges(settings)
    object.__setattr__(settings, "database_url", check_database_url(settings.database_url))
    if settings.lockout_max_seconds < settings.lockout_seconds:
        raise ConfigurationError(
            "lockout_max_seconds (SMS2FA_LOCKOUT_MAX_SECONDS) must be at least "
            f"lockout_seconds (SMS2FA_LOCKOUT_SECONDS), {settings.lockout_seconds}"
        )
    _check_sms(settings)
    _check_phone_policy(settings)
    _check_secret(settings)
    _check_api_token(settings)
    if settings.code_expiration > 600:
        log.warning(
            "sms2fa: codes live %ss; NIST SP 800-63B allows at most 600", settings.code_expiration
        )


#: An API token shorter than this is refused: it must be as unguessable as a secret key.
MIN_API_TOKEN_LENGTH = 32


def _check_api_token(settings: Settings) -> None:
    token = settings.api_token
    if token is not None and len(token.strip()) < MIN_API_TOKEN_LENGTH:
        # The value is never repeated: it is a secret, even a bad one.
        raise ConfigurationError(
            f"api_token (SMS2FA_API_TOKEN) must be at least {MIN_API_TOKEN_LENGTH} characters; "
            "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )


def _normalise_lists(settings: Settings) -> None:
    """Accept the friendly forms ("a,b" strings, lists) and store tuples."""
    for name in ("secret_key", "allowed_regions", "allowed_number_types"):
        value = getattr(settings, name)
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",")]
        object.__setattr__(settings, name, tuple(v for v in value if v))


def _check_ranges(settings: Settings) -> None:
    for f in dataclasses.fields(settings):
        if "range" not in f.metadata:
            continue
        low, high = f.metadata["range"]
        value = getattr(settings, f.name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigurationError(f"{f.name} ({env_name(f.name)}) must be a number")
        if str(f.type) == "int" and not isinstance(value, int):
            raise ConfigurationError(
                f"{f.name} ({env_name(f.name)}) must be a whole number, got {value}"
            )
        if not low <= value <= high:
            raise ConfigurationError(
                f"{f.name} ({env_name(f.name)}) must be between {low} and {high}, got {value}"
            )


def _check_sms(settings: Settings) -> None:
    if settings.sms_backend not in (None, "flowroute", "console"):
        raise ConfigurationError(
            f"sms_backend ({env_name('sms_backend')}) must be 'flowroute' or 'console'"
        )
    if settings.sms_backend == "flowroute" and not settings.flowroute_configured:
        raise ConfigurationError(
            "sms_backend 'flowroute' needs FLOWROUTE_ACCESS_KEY, FLOWROUTE_SECRET_KEY "
            "and FLOWROUTE_NUMBER"
        )
    if settings.flowroute_number is not None and not (
        settings.flowroute_number.isdigit() and 10 <= len(settings.flowroute_number) <= 15
    ):
        raise ConfigurationError("flowroute_number (FLOWROUTE_NUMBER) must be digits only")
    check_template(settings.message_template, "auth_message (SMS2FA_AUTH_MESSAGE)")


def _check_phone_policy(settings: Settings) -> None:
    unknown_types = set(settings.allowed_number_types) - set(_number_type_names())
    if unknown_types:
        raise ConfigurationError(
            f"allowed_number_types has unknown types {sorted(unknown_types)}; "
            f"choose from {sorted(_number_type_names())}"
        )
    if settings.default_region != "US":
        warnings.warn(
            "Settings.default_region (SMS2FA_DEFAULT_REGION) is deprecated: it is "
            "the middleware's, so give default_region= to SMS2FAMiddleware (or "
            "the SMS2FA dict)",
            DeprecationWarning,
            stacklevel=5,
        )
    if isinstance(settings.default_region, str):
        region = settings.default_region.strip().upper()
        object.__setattr__(settings, "default_region", region)
    if settings.default_region not in _supported_regions():
        raise ConfigurationError(
            f"default_region ({env_name('default_region')}) must be a two-letter region "
            f"code such as 'US' or 'CA', got {settings.default_region!r}"
        )


def _check_secret(settings: Settings) -> None:
    if not settings.secret_key:
        if not settings.development:
            raise ConfigurationError(
                "secret_key (SMS2FA_SECRET_KEY) is required; set it to a long random "
                "string, or turn on development mode (SMS2FA_DEVELOPMENT=1) to use a "
                "throw-away key"
            )
        object.__setattr__(settings, "secret_key", (development_key(),))
    elif any(len(k) < 16 for k in settings.secret_key) and not settings.development:
        raise ConfigurationError("secret_key (SMS2FA_SECRET_KEY) must be at least 16 characters")


def _convert(f: dataclasses.Field[Any], raw: str) -> Any:
    kind = str(f.type)
    name = env_name(f.name)
    if kind == "bool":
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigurationError(f"{name} must be true or false, got {raw!r}")
    if kind in ("int", "float"):
        try:
            return int(raw) if kind == "int" else float(raw)
        except ValueError:
            raise ConfigurationError(f"{name} must be a number, got {raw!r}") from None
    return raw


def check_template(template: str, what: str = "message") -> str:
    """Refuse a message template without ``{code}`` or with unknown placeholders."""
    try:
        fields = [
            (name, spec, conversion)
            for _, name, spec, conversion in string.Formatter().parse(template)
            if name is not None
        ]
    except ValueError as exc:
        raise ConfigurationError(f"{what} is not a valid template: {exc}") from None
    names = {name for name, _, _ in fields}
    # A format spec or conversion ("{code:x}", "{code:>99999999}", "{code!r}") would fail or
    # bloat the message at send time, and a per-request message comes from the caller.
    if any(spec or conversion for _, spec, conversion in fields):
        raise ConfigurationError(
            f"{what} may use {{code}} and {{org_name}} only as they are, without "
            "format specs or conversions"
        )
    if "code" not in names:
        raise ConfigurationError(f"{what} must contain the placeholder {{code}}")
    unknown = names - {"code", "org_name"}
    if unknown:
        raise ConfigurationError(
            f"{what} may only use {{code}} and {{org_name}}, not {sorted(unknown)}"
        )
    return template


def _number_type_names() -> Iterable[str]:
    from phonenumbers import PhoneNumberType

    return [n for n in vars(PhoneNumberType) if n.isupper()]


def _supported_regions() -> Collection[str]:
    from phonenumbers import SUPPORTED_REGIONS

    return SUPPORTED_REGIONS
