"""``Guard``: the one object the adapters (WSGI, ASGI, Django) call. A facade: each job lives
in its own module -- paths, cookies, sessions, CSRF, the decision, the challenge flows, the
routes under the prefix -- and this class wires them together."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .. import Identity, text
from ..engine import Verifier
from ..errors import StoreUnavailable
from ..messages import Request, Response
from ..settings import Settings
from .cookies import Cookies
from .csrf import Csrf
from .decision import Answer, Decider, Verdict
from .flows.browsers import BrowsersFlow
from .flows.enroll import EnrollFlow
from .flows.html import HtmlFlow
from .flows.json import JsonFlow
from .flows.phone import PhoneFlow
from .flows.recovery import RecoveryFlow
from .identity import Identities
from .options import GuardOptions
from .paths import PROTECTED, PathPolicy
from .refusals import ANY, Fresh, Refusals
from .responses import (
    internal_error,
    is_htmx,
    is_navigation,
    request_target,
    unavailable,
    wants_html,
)
from .routes import PrefixRoutes, mounted_api
from .rules import Need
from .sending import CodeSender
from .sessions import Sessions, SessionSigner
from .trust import GuardTrust

log = logging.getLogger("sms2fa")

#: The shortest code the middleware sends (the HTTP API keeps 4 for compatibility).
MIN_CODE_LENGTH = 6


class Guard:
    """What a request gets: pass through, a challenge, a verified pass, or an API answer.

    ``Guard(settings, protect=[...], ...)`` takes the keywords of :class:`GuardOptions`
    (or ``options=``); ``verifier=`` shares a Verifier; ``paths=`` a PathPolicy built from
    the same options (the adapters build it before the guard).
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        verifier: Verifier | None = None,
        options: GuardOptions | None = None,
        paths: PathPolicy | None = None,
        **keywords: Any,
    ) -> None:
        if options is not None and keywords:
            raise TypeError("give options= or keyword options, not both")
        self.options = options if options is not None else GuardOptions.from_keywords(keywords)
        opts = self.options
        if verifier is None:
            verifier = Verifier(settings or Settings.from_env(), on_event=opts.on_event)
        elif opts.on_event is not None:
            if verifier.audit.on_event not in (None, opts.on_event):
                raise ValueError("on_event: the shared verifier has a hook of its own already")
            verifier.audit.on_event = opts.on_event
        self.verifier = verifier
        self.settings = self.verifier.settings
        if self.settings.code_length < MIN_CODE_LENGTH:
            # NIST SP 800-63B: an out-of-band secret has at least 6 digits. The HTTP API keeps
            # 4-10 for the old service's callers; a login second factor does not.
            raise ValueError(
                f"SMS2FA_CODE_LENGTH is {self.settings.code_length}: the middleware needs codes "
                f"of at least {MIN_CODE_LENGTH} digits (the HTTP API alone accepts 4-10)"
            )
        self.paths = paths or PathPolicy(opts.protect, opts.exclude, opts.prefix, opts.rules)
        #: The adapters' hot path: what classify() said about paths seen before.
        self.kinds = self.paths.kinds
        self.cookies = Cookies(opts.cookie_name, opts.cookie_domain, opts.cookie_secure)
        self.cookie_audience = opts.cookie_audience
        self.sessions = Sessions(
            self.verifier,
            self.cookies,
            opts.cookie_audience,
            opts.remember_for,
            opts.revocation_interval,
        )
        self.identity = Identities(opts.default_region or self.settings.default_region)
        self.refusals = Refusals(opts)
        sender = CodeSender(self.verifier, opts.otp_domain)
        csrf = Csrf(self.settings.secret_keys, self.cookies, opts.origins)
        #: Trusted browsers (``trust_browser_for``; off: every method says no).
        self.trust = GuardTrust(
            self.verifier,
            self.cookies,
            self.sessions,
            opts.cookie_audience,
            opts.trust_browser_for,
            self.settings.trusted_proxies,
        )
        self.html = HtmlFlow(
            self.verifier,
            opts,
            self.cookies,
            self.sessions,
            csrf,
            self.refusals,
            sender,
            self.trust,
        )
        self.json = JsonFlow(
            self.verifier, opts, self.sessions, self.refusals, sender, self.html.binding, self.trust
        )
        recovery = RecoveryFlow(self.verifier, opts, self.sessions, csrf, self.refusals)
        browsers = (
            BrowsersFlow(opts, self.sessions, csrf, self.refusals, self.trust)
            if self.trust.enabled
            else None
        )
        enroll = (
            EnrollFlow(
                self.verifier,
                opts,
                self.cookies,
                self.sessions,
                csrf,
                self.refusals,
                sender,
                self.html,
                opts.default_region or self.settings.default_region,
                opts.on_enroll,
            )
            if opts.on_enroll is not None
            else None
        )
        self.routes = PrefixRoutes(
            opts.prefix,
            self.html,
            self.json,
            mounted_api(self.verifier, opts),
            recovery,
            browsers,
            enroll,
            PhoneFlow(enroll) if enroll is not None else None,
        )
        #: THE decision for a protected or prefix request (decision.py); ``anonymous="app"``
        #: sends anonymous requests to protected paths to the app.
        self.decide = Decider(
            self.sessions.session,
            opts.anonymous == "app",
            opts.private_responses,
            now_ms=self.sessions.now_ms,
            touch=self.sessions.touch,
            idle=opts.idle,
            tracks_idle=any(rule.idle is not None for rule in opts.rules),
        )
        # Bound once: the adapters call these on every protected request.
        self.classify, self.remember = self.paths.classify, self.paths.remember
        #: For a RULED path: (PROTECTED or PASS, its Need) by method (PathPolicy.demand).
        self.demand = self.paths.demand
        self.revocations_stale = self.sessions.revocations_stale
        self.refresh_revocations = self.sessions.refresh_revocations

    def is_verified(self, cookie_header: str, https: bool, identity: Identity | None) -> bool:
        """Whether this Cookie header holds a live verified session for ``identity``. A method,
        not a bound attribute, so that ``testing.assume_verified`` reaches every guard."""
        return self.sessions.is_verified(cookie_header, https, identity)

    @property
    def signer(self) -> SessionSigner:
        return self.sessions.signer

    def cookie_for(self, https: bool) -> str:
        """The verified-session cookie's name (``__Host-`` when the browser enforces it)."""
        return self.cookies.session(https)

    def revoke(self, auth_id: str, *, browsers: bool = True) -> None:
        """End ``auth_id``'s verified sessions at once, here and on every worker and host
        (the store's revocation signal), and its trusted browsers (``browsers=False``: a
        logout, after which a trusted browser may still log in anew without a code).
        StoreUnavailable if the store cannot be written: they are ended here, but other
        hosts do not know (tell the user, or retry)."""
        self.sessions.revoke(auth_id, browsers)

    def revoke_session(self, cookie_header: str) -> list[tuple[str, str]]:
        """End the verified session in this Cookie header only ("log out this device");
        the Set-Cookie headers that delete it, for the response. Raises as :meth:`revoke`
        does."""
        values, deletions = self.cookies.sessions_in(cookie_header)
        self.sessions.revoke_sessions(values)
        return deletions

    def language(self, request: Request, identity: Identity | None) -> str:
        """The shipped language this request is answered in: the ``language`` option's
        (the user's saved one), else the best of ``Accept-Language``, else English."""
        return self.options.spoken(request, identity)

    @contextmanager
    def speaking(self, request: Request, identity: Identity | None) -> Iterator[None]:
        """Everything said inside -- pages, errors, the SMS -- in this request's language,
        and every page made by this guard's renderer (the ``render`` hook, ``page_csp``):
        context variables, so concurrent requests keep their own."""
        with text.speaking(self.language(request, identity)), self.options.renderer.active():
            yield

    def answer(self, verdict: Verdict, request: Request) -> Response:
        """The guard's own response for a verdict that does not go to the app (may do I/O:
        off the event loop on ASGI)."""
        with self.speaking(request, verdict.identity):
            if verdict.answer is Answer.IDENTIFY_FAILED:  # logged when decided
                return internal_error(request)
            if verdict.answer is Answer.PREFIX:
                return self.routes.handle(request, verdict.identity)
            return self._deny(request, verdict.identity, verdict.max_age, verdict.idle)

    def deny(
        self,
        request: Request,
        identity: Identity | None,
        max_age: int | None = None,
        idle: int | None = None,
    ) -> Response:
        """The answer to a protected request without a verified session, or (``max_age``)
        with one older than a rule allows, or (``idle``) unused for longer than allowed
        (may do I/O: run it off the event loop)."""
        with self.speaking(request, identity):
            return self._deny(request, identity, max_age, idle)

    def _deny(
        self,
        request: Request,
        identity: Identity | None,
        max_age: int | None = None,
        idle: int | None = None,
    ) -> Response:
        fresh = Fresh(max_age, idle)
        try:
            if self.sessions.held_back(
                request.header("cookie"), request.scheme in ("https", "wss"), identity
            ):
                # A valid session, but revocations could not be read lately: it may have
                # been revoked. As when the store is down: 503, not a new challenge.
                raise StoreUnavailable()
            if fresh == ANY and identity is not None and identity.recipient is not None:
                # No verified session at all (a stale one is a step-up: a code, always):
                # a trusted browser gets a fresh one and asks again (307 keeps a POST).
                cookie = self.trust.login(request, identity) if self.trust.enabled else None
                if cookie is not None:
                    return Response(
                        307,
                        b"",
                        [
                            ("location", request_target(request)),
                            ("cache-control", "no-store"),
                            cookie,
                        ],
                    )
            target = self.refusals.target(request)
            if identity is None:
                return self.refusals.anonymous(request, target)
            if identity.recipient is None:
                return self.refusals.no_phone(request, target)
            if is_htmx(request):
                return self.html.htmx(request, identity, target, fresh)
            if is_navigation(request):
                return self.html.start(request, identity, target, fresh=fresh)
            if wants_html(request):  # a form post, or another browser request: not kept
                return self.html.start(request, identity, target, lost=True, fresh=fresh)
            return self.refusals.verification_required(request, target, fresh)
        except StoreUnavailable as exc:
            return unavailable(request, exc)

    def step_up(self, request: Request, identity: Identity, max_age: int) -> Verdict | None:
        """A route's own ``max_age`` (``verified_required(max_age=300)``): None when the
        session the middleware verified has a code at most ``max_age`` seconds old, else
        the verdict a rule's ``max_age`` gets -- the same decision, no I/O. Its answer is
        ``answer(verdict, request)`` (a browser: the challenge, a code is sent; an API
        client: 401 with RFC 9470's header), which may do I/O: off the event loop."""
        https = request.scheme in ("https", "wss")
        verdict = self.decide(
            PROTECTED, identity, None, request.header("cookie"), https, Need(max_age=max_age)
        )
        return None if verdict.to_app else verdict

    def handle_prefix(self, request: Request, identity: Identity | None) -> Response:
        """Answer a request under the prefix: the challenge page, its forms, or the API."""
        with self.speaking(request, identity):
            return self.routes.handle(request, identity)


__all__ = ["Guard"]
