"""The verification API: ``POST /`` creates, ``GET /`` and ``POST /check`` check; behind a
token, ``/recovery-codes`` makes, counts and spends an auth_id's recovery codes.

Sans-IO, like the messages it answers: :class:`VerificationAPI` turns a
:class:`~sms2fa_middleware.messages.Request` into a
:class:`~sms2fa_middleware.messages.Response` by a call on the engine, sync
(:meth:`~VerificationAPI.handle`, the middleware's prefix routes) or awaited
(:meth:`~VerificationAPI.handle_async`, the service). Its bearer token, and the wrong-token
budget per client address, are checked here.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from ..engine import AsyncVerifier, Started, Verified, Verifier
from ..errors import (
    ExpiredAuthCode,
    InvalidAPIUsage,
    InvalidAuthCode,
    RateLimited,
    UnknownAuthId,
    VerificationError,
)
from ..messages import (
    Request,
    Response,
    client_address,
    error_response,
    iso,
    json_object,
    json_response,
    only_keys,
)
from ..phones import mask, normalise
from ..policy import check_auth_id
from ..store.aio import AwaitableStore, InlineStore, resolve
from .failed_auth import FailedAuthorizations

log = logging.getLogger("sms2fa")

#: The recovery-code paths (only behind a token): the set, and spending one of it.
RECOVERY_PATH = "/recovery-codes"
RECOVERY_USE_PATH = "/recovery-codes/use"


@dataclass(frozen=True)
class EngineCall:
    """An engine method a request asks for, its arguments, and how its result answers."""

    method: str  # e.g. "start" or "check": the same name on Verifier and AsyncVerifier
    arguments: dict[str, Any]
    render: Callable[[Any], Response]


def _created(started: Started) -> Response:
    return json_response(
        200,
        {
            "message": "Success: Verification code created.",
            "auth_id": started.auth_id,
            "expires_at": iso(started.expires_at),
            "attempts_left": started.attempts_left,
        },
    )


def _checked(verified: Verified) -> Response:
    return json_response(
        200,
        {
            "authenticated": True,
            "auth_id": verified.auth_id,
            "message": "Success: Authorization code verified.",
            # Which number proved it: a relying party must check that it is its user's.
            "sent_to": mask(verified.recipient),
        },
    )


def _recovery_codes(auth_id: str, shown: list[str]) -> Response:
    return json_response(201, {"auth_id": auth_id, "recovery_codes": shown, "left": len(shown)})


def _recovery_left(auth_id: str, left: int) -> Response:
    return json_response(200, {"auth_id": auth_id, "left": left})


def _recovered(auth_id: str, left: int) -> Response:
    # Shaped like a code check's success, so a client treats both alike; no sent_to: a
    # recovery code proves no number (the backend's binding of auth_id is all there is).
    return json_response(
        200,
        {
            "authenticated": True,
            "auth_id": auth_id,
            "message": "Success: Recovery code verified.",
            "left": left,
        },
    )


def _internal_error() -> Response:
    log.exception("sms2fa: unexpected error in the API")
    return json_response(500, {"message": "Internal error.", "reason": "InternalError"})


class VerificationAPI:
    """The original service's API: ``POST /`` creates, ``GET /`` and ``POST /check`` check.

    ``path`` given to :meth:`handle` is relative to wherever the API is mounted. With
    ``recovery_codes`` and a token, ``/recovery-codes`` and ``/recovery-codes/use`` are
    mounted too; without a token they never are (they answer 404 like any unknown path):
    anyone could then make and spend the codes of any auth_id.
    """

    CREATE_OPTIONS = ("code_length", "expiration", "retries", "message")

    def __init__(
        self,
        verifier: Verifier,
        *,
        token: str | None = None,
        uniform_errors: bool | None = None,
        recovery_codes: bool = False,
    ) -> None:
        self.verifier = verifier
        self.token = token if token is not None else verifier.settings.api_token
        self.recovery_codes = recovery_codes and self.token is not None
        self.allowed: dict[str, tuple[str, ...]] = {"/": ("GET", "POST"), "/check": ("POST",)}
        if self.recovery_codes:
            self.allowed[RECOVERY_PATH] = ("GET", "POST")
            self.allowed[RECOVERY_USE_PATH] = ("POST",)
        self.uniform_errors = (
            verifier.settings.uniform_errors if uniform_errors is None else uniform_errors
        )
        self.trusted_proxies = verifier.settings.trusted_proxies
        self.failed_auth = FailedAuthorizations(verifier)
        self._inline = InlineStore(verifier.store)

    def handle(self, request: Request, path: str) -> Response:
        """Answer one API request. Never raises; never answers HTML."""
        try:
            routed = resolve(self._route(request, path, self._inline))
            if isinstance(routed, Response):
                return routed
            return routed.render(getattr(self.verifier, routed.method)(**routed.arguments))
        except VerificationError as exc:
            return error_response(self._uniform(exc))
        except Exception:
            return _internal_error()

    async def handle_async(self, request: Request, path: str, engine: AsyncVerifier) -> Response:
        """:meth:`handle` on an event loop: the engine's work is awaited on ``engine`` (the
        async twin of this API's verifier)."""
        try:
            routed = await self._route(request, path, engine.store)
            if isinstance(routed, Response):
                return routed
            return routed.render(await getattr(engine, routed.method)(**routed.arguments))
        except VerificationError as exc:
            return error_response(self._uniform(exc))
        except Exception:
            return _internal_error()

    async def _route(
        self, request: Request, path: str, store: AwaitableStore
    ) -> Response | EngineCall:
        """The response, or the engine call that will make it (the wrong-token budget is
        kept in ``store``: the sync one, or on a loop its awaitable side)."""
        path = path or "/"
        if path == "/openapi.json" and request.method in ("GET", "HEAD"):
            from .openapi import openapi_document

            return json_response(200, openapi_document(recovery_codes=self.recovery_codes))
        allowed = self.allowed.get(path)
        if allowed is None:
            return json_response(404, {"message": "Not found.", "reason": "NotFound"})
        if request.method not in allowed:
            return json_response(
                405,
                {"message": "Method not allowed.", "reason": "MethodNotAllowed"},
                [("allow", ", ".join(allowed))],
            )
        if self.token is not None:
            address = client_address(request, self.trusted_proxies)
            if not self._authorized(request):
                await self.failed_auth.counted(store, address)  # RateLimited once over budget
                return json_response(
                    401,
                    {"message": "A valid bearer token is required.", "reason": "Unauthorized"},
                    [("www-authenticate", 'Bearer realm="sms2fa"')],
                )
            await self.failed_auth.refused_if_over(store, address)
        if path.startswith(RECOVERY_PATH):
            return self._recovery(request, path)
        if request.method == "POST" and path == "/":
            return self._create(request)
        if path == "/check":
            data = json_object(request)
            only_keys(data, ("auth_id", "code"), ())
            return self._check(data["auth_id"], data["code"], request)
        query = request.query
        if set(query) - {"auth_id", "code"} or any(
            len(query.get(k, [])) != 1 for k in ("auth_id", "code")
        ):
            raise InvalidAPIUsage("Required arguments: 'auth_id' (str), 'code' (digits)")
        return self._check(query["auth_id"][0], query["code"][0], request)

    def _recovery(self, request: Request, path: str) -> EngineCall:
        """``POST /recovery-codes`` makes a set, ``GET`` counts it, ``POST …/use`` spends one
        (a wrong one is a failed check of the auth_id: the same attempts and lock)."""
        if request.method == "GET":
            query = request.query
            if set(query) != {"auth_id"} or len(query["auth_id"]) != 1:
                raise InvalidAPIUsage("Required arguments: 'auth_id' (str)")
            auth_id = check_auth_id(query["auth_id"][0])
            return EngineCall(
                "recovery_codes_left", {"auth_id": auth_id}, partial(_recovery_left, auth_id)
            )
        data = json_object(request)
        if path == RECOVERY_PATH:
            only_keys(data, ("auth_id",), ())
            auth_id = check_auth_id(data["auth_id"])
            return EngineCall(
                "new_recovery_codes", {"auth_id": auth_id}, partial(_recovery_codes, auth_id)
            )
        only_keys(data, ("auth_id", "recovery_code"), ("recipient",))
        auth_id = check_auth_id(data["auth_id"])
        recipient = None
        if "recipient" in data:  # checked before the code is spent: a bad one spends nothing
            s = self.verifier.settings
            recipient = normalise(data["recipient"], s.allowed_regions, s.allowed_number_types)
        return EngineCall(
            "use_recovery_code",
            {"auth_id": auth_id, "code": data["recovery_code"], "recipient": recipient},
            partial(_recovered, auth_id),
        )

    def _authorized(self, request: Request) -> bool:
        scheme, _, given = request.header("authorization").partition(" ")
        assert self.token is not None
        return scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), self.token.encode()
        )

    def _create(self, request: Request) -> EngineCall:
        data = json_object(request)
        only_keys(data, ("auth_id", "recipient"), self.CREATE_OPTIONS)
        return EngineCall(
            "start",
            {
                "auth_id": data["auth_id"],
                "recipient": data["recipient"],
                "code_length": data.get("code_length"),
                "expiration": data.get("expiration"),
                "retries": data.get("retries"),
                "message": data.get("message"),
                "client_address": self._budget_address(request),
            },
            _created,
        )

    def _budget_address(self, request: Request) -> str | None:
        """The address the per-address budgets count, or None for none.

        A caller holding the API token is a relying party's backend: its own address says
        nothing about the person asking, and one backend would exhaust a per-address budget
        meant for one person. It is counted only when a trusted proxy names the client.
        """
        if self.token is not None and not self.trusted_proxies:
            return None
        return client_address(request, self.trusted_proxies)

    def _check(self, auth_id: Any, code: Any, request: Request) -> EngineCall:
        return EngineCall(
            "check",
            {
                "auth_id": auth_id,
                "code": code,
                "uniform": self.uniform_errors,
                "client_address": self._budget_address(request),
            },
            _checked,
        )

    def _uniform(self, error: VerificationError) -> VerificationError:
        """With uniform errors on, unknown, expired, wrong and locked answer alike."""
        if not self.uniform_errors:
            return error
        if isinstance(error, (UnknownAuthId, ExpiredAuthCode, InvalidAuthCode)) or (
            isinstance(error, RateLimited) and error.budget == "failed_checks"
        ):
            return InvalidAuthCode("Invalid or expired code", attempts_left=0)
        return error
