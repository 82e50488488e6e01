"""What both adapters share: their keywords (one list: :class:`GuardOptions`), the lazy
start-up (:meth:`GuardedApp.check`) and :meth:`GuardedApp.revoke`. Subclasses only
translate requests in ``__call__``.

Start-up is lazy: the options are checked at once (a typo in ``protect`` fails at import),
but the settings -- the secret key, the SMS provider, the database URL -- are read and
checked when the first request that is not passed through arrives, or at :meth:`check`.
So an app module that wraps itself at import still serves ``flask db upgrade``, a test
conftest or a shell without SMS settings; a deploy calls :meth:`check` (or ``flask sms2fa
check``, ``manage.py check --deploy``) to fail before serving.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any, Generic, TypeVar

from ..engine import Verifier
from ..settings import Settings
from .core import Guard
from .options import GuardOptions
from .paths import PathPolicy

AppT = TypeVar("AppT")
IdentifyT = TypeVar("IdentifyT")

#: The middleware whose settings come from ``Settings.from_env()`` at first use. A test
#: fixture that changes the environment (``sms2fa_env``: each test's FakeFlowroute) makes
#: them read it again, so a module-level app (FastAPI's usual ``app = FastAPI()``) serves
#: every test with that test's settings, as Django's ``reset()`` does for Django.
_FROM_ENV: weakref.WeakSet[GuardedApp[Any, Any]] = weakref.WeakSet()


def reset_from_env() -> None:
    """Forget the guards built from the environment: the next request guarded by each such
    middleware reads ``Settings.from_env()`` again (a test seam; see ``sms2fa_env``)."""
    for app in list(_FROM_ENV):
        with app._lock:
            app._guard = None


class GuardedApp(Generic[AppT, IdentifyT]):
    """``SMS2FAMiddleware(app, settings=None, *, identify, guard=None, **options)``: the
    options are :class:`GuardOptions`' fields (``protect=[...]`` is required), checked
    at once; an unknown keyword is a TypeError. ``guard=`` shares a ready-made Guard (the
    options are then ignored). Without ``guard=`` the Guard (and ``Settings.from_env()``
    when ``settings`` is None) is built on first use: see :meth:`check`."""

    def __init__(
        self,
        app: AppT,
        settings: Settings | None = None,
        *,
        identify: IdentifyT,
        guard: Guard | None = None,
        **options: Any,
    ) -> None:
        self.app = app
        self.identify = identify
        self._settings = settings
        self._guard = guard
        self._lock = threading.Lock()
        if guard is not None:
            self.paths = guard.paths
            self._options = guard.options
        else:
            if settings is None:
                _FROM_ENV.add(self)
            self._options = GuardOptions.from_keywords(options)
            # The path rules need no settings: built now, so the pass-through path stays
            # one dict lookup and never waits for the guard.
            self.paths = PathPolicy(
                self._options.protect,
                self._options.exclude,
                self._options.prefix,
                self._options.rules,
            )
        self._kinds = self.paths.kinds
        self._remember = self.paths.remember
        self._demand = self.paths.demand

    @property
    def options(self) -> GuardOptions:
        """The options (checked at once; no settings needed)."""
        guard = self._guard
        return guard.options if guard is not None else self._options

    @property
    def guard(self) -> Guard:
        """The Guard, built on first use (settings read and checked then)."""
        guard = self._guard
        return guard if guard is not None else self._build()

    def _build(self) -> Guard:
        with self._lock:  # two first requests at once build one guard
            if self._guard is None:
                self._guard = Guard(self._settings, options=self._options, paths=self.paths)
            return self._guard

    @property
    def verifier(self) -> Verifier:
        return self.guard.verifier

    def check(self) -> Guard:
        """Read and check the settings now (``Settings.from_env()`` when none were given)
        and build the guard: a :class:`~sms2fa_middleware.errors.ConfigurationError` names
        what is missing (a secret key, an SMS provider). Call it at start-up in a deploy so
        a bad configuration fails before the first request, not at it."""
        return self.guard  # the Verifier checked the SMS provider (unless given a sender)

    def revoke_session(self, request: Any) -> list[tuple[str, str]]:
        """End only the verified session of ``request`` (the framework's request object):
        "log out this device", on every worker and host. Returns Set-Cookie headers that
        delete the cookie, to add to the logout response. Writes to the store: from async
        code, call it in a thread."""
        return self.guard.revoke_session(request.headers.get("cookie", ""))

    def revoke(self, auth_id: object, *, browsers: bool = True) -> None:
        """End ``auth_id``'s verified sessions on every worker and host (logout, a new
        number), and its trusted browsers unless ``browsers=False`` (a logout: trust is for
        the next login). Any id ``identify`` gives (an int too: it is used as
        ``str(auth_id)``). It writes to the store: from async code, call it in a thread."""
        self.guard.revoke(str(auth_id), browsers=browsers)


__all__ = ["GuardedApp", "reset_from_env"]
