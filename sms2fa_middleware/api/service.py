"""The standalone verification service: the HTTP API as a pure ASGI app.

``sms2fa serve`` runs :func:`create_app` under uvicorn; the API is at ``/`` unless a prefix
is given. A request is worked out on the event loop by the engine's async twin
(:class:`~sms2fa_middleware.engine.AsyncVerifier`): on SQLite the store runs right on the
loop (local statements take microseconds and writes queue for one lock anyway, while a
writer in a thread would hold that lock waiting for the GIL); on PostgreSQL its statements
are awaited on async connections. Only the SMS send goes to a worker thread
(:class:`~sms2fa_middleware.threads.Threads`, with a pool of its own). The measured figures
are in ``bench/RESULTS.md`` (from ``bench/service.py``).
"""

from __future__ import annotations

import os
from typing import Any

from starlette.types import Scope

from ..asgi_io import BodyTimeout, lifespan, read_request, send_response
from ..engine import AsyncVerifier, Verifier
from ..errors import StoreUnavailable
from ..messages import Response, json_response, too_large
from ..settings import Settings
from ..threads import Threads
from .verification import VerificationAPI

PREFIX_ENV = "SMS2FA_SERVE_PREFIX"
#: Health check under the prefix: no token needed; it reveals nothing but "the store answers".
HEALTH_PATH = "/health"
#: Seconds a client has to send a request's whole body (the API's bodies are tiny).
BODY_TIMEOUT = 10.0


class VerificationService:
    """An ASGI app serving :class:`~.verification.VerificationAPI` under ``prefix``."""

    def __init__(
        self, verifier: Verifier, prefix: str = "/", body_timeout: float = BODY_TIMEOUT
    ) -> None:
        # Recovery codes too, when a token guards the API (VerificationAPI refuses them else).
        self.api = VerificationAPI(verifier, recovery_codes=True)
        self.body_timeout = body_timeout
        # Threads mostly wait (on the SMS provider): a slow provider must not cap how many
        # verifications a worker has in flight at a handful.
        self._threads = Threads(limit=64, name="sms2fa-serve")
        self.engine = AsyncVerifier(verifier, in_thread=self._threads.run)
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        if self.prefix:
            if path != self.prefix and not path.startswith(self.prefix + "/"):
                await send_response(
                    send, json_response(404, {"message": "Not found.", "reason": "NotFound"})
                )
                return
            path = path[len(self.prefix) :]
        if path == HEALTH_PATH and scope["method"] in ("GET", "HEAD"):
            await send_response(send, await self._health(), head=scope["method"] == "HEAD")
            return
        try:
            request = await read_request(scope, receive, path, body_timeout=self.body_timeout)
        except BodyTimeout:
            await send_response(
                send,
                json_response(
                    408,
                    {
                        "message": "The request body did not arrive in time.",
                        "reason": "RequestTimeout",
                    },
                    [("connection", "close")],
                ),
            )
            return
        if request is None:
            await send_response(send, too_large())
            return
        response = await self.api.handle_async(request, path, self.engine)
        await send_response(send, response, head=request.method == "HEAD")

    async def _health(self) -> Response:
        """200 when the store answers a trivial read, else 503 (for load balancers)."""
        try:
            await self.engine.ping()
        except StoreUnavailable as exc:
            return json_response(
                503,
                {"status": "unavailable", **exc.to_dict()},
                [("retry-after", "5"), ("cache-control", "no-store")],
            )
        return json_response(200, {"status": "ok"}, [("cache-control", "no-store")])


def create_app(settings: Settings | None = None, prefix: str | None = None) -> VerificationService:
    """The service configured from the environment (``SMS2FA_*``); uvicorn's factory."""
    verifier = Verifier(settings or Settings.from_env())
    verifier.create_schema()  # each worker, at start: a request never waits for it
    return VerificationService(verifier, prefix or os.environ.get(PREFIX_ENV, "/"))


__all__ = ["PREFIX_ENV", "VerificationService", "create_app"]
