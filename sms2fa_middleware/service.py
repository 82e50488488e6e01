"""The standalone verification service: the HTTP API as a pure ASGI app.

``sms2fa serve`` runs :func:`create_app` under uvicorn; the API is at ``/`` unless a prefix
is given. Database and SMS work run in worker threads, so the event loop stays free.
"""

from __future__ import annotations

import os
from typing import Any

from anyio import to_thread
from starlette.types import Scope

from .asgi_io import lifespan, read_request, send_response
from .engine import Verifier
from .http import Request, VerificationAPI, json_response, too_large
from .settings import Settings

PREFIX_ENV = "SMS2FA_SERVE_PREFIX"


class VerificationService:
    """An ASGI app serving :class:`~sms2fa_middleware.http.VerificationAPI` under ``prefix``."""

    def __init__(self, verifier: Verifier, prefix: str = "/") -> None:
        self.api = VerificationAPI(verifier)
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
                await send_response(send, json_response(404, {"message": "Not found.",
                                                               "reason": "NotFound"}))
                return
            path = path[len(self.prefix):]
        request = await read_request(scope, receive, path)
        if request is None:
            await send_response(send, too_large())
            return
        response = await to_thread.run_sync(self.api.handle, request, path)
        await send_response(send, response, head=request.method == "HEAD")


def create_app(settings: Settings | None = None, prefix: str | None = None) -> VerificationService:
    """The service configured from the environment (``SMS2FA_*``); uvicorn's factory."""
    verifier = Verifier(settings or Settings.from_env())
    return VerificationService(verifier, prefix or os.environ.get(PREFIX_ENV, "/"))


__all__ = ["Request", "VerificationService", "create_app"]
