"""The example Django project (examples/django_app) served with Django Channels: HTTP as
before, and two websocket consumers -- /account/ws/ (protected by SMS2FA["protect"]) and
/public/ws/ -- behind SMS2FAChannelsMiddleware. For tests/adapters/test_channels.py:
``uvicorn tests.support.channels_asgi:application`` in the example's directory, with the
repository on PYTHONPATH."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
django_asgi = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402  (after Django is set up)
from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from sms2fa_middleware.channels import (  # noqa: E402
    SMS2FAChannelsMiddleware,
    check_websocket_routes,
)


class Account(AsyncWebsocketConsumer):
    """Greets the verified user: the guard's identity is in scope["state"]["sms2fa"]."""

    async def connect(self) -> None:
        identity = self.scope.get("state", {}).get("sms2fa")
        await self.accept()
        await self.send(text_data=f"account {identity.auth_id if identity else '-'}")


class Public(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        await self.accept()
        await self.send(text_data="public")


websocket_routes = [
    path("account/ws/", Account.as_asgi()),
    path("public/ws/", Public.as_asgi()),
]

application = ProtocolTypeRouter(
    {
        "http": django_asgi,
        "websocket": AuthMiddlewareStack(SMS2FAChannelsMiddleware(URLRouter(websocket_routes))),
    }
)
check_websocket_routes(application)
