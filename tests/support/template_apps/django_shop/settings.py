"""Settings of the Django shop (tests only)."""

from pathlib import Path

from sms2fa_middleware import Settings

HERE = Path(__file__).resolve().parent

SECRET_KEY = "django-shop-test-only-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "tests.support.template_apps.django_shop.urls"
INSTALLED_APPS: list[str] = []
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "sms2fa_middleware.django.SMS2FAMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [str(HERE / "templates")],
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "tests.support.template_apps.django_shop.views.shop",
            ]
        },
    }
]
DATABASES: dict[str, dict[str, str]] = {}
STATIC_URL = "/static/"
USE_TZ = True

SMS2FA = {
    "protect": ["/account"],
    "login_url": "/login",
    "identify": "tests.support.template_apps.django_shop.views.identify",
    "render": "tests.support.template_apps.django_shop.views.render",
    "settings": Settings.from_env(),
}
