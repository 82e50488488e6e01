"""Defence in depth: :func:`verified_required` refuses (403) a request the middleware did
not verify, so a view that the ``protect`` patterns miss fails closed."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest, JsonResponse

from .. import route_checks

ViewT = TypeVar("ViewT", bound=Callable[..., Any])


def _refuse(request: HttpRequest) -> JsonResponse:
    response = JsonResponse(route_checks.refusal(request.path), status=403)
    response["cache-control"] = "no-store"
    return response


def verified_required(view: ViewT) -> ViewT:
    """Refuse (403 JSON) the request unless the middleware verified it (``request.sms2fa``).
    Sync and async function views; ``method_decorator(verified_required)`` on classes."""
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
