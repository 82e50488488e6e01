"""Django Channels: websockets go past Django's MIDDLEWARE, so SMS2FAChannelsMiddleware
guards them, with the same settings.SMS2FA, identity (scope["user"]) and verified cookie.

Over real servers (daphne and uvicorn serving tests/support/channels_asgi.py: the example
project plus two consumers) with a real websocket client: a logged-in but unverified session
is refused before the handshake (HTTP 403); after the Django HTML challenge the same
browser's cookies open it; another user's session with that verified cookie is refused;
/public/ws/ needs nothing. In process: the start-up check of the routes, and the refusals
that need no server.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from sms2fa_middleware.testing import FakeFlowroute
from tests.support import ROOT, SECRET
from tests.support.django_example import (
    ALICE,
    ALICE_PHONE,
    BOB,
    BOB_PHONE,
    EXAMPLE,
    Server,
    log_in,
    prepare_example,
    verify,
)
from tests.support.servers import free_port, launch

pytest.importorskip("channels")
websockets_client = pytest.importorskip("websockets.sync.client")
from websockets.exceptions import InvalidStatus  # noqa: E402

# -- in process ---------------------------------------------------------------------------------


def _consumer() -> Any:
    from channels.generic.websocket import AsyncWebsocketConsumer

    class Hello(AsyncWebsocketConsumer):
        async def connect(self) -> None:
            await self.accept()

    return Hello.as_asgi()


def _routes() -> Any:
    from channels.routing import URLRouter
    from django.urls import path, re_path

    return URLRouter(
        [
            path("account/ws/", _consumer()),
            re_path(r"^public/(?P<room>\w+)/$", _consumer()),
            path("nested/", URLRouter([path("account/", _consumer())])),
        ]
    )


def test_check_websocket_routes_names_the_unguarded_protected_routes(
    sms2fa: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from channels.auth import AuthMiddlewareStack
    from channels.routing import ProtocolTypeRouter
    from channels.security.websocket import AllowedHostsOriginValidator

    from sms2fa_middleware.channels import SMS2FAChannelsMiddleware, check_websocket_routes

    sms2fa(protect=["/account", "/nested/account"])
    bare = ProtocolTypeRouter(
        {"websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(_routes()))}
    )
    with caplog.at_level(logging.WARNING, logger="sms2fa"):
        warnings = check_websocket_routes(bare)
    assert len(warnings) == 2, warnings
    assert "'/account/ws/' is protected" in warnings[0]
    assert "'/nested/account/'" in warnings[1]
    assert "SMS2FAChannelsMiddleware" in caplog.text

    guarded = ProtocolTypeRouter(
        {
            "websocket": AllowedHostsOriginValidator(
                AuthMiddlewareStack(SMS2FAChannelsMiddleware(_routes()))
            )
        }
    )
    assert check_websocket_routes(guarded) == []
    assert "every path" in check_websocket_routes(ProtocolTypeRouter({"websocket": _consumer()}))[0]


def _connect(app: Any, path: str, **scope: Any) -> dict[str, Any]:
    """What ``app`` answers a websocket connect to ``path`` (in process, asgiref's
    ApplicationCommunicator)."""
    from asgiref.testing import ApplicationCommunicator

    async def run() -> dict[str, Any]:
        communicator = ApplicationCommunicator(
            app,
            {
                "type": "websocket",
                "path": path,
                "headers": [],
                "scheme": "ws",
                "query_string": b"",
                "subprotocols": [],
                **scope,
            },
        )
        await communicator.send_input({"type": "websocket.connect"})
        try:
            return await communicator.receive_output(5)
        finally:
            communicator.stop(exceptions=False)

    return asyncio.run(run())


def test_outside_the_auth_stack_it_fails_closed_and_says_why(
    sms2fa: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from sms2fa_middleware.channels import SMS2FAChannelsMiddleware

    sms2fa()
    app = SMS2FAChannelsMiddleware(_routes())  # no AuthMiddlewareStack: no scope["user"]
    with caplog.at_level(logging.ERROR, logger="sms2fa"):
        answer = _connect(app, "/account/ws/")
    assert answer == {"type": "websocket.close", "code": 1011}
    assert "inside Channels' AuthMiddlewareStack" in caplog.text
    assert _connect(app, "/public/room/")["type"] == "websocket.accept"


def test_a_root_path_that_channels_and_the_guard_would_read_apart_is_refused(sms2fa: Any) -> None:
    """URLRouter strips root_path "/app" from "/appaccount/ws/" (routing account/ws/)."""
    from channels.auth import AuthMiddlewareStack

    from sms2fa_middleware.channels import SMS2FAChannelsMiddleware

    sms2fa()
    app = AuthMiddlewareStack(SMS2FAChannelsMiddleware(_routes()))
    answer = _connect(app, "/appaccount/ws/", root_path="/app")
    assert answer == {"type": "websocket.close", "code": 1008}


# -- a real server and a real websocket client ---------------------------------------------

SERVERS = {  # Channels' own server, and uvicorn (its `websockets` implementation)
    "daphne": [
        "daphne",
        "-b",
        "127.0.0.1",
        "-p",
        "{port}",
        "tests.support.channels_asgi:application",
    ],
    "uvicorn": ["uvicorn", "tests.support.channels_asgi:application", "--port", "{port}"],
}


@pytest.fixture(scope="module", params=list(SERVERS))
def channels_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """tests/support/channels_asgi.py served for real: migrated, alice and bob added, SMS via
    FakeFlowroute."""
    pytest.importorskip(request.param)
    tmp = tmp_path_factory.mktemp(f"channels-{request.param}")
    with FakeFlowroute() as fake:
        env = {
            **os.environ,
            **fake.settings_env(),
            "SMS2FA_SECRET_KEY": SECRET,
            "SMS2FA_DATABASE_URL": f"sqlite:///{tmp / 'sms2fa.db'}",
            "DJANGO_DB_PATH": str(tmp / "django.db"),
            "DJANGO_DEBUG": "0",
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        env.pop("DJANGO_SETTINGS_MODULE", None)
        prepare_example(env, [(ALICE, ALICE_PHONE), (BOB, BOB_PHONE)])
        port = free_port()
        args = [a.replace("{port}", str(port)) for a in SERVERS[request.param]]
        with launch(
            args, env, port, path="/", log_path=tmp / "server.log", cwd=EXAMPLE, inherit_env=False
        ) as (base, _):
            yield Server(request.param, base, port, fake)


def _cookies(*browsers: requests.Session, only: str | None = None) -> str:
    return "; ".join(
        f"{c.name}={c.value}" for b in browsers for c in b.cookies if only is None or c.name == only
    )


def _open(channels_server: Server, path: str, cookie: str) -> str:
    """The first message of the websocket at ``path``; InvalidStatus when refused."""
    url = f"ws://127.0.0.1:{channels_server.port}{path}"
    headers = {"Cookie": cookie} if cookie else {}
    with websockets_client.connect(url, additional_headers=headers, open_timeout=10) as ws:
        return str(ws.recv(timeout=10))


def _refused(channels_server: Server, path: str, cookie: str) -> int:
    with pytest.raises(InvalidStatus) as refused:
        _open(channels_server, path, cookie)
    return refused.value.response.status_code


@pytest.mark.slow
def test_an_unverified_websocket_is_refused_before_the_handshake(channels_server: Server) -> None:
    assert _refused(channels_server, "/account/ws/", "") == 403  # anonymous
    browser = log_in(channels_server)  # the password alone
    assert _refused(channels_server, "/account/ws/", _cookies(browser)) == 403
    assert _open(channels_server, "/public/ws/", "") == "public"  # unprotected: nothing needed
    assert _open(channels_server, "/public/ws/", _cookies(browser)) == "public"


@pytest.mark.slow
def test_the_django_challenge_opens_the_websocket_for_that_user_only(
    channels_server: Server,
) -> None:
    browser = log_in(channels_server)
    assert verify(channels_server, browser).status_code == 200  # the HTML challenge, over HTTP
    greeting = _open(channels_server, "/account/ws/", _cookies(browser))
    assert greeting.startswith("account ")  # the consumer sees the guard's identity:
    assert greeting.removeprefix("account ").isdigit()  # str(user.pk), the default

    # bob's session with alice's verified cookie: the cookie is bound to alice.
    bob = log_in(channels_server, BOB)
    assert (
        _refused(
            channels_server, "/account/ws/", _cookies(bob) + "; " + _cookies(browser, only="sms2fa")
        )
        == 403
    )


def test_behind_a_tls_proxy_the_scheme_is_read_as_django_reads_it(sms2fa: Any) -> None:
    """SECURE_PROXY_SSL_HEADER: Django's challenge set the __Host- cookie over "https", so the
    websocket (plain "ws" to the server) must look for that cookie too."""
    import time

    from django.contrib.auth import get_user_model
    from django.test import override_settings

    from sms2fa_middleware import Identity
    from sms2fa_middleware.channels import SMS2FAChannelsMiddleware

    sms2fa()
    user = get_user_model().objects.get(username=ALICE)
    with override_settings(SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https")):
        app = SMS2FAChannelsMiddleware(_routes())
        signed = app.guard.signer.issue(
            Identity(str(user.pk), ALICE_PHONE), int(time.time() * 1000)
        )
        cookie = (b"cookie", f"__Host-sms2fa={signed}".encode())
        proxied = [cookie, (b"x-forwarded-proto", b"https")]
        opened = _connect(app, "/account/ws/", user=user, headers=proxied)
        assert opened["type"] == "websocket.accept"
        refused = _connect(app, "/account/ws/", user=user, headers=[cookie])  # not via TLS
        assert refused == {"type": "websocket.close", "code": 1008}
