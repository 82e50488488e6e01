"""The middleware's options, listed once: a frozen :class:`GuardOptions`, validated once.

Both adapters (``SMS2FAMiddleware(app, **options)``), :class:`~.core.Guard` and the Django
helper build it -- from keywords, or from a settings mapping such as Django's
``SMS2FA = {...}`` with :meth:`GuardOptions.from_mapping`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import languages
from ..policy import REVOCATION_RETENTION
from ..sms.bound import otp_domain as _otp_domain
from .csp import PageCsp, PageCspOption
from .origins import TrustedOrigins
from .rendering import Renderer
from .rules import Rule, split_protect

if TYPE_CHECKING:
    from ..identity import Identity
    from ..messages import Request
    from ..pages import Render

log = logging.getLogger("sms2fa")


DEFAULT_REMEMBER_FOR = 12 * 3600
#: A verified session longer than this is warned about at start-up: NIST SP 800-63B bounds
#: how long an AAL2 session may go without reauthentication by a day or less.
REMEMBER_FOR_WARNING = 24 * 3600
#: A verified session may last at most this long: revocations are purged after
#: REVOCATION_RETENTION, and a revoked session must expire before its revocation is gone
#: (a day's margin for other hosts' clocks).
MAX_REMEMBER_FOR = int(REVOCATION_RETENTION.total_seconds()) - 86400

#: A code at most this old (seconds) may change the number or make recovery codes.
DEFAULT_ACCOUNT_MAX_AGE = 300

#: Browsers keep a cookie at most 400 days (RFC 6265bis): trust lasts no longer.
MAX_TRUST_BROWSER_FOR = 400 * 86400


def _patterns(value: Iterable[str] | str) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def _entries(value: Any) -> tuple[Any, ...]:
    """``protect`` as a tuple of entries: one string, one rule (a mapping), or several."""
    return (value,) if isinstance(value, (str, Rule, Mapping)) else tuple(value)


def _region(value: str) -> str:
    from phonenumbers import SUPPORTED_REGIONS

    region = str(value).strip().upper()
    if region not in SUPPORTED_REGIONS:
        raise ValueError(
            f"default_region must be a two-letter region code such as 'US' or 'GB', got {value!r}"
        )
    return region


@dataclass(frozen=True)
class GuardOptions:
    """Everything a guard can be told; each one is in docs/options.md."""

    #: Pattern strings, and :class:`~.rules.Rule`\ s (or mappings ``{"path", "methods",
    #: "max_age", "idle", "when"}``). Normalised: the plain patterns only (a rule that says
    #: no more than its path is one); the others are in :attr:`rules`.
    protect: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    prefix: str = "/sms2fa"
    login_url: str | None = None
    remember_for: int = DEFAULT_REMEMBER_FOR
    cookie_name: str = "sms2fa"
    cookie_domain: str | None = None
    cookie_secure: bool | None = None
    public_api: bool = False
    template_dir: str | Path | None = None
    revocation_interval: float = 5.0
    enroll_url: str | None = None
    audience: str = ""
    private_responses: bool = True
    #: "guard": an anonymous request to a protected path is answered by the guard (login
    #: redirect or 401 LoginRequired); "app": it goes to the app, whose own login handling
    #: (its redirects, 401 bodies, WWW-Authenticate) stays as it was.
    anonymous: str = "guard"
    #: Origins a challenge post may come from besides the request's own (a proxy that
    #: rewrites Host, a sibling host): "https://app.example.com", "https://*.example.com".
    trusted_origins: tuple[str, ...] = ()
    #: Where the app logs out: path patterns that pass unverified even under a protect
    #: pattern (added to ``exclude``), so a user who cannot enter a code is never kept
    #: logged in. One pattern or several; the first without a ``*`` is also the challenge
    #: page's "Log out" link (a URL the app logs out at by GET, or its page with a logout
    #: button; a full URL is a link only).
    logout_url: str | tuple[str, ...] = ()
    #: The region a national-format number from ``identify`` is read in (two letters);
    #: None: the settings' (deprecated there), which defaults to "US".
    default_region: str | None = None
    #: The domain of the SMS's last line ``@domain #code`` (browsers' one-time-code
    #: autofill, bound to that site): None, the host of the request that asked for the
    #: code (the host the framework trusts: give the domain where nothing checks the Host
    #: header, or a forged Host binds the code to another site); False, no such line.
    otp_domain: str | bool | None = None
    #: The challenge page's Content-Security-Policy: None (ours), a mapping of directives
    #: to sources to add, or a policy string; nonce'd scripts, ``frame-ancestors 'none'``
    #: and ``form-action 'self'`` stay whatever it says (:mod:`.csp`). Not hashed (a dict
    #: cannot be): the derived :attr:`csp` stands for it.
    page_csp: PageCspOption = field(default=None, hash=False)
    #: Seconds a verified session may go without a protected request before it must enter
    #: a code again (None: no bound); a rule's own ``idle`` is stricter where it matches.
    idle: int | None = None
    #: The language of the pages and the SMS, over ``Accept-Language``: a tag ("es",
    #: "pt-BR"), or a callable ``(request, identity)`` giving the user's saved language or
    #: None (then the header chooses); a tag that is not shipped is ignored.
    language: str | Callable[[Request, Identity | None], str | None] | None = None
    #: Seconds a browser stays trusted when its user ticks "Trust this browser" with a right
    #: code: a new login from it then needs no code until then (None or 0: no such box).
    trust_browser_for: int | None = None
    #: Called with every audit event (:class:`~..engine.audit.AuditEvent`: no code, the
    #: number masked), synchronously; what it raises is logged, never the request's.
    on_event: Callable[[Any], None] | None = field(default=None, hash=False, compare=False)
    #: Turns on ``{prefix}/enroll``: a logged-in user with no phone on file enters a number,
    #: gets a code on it, and once the code is right this is called with ``(auth_id,
    #: e164_number)`` for the app to store the number (sync, or async run to completion).
    on_enroll: Callable[[str, str], Any] | None = field(default=None, hash=False, compare=False)
    #: Seconds: how recent the code must be to change the phone number (``{prefix}/phone``)
    #: or make recovery codes; an older verified session is challenged first (a step-up,
    #: as a rule's ``max_age``).
    account_max_age: int = DEFAULT_ACCOUNT_MAX_AGE
    #: Renders the pages the middleware serves with the app's own templates: ``render(page,
    #: context)`` gives the page's HTML, or None for the built-in page (sync or async;
    #: :mod:`sms2fa_middleware.pages`). The adapters' helpers make one: ``flask_render``,
    #: ``jinja2_render``, ``django_render``.
    render: Render | None = field(default=None, hash=False, compare=False)
    #: Derived: the ``protect`` rules that say more than their path.
    rules: tuple[Rule, ...] = field(init=False, repr=False)
    #: Derived: ``page_csp`` checked and made (a ValueError names what is wrong in it).
    csp: PageCsp = field(init=False, repr=False)
    #: Derived: ``trusted_origins`` parsed.
    origins: TrustedOrigins = field(init=False, repr=False)
    #: Derived: the cookie is good for this app only (its name, its prefix and ``audience``).
    cookie_audience: str = field(init=False, repr=False)
    #: Derived: the pages, made by ``render`` or built in, with ``csp`` and the log-out link.
    renderer: Renderer = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        prefix = "/" + str(self.prefix).strip("/")
        if prefix == "/":
            raise ValueError("prefix must not be '/'; the app lives there")
        protect, rules = split_protect(_entries(self.protect))
        if not isinstance(self.logout_url, (str, tuple, list)):
            raise ValueError("logout_url must be a path (or URL), or a list of them")
        logout = _patterns(self.logout_url)
        for url in logout:
            if not url.startswith(("/", "https://", "http://")):
                raise ValueError(f"logout_url must start with '/' (or be a full URL): {url!r}")
        exclude = _patterns(self.exclude)
        # A full URL (an identity provider's logout) is a link only: nothing here to open.
        exclude += tuple(p for p in logout if p.startswith("/") and p not in exclude)
        if not protect and not rules:
            raise ValueError("protect=[...] must name at least one path prefix or pattern")
        remember_for = int(self.remember_for)
        if not 0 < remember_for <= MAX_REMEMBER_FOR:
            raise ValueError(
                f"remember_for must be a positive number of seconds, at most "
                f"{MAX_REMEMBER_FOR} (30 days: revocations are kept 31)"
            )
        idle = self.idle
        if idle is not None and (isinstance(idle, bool) or not isinstance(idle, int) or idle <= 0):
            raise ValueError(f"idle must be a positive number of seconds or None, got {idle!r}")
        trust = self.trust_browser_for
        if trust is not None and (
            isinstance(trust, bool)
            or not isinstance(trust, int)
            or not 0 <= trust <= MAX_TRUST_BROWSER_FOR
        ):
            raise ValueError(
                f"trust_browser_for must be a number of seconds from 0 (off) to "
                f"{MAX_TRUST_BROWSER_FOR} (400 days), or None, got {trust!r}"
            )
        age = self.account_max_age
        if isinstance(age, bool) or not isinstance(age, int) or age <= 0:
            raise ValueError(f"account_max_age must be a positive number of seconds, got {age!r}")
        if self.on_event is not None and not callable(self.on_event):
            raise ValueError("on_event must be a callable (one argument: the event) or None")
        if self.on_enroll is not None and not callable(self.on_enroll):
            raise ValueError("on_enroll must be a callable (auth_id, e164_number) or None")
        if self.render is not None and not callable(self.render):
            raise ValueError("render must be a callable (page, context) -> HTML or None, or None")
        if remember_for > REMEMBER_FOR_WARNING:
            log.warning(
                "sms2fa: remember_for is %d s: a verified session then lasts more than a day "
                "without a new code, longer than NIST SP 800-63B allows at AAL2; consider a "
                "shorter remember_for, and idle=",
                remember_for,
            )
        if self.revocation_interval < 0:
            raise ValueError("revocation_interval must not be negative")
        if self.anonymous not in ("guard", "app"):
            raise ValueError("anonymous must be 'guard' or 'app'")
        for name in ("login_url", "enroll_url"):
            url = getattr(self, name)
            if url is not None and not isinstance(url, str):
                raise ValueError(f"{name} must be a str or None")
        if isinstance(self.language, str) and languages.shipped(self.language) is None:
            raise ValueError(
                f"language must be one of {', '.join(languages.SHIPPED)} (or a callable), "
                f"got {self.language!r}"
            )
        if not (self.language is None or isinstance(self.language, str) or callable(self.language)):
            raise ValueError("language must be a language tag, a callable or None")
        set_ = object.__setattr__  # frozen: normalised values are set once, here
        if self.otp_domain is not None and self.otp_domain is not False:
            domain = _otp_domain(self.otp_domain) if isinstance(self.otp_domain, str) else None
            if domain is None:
                raise ValueError(
                    "otp_domain must be a domain name such as 'example.com' (no scheme, port "
                    f"or IP address), None (the request's host) or False, got {self.otp_domain!r}"
                )
            set_(self, "otp_domain", domain)
        if self.default_region is not None:
            set_(self, "default_region", _region(self.default_region))
        set_(self, "prefix", prefix)
        set_(self, "protect", protect)
        set_(self, "rules", rules)
        set_(self, "exclude", exclude)
        set_(self, "logout_url", logout)
        set_(self, "remember_for", remember_for)
        trusted = _patterns(self.trusted_origins)
        set_(self, "trusted_origins", trusted)
        set_(self, "origins", TrustedOrigins.parse(trusted))
        set_(self, "csp", PageCsp.from_option(self.page_csp, rendered=self.render is not None))
        set_(self, "cookie_audience", "\x00".join((self.cookie_name, prefix, self.audience)))
        set_(self, "renderer", Renderer(self.render, self.csp, self.logout_link, self.template_dir))

    def spoken(self, request: Request, identity: Identity | None) -> str:
        """The shipped language ``request`` is answered in: the ``language`` option's (the
        user's saved one), else the best of ``Accept-Language``, else English."""
        chosen = self.language
        if callable(chosen):
            try:
                chosen = chosen(request, identity)
            except Exception as exc:  # the app's bug must not cost the user the page
                log.error("sms2fa: the language option raised %s", type(exc).__name__)
                chosen = None
        return languages.choose(chosen, request.header("accept-language"))

    @property
    def logout_link(self) -> str | None:
        """The challenge page's "Log out" link: the first ``logout_url`` without a ``*``."""
        return next((url for url in self.logout_url if "*" not in url), None)

    @classmethod
    def names(cls) -> frozenset[str]:
        """The keywords an app may give."""
        return frozenset(f.name for f in dataclasses.fields(cls) if f.init)

    @classmethod
    def from_mapping(
        cls, mapping: Mapping[str, Any], *, ignore: Iterable[str] = ()
    ) -> GuardOptions:
        """Options from a settings dict (``SMS2FA = {...}``). An unknown key is an error that
        names it (a typo must not silently loosen protection); keys in ``ignore`` are the
        caller's own (``identify``, ``settings``)."""
        known, skipped = cls.names(), set(ignore)
        unknown = sorted(k for k in mapping if k not in known and k not in skipped)
        if unknown:
            raise ValueError(
                f"unknown sms2fa option(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return cls(**{k: v for k, v in mapping.items() if k in known})

    @classmethod
    def from_keywords(cls, options: Mapping[str, Any]) -> GuardOptions:
        """Options from an adapter's keywords: an unknown one is a TypeError, as for any
        function."""
        unknown = sorted(set(options) - cls.names())
        if unknown:
            raise TypeError(f"unexpected keyword argument(s): {', '.join(unknown)}")
        return cls(**options)


__all__ = [
    "DEFAULT_ACCOUNT_MAX_AGE",
    "DEFAULT_REMEMBER_FOR",
    "MAX_REMEMBER_FOR",
    "MAX_TRUST_BROWSER_FOR",
    "GuardOptions",
]
