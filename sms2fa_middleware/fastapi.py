"""FastAPI: ``identify`` from the app's own security scheme and user dependency.

FastAPI has no public way to solve a dependency outside a route, so the helper does the
one step that matters by hand, with the app's own objects: it calls the security scheme
(``OAuth2PasswordBearer``, ``HTTPBearer``, an ``APIKeyHeader``, ...) on the request -- so
the header is read exactly as the routes read it -- and hands what it returned to the
user dependency::

    oauth2_scheme = OAuth2PasswordBearer(tokenUrl="token")

    async def current_user(token: Annotated[str, Depends(oauth2_scheme)]) -> User: ...

    identify = fastapi_identify(current_user, auth_id="username", phone="phone")

A dependency with one parameter that ``Depends`` on the scheme is read as above; one that
needs more (a database session, ...) is refused at once: give ``scheme=`` and a function
of the credential instead. An HTTPException from either (no header, a bad token) means
anonymous.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, get_args, get_origin, get_type_hints

from fastapi import HTTPException
from fastapi.params import Depends
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from . import Identity
from .users import UserField, phone_text, reader

Scheme = Callable[[Request], Awaitable[Any]]


def fastapi_identify(
    user: Callable[..., Any],
    *,
    scheme: Scheme | None = None,
    auth_id: UserField = "id",
    phone: UserField = "phone_number",
) -> Callable[[Request], Awaitable[Identity | None]]:
    """An async ``identify``: ``user(await scheme(request))`` as ``Identity(<auth_id>,
    <phone>)``, None when either raises HTTPException or gives None. ``user`` may be
    sync (run in a thread) or async; ``scheme`` defaults to what ``user``'s one parameter
    ``Depends`` on. ``auth_id`` and ``phone`` are attribute names, dotted paths or
    functions of the user."""
    found = scheme if scheme is not None else _scheme_of(user)
    lookup_is_async = inspect.iscoroutinefunction(user)
    read_id, read_phone = reader(auth_id), reader(phone)

    async def identify(request: Request) -> Identity | None:
        try:
            credential = await found(request)
            if credential is None:
                return None
            who = (
                await user(credential)
                if lookup_is_async
                else await run_in_threadpool(user, credential)
            )
        except HTTPException:  # the app would answer 401/403: anonymous
            return None
        if who is None:
            return None
        return Identity(read_id(who), phone_text(read_phone(who)))

    return identify


def _scheme_of(user: Callable[..., Any]) -> Scheme:
    """The dependency of ``user``'s one parameter (``Annotated[str, Depends(scheme)]`` or
    ``= Depends(scheme)``); a TypeError for any other signature."""
    params = list(inspect.signature(user).parameters.values())
    if len(params) == 1:
        param = params[0]
        marks = [param.default]
        try:
            hint = get_type_hints(user, include_extras=True).get(param.name)
        except Exception:  # an annotation that does not resolve: look at the default only
            hint = None
        if hint is not None and get_origin(hint) is not None:
            marks += list(get_args(hint)[1:])  # Annotated[str, Depends(...)]
        for mark in marks:
            if isinstance(mark, Depends) and mark.dependency is not None:
                return mark.dependency
    raise TypeError(
        f"fastapi_identify: {getattr(user, '__name__', user)!r} must take one parameter that "
        "Depends on the security scheme; else give scheme=your_scheme and a function of "
        "the credential it returns"
    )


__all__ = ["fastapi_identify"]
