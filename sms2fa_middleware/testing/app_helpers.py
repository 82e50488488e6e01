"""Helpers for the tests of an app that has the middleware installed: settings that send
through a FakeFlowroute, a verified-session cookie for a test client, and a switch that
counts every user with a phone as verified."""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
import time
from collections.abc import Iterator
from http.cookies import SimpleCookie
from typing import TYPE_CHECKING, Any

from .. import Identity
from ..settings import Settings
from .fake_flowroute import FakeFlowroute

if TYPE_CHECKING:
    from ..guard import Guard


def settings_for_tests(
    database: str | os.PathLike[str], fake: FakeFlowroute | None = None, **overrides: Any
) -> Settings:
    """Settings for one test: a fresh random secret key, state in the SQLite file
    ``database``, and codes sent through ``fake`` (a started :class:`FakeFlowroute`) -- or,
    without one, printed by the console backend. Keyword arguments override any value."""
    values: dict[str, Any] = {
        "secret_key": secrets.token_urlsafe(32),
        "database_url": f"sqlite:///{os.fspath(database)}",
    }
    values.update(fake.settings_kwargs() if fake is not None else {"sms_backend": "console"})
    values.update(overrides)
    return Settings(**values)


def find_guard(app: object) -> Guard:
    """The :class:`~sms2fa_middleware.guard.Guard` of the SMS2FAMiddleware in ``app``: the
    middleware itself (WSGI or ASGI), a Flask app whose ``wsgi_app`` it wraps, a Starlette or
    FastAPI app that lists it in its middleware, or any wrapper that keeps the app it wraps in
    ``.app``. For Django: the ``SMS2FAMiddleware`` class or a Django test ``Client`` (the
    guard the current ``settings.SMS2FA`` builds), or a middleware instance. Raises
    LookupError when there is none."""
    from ..guard import Guard, GuardedApp

    django_guard = _django_guard(app)
    if django_guard is not None:
        return django_guard
    seen: set[int] = set()
    node: Any = app
    while node is not None and id(node) not in seen:
        seen.add(id(node))
        if isinstance(node, Guard):
            return node
        if isinstance(node, GuardedApp):
            return node.guard
        if isinstance(getattr(node, "guard", None), Guard):  # Django's middleware instance
            return node.guard  # type: ignore[no-any-return]
        if hasattr(node, "build_middleware_stack") and hasattr(node, "middleware_stack"):
            # Starlette builds its middleware on the first request. Building it now, and
            # keeping it as Starlette itself would, finds the very instance that will serve.
            if node.middleware_stack is None:
                node.middleware_stack = node.build_middleware_stack()
            node = node.middleware_stack
            continue
        node = getattr(node, "wsgi_app", None) or getattr(node, "app", None)
    raise LookupError(
        f"no SMS2FAMiddleware in this {type(app).__name__}; pass the middleware "
        "or the app it wraps (for Django: the SMS2FAMiddleware class)"
    )


def _django_guard(app: object) -> Guard | None:
    """The guard for the current ``settings.SMS2FA`` when ``app`` names Django's middleware
    (its class) or is a Django test client; None otherwise. Django is imported only when the
    app already did."""
    middleware = sys.modules.get("sms2fa_middleware.django.middleware")
    client = sys.modules.get("django.test.client")
    if not (
        (middleware is not None and app is middleware.SMS2FAMiddleware)
        or (client is not None and isinstance(app, client.ClientMixin))
    ):
        return None
    from ..django.conf import installed

    return installed().guard


def verified_cookie(
    app: object, identity: Identity | tuple[Any, Any], *, https: bool = False
) -> tuple[str, str]:
    """``(name, value)`` of the verified-session cookie that the middleware in ``app`` would
    set right now after ``identity`` entered a right code: signed with its key, bound to its
    cookie name, prefix and audience and to the identity (normalised as an ``identify``
    answer is: an int auth_id, a national-format number). ``https`` picks the name the
    middleware reads on https (``__Host-`` prefixed unless a cookie domain is set)."""
    guard = find_guard(app)
    who = guard.identity(identity)
    if who is None or who.recipient is None:
        raise ValueError("a verified session needs an identity with a phone number")
    return guard.cookie_for(https), guard.signer.issue(who, int(time.time() * 1000))


def mark_verified(
    client: Any, app: object, identity: Identity | tuple[Any, Any], *, https: bool | None = None
) -> None:
    """Make ``client`` verified for ``identity`` on the middleware in ``app`` (see
    :func:`find_guard`), as if it had just entered a right code: it gets a real
    verified-session cookie (:func:`verified_cookie`). Requests still go through
    ``identify`` and the middleware, so they pass only while ``identify`` names this
    identity -- e.g. after the test logs in as that user -- and a revoke (logout) ends the
    session as it would a real one.

    ``client``: a Flask/werkzeug test client, a Starlette/FastAPI ``TestClient`` or any httpx
    client, a ``requests.Session``, or a Django ``Client``/``AsyncClient`` (with Django,
    ``app`` is the ``SMS2FAMiddleware`` class: ``mark_verified(client, SMS2FAMiddleware,
    Identity(user.pk, user.phone_number))``). With ``https`` left None the cookie is set
    under both names, for http and for https requests.
    """
    for secure in (False, True) if https is None else (https,):
        name, value = verified_cookie(app, identity, https=secure)
        _set_cookie(client, name, value)


def _set_cookie(client: Any, name: str, value: str) -> None:
    cookies = getattr(client, "cookies", None)
    if isinstance(cookies, SimpleCookie):  # Django's Client and AsyncClient
        cookies[name] = value
    elif cookies is not None and hasattr(cookies, "set"):  # httpx (TestClient), requests
        cookies.set(name, value, path="/")
    elif hasattr(client, "set_cookie"):  # werkzeug's Client (Flask's test_client())
        client.set_cookie(name, value, path="/")
    else:
        raise TypeError(
            f"cannot set a cookie on a {type(client).__name__}; give a werkzeug, "
            "httpx, requests or Django test client"
        )


@contextlib.contextmanager
def assume_verified(phone: str | None = None) -> Iterator[None]:
    """While open, every SMS2FAMiddleware in this process (WSGI, ASGI, Django) counts a
    protected request as verified when its ``identify`` names a user with a phone number:
    no cookie, no code. With ``phone`` (E.164, e.g. ``"+12065550100"``) a user without a
    phone counts as verified too, and the identity the app sees gets that number.

    For tests that make their own clients (``TestClient(app)`` in each test), where
    :func:`mark_verified` has no client to mark. Anonymous requests are answered as before
    (and users without a phone too, unless ``phone`` is given); revocations are not seen
    (test logout with :func:`mark_verified`). Not reentrant across threads: open it in the
    test, around the requests."""
    from ..guard.decision import AssumeVerified, Decider
    from ..phones import on_file

    number = None
    if phone is not None:
        number = on_file(phone, "US")
        if number is None:
            raise ValueError(
                "assume_verified(phone=...) needs a phone number in E.164, such as '+12065550100'"
            )
    saved = Decider.assume_verified
    Decider.assume_verified = AssumeVerified(number)
    try:
        yield
    finally:
        Decider.assume_verified = saved
