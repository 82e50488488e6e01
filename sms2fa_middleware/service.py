"""The standalone verification service: the HTTP API as a pure ASGI app.

``sms2fa serve`` runs :func:`create_app` under uvicorn; the API is at ``/`` unless a prefix
is given. SMS sends always run in worker threads; see ``_checks_inline`` for checks.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

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
        # Threads mostly wait (on the SMS provider, on the database): a slow provider must not
        # cap how many verifications a worker has in flight at a handful.
        self._threads = ThreadPoolExecutor(max_workers=64, thread_name_prefix="sms2fa")
        # Checks on SQLite run on the event loop: they are local, take a fraction of a
        # millisecond, and writes queue for one lock anyway, so this worker behaves like a
        # sync worker for them. In a thread, the writer holding that lock waited for the GIL
        # while the loop ran: 1.8x fewer wrong-code checks a second (bench/service.py).
        # Creates (which call the SMS provider) and all PostgreSQL work (network round
        # trips to another host) stay in threads.
        self._checks_inline = verifier.store.dialect == "sqlite"
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
        is_create = request.method == "POST" and path in ("", "/")
        if self._checks_inline and not is_create:
            response = self.api.handle(request, path)
        else:
            # A plain executor hop: uvicorn runs asyncio, and anyio's portable to_thread
            # costs several times more per call.
            loop = asyncio.get_running_loop()
            response = await loop.run_in_executor(self._threads, self.api.handle, request,
                                                  path)
        await send_response(send, response, head=request.method == "HEAD")


def create_app(settings: Settings | None = None, prefix: str | None = None) -> VerificationService:
    """The service configured from the environment (``SMS2FA_*``); uvicorn's factory."""
    verifier = Verifier(settings or Settings.from_env())
    return VerificationService(verifier, prefix or os.environ.get(PREFIX_ENV, "/"))


__all__ = ["Request", "VerificationService", "create_app"]
