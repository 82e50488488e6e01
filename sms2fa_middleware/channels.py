"""Django Channels: the SMS second factor for websocket routes.

Channels hands websocket connections to its own ``ProtocolTypeRouter``, past Django's
``MIDDLEWARE``: without this guard a websocket under ``/account/`` opens with the password
alone. Wrap the websocket routes *inside* ``AuthMiddlewareStack`` (so ``scope["user"]`` is
resolved)::

    from channels.auth import AuthMiddlewareStack
    from channels.routing import ProtocolTypeRouter, URLRouter
    from django.core.asgi import get_asgi_application

    django_asgi = get_asgi_application()

    from sms2fa_middleware.channels import SMS2FAChannelsMiddleware, check_websocket_routes

    application = ProtocolTypeRouter({
        "http": django_asgi,
        "websocket": AuthMiddlewareStack(SMS2FAChannelsMiddleware(URLRouter(routes))),
    })
    check_websocket_routes(application)  # logs each protected route left unguarded

It reads the same ``settings.SMS2FA`` as :class:`sms2fa_middleware.django.SMS2FAMiddleware`
and shares its guard, so the verified-session cookie the HTML challenge set opens the
websocket. Identity: the configured ``identify`` (or the default, ``scope["user"]``'s
``str(user.pk)`` and phone attribute), given a Django request built from the handshake with
``request.user`` and ``request.session`` taken from the scope; a sync one runs in a thread
(``database_sync_to_async``). The decision is the ASGI middleware's
(:class:`sms2fa_middleware.asgi.SMS2FAMiddleware`, this module only adapts the identity):
a websocket to a protected path without a verified session is closed before the handshake
(HTTP 403), one under the prefix too; other paths pass. A verified connection carries its
identity in ``scope["state"]["sms2fa"]``.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings as django_settings
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from . import Identity
from .asgi import SMS2FAMiddleware
from .django import Installed, installed, sample_path
from .guard import PASS, IdentifyError

log = logging.getLogger("sms2fa")

_NO_USER = (
    "SMS2FAChannelsMiddleware found no scope['user']: wrap it inside Channels' "
    "AuthMiddlewareStack(...), or set SMS2FA['identify']"
)


class ScopeIdentify:
    """The guard's ``identify`` for a websocket: Django's configured ``identify`` (default:
    the user) called with a Django request for the handshake."""

    def __init__(self, chosen: Installed) -> None:
        self.installed = chosen

    async def __call__(self, connection: HTTPConnection) -> Identity | None:
        scope = connection.scope
        if self.installed.default_identify and "user" not in scope:
            raise IdentifyError(_NO_USER)
        request = handshake_request(scope)
        if self.installed.identify_is_async:
            return await self.installed.identify(request)  # type: ignore[no-any-return]
        # user.phone_number may follow a relation (a query): not on the event loop
        identify = database_sync_to_async(self.installed.identify)
        return await identify(request)  # type: ignore[no-any-return]


def handshake_request(scope: Scope) -> HttpRequest:
    """A Django request for a websocket handshake (a GET), with ``request.user`` and
    ``request.session`` from Channels' scope when its middleware set them."""
    request = ASGIRequest({**scope, "method": "GET"}, io.BytesIO())
    for name in ("user", "session"):
        if name in scope:
            setattr(request, name, scope[name])
    return request


class SMS2FAChannelsMiddleware:
    """Demand a verified SMS second factor on the websockets to the ``protect``ed paths of
    ``settings.SMS2FA``; place it inside ``AuthMiddlewareStack``. Other scopes pass."""

    def __init__(self, inner: ASGIApp) -> None:
        self.inner = inner
        self.installed = installed()
        self.guard = self.installed.guard
        self.middleware = SMS2FAMiddleware(
            inner, identify=ScopeIdentify(self.installed), guard=self.guard
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.inner(scope, receive, send)
            return
        root = scope.get("root_path")
        if (
            root
            and scope["path"].startswith(root)
            and scope["path"][len(root) :][:1] not in ("", "/")
        ):
            # URLRouter strips root_path without a segment boundary ("/app" from
            # "/appaccount/") where the guard would not: two readings, so refuse.
            await send({"type": "websocket.close", "code": 1008})
            return
        # Behind a TLS proxy Django set the __Host- cookie: read the scheme as Django does.
        if (
            scope.get("scheme") != "wss"
            and django_settings.SECURE_PROXY_SSL_HEADER
            and handshake_request(scope).is_secure()
        ):
            scope = {**scope, "scheme": "wss"}
        await self.middleware(scope, receive, send)


# -- start-up check ------------------------------------------------------------------------


def check_websocket_routes(application: Any) -> list[str]:
    """Start-up check: log (and return) a warning for each websocket route of a Channels
    ``application`` (a ``ProtocolTypeRouter``, or its websocket app) that a ``protect``
    pattern of ``settings.SMS2FA`` covers but no :class:`SMS2FAChannelsMiddleware` guards.
    Looks through Channels' routers and middleware (``inner``/``application``/``app``);
    an app it cannot see into is taken as one endpoint."""
    guard = installed().guard
    mapping = getattr(application, "application_mapping", None)
    websocket = mapping.get("websocket") if isinstance(mapping, dict) else application
    warnings: list[str] = []

    def walk(app: Any, path: str | None) -> None:
        if isinstance(app, SMS2FAChannelsMiddleware) or app is None:
            return
        routes = getattr(app, "routes", None)
        if getattr(app, "_path_routing", False) and isinstance(routes, Iterable):
            for route in routes:  # URLRouter: Django path()/re_path() entries
                walk(route.callback, (path or "/") + sample_path(route.pattern))
            return
        for name in ("inner", "application", "app"):
            wrapped = getattr(app, name, None)
            if wrapped is not None and wrapped is not app:
                walk(wrapped, path)
                return
        _endpoint(path)

    def _endpoint(path: str | None) -> None:
        if path is None:  # no router: this app takes websockets at every path
            warnings.append(
                "the websocket application takes every path, the protected "
                "ones too, and no SMS2FAChannelsMiddleware guards it"
            )
        elif guard.classify(path) != PASS:
            warnings.append(
                f"websocket route {path!r} is protected but no "
                "SMS2FAChannelsMiddleware guards it: it connects without "
                "SMS verification"
            )

    walk(websocket, None)
    for warning in warnings:
        log.warning("sms2fa: %s", warning)
    return warnings


__all__ = [
    "SMS2FAChannelsMiddleware",
    "ScopeIdentify",
    "check_websocket_routes",
    "handshake_request",
]
