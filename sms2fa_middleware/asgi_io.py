"""ASGI translation: scope + body -> :class:`~sms2fa_middleware.http.Request`, Response -> send."""

from __future__ import annotations

from typing import Any

from starlette.types import Scope

from .http import MAX_BODY, Request, Response, wire


def request_from_scope(scope: Scope, path: str | None = None) -> Request:
    """The request of an http (or websocket) scope, without its body. ``path``: the path
    relative to the root path, when the caller stripped it."""
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    client = scope.get("client")
    return Request(
        method=scope.get("method", "GET"),
        path=scope["path"] if path is None else path,
        query_string=scope.get("query_string", b"").decode("latin-1"),
        headers=headers,
        client=client[0] if client else None,
        scheme=scope.get("scheme", "http"),
        root_path=scope.get("root_path", "") if path not in (None, scope["path"]) else "",
    )


async def read_request(scope: Scope, receive: Any, path: str | None = None) -> Request | None:
    """The request (with its body, if asked); None if the body is larger than MAX_BODY."""
    request = request_from_scope(scope, path)
    declared = request.header("content-length")
    if declared.isdigit() and int(declared) > MAX_BODY:
        return None
    chunks: list[bytes] = []
    size = 0
    more = scope["method"] not in ("GET", "HEAD")
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
        more = message.get("more_body", False)
    request.body = b"".join(chunks)
    return request


async def send_response(send: Any, response: Response, head: bool = False) -> None:
    headers, body = wire(response, head)
    await send({"type": "http.response.start", "status": response.status,
                "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]})
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
