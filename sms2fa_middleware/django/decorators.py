"""Defence in depth: :func:`verified_required` refuses (403) a request the middleware did
not verify, so a view that the ``protect`` patterns miss fails closed; with ``max_age`` it
also asks for a recent code (step-up), as a rule's ``max_age`` does."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any, TypeVar, overload

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponse, HttpResponseBase

from .. import route_checks
from ..guard import Guard
from ..guard.decision import Verdict
from ..guard.rendering import LOOP
from ..messages import Request
from .middleware import SMS2FAMiddleware, django_response, guard_request

ViewT = TypeVar("ViewT", bound=Callable[..., Any])


def _refuse(request: HttpRequest) -> HttpResponse:
    """The 403, in the request's language (the middleware's pages' when it is found); the
    ``render`` hook may run (blocking)."""
    middleware = getattr(request, "sms2fa_middleware", None)
    options = middleware.installed.options if isinstance(middleware, SMS2FAMiddleware) else None
    status, body, headers = route_checks.refusal_answer(
        request.path, request.headers.get("accept", ""), guard_request(request), options
    )
    return HttpResponse(body, status=status, headers=headers)


async def _arefuse(request: HttpRequest) -> HttpResponse:
    """:func:`_refuse` from an async view: in a thread (a template may read the database),
    an async ``render`` awaited on this loop."""
    token = LOOP.set(asyncio.get_running_loop())
    try:
        return await sync_to_async(_refuse, thread_sensitive=False)(request)
    finally:
        LOOP.reset(token)


def _stale(request: HttpRequest, max_age: int | None) -> tuple[Guard, Request, Verdict] | None:
    """None when the view may run; else (the guard, the request, the step-up verdict)."""
    identity = getattr(request, "sms2fa", None)
    middleware = getattr(request, "sms2fa_middleware", None)
    if max_age is None or identity is None or not isinstance(middleware, SMS2FAMiddleware):
        return None
    sans_io = guard_request(request)
    verdict = middleware.guard.step_up(sans_io, identity, max_age)
    return None if verdict is None else (middleware.guard, sans_io, verdict)


@overload
def verified_required(view: ViewT) -> ViewT: ...


@overload
def verified_required(*, max_age: int | None = None) -> Callable[[ViewT], ViewT]: ...


def verified_required(view: ViewT | None = None, *, max_age: int | None = None) -> Any:
    """Refuse (403: a page for a browser, JSON for anyone else) the request unless the
    middleware verified it (``request.sms2fa``).
    Sync and async function views; ``method_decorator(verified_required)`` on classes.
    ``@verified_required(max_age=300)`` also asks for a code entered at most 300 s ago: an
    older session gets the step-up a rule's ``max_age`` gets (a browser: the challenge; an
    API client: 401 with RFC 9470's ``insufficient_user_authentication`` and ``max_age``)."""
    age = route_checks.checked_max_age(max_age)
    if view is None:
        return functools.partial(verified_required, max_age=age)
    if iscoroutinefunction(view):

        @functools.wraps(view)
        async def async_wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            if getattr(request, "sms2fa", None) is None:
                return await _arefuse(request)
            stale = _stale(request, age)
            if stale is not None:
                token = LOOP.set(asyncio.get_running_loop())
                try:
                    return await sync_to_async(_answer, thread_sensitive=False)(*stale)
                finally:
                    LOOP.reset(token)
            return await view(request, *args, **kwargs)

        return async_wrapper

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        if getattr(request, "sms2fa", None) is None:
            return _refuse(request)
        stale = _stale(request, age)
        if stale is not None:
            return _answer(*stale)
        return view(request, *args, **kwargs)

    return wrapper


def _answer(guard: Guard, request: Request, verdict: Verdict) -> HttpResponseBase:
    """The step-up answer as a Django response (blocking: a code may be sent)."""
    return django_response(guard.answer(verdict, request))


__all__ = ["verified_required"]
