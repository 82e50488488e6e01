"""Django adapter: ``SMS2FAMiddleware`` in ``settings.MIDDLEWARE``, configured by ``SMS2FA``.

List it after Django's AuthenticationMiddleware, so ``request.user`` is there::

    MIDDLEWARE = [
        ...,
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "sms2fa_middleware.django.SMS2FAMiddleware",
        ...,
    ]
    SMS2FA = {"protect": ["/account"], "login_url": "/login/"}

By default the identity is the logged-in ``request.user``: ``str(user.pk)`` and its
``phone_attribute`` (``"phone_number"``; a dotted path such as ``"profile.phone"`` follows
relations). ``identify`` (a callable or its dotted path) replaces that. ``settings`` holds
:class:`~sms2fa_middleware.Settings` keywords (default: ``Settings.from_env()``); every other
key is a keyword of the WSGI/ASGI middleware (``exclude``, ``prefix``, ``remember_for``, ...).

Like wsgi.py and asgi.py, this package only translates between Django and the
:class:`~sms2fa_middleware.guard.Guard`; the policy is the guard's. Paths are matched as
Django routes them: ``request.path_info`` (decoded, relative to SCRIPT_NAME / root_path).
The middleware answers the pages under the prefix itself (no urls.py change). It works under
WSGI and ASGI: under ASGI a sync ``identify`` (``request.user`` reads the database) and all
store work run in threads, never on the event loop. A verified request carries its identity
in ``request.sms2fa``; every request that went through carries the middleware in
``request.sms2fa_middleware``. Logging out (``django.contrib.auth.logout``) revokes the
user's verified sessions on every device.

Routes, not only paths: Django may send other paths to a protected URL pattern -- every
language's prefix under ``i18n_patterns``, every letter case of a ``(?i)`` regex. The path
decision stays the first line (in ``__call__``); ``process_view`` then checks the route
Django resolved (:class:`Routes`), and ``protect_views`` protects URL names
(``"billing"``, ``"accounts:*"``). A protected route gets the same decision as a protected
path.

Defence in depth: :func:`verified_required` refuses (403) a request the middleware did not
verify, so a view that the ``protect`` patterns miss fails closed.

Tests: the guard is built once per ``SMS2FA`` dict (and environment) and shared; a new one
after ``override_settings(SMS2FA=...)``, a change of the dict's values or of the environment
``Settings.from_env()`` reads, or :func:`reset`. ``sms2fa_middleware.testing`` has the
helpers (``mark_verified(client, SMS2FAMiddleware, identity)``, ``assume_verified``).

Modules: :mod:`.conf` (the ``SMS2FA`` dict, the ``request.user`` default), :mod:`.middleware`,
:mod:`.decorators` (``verified_required``), :mod:`.routes` (routes as Django resolves them,
``check_routes``), :mod:`.rendering` (``django_render``: the pages in the project's
templates). Everything is importable from here, as before.
"""

from __future__ import annotations

from ..identity import Identity
from .conf import Installed, UserIdentity, installed, reset
from .decorators import verified_required
from .middleware import SMS2FAMiddleware
from .rendering import django_render
from .routes import Routes, UrlPattern, check_routes, route_paths, sample_path, url_patterns

__all__ = [
    "Identity",
    "Installed",
    "Routes",
    "SMS2FAMiddleware",
    "UrlPattern",
    "UserIdentity",
    "check_routes",
    "django_render",
    "installed",
    "reset",
    "route_paths",
    "sample_path",
    "url_patterns",
    "verified_required",
]
