"""Settings, views and URLs of the package-templates project (tests only)."""

import os

from django.http import HttpRequest, HttpResponse
from django.urls import path

from sms2fa_middleware import Identity, Settings
from sms2fa_middleware.django import django_render

SECRET_KEY = "django-package-test-only-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = __name__
INSTALLED_APPS: list[str] = []
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "sms2fa_middleware.django.SMS2FAMiddleware",
]
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "DIRS": []}]
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True

USERS = {"alice": "+12065551234"}

#: Every page from the package's templates, in the package's base.html.
render = django_render()


def identify(request: HttpRequest) -> Identity | None:
    user = request.headers.get("x-user")
    if user == "broken":
        raise RuntimeError("the user store is down")
    if user == "carol":
        return Identity("carol", None)
    return Identity(user, USERS[user]) if user in USERS else None


def on_enroll(auth_id: str, number: str) -> None:
    USERS[auth_id] = number


def account(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"account of {request.sms2fa.auth_id}")  # type: ignore[attr-defined]


urlpatterns = [path("account", account)]

SMS2FA = {
    "protect": ["/account"],
    "identify": f"{__name__}.identify",
    "render": f"{__name__}.render",
    "trust_browser_for": 30,
    "settings": Settings.from_env(),
}
if os.environ.get("SMS2FA_TEST_ENROLL") == "1":
    SMS2FA["on_enroll"] = f"{__name__}.on_enroll"
