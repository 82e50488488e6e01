"""The gate of the account pages under the prefix (recovery codes, trusted browsers, the
phone number): they need the live verified session of the user asking -- for some actions
one whose code is recent (``max_age``, a step-up) -- or say where to go first."""

from __future__ import annotations

from ...identity import Identity
from ...messages import Request, Response
from ..refusals import ANY, Fresh, Refusals
from ..responses import app_url, redirect
from ..sessions import Sessions
from .json import is_json, wants_json


def verified_or_where_to_go(
    sessions: Sessions,
    refusals: Refusals,
    request: Request,
    identity: Identity | None,
    page: str,
    max_age: int | None = None,
) -> Identity | Response:
    """``identity`` if this request carries its live verified session (with ``max_age``:
    one whose code was entered at most that many seconds ago); else the answer that sends
    the user (or tells the API client) where to go, coming back to ``page`` after. A
    session too old for ``max_age`` is sent to the challenge with it, as a rule's step-up
    is: the page is shown (and says why) although the user is verified."""
    here = app_url(request, page)
    if identity is None:
        return refusals.anonymous(request, here)
    https = request.scheme == "https"
    session = sessions.session(request.header("cookie"), https, identity)
    if session is not None and session.meets(max_age, None, sessions.now_ms()):
        return identity
    if identity.recipient is None:
        return refusals.no_phone(request, here)
    fresh = ANY if max_age is None else Fresh(max_age=max_age)
    if wants_json(request) or is_json(request):
        return refusals.verification_required(request, here, fresh)
    return redirect(refusals.challenge_url(request, here, fresh))
