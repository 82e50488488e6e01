"""The Django shop's views, its identify, its context processor and its render hook."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect

from sms2fa_middleware import Identity
from sms2fa_middleware.django import django_render
from sms2fa_middleware.guard import safe_next

USERS = {"alice": "+12065551234"}

#: The middleware's pages in the shop's templates: its own sms2fa/challenge.html, and the
#: package's pages in its base.html.
render = django_render(layout="base.html")


def identify(request: HttpRequest) -> Identity | None:
    user = request.COOKIES.get("user", "")
    return Identity(user, USERS[user]) if user in USERS else None


def shop(request: HttpRequest) -> dict[str, Any]:
    return {"shop_name": "Corner Shop"}


def login(request: HttpRequest) -> HttpResponse:
    response = HttpResponseRedirect(safe_next(request.GET.get("next")))
    response.status_code = 303
    response.set_cookie("user", request.GET.get("user", ""))
    return response


def account(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f'<p id="account">account of {request.sms2fa.auth_id}</p>')
