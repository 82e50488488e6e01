"""THE decision: what a request that the path rules did not pass gets. One function, used by
every adapter (WSGI, ASGI, Django sync and async), so the rules cannot drift between them.

Sans-IO and framework-free: the adapter hands in plain values -- the path's kind, what
``identify`` gave (or the exception it raised), the Cookie header, whether the request came
over https, and for a path a rule covers what its method needs (:class:`~.rules.Need`: the
strictest ``max_age`` and ``idle``, its ``when`` rules already asked) -- and gets a
:class:`Verdict` back: to the app (with the identity to attach, whether to mark the response
private, and a renewed cookie to set on it), or the guard's own answer. The I/O a decision may
need is an explicit step the adapter runs where it belongs: the revocation refresh before
deciding, and the answer itself (a challenge sends a code; a prefix route reads the store),
off the event loop on ASGI.

Every new rule of who gets through (freshness, idle time, methods) is a step here, never a
branch in an adapter.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

from ..identity import Identity
from .identity import log_failure
from .paths import PASS, PREFIX
from .rules import PLAIN, Need, strictest
from .sessions import Session

#: A websocket refused by policy closes with 1008; one whose identify failed, with 1011.
POLICY_VIOLATION, INTERNAL_ERROR = 1008, 1011


class Answer(enum.Enum):
    """The guard's own answers (``Guard.answer`` runs them; they may do I/O)."""

    IDENTIFY_FAILED = "identify_failed"  # identify raised, or gave no identity: a bare 500
    PREFIX = "prefix"  # a route under the prefix: the challenge, its forms, the API
    DENY = "deny"  # protected, not verified (or not recently enough): log in, add a phone,
    # or the challenge


class Verdict(NamedTuple):
    """What the adapter does with a request. A NamedTuple, not a frozen dataclass: one is
    made per protected request, and a tuple is built in a third of the time.

    ``to_app``: hand it to the app, attaching ``identity`` when it is set (verified) and
    marking the response private when ``private`` is, and adding ``cookie`` (a Set-Cookie
    header: the session's last-seen time renewed) when it is set. Otherwise
    ``Guard.answer(verdict, request)`` is the response: run it off the event loop, read the
    body first when ``reads_body``; a websocket is closed with ``close_code`` instead.
    ``max_age`` / ``idle`` on a DENY: the session is verified, but its code is older than a
    rule demands (step-up), or it went unused longer than ``idle`` allows.
    """

    to_app: bool
    identity: Identity | None = None
    private: bool = False
    answer: Answer | None = None
    failure: Exception | None = None
    max_age: int | None = None
    idle: int | None = None
    cookie: tuple[str, str] | None = None

    @property
    def reads_body(self) -> bool:
        return self.answer is Answer.PREFIX

    @property
    def close_code(self) -> int:
        return INTERNAL_ERROR if self.answer is Answer.IDENTIFY_FAILED else POLICY_VIOLATION


#: Anonymous, with ``anonymous="app"``: the app's own login handling answers.
TO_APP_UNVERIFIED = Verdict(to_app=True)


@dataclass(frozen=True, slots=True)
class AssumeVerified:
    """The value of the test seam :attr:`Decider.assume_verified` while
    ``sms2fa_middleware.testing.assume_verified`` is open: a logged-in identity with a phone
    counts as verified; one without a phone gets ``phone`` (E.164) and counts as verified
    too, or is refused as before when ``phone`` is None."""

    phone: str | None = None


class Decider:
    """The decision, bound to the guard's sessions and options (see the module docstring)."""

    #: The test seam (``sms2fa_middleware.testing.assume_verified`` sets it): None in
    #: production; an :class:`AssumeVerified` counts logged-in identities as verified, in
    #: every guard of the process. Read only on the not-verified branch.
    assume_verified: ClassVar[AssumeVerified | None] = None

    def __init__(
        self,
        session: Callable[[str, bool, Identity | None], Session | None],
        anonymous_to_app: bool,
        private_responses: bool,
        *,
        now_ms: Callable[[], float],
        touch: Callable[[Session, bool, Identity, float], tuple[str, str] | None],
        idle: int | None = None,
        tracks_idle: bool = False,
    ) -> None:
        self.session = session
        self.anonymous_to_app = anonymous_to_app
        self.private_responses = private_responses
        self.now_ms = now_ms
        self.touch = touch
        #: The middleware's own ``idle`` (every protected request); a rule's may be smaller.
        self.idle = idle
        #: Whether any ``idle`` is configured: only then is the last-seen time renewed.
        self.tracks_idle = tracks_idle or idle is not None
        #: A verified session passes a plain protected path with no clock read.
        self._plain_passes = not self.tracks_idle

    def __call__(
        self,
        kind: int,
        identity: Identity | None,
        failure: Exception | None,
        cookie_header: str,
        https: bool,
        need: Need = PLAIN,
    ) -> Verdict:
        """The verdict for a PROTECTED or PREFIX request. ``identity`` is what ``identify``
        returned, normalised; ``failure`` what it raised (or why its value is no identity,
        or what a rule's ``when`` raised); ``need``: what the rules covering this path and
        method ask, their ``when`` already asked (``PathPolicy.demand``,
        ``Need.resolve``) -- not protected after all (every ``when`` said no), the request
        goes to the app unverified, as a path no rule matches."""
        if failure is not None:
            log_failure(failure)  # once, whatever the adapter answers (a 500, a close)
            return Verdict(False, answer=Answer.IDENTIFY_FAILED, failure=failure)
        if kind == PREFIX:
            return Verdict(False, identity, answer=Answer.PREFIX)
        if kind == PASS or not need.protected:
            return TO_APP_UNVERIFIED
        if identity is None and self.anonymous_to_app:
            return TO_APP_UNVERIFIED
        session = self.session(cookie_header, https, identity)
        if session is not None and need is PLAIN and self._plain_passes:
            return Verdict(True, identity, self.private_responses)  # the usual case: no clock
        max_age, idle = need.max_age, need.idle
        if self.idle is not None:
            idle = strictest(idle, self.idle)  # the middleware's own, when stricter
        if session is not None and identity is not None:
            now = self.now_ms()
            if session.meets(max_age, idle, now):
                cookie = self.touch(session, https, identity, now) if self.tracks_idle else None
                # A response that sets the session cookie is private whatever the option
                # says: no shared cache may hand the cookie to someone else.
                private = self.private_responses or cookie is not None
                return Verdict(True, identity, private, cookie=cookie)
        assumed = Decider.assume_verified
        if assumed is not None and identity is not None:
            if identity.recipient:
                return Verdict(True, identity, self.private_responses)
            if assumed.phone:  # a test user without a phone: give it the assumed one
                return Verdict(
                    True, Identity(identity.auth_id, assumed.phone), self.private_responses
                )
        if session is not None:  # verified, but too long ago or idle too long: step-up
            stale = not session.meets(max_age, None, self.now_ms())
            return Verdict(
                False,
                identity,
                answer=Answer.DENY,
                max_age=max_age if stale else None,
                idle=None if stale else idle,
            )
        return Verdict(False, identity, answer=Answer.DENY)


__all__ = [
    "INTERNAL_ERROR",
    "POLICY_VIOLATION",
    "TO_APP_UNVERIFIED",
    "Answer",
    "AssumeVerified",
    "Decider",
    "Verdict",
]
