"""Defence in depth: :func:`verified_required` refuses (403) a request the middleware did
not verify, so a view that the ``protect`` patterns miss fails closed."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest, HttpResponse

from .. import route_checks

ViewT = TypeVar("ViewT", bound=Callable[..., Any])


def _refuse(request: HttpRequest) -> HttpResponse:
    status, body, headers = route_checks.refusal_answer(
        request.path, request.headers.get("accept", "")
    )
    return HttpResponse(body, status=status, headers=headers)


def verified_required(view: ViewT) -> ViewT:
    """Refuse (403: a page for a browser, JSON for anyone else) the request unless the
    middleware verified it (``request.sms2fa``). Sync and async function views;
    ``method_decorator(verified_required)`` on classes."""
    if iscoroutinefunction(view):

        @functools.wraps(view)
        async def async_wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            if getattr(request, "sms2fa", None) is None:
                return _refuse(request)
            return await view(request, *args, **kwargs)

        return async_wrapper  # type: ignore[return-value]

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        if getattr(request, "sms2fa", None) is None:
            return _refuse(request)
        return view(request, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


__all__ = ["verified_required"]
