"""Test helpers for your app's tests, and :class:`FakeFlowroute`, a real HTTP server that
answers like Flowroute v2.1.

Testing an app that has the middleware installed (this module is a pytest plugin: installing
the package gives pytest its fixtures):

- :func:`mark_verified` gives a test client (Flask/werkzeug, Starlette/FastAPI ``TestClient``,
  httpx, requests, Django ``Client``) a real verified-session cookie for an identity, signed
  exactly as the middleware signs it after a right code -- so the test skips the SMS round
  trip but nothing else;
- the ``sms2fa_settings`` fixture (:func:`settings_for_tests`) builds ``Settings`` that send
  through a started FakeFlowroute and keep their state in a temporary SQLite file; the
  ``sms2fa_env`` fixture sets the same in the environment, for app factories that call
  ``Settings.from_env()`` (``create_app()`` and ``create_app(test_config)`` both build);
- the ``sms2fa_assume_verified`` fixture (:func:`assume_verified`) counts every request whose
  ``identify`` names a user with a phone as verified, for tests that make their own clients;
  ``assume_verified(phone="+12065550100")`` counts users without a phone too.

Django: pass the ``SMS2FAMiddleware`` class (or the test ``Client``) as ``app``; the guard is
rebuilt when ``settings.SMS2FA`` or the environment changes (``override_settings``,
``sms2fa_env``: each test's fake gets its codes), or after ``sms2fa_middleware.django.reset()``.

The fake (:mod:`.fake_flowroute`; what it accepts is :mod:`.flowroute_rules`): use it in
your own tests instead of patching HTTP: point the library at ``fake.url`` (or give a
subprocess ``fake.settings_env()``), let your app send a code, then read it back with
``fake.last_code(number)``. The ``fake_flowroute`` pytest fixture yields a started one.

The fake is stricter than the documentation needs the real API to be, so that a client that
passes here is right there too. For ``POST /v2.1/messages`` it checks, in this order:

- 401 ``Unauthorized``: HTTP Basic credentials other than the fake's access/secret key;
- 415 ``Unsupported Media Type``: a ``Content-Type`` other than ``application/vnd.api+json``
  (``; charset=utf-8`` is allowed, nothing else; plain ``application/json`` is refused);
- 400 ``Bad Request``: a body that is not UTF-8 JSON, not an object, or (JSON:API form) whose
  ``data`` / ``data.attributes`` are not objects or whose ``data.type`` is not ``"message"``;
  the flat form ``{"to", "from", "body"}`` is accepted too;
- 422 ``Unprocessable Entity``: ``to`` / ``from`` missing or not 11-digit North American
  digits (``12065551234``: no ``+``, no separators), ``body`` missing, not a string or blank,
  an unknown attribute, or a badly typed ``is_mms`` / ``media_urls`` / ``dlr_callback``;
- 403 ``Forbidden``: ``from`` is not the fake account's number.

Any other path answers 404, any other method on the path 405 (``Allow: POST``), every error
with a JSON:API body ``{"errors": [{"id", "status", "title", "detail"}]}``. A message that
passes is recorded and answered ``202`` with ``{"data": {"id": "mdr2-<32 hex>", ...}}``.

Injected faults apply to the next requests whatever their path, each kind from its own
queue: first a delay (:meth:`FakeFlowroute.delay_next` or the standing
:attr:`FakeFlowroute.delay`), then a drop (:meth:`~FakeFlowroute.drop_next`: the connection is
closed without an answer and nothing is recorded), else a failure
(:meth:`~FakeFlowroute.fail_next`). A delayed request that is valid is still recorded, as the
real service would still send it after the client gave up.
"""

from __future__ import annotations

import contextlib
import secrets
import sys
from collections.abc import Callable, Iterator

from ..settings import Settings, env_name
from .app_helpers import (
    assume_verified,
    find_guard,
    mark_verified,
    settings_for_tests,
    verified_cookie,
)
from .fake_flowroute import FakeFlowroute, FakeMessage, NoCodeError

try:
    import pytest
except ImportError:  # pragma: no cover - the helpers work without pytest
    pytest = None  # type: ignore[assignment]

__all__ = [
    "FakeFlowroute",
    "FakeMessage",
    "NoCodeError",
    "assume_verified",
    "find_guard",
    "mark_verified",
    "settings_for_tests",
    "verified_cookie",
]


if pytest is not None:

    @pytest.fixture
    def fake_flowroute() -> Iterator[FakeFlowroute]:
        """A started :class:`FakeFlowroute`, stopped after the test."""
        with FakeFlowroute() as fake:
            yield fake

    @pytest.fixture
    def sms2fa_settings(
        tmp_path_factory: pytest.TempPathFactory, fake_flowroute: FakeFlowroute
    ) -> Settings:
        """:func:`settings_for_tests`: a random key, a temporary SQLite file, and codes sent
        to this test's ``fake_flowroute``. Pass it to the middleware, or to your app factory."""
        return settings_for_tests(tmp_path_factory.mktemp("sms2fa") / "sms2fa.db", fake_flowroute)

    def _reset_django() -> None:
        """The middleware that read the environment build their guards afresh (new settings
        or fake): a module-level app's, and a Django project's."""
        from ..guard.app import reset_from_env

        reset_from_env()
        conf = sys.modules.get("sms2fa_middleware.django.conf")
        if conf is not None:
            conf.reset()

    @pytest.fixture
    def sms2fa_env(
        monkeypatch: pytest.MonkeyPatch,
        tmp_path_factory: pytest.TempPathFactory,
        fake_flowroute: FakeFlowroute,
    ) -> Iterator[dict[str, str]]:
        """The same as ``sms2fa_settings``, in the environment (undone after the test), so
        that an app factory calling ``Settings.from_env()`` builds in tests -- with or
        without a test config. Returns the variables it set."""
        database = tmp_path_factory.mktemp("sms2fa") / "sms2fa.db"
        env = {
            **fake_flowroute.settings_env(),
            env_name("secret_key"): secrets.token_urlsafe(32),
            env_name("database_url"): f"sqlite:///{database}",
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        _reset_django()
        yield env
        _reset_django()

    @pytest.fixture
    def sms2fa_assume_verified() -> Iterator[Callable[..., None]]:
        """:func:`assume_verified` for one test: users with a phone count as verified. It
        gives a function: ``sms2fa_assume_verified(phone="+12065550100")`` counts users
        without a phone too, from then on in the test."""
        with contextlib.ExitStack() as stack:
            stack.enter_context(assume_verified())

            def assume(phone: str | None = None) -> None:
                stack.enter_context(assume_verified(phone))

            yield assume
