"""ASGI translation: scope + body -> :class:`~sms2fa_middleware.messages.Request`, and
:class:`~sms2fa_middleware.messages.Response` -> send.

Here, beside :mod:`~sms2fa_middleware.messages`, not in :mod:`~sms2fa_middleware.api`: it is
ASGI I/O that two front ends share, the ASGI middleware (:mod:`~sms2fa_middleware.asgi`) and
the standalone service (:mod:`~sms2fa_middleware.api.service`). It is not the API's: the
middleware reads with it the challenge's forms and JSON too, and it knows no API, only
ASGI messages and :mod:`~sms2fa_middleware.messages`.
"""

from __future__ import annotations

from typing import Any

import anyio
from starlette.types import Scope

from .messages import MAX_BODY, Request, Response, wire


def request_from_scope(scope: Scope, path: str | None = None) -> Request:
    """The request of an http (or websocket) scope, without its body. ``path``: the path
    relative to the root path, when the caller stripped it."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        if name == "cookie" and name in headers:  # split cookies (HTTP/2): one header
            value = f"{headers[name]}; {value}"
        headers[name] = value
    client = scope.get("client")
    return Request(
        method=scope.get("method", "GET"),
        path=scope["path"] if path is None else path,
        query_string=scope.get("query_string", b"").decode("latin-1"),
        headers=headers,
        client=client[0] if client else None,
        scheme=scope.get("scheme", "http"),
        root_path=scope.get("root_path", "") if path not in (None, scope["path"]) else "",
        host=headers.get("host") or _server(scope),
    )


def _server(scope: Scope) -> str:
    """``scope["server"]`` as host:port ("" when absent, or a Unix socket's (path, None))."""
    server = scope.get("server")
    if not server or server[1] is None:
        return ""
    host = str(server[0])
    return f"[{host}]:{server[1]}" if ":" in host else f"{host}:{server[1]}"


class BodyTimeout(Exception):
    """The declared body did not arrive within the allowed time (a slow or stalled client)."""


async def read_request(
    scope: Scope, receive: Any, path: str | None = None, body_timeout: float | None = None
) -> Request | None:
    """The request with its body; None if the body is larger than MAX_BODY.

    With ``body_timeout``, raises :class:`BodyTimeout` when the whole body has not arrived
    within that many seconds: a client that declares a body and never sends it must not hold
    a connection (and a worker's slot) for as long as it likes.
    """
    request = request_from_scope(scope, path)
    declared = request.header("content-length")
    if declared.isdigit() and int(declared) > MAX_BODY:
        return None
    chunks: list[bytes] = []
    if scope["method"] not in ("GET", "HEAD"):
        with anyio.move_on_after(body_timeout) as deadline:
            if not await _read_body(receive, chunks):
                return None
        if deadline.cancelled_caught:
            raise BodyTimeout()
    request.body = b"".join(chunks)
    return request


async def _read_body(receive: Any, chunks: list[bytes]) -> bool:
    """Append the body's chunks; False as soon as they pass MAX_BODY."""
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return False
        chunks.append(chunk)
        more = message.get("more_body", False)
    return True


async def send_response(send: Any, response: Response, head: bool = False) -> None:
    headers, body = wire(response, head)
    await send(
        {
            "type": "http.response.start",
            "status": response.status,
            "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def lifespan(receive: Any, send: Any) -> None:
    """Answer the lifespan protocol for an app that needs no start-up work of its own."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
