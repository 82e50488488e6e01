"""URLconfs for tests/adapters/test_django_routing.py: one view reached the ways Django
can route a URL pattern besides its plain path -- under every language of ``i18n_patterns`` (default
language prefixed here; unprefixed in django_routing_urls_unprefixed.py), a ``re_path``
regex, a case-insensitive regex, a URL namespace. No view but the account page checks
anything itself, so a request that the middleware lets through shows MARKER; the account
page is ``verified_required``, which must see the verification process_view made."""

from __future__ import annotations

from typing import Any

from django.conf.urls.i18n import i18n_patterns
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.urls import include, path, re_path

from sms2fa_middleware.django import verified_required

MARKER = "SMS2FA-ROUTING-VIEW-RAN"


def page(request: HttpRequest, **kwargs: Any) -> HttpResponse:
    return HttpResponse(MARKER)


async def async_page(request: HttpRequest, **kwargs: Any) -> HttpResponse:
    return HttpResponse(MARKER)


def build(prefix_default_language: bool) -> list[Any]:
    team = (
        [path("members/", page, name="members"), path("async/", async_page, name="async")],
        "team",
    )
    return [
        path("", page, name="home"),
        path("public/", page, name="public"),
        path("login/", auth_views.LoginView.as_view(), name="login"),
        *i18n_patterns(
            path("account/", verified_required(page), name="account"),
            re_path(r"^settings/(?P<tab>[a-z]+)/$", page, name="settings-tab"),
            prefix_default_language=prefix_default_language,
        ),
        re_path(r"^settings/$", page, name="settings"),
        re_path(r"(?i)^billing/$", page, name="billing"),
        path("team/", include(team)),
    ]


urlpatterns = build(prefix_default_language=True)
