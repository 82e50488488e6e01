"""The middleware's policy, framework-neutral: which paths need a verified session, the
verified-session cookie, the challenge page and its form, and the mounted API.

The WSGI and ASGI adapters only translate requests and call :class:`Guard`; they hold no
policy. The hot paths are kept cheap on purpose:

* a request that is neither protected nor under the prefix costs one dict lookup in
  :attr:`Guard.kinds` (what :meth:`Guard.classify` said about that path before; a path seen
  for the first time costs a few string checks, see paths.py);
* a protected request with a valid cookie costs one HMAC-SHA256 and a dict lookup -- no
  database round trip. Revocations are read from the store at most every
  ``revocation_interval`` seconds, which bounds how late a revocation takes effect.

Security stakes (see the README's security model): the cookie is bound to the auth_id and the
phone number, so it is worthless for another user or after a number change; a fresh random
session identifier is minted on every success (no fixation); ``next`` only ever leads to a
same-origin relative path; the challenge form carries a CSRF token bound to the user and to a
cookie, and a check that consumes an attempt is never triggered by a GET.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
import traceback
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from html import escape
from pathlib import Path
from typing import Generic, TypeVar
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from itsdangerous import BadSignature, URLSafeTimedSerializer

from . import Identity
from .engine import Verifier, check_auth_id
from .errors import (
    InvalidAPIUsage,
    InvalidRecipient,
    RateLimited,
    SMSDeliveryFailed,
    StoreUnavailable,
    VerificationError,
)
from .http import Request, Response, VerificationAPI, json_response
from .pages import ChallengeView, Pages
from .paths import PathPatterns, is_plain, normalize, readings
from .phones import mask, on_file
from .settings import Settings

log = logging.getLogger("sms2fa")

PASS, PROTECTED, PREFIX = 0, 1, 2
DEFAULT_REMEMBER_FOR = 12 * 3600
CSRF_MAX_AGE = 3600
VERIFIED_CACHE_SIZE = 10_000  # verified cookies remembered per process
KIND_CACHE_SIZE = 4096  # paths whose classification is remembered per process
KIND_CACHE_KEY_MAX = 256  # longer paths are classified every time
VERIFIED_CACHE_HEADER = 1024  # longest Cookie header remembered (10,000 of them: 10 MB)
IDENTITY_CACHE_SIZE = 10_000  # normalised identities remembered per process

_PAGE_HEADERS = (
    ("content-type", "text/html; charset=utf-8"),
    ("cache-control", "no-store"),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "same-origin"),
)


# auth_id types whose str() is no stable id, or a trap (str(b"7") is "b'7'").
_NOT_AN_ID = (bool, float, bytes, bytearray, list, tuple, dict, set, frozenset)


class IdentifyError(Exception):
    """``identify`` returned something that is no identity; the message says what is wrong
    without repeating the value."""


def safe_next(target: str | None) -> str:
    """``target`` if it is a same-origin relative path, else ``"/"``.

    Refuses ``//host``, ``/\\host``, ``https:host``, ``javascript:``, percent-encoded
    slashes and backslashes, and control characters: anything a browser could resolve to
    another origin.
    """
    if not target or not target.startswith("/"):
        return "/"
    decoded = unquote(target)
    if any(c in decoded for c in "\\\r\n\t\0") or any(ord(c) < 32 for c in decoded):
        return "/"
    if target.startswith("//") or decoded.startswith("//"):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    # A Location header is latin-1 on the wire: percent-encode (UTF-8) anything not ASCII.
    return _NOT_URL_SAFE.sub(lambda m: quote(m.group(0), safe=""), target)


_NOT_URL_SAFE = re.compile(r"[^\x21-\x7e]+")


def cookie_value(header: str, name: str) -> str | None:
    """The value of cookie ``name`` in a Cookie header (fast: no full parse)."""
    if name not in header:
        return None
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value.strip('"')
    return None


class SessionSigner:
    """The verified-session cookie: ``<issued ms, hex>.<session id>.<signature>``.

    The signature is HMAC-SHA256 over the audience, the issue time, the session id, the
    auth_id and the phone number (E.164) -- which never appear in the cookie. The audience
    (the guard passes its cookie name, its prefix and its ``audience`` option) is fed to each
    key's HMAC once, here: a cookie signed for another app that shares the secret is refused,
    at no cost per request. We sign by hand rather than with itsdangerous because this check
    runs on every protected request, and one raw HMAC costs a fifth of
    ``TimestampSigner.unsign``.
    """

    def __init__(self, keys: Iterable[str], audience: str = "") -> None:
        # Length-prefixed: no audience can run on into the text signed after it.
        scope = f"{len(audience)}:{audience}\x00".encode()
        self._macs = []
        for k in keys:
            mac = hmac.new(hmac.new(k.encode(), b"sms2fa-session", hashlib.sha256).digest(),
                           digestmod=hashlib.sha256)
            mac.update(scope)
            self._macs.append(mac)

    def _sign(self, mac: hmac.HMAC, head: str, identity: Identity) -> str:
        m = mac.copy()
        m.update(f"{head}\x00{identity.auth_id}\x00{identity.recipient}".encode())
        return base64.urlsafe_b64encode(m.digest()).decode().rstrip("=")

    def issue(self, identity: Identity, issued_ms: int) -> str:
        head = f"{issued_ms:x}.{secrets.token_urlsafe(12)}"
        return f"{head}.{self._sign(self._macs[0], head, identity)}"

    def verify(self, value: str, identity: Identity) -> int | None:
        """The issue time (ms) if ``value`` was issued for ``identity``, else None."""
        head, _, signature = value.rpartition(".")
        issued, _, _sid = head.partition(".")
        if not signature or not _sid:
            return None
        ok = False
        for mac in self._macs:
            ok |= hmac.compare_digest(self._sign(mac, head, identity), signature)
        if not ok:
            return None
        try:
            return int(issued, 16)
        except ValueError:
            return None


class Guard:
    """What a request gets: pass through, a challenge, a verified pass, or an API answer."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        protect: Iterable[str] = (),
        exclude: Iterable[str] = (),
        prefix: str = "/sms2fa",
        login_url: str | None = None,
        remember_for: int = DEFAULT_REMEMBER_FOR,
        cookie_name: str = "sms2fa",
        cookie_domain: str | None = None,
        cookie_secure: bool | None = None,
        public_api: bool = False,
        template_dir: str | Path | None = None,
        revocation_interval: float = 5.0,
        verifier: Verifier | None = None,
        enroll_url: str | None = None,
        audience: str = "",
        private_responses: bool = True,
    ) -> None:
        self.verifier = verifier or Verifier(settings or Settings.from_env())
        self.settings = self.verifier.settings
        self.prefix = "/" + prefix.strip("/")
        if self.prefix == "/":
            raise ValueError("prefix must not be '/'; the app lives there")
        self._prefix_slash = self.prefix + "/"
        self.login_url = login_url
        self.enroll_url = enroll_url
        self.private_responses = private_responses
        self.remember_for = int(remember_for)
        self.cookie_name = cookie_name
        self.cookie_domain = cookie_domain
        self.cookie_secure = cookie_secure
        self.revocation_interval = revocation_interval
        self._protect = PathPatterns(protect)
        self._exclude = PathPatterns(exclude)
        if not self._protect:
            raise ValueError("protect=[...] must name at least one path prefix or pattern")
        #: A plain path (see paths.is_plain) that starts with none of these passes through.
        self.watched: tuple[str, ...] = (self.prefix, *self._protect.literals)
        #: What classify() said about paths seen before (the key is the path the adapter
        #: got): the adapters' hot path is one lookup here. Bounded: cleared when full.
        self.kinds: dict[str, int] = {}
        #: The cookie is good for this app only: its cookie name, its prefix and ``audience``.
        self.cookie_audience = "\x00".join((cookie_name, self.prefix, audience))
        self.signer = SessionSigner(self.settings.secret_keys, self.cookie_audience)
        self._identities: dict[object, tuple[Identity, type]] = {}
        self.csrf = URLSafeTimedSerializer(list(self.settings.secret_keys)[::-1],
                                           salt="sms2fa-csrf")
        self.pages = Pages(template_dir)
        api_on = public_api or self.settings.api_token is not None
        # The API lives in a namespace of its own: an anonymous caller who creates codes or
        # fails checks for auth_id "alice" there never touches the logged-in user alice.
        self.api = (VerificationAPI(self.verifier.namespaced("api"), uniform_errors=True)
                    if api_on else None)
        self._revoked: dict[str, int] = {}
        self._verified: dict[tuple[str, bool, str, str], int] = {}
        self._cookie_http, self._cookie_https = self.cookie_for(False), self.cookie_for(True)
        self._revocations_seen = datetime.now(timezone.utc) - timedelta(seconds=remember_for)
        self._next_refresh = 0.0
        self._refresh_lock = threading.Lock()

    # -- hot path -------------------------------------------------------------------------

    def classify(self, path: str) -> int:
        """PASS, PROTECTED or PREFIX for a mount-relative, decoded path (paths.py's
        ``*_route_path``). PROTECTED when any reading of the path is protected: fail closed."""
        if path.startswith(self._prefix_slash) or path == self.prefix:
            return PREFIX
        if is_plain(path):
            if not path.startswith(self.watched):
                return PASS
            return PROTECTED if self.protects(normalize(path)) else PASS
        return PROTECTED if any(self.protects(r) for r in readings(path)) else PASS

    def protects(self, canonical: str) -> bool:
        """Whether a canonical path is protected: some protect pattern matches it and no
        exclude pattern does (exclude wins)."""
        return self._protect.match(canonical) and not self._exclude.match(canonical)

    def remember(self, key: str, path: str) -> int:
        """:meth:`classify` ``path``, remembered in :attr:`kinds` under ``key`` (the path
        as the adapter got it), so that the next request for it costs one dict lookup."""
        kind = self.classify(path)
        if len(key) <= KIND_CACHE_KEY_MAX:
            if len(self.kinds) >= KIND_CACHE_SIZE:
                self.kinds.clear()  # a flood of distinct paths: start over, stay bounded
            self.kinds[key] = kind
        return kind

    def cookie_for(self, https: bool) -> str:
        """The cookie's name: ``__Host-`` prefixed when the browser will enforce it."""
        secure = https if self.cookie_secure is None else self.cookie_secure
        if secure and self.cookie_domain is None:
            return "__Host-" + self.cookie_name
        return self.cookie_name

    def identity(self, raw: object) -> Identity | None:
        """What ``identify`` returned, normalised -- the one place both adapters call, right
        after it: the auth_id as a str, the number in E.164 (national formats read in the
        ``default_region`` setting), or None for the number when no phone is on file.

        Raises :class:`IdentifyError` for a value that is no identity. A hit in the cache
        costs a dict lookup: this runs on every protected request.
        """
        if raw is None:
            return None
        try:
            found = self._identities.get(raw)
        except TypeError:  # an unhashable part: _normalise says which
            found = None
        # The type check: 1 == True == 1.0 as dict keys, but str() tells them apart.
        if found is not None and found[1] is type(raw[0]):  # type: ignore[index]
            return found[0]
        identity = self._normalise(raw)
        assert isinstance(raw, tuple)  # _normalise made sure
        if len(self._identities) >= IDENTITY_CACHE_SIZE:
            self._identities.clear()
        with contextlib.suppress(TypeError):  # an unhashable auth_id: fine, just not cached
            self._identities[raw] = (identity, type(raw[0]))
        return identity

    def _normalise(self, raw: object) -> Identity:
        if not isinstance(raw, tuple) or len(raw) != 2:
            raise IdentifyError("identify() must return Identity(auth_id, recipient) or None, "
                                f"not {type(raw).__name__}")
        auth_id, recipient = raw
        if auth_id is None or isinstance(auth_id, _NOT_AN_ID):
            raise IdentifyError(f"identify() returned an auth_id of type "
                                f"{type(auth_id).__name__}; give a str, an int or a UUID")
        text = auth_id if isinstance(auth_id, str) else str(auth_id)
        try:
            check_auth_id(text)
        except InvalidAPIUsage as exc:
            raise IdentifyError(f"identify() returned an auth_id that cannot be used "
                                f"({len(text)} characters): {exc.message}") from None
        if isinstance(recipient, int) and not isinstance(recipient, bool):
            recipient = str(recipient)
        if recipient is None or (isinstance(recipient, str) and not recipient.strip()):
            return Identity(text, None)
        if not isinstance(recipient, str):
            raise IdentifyError(f"identify() returned a recipient of type "
                                f"{type(recipient).__name__}; give a str or None")
        number = on_file(recipient, self.settings.default_region)
        if number is None:
            log.warning("sms2fa: identify() returned a recipient that is not a phone number "
                        "(auth_id of %d characters); treated as no phone on file", len(text))
        return Identity(text, number)

    def identify_failed(self, request: Request, error: Exception) -> Response:
        """A 500 that tells nothing, for an ``identify`` that raised or returned a value that
        is no identity. The log names ``identify`` and where it failed, but leaves out the
        exception's message: it may hold personal data or secrets."""
        if isinstance(error, IdentifyError):
            log.error("sms2fa: %s", error)
        else:
            log.error("sms2fa: identify() raised %s (message left out); traceback:\n%s",
                      type(error).__name__, "".join(traceback.format_tb(error.__traceback__)))
        if not _wants_html(request):
            return json_response(500, {"message": "Internal error.", "reason": "InternalError"})
        body = (b"<!doctype html><title>Something went wrong</title><p>We could not tell who "
                b"you are. Try again later.</p>")
        return Response(500, body, [*_PAGE_HEADERS])

    def is_verified(self, cookie_header: str, https: bool, identity: Identity | None) -> bool:
        """Whether the request carries a live verified session for ``identity``. No I/O."""
        if identity is None or identity.recipient is None or not cookie_header:
            return False
        # Keyed by the whole Cookie header (short ones: memory stays bounded): a hit skips
        # even finding our cookie in it. Another cookie that changes on every request (or a
        # long header) just costs the HMAC each time.
        key = (cookie_header, https, identity.auth_id, identity.recipient)
        issued = self._verified.get(key)
        if issued is None:
            value = cookie_value(cookie_header, self._cookie_https if https else self._cookie_http)
            if value is None:
                return False
            issued = self.signer.verify(value, identity)
            if issued is None:
                return False
            if len(cookie_header) <= VERIFIED_CACHE_HEADER:
                if len(self._verified) >= VERIFIED_CACHE_SIZE:
                    self._verified.clear()
                # Only signatures that verified are remembered, keyed by all the HMAC proved
                # it for: a hit proves exactly what the HMAC proved, for a dict lookup.
                self._verified[key] = issued
        now_ms = time.time() * 1000
        if issued + self.remember_for * 1000 < now_ms or issued > now_ms + 60_000:
            return False
        revoked = self._revoked.get(identity.auth_id)
        return revoked is None or issued > revoked

    def revocations_stale(self) -> bool:
        return time.monotonic() >= self._next_refresh

    def refresh_revocations(self) -> None:
        """Read revocations made on any host since the last look (blocking; cheap)."""
        if not self._refresh_lock.acquire(blocking=False):
            return
        try:
            # Look back a little further than needed: other hosts' clocks may lag ours.
            since = self._revocations_seen - timedelta(seconds=60)
            for auth_id, at in self.verifier.revocations_since(since):
                at_ms = int(at.timestamp() * 1000)
                if at_ms > self._revoked.get(auth_id, 0):
                    self._revoked[auth_id] = at_ms
                self._revocations_seen = max(self._revocations_seen, at)
            horizon = (time.time() - self.remember_for) * 1000
            # list(): revoke() may add to the dict from another thread meanwhile.
            for auth_id in [a for a, at in list(self._revoked.items()) if at < horizon]:
                self._revoked.pop(auth_id, None)
            self._next_refresh = time.monotonic() + self.revocation_interval
        except StoreUnavailable:
            self._next_refresh = time.monotonic() + 1.0
        finally:
            self._refresh_lock.release()

    def revoke(self, auth_id: str) -> None:
        """End ``auth_id``'s verified sessions here at once, and on every host within
        ``revocation_interval`` seconds."""
        at = self.verifier.revoke(auth_id)
        self._revoked[auth_id] = int(at.timestamp() * 1000)

    # -- refusing a protected request (may do I/O: run it off the event loop) --------------

    def deny(self, request: Request, identity: Identity | None) -> Response:
        """The answer to a protected request without a verified session."""
        try:
            return self._deny(request, identity)
        except StoreUnavailable as exc:
            return _unavailable(request, exc)

    def _deny(self, request: Request, identity: Identity | None) -> Response:
        # request.path is decoded: quote it again, or "%3F" would become "?" and "é" a 500.
        target = quote(request.path, safe="/:@!$&'()*+,;=~") + (
            f"?{request.query_string}" if request.query_string else "")
        if identity is None:
            return self._anonymous(request, target)
        if identity.recipient is None:
            return self._no_phone(request, target)
        challenge = self.challenge_url(target)
        if not _is_navigation(request):
            return json_response(401, {
                "message": "This resource needs SMS verification.",
                "reason": "VerificationRequired",
                "challenge": challenge,
            })
        headers = [("location", challenge), ("cache-control", "no-store")]
        status = self._ensure_code(identity, request)
        if status:
            headers.append(self._flash(request, status))
        return Response(303, b"", headers)

    def challenge_url(self, next_url: str) -> str:
        return f"{self.prefix}/challenge?" + urlencode({"next": safe_next(next_url)})

    def _anonymous(self, request: Request, target: str) -> Response:
        if self.login_url is not None and _is_navigation(request):
            sep = "&" if "?" in self.login_url else "?"
            location = f"{self.login_url}{sep}{urlencode({'next': safe_next(target)})}"
            return Response(303, b"", [("location", location), ("cache-control", "no-store")])
        return json_response(401, {"message": "Log in first.", "reason": "LoginRequired"})

    def _no_phone(self, request: Request, next_url: str) -> Response:
        """No phone on file: to ``enroll_url`` if there is one, else a page (or JSON) saying
        so. Nothing is sent, and no code can be asked for."""
        if self.enroll_url is not None and _is_navigation(request):
            sep = "&" if "?" in self.enroll_url else "?"
            location = f"{self.enroll_url}{sep}{urlencode({'next': safe_next(next_url)})}"
            return Response(303, b"", [("location", location), ("cache-control", "no-store")])
        if not _wants_html(request):
            data = {"message": "This resource needs SMS verification, and there is no phone "
                               "number on file for this account.", "reason": "NoPhoneOnFile"}
            if self.enroll_url is not None:
                data["enroll"] = self.enroll_url
            return json_response(403, data)
        link = ""
        if self.enroll_url is not None:
            href = escape(f"{self.enroll_url}{'&' if '?' in self.enroll_url else '?'}"
                          f"{urlencode({'next': safe_next(next_url)})}")
            link = f'<p><a href="{href}">Add a phone number</a></p>'
        body = ("<!doctype html><title>No phone number on file</title><h1>No phone number on "
                "file</h1><p>This page needs a code sent by text message, and there is no "
                "mobile number on your account that we can send it to. Add one to your "
                f"account, or ask the site's support for help.</p>{link}").encode()
        return Response(403, body, [*_PAGE_HEADERS])

    def _ensure_code(self, identity: Identity, request: Request) -> str | None:
        """Send a code unless one for this number is already waiting (a reload sends none)."""
        pending = self.verifier.pending(identity.auth_id)
        if pending is not None and pending.recipient == identity.recipient:
            return None
        return self._send(identity, request)

    def _send(self, identity: Identity, request: Request) -> str | None:
        from .http import client_address

        if identity.recipient is None:  # callers answer _no_phone first; typed, and safe
            return "bad_number"
        try:
            self.verifier.start(
                identity.auth_id, identity.recipient,
                client_address=client_address(request, self.settings.trusted_proxies),
            )
        except RateLimited:
            return "rate_limited"
        except SMSDeliveryFailed:
            return "send_failed"
        except InvalidRecipient:
            return "bad_number"
        return None

    # -- under the prefix -----------------------------------------------------------------

    def handle_prefix(self, request: Request, identity: Identity | None) -> Response:
        """Answer a request under the prefix: the challenge page, its forms, or the API."""
        sub = request.path[len(self.prefix):] or "/"
        try:
            if sub == "/challenge":
                if request.method in ("GET", "HEAD"):
                    return self._challenge_page(request, identity)
                if request.method == "POST":
                    return self._challenge_post(request, identity, resend=False)
            elif sub == "/challenge/resend" and request.method == "POST":
                return self._challenge_post(request, identity, resend=True)
            elif self.api is not None:
                return self.api.handle(request, sub)
            return json_response(404, {"message": "Not found.", "reason": "NotFound"})
        except StoreUnavailable as exc:
            return _unavailable(request, exc)

    def _challenge_page(self, request: Request, identity: Identity | None,
                        error: str | None = None, status: int = 200) -> Response:
        next_url = safe_next(_first(request.query, "next"))
        if identity is None:
            return self._anonymous(request, next_url)
        if identity.recipient is None:
            return self._no_phone(request, next_url)
        if self.is_verified(request.header("cookie"), request.scheme == "https", identity):
            return Response(303, b"", [("location", next_url), ("cache-control", "no-store")])
        notice = None
        headers: list[tuple[str, str]] = []
        flag = cookie_value(request.header("cookie"), self._flash_cookie(request))
        if flag:  # shown once: a reload does not repeat it
            headers.append(("set-cookie", self._cookie(request, self._flash_cookie(request), "",
                                                       max_age=0)))
        if error is None and flag in _STATUS_TEXT:
            error = _STATUS_TEXT[flag]
        elif flag == "sent":
            notice = "We sent you a new code."
        pending = self.verifier.pending(identity.auth_id)
        if pending is not None and pending.recipient != identity.recipient:
            pending = None
        nonce = cookie_value(request.header("cookie"), self._csrf_cookie(request)) or ""
        if not re.fullmatch(r"[A-Za-z0-9_-]{22,64}", nonce):
            nonce = secrets.token_urlsafe(24)
            headers.append(("set-cookie", self._cookie(request, self._csrf_cookie(request),
                                                       nonce, max_age=CSRF_MAX_AGE)))
        script_nonce = secrets.token_urlsafe(16)
        view = ChallengeView(
            masked_recipient=mask(identity.recipient),
            action=f"{self.prefix}/challenge",
            resend_action=f"{self.prefix}/challenge/resend",
            csrf_token=str(self.csrf.dumps([identity.auth_id, nonce])),
            next_url=next_url,
            code_length=10,
            attempts_left=pending.attempts_left if pending else None,
            resend_in=self.verifier.resend_wait(identity.auth_id),
            error=error,
            notice=notice,
            script_nonce=script_nonce,
        )
        csp = ("default-src 'none'; style-src 'unsafe-inline'; "
               f"script-src 'nonce-{script_nonce}'; form-action 'self'; "
               "frame-ancestors 'none'; base-uri 'none'")
        body = b"" if request.method == "HEAD" else self.pages.render_challenge(view)
        return Response(status, body,
                        [*_PAGE_HEADERS, ("content-security-policy", csp), *headers])

    def _challenge_post(self, request: Request, identity: Identity | None,
                        resend: bool) -> Response:
        form = _form(request)
        next_url = safe_next(form.get("next"))
        if identity is None:
            return self._anonymous(request, next_url)
        if identity.recipient is None:
            return self._no_phone(request, next_url)
        if not self._csrf_ok(request, identity, form.get("csrf_token", "")):
            return _forbidden()
        back = self.challenge_url(next_url)
        if resend:
            status = self._send(identity, request) or "sent"
            return Response(303, b"", [("location", back), ("cache-control", "no-store"),
                                       self._flash(request, status)])
        code = re.sub(r"[\s-]", "", form.get("code", ""))
        page_request = Request("GET", back, back.partition("?")[2], request.headers,
                               scheme=request.scheme)
        try:
            if not code.isascii() or not code.isdigit() or len(code) > 10:
                raise InvalidAPIUsage()
            verified = self.verifier.check(identity.auth_id, code)
        except RateLimited as exc:
            minutes = max(1, (exc.retry_after + 59) // 60)
            return self._challenge_page(
                page_request, identity, status=429,
                error=f"Too many wrong codes. Try again in {minutes} minute(s).")
        except InvalidAPIUsage:
            return self._challenge_page(page_request, identity, status=400,
                                        error="Enter the digits of the code we sent you.")
        except VerificationError:
            return self._challenge_page(page_request, identity, status=400,
                                        error="That code is not right, or it has expired.")
        if verified.recipient != identity.recipient:
            # The number changed while the code was out: it proves nothing about the new one.
            return self._challenge_page(page_request, identity, status=400,
                                        error="Your phone number changed; ask for a new code.")
        https = request.scheme == "https"
        cookie = self.signer.issue(identity, int(time.time() * 1000))
        return Response(303, b"", [
            ("location", next_url),
            ("cache-control", "no-store"),
            ("set-cookie", self._cookie(request, self.cookie_for(https), cookie,
                                        max_age=self.remember_for)),
            ("set-cookie", self._cookie(request, self._csrf_cookie(request), "", max_age=0)),
        ])

    def _csrf_ok(self, request: Request, identity: Identity, token: str) -> bool:
        origin = request.header("origin")
        host = request.header("host")
        # "null" is what a sandboxed frame, a data: URL or a cross-origin redirect sends:
        # never this site's own form.
        if origin == "null" or (origin and host and urlsplit(origin).netloc != host):
            return False
        nonce = cookie_value(request.header("cookie"), self._csrf_cookie(request))
        if not nonce or not token:
            return False
        try:
            auth_id, signed_nonce = self.csrf.loads(token, max_age=CSRF_MAX_AGE)
        except (BadSignature, ValueError, TypeError):
            return False
        return hmac.compare_digest(str(signed_nonce), nonce) and auth_id == identity.auth_id

    def _flash_cookie(self, request: Request) -> str:
        return self.cookie_for(request.scheme == "https") + "_flash"

    def _flash(self, request: Request, status: str) -> tuple[str, str]:
        """A one-time status for the next challenge page (kept out of the URL)."""
        return ("set-cookie", self._cookie(request, self._flash_cookie(request), status,
                                           max_age=60))

    def _csrf_cookie(self, request: Request) -> str:
        return self.cookie_for(request.scheme == "https") + "_csrf"

    def _cookie(self, request: Request, name: str, value: str, max_age: int) -> str:
        secure = request.scheme == "https" if self.cookie_secure is None else self.cookie_secure
        parts = [f"{name}={value}", "Path=/", f"Max-Age={max_age}", "HttpOnly", "SameSite=Lax"]
        if secure:
            parts.append("Secure")
        if self.cookie_domain and not name.startswith("__Host-"):
            parts.append(f"Domain={self.cookie_domain}")
        return "; ".join(parts)


AppT = TypeVar("AppT")
IdentifyT = TypeVar("IdentifyT")


class GuardedApp(Generic[AppT, IdentifyT]):
    """What both adapters share: their keywords -- one list, so WSGI and ASGI cannot drift --
    and :meth:`revoke`. Subclasses only translate requests in ``__call__``."""

    def __init__(
        self,
        app: AppT,
        settings: Settings | None = None,
        *,
        protect: Iterable[str],
        identify: IdentifyT,
        prefix: str = "/sms2fa",
        exclude: Iterable[str] = (),
        login_url: str | None = None,
        remember_for: int = DEFAULT_REMEMBER_FOR,
        cookie_name: str = "sms2fa",
        cookie_domain: str | None = None,
        cookie_secure: bool | None = None,
        public_api: bool = False,
        template_dir: str | Path | None = None,
        revocation_interval: float = 5.0,
        enroll_url: str | None = None,
        audience: str = "",
        private_responses: bool = True,
        guard: Guard | None = None,
    ) -> None:
        self.app = app
        self.identify = identify
        self.guard = guard or Guard(
            settings, protect=protect, exclude=exclude, prefix=prefix, login_url=login_url,
            remember_for=remember_for, cookie_name=cookie_name, cookie_domain=cookie_domain,
            cookie_secure=cookie_secure, public_api=public_api, template_dir=template_dir,
            revocation_interval=revocation_interval, enroll_url=enroll_url, audience=audience,
            private_responses=private_responses,
        )
        self.verifier = self.guard.verifier
        self._kinds = self.guard.kinds

    def revoke(self, auth_id: object) -> None:
        """End ``auth_id``'s verified sessions on every worker and host (logout, a new
        number). Any id ``identify`` gives (an int too: it is used as ``str(auth_id)``).
        It writes to the store: from async code, call it in a thread."""
        self.guard.revoke(str(auth_id))


_STATUS_TEXT = {
    "rate_limited": "A code was sent very recently, or too many were asked for. Wait for the "
                    "timer, then ask for a new one.",
    "send_failed": "We could not send the text message. Try again in a moment.",
    "bad_number": "We cannot send codes to the phone number on your account.",
}


def _is_navigation(request: Request) -> bool:
    return request.method in ("GET", "HEAD") and "text/html" in request.header("accept")


def _wants_html(request: Request) -> bool:
    return "text/html" in request.header("accept")


@functools.lru_cache(maxsize=256)  # an app sends the same few values again and again
def _private(vary: str | None, cache_control: str | None) -> tuple[str, str]:
    """Vary and Cache-Control for a response only this user may see: ``Cookie`` added to
    Vary, ``private`` to Cache-Control (``public`` and ``s-maxage`` dropped). What is already
    as strict (``no-store``, ``private``, ``Vary: *``) stays as the app set it."""
    if vary is None:
        vary = "Cookie"
    elif not any(v.strip().lower() in ("cookie", "*") for v in vary.split(",")):
        vary = f"{vary}, Cookie"
    if cache_control is None:
        return vary, "private"
    directives = [d.strip() for d in cache_control.split(",") if d.strip()]
    names = [d.lower() for d in directives]  # private="Set-Cookie" is not the whole response
    if "no-store" in names or "private" in names:
        return vary, cache_control
    kept = [d for d in directives
            if d.partition("=")[0].strip().lower() not in ("public", "s-maxage", "private")]
    return vary, ", ".join(["private", *kept])


_MERGED_STR = ("vary", "cache-control")
_PRIVATE_STR = (("Vary", "Cookie"), ("Cache-Control", "private"))


def private_headers(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """WSGI response headers, made private (see :func:`_private`)."""
    kept = [pair for pair in headers if pair[0].lower() not in _MERGED_STR]
    if len(kept) == len(headers):  # the usual case: the app set neither
        kept += _PRIVATE_STR
        return kept
    vary = cache_control = None
    kept = []
    for name, value in headers:
        lower = name.lower()
        if lower == "vary":
            vary = value if vary is None else f"{vary}, {value}"
        elif lower == "cache-control":
            cache_control = value if cache_control is None else f"{cache_control}, {value}"
        else:
            kept.append((name, value))
    vary, cache_control = _private(vary, cache_control)
    kept += (("Vary", vary), ("Cache-Control", cache_control))
    return kept


_MERGED = (b"vary", b"cache-control")
_PRIVATE_RAW = ((b"vary", b"Cookie"), (b"cache-control", b"private"))


def private_raw_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """ASGI response headers, made private (see :func:`_private`)."""
    if not isinstance(headers, list):
        headers = list(headers)
    kept = [pair for pair in headers if pair[0].lower() not in _MERGED]
    if len(kept) == len(headers):  # the usual case: the app set neither
        kept += _PRIVATE_RAW
        return kept
    vary = cache_control = None
    kept = []
    for name, value in headers:
        lower = name.lower()
        if lower == b"vary":
            text = value.decode("latin-1")
            vary = text if vary is None else f"{vary}, {text}"
        elif lower == b"cache-control":
            text = value.decode("latin-1")
            cache_control = text if cache_control is None else f"{cache_control}, {text}"
        else:
            kept.append((name, value))
    vary, cache_control = _private(vary, cache_control)
    kept += ((b"vary", vary.encode("latin-1")), (b"cache-control", cache_control.encode("latin-1")))
    return kept


def _first(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


def _form(request: Request) -> dict[str, str]:
    ctype = request.header("content-type").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        return {}
    try:
        parsed = parse_qs(request.body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        return {}
    return {k: v[0] for k, v in parsed.items()}


def _unavailable(request: Request, error: StoreUnavailable) -> Response:
    """503: an HTML page for a browser, JSON for everyone else."""
    if not _is_navigation(request):
        return json_response(503, error.to_dict(), [("retry-after", "5")])
    body = (b"<!doctype html><title>Try again shortly</title><p>Verification is unavailable "
            b"for a moment. Reload the page in a few seconds.</p>")
    return Response(503, body, [*_PAGE_HEADERS, ("retry-after", "5")])


def _forbidden() -> Response:
    body = (b"<!doctype html><title>Forbidden</title><p>This form has expired or did not come "
            b"from this site. Go back, reload the page and try again.</p>")
    return Response(403, body, [*_PAGE_HEADERS])


__all__ = ["PASS", "PREFIX", "PROTECTED", "Guard", "GuardedApp", "IdentifyError", "SessionSigner",
           "cookie_value", "private_headers", "private_raw_headers", "safe_next"]
