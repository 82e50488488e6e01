"""WSGI adapter: ``SMS2FAMiddleware(app, protect=[...], identify=...)`` for Flask, Django, ...

It translates between WSGI and :class:`~sms2fa_middleware.guard.Guard`, and nothing else.
A request that is neither protected nor under the prefix goes straight to the app after one
dict lookup. Paths are matched as the app will route them (see paths.py): PATH_INFO
re-read as UTF-8, repeated slashes merged, dot segments resolved; ambiguous spellings are
protected when any reading is. The verified identity is in ``environ["sms2fa.identity"]``,
and the middleware itself in ``environ["sms2fa.middleware"]`` on every request (for a logout
view: ``request.environ["sms2fa.middleware"].revoke_session(request)``).

Flask: wrap ``app.wsgi_app`` so the app object stays a Flask app::

    app.wsgi_app = SMS2FAMiddleware(app.wsgi_app, protect=["/account"], identify=who)
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request as WerkzeugRequest

from . import Identity
from .guard import PASS, RULED, GuardedApp, private_headers
from .guard.paths import wsgi_route_path
from .guard.rules import PLAIN, WhenFailed
from .messages import MAX_BODY, Request, Response, too_large, wire

if TYPE_CHECKING:
    # WSGIApplication is used in the quoted base class below, which ruff cannot see.
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment  # noqa: F401

Identify = Callable[[WerkzeugRequest], "Identity | None"]

ENVIRON_KEY = "sms2fa.identity"
MIDDLEWARE_KEY = "sms2fa.middleware"


class SMS2FAMiddleware(GuardedApp["WSGIApplication", Identify]):
    """Demand a verified SMS second factor on the ``protect``ed paths of a WSGI app."""

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        environ[MIDDLEWARE_KEY] = self  # for logout views: revoke_session(request)
        path = environ.get("PATH_INFO") or "/"
        kind = self._kinds.get(path)
        if kind is None:
            kind = self._remember(path, wsgi_route_path(path))
        if kind == PASS:
            return self.app(environ, start_response)  # the hot path: one dict lookup
        need = PLAIN
        if kind == RULED:  # a rule that says more than its path: the method decides
            kind, need = self._demand(
                path, wsgi_route_path(path), environ.get("REQUEST_METHOD", "GET")
            )
            if kind == PASS:
                return self.app(environ, start_response)
        guard = self.guard
        identity, failure = None, None
        wrapped = WerkzeugRequest(environ, shallow=True)
        try:
            identity = guard.identity(self.identify(wrapped))
            if need.pending:  # rules with a `when`: ask them about this request
                need = need.resolve(
                    [_result(rule.when, wrapped, identity) for rule in need.pending]
                )
        except Exception as exc:  # a bug in identify or a `when`, or a value that is no identity
            failure = exc
        if guard.revocations_stale():
            guard.refresh_revocations()
        verdict = guard.decide(
            kind,
            identity,
            failure,
            environ.get("HTTP_COOKIE", ""),
            environ.get("wsgi.url_scheme") == "https",
            need,
        )
        if verdict.to_app:
            environ[ENVIRON_KEY] = verdict.identity
            if verdict.private or verdict.cookie:
                start_response = _private(start_response, verdict.private, verdict.cookie)
            return self.app(environ, start_response)
        request = request_from_environ(environ, read_body=verdict.reads_body, native=wrapped)
        response = too_large() if request is None else guard.answer(verdict, request)
        return _respond(response, start_response, environ)


def _result(when: Any, request: WerkzeugRequest, identity: Identity | None) -> bool:
    """A rule's ``when`` asked about a request (an async one run to completion here: a WSGI
    worker has no event loop of its own)."""
    try:
        result = when(request, identity)
        if inspect.isawaitable(result):
            result = asyncio.run(_awaited(result))
        return bool(result)
    except Exception as exc:
        raise WhenFailed(when) from exc


async def _awaited(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def _private(
    start_response: StartResponse, private: bool, cookie: tuple[str, str] | None
) -> StartResponse:
    """``start_response`` that marks the app's response private (Vary: Cookie and
    Cache-Control: private, see :func:`~sms2fa_middleware.guard.private_headers`) and/or
    adds the renewed session cookie."""

    def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        if private:
            headers = private_headers(headers)
        if cookie is not None:
            headers = [*headers, cookie]
        return start_response(status, headers, exc_info)

    return start


def request_from_environ(
    environ: WSGIEnvironment, read_body: bool, native: Any = None
) -> Request | None:
    """The sans-IO request of a WSGI environ (its body read when ``read_body``: None if it
    is larger than MAX_BODY); ``native``: the app's request object for it (the pages'
    templates get it)."""
    headers = {
        key[5:].replace("_", "-").lower(): value
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers[key.replace("_", "-").lower()] = environ[key]
    body = b""
    if read_body:
        length_text = environ.get("CONTENT_LENGTH") or "0"
        length = int(length_text) if length_text.isdigit() else 0
        if length > MAX_BODY:
            return None
        if length:
            body = environ["wsgi.input"].read(length)
    return Request(
        method=environ.get("REQUEST_METHOD", "GET"),
        # PEP 3333 gives the path as latin-1-decoded bytes; the core wants text, as on ASGI.
        path=_text(environ.get("PATH_INFO", "") or "/"),
        query_string=environ.get("QUERY_STRING", ""),
        headers=headers,
        body=body,
        client=environ.get("REMOTE_ADDR"),
        scheme=environ.get("wsgi.url_scheme", "http"),
        root_path=_text(environ.get("SCRIPT_NAME", "")),
        host=_host(environ),
        native=native,
    )


def _host(environ: WSGIEnvironment) -> str:
    """The request's host as PEP 3333 reconstructs the URL: HTTP_HOST, else
    SERVER_NAME:SERVER_PORT."""
    host = environ.get("HTTP_HOST")
    if host:
        return str(host)
    name, port = str(environ.get("SERVER_NAME", "")), environ.get("SERVER_PORT", "")
    if ":" in name and not name.startswith("["):  # an IPv6 address
        name = f"[{name}]"
    return f"{name}:{port}" if name and port else name


def _text(pep3333: str) -> str:
    return pep3333.encode("latin-1").decode("utf-8", "replace")


def _respond(
    response: Response, start_response: StartResponse, environ: WSGIEnvironment
) -> list[bytes]:
    status = f"{response.status} {HTTPStatus(response.status).phrase}"
    headers, body = wire(response, head=environ.get("REQUEST_METHOD") == "HEAD")
    start_response(status, headers)
    return [body]


__all__ = ["ENVIRON_KEY", "MIDDLEWARE_KEY", "Identity", "SMS2FAMiddleware", "request_from_environ"]
