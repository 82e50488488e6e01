"""The gate of the account pages under the prefix (recovery codes, trusted browsers): they
need the live verified session of the user asking, or say where to go first."""

from __future__ import annotations

from ...identity import Identity
from ...messages import Request, Response
from ..refusals import Refusals
from ..responses import app_url, redirect
from ..sessions import Sessions
from .json import is_json, wants_json


def verified_or_where_to_go(
    sessions: Sessions, refusals: Refusals, request: Request, identity: Identity | None, page: str
) -> Identity | Response:
    """``identity`` if this request carries its live verified session; else the answer that
    sends the user (or tells the API client) where to go, coming back to ``page`` after."""
    here = app_url(request, page)
    if identity is None:
        return refusals.anonymous(request, here)
    https = request.scheme == "https"
    if sessions.verified_at(request.header("cookie"), https, identity) is not None:
        return identity
    if identity.recipient is None:
        return refusals.no_phone(request, here)
    if wants_json(request) or is_json(request):
        return refusals.verification_required(request, here)
    return redirect(refusals.challenge_url(request, here))
