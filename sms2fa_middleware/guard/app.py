"""What both adapters share: their keywords (one list: :class:`GuardOptions`) and
:meth:`GuardedApp.revoke`. Subclasses only translate requests in ``__call__``."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from ..settings import Settings
from .core import Guard
from .options import GuardOptions

AppT = TypeVar("AppT")
IdentifyT = TypeVar("IdentifyT")


class GuardedApp(Generic[AppT, IdentifyT]):
    """``SMS2FAMiddleware(app, settings=None, *, identify, guard=None, **options)``: the
    options are :class:`GuardOptions`' fields (``protect=[...]`` is required), checked
    once; an unknown keyword is a TypeError. ``guard=`` shares a ready-made Guard (the
    options are then ignored)."""

    def __init__(self, app: AppT, settings: Settings | None = None, *, identify: IdentifyT,
                 guard: Guard | None = None, **options: Any) -> None:
        self.app = app
        self.identify = identify
        self.guard = guard or Guard(settings, options=GuardOptions.from_keywords(options))
        self.verifier = self.guard.verifier
        self._kinds = self.guard.kinds

    def revoke_session(self, request: Any) -> list[tuple[str, str]]:
        """End only the verified session of ``request`` (the framework's request object):
        "log out this device", on every worker and host. Returns Set-Cookie headers that
        delete the cookie, to add to the logout response. Writes to the store: from async
        code, call it in a thread."""
        return self.guard.revoke_session(request.headers.get("cookie", ""))

    def revoke(self, auth_id: object) -> None:
        """End ``auth_id``'s verified sessions on every worker and host (logout, a new
        number). Any id ``identify`` gives (an int too: it is used as ``str(auth_id)``).
        It writes to the store: from async code, call it in a thread."""
        self.guard.revoke(str(auth_id))


__all__ = ["GuardedApp"]
