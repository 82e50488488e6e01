"""Apps that the benchmarks serve with uvicorn in a subprocess (``--app-dir bench``).

* ``floor_app``: a trivial Starlette JSON endpoint -- the HTTP ceiling service.py compares with.
* ``event_loop_app()``: a Starlette app behind ``SMS2FAMiddleware`` for event_loop.py; settings
  come from the environment (``SMS2FA_*``, as ``Settings.from_env()`` reads them).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # a fresh checkout works without installing the package
    sys.path.insert(0, str(ROOT))

from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse, PlainTextResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402


async def _json(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


floor_app = Starlette(routes=[Route("/", _json, methods=["GET", "POST"])])

PHONE_PREFIX = "1206555"  # users "u<n>" get 1206555 01xx: fictional, valid numbers


def _identify(request: Request) -> Any:
    from sms2fa_middleware import Identity

    user = request.headers.get("x-user")
    if not user:
        return None
    n = int(user.lstrip("u") or 0)
    return Identity(user, f"{PHONE_PREFIX}{100 + n % 100:04d}")


def event_loop_app() -> Any:
    """/ping (unprotected), /account (protected, identify by X-User), the API under /sms2fa."""
    from starlette.middleware import Middleware

    from sms2fa_middleware import Settings
    from sms2fa_middleware.asgi import SMS2FAMiddleware

    async def ping(request: Request) -> PlainTextResponse:
        return PlainTextResponse("pong")

    async def account(request: Request) -> PlainTextResponse:
        return PlainTextResponse("account")

    return Starlette(
        routes=[Route("/ping", ping), Route("/account", account)],
        middleware=[
            Middleware(
                SMS2FAMiddleware,
                settings=Settings.from_env(),
                protect=["/account"],
                identify=_identify,
                public_api=True,
            )
        ],
    )
