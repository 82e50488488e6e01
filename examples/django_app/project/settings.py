"""Settings of the example Django project whose /account/ page needs an SMS code.

Run it (from this directory)::

    python manage.py migrate
    python manage.py add_user alice --password correct-horse --phone +12065550100
    python manage.py runserver          # or: uvicorn project.asgi:application
                                        # or: gunicorn project.wsgi:application

With DJANGO_DEBUG=1 (the default here) and no SMS2FA_SECRET_KEY it runs in development mode:
codes are printed to the console. Outside development (DJANGO_DEBUG=0) it refuses to start
without SMS2FA_SECRET_KEY and an SMS provider: a missing secret never turns development on.
"""

import os
from pathlib import Path

from sms2fa_middleware import Settings

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "dev-only-django-secret-key-change-me")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "sms2fa_middleware.django",  # `manage.py check --deploy` checks the SMS2FA settings
    "accounts",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "sms2fa_middleware.django.SMS2FAMiddleware",  # after AuthenticationMiddleware
]

# The guard needs the SMS settings; the rest are the middleware's keywords. Identity: the
# logged-in request.user, str(user.pk) and user.phone_number (see accounts/models.py).
SMS2FA = {
    "protect": ["/account"],
    "login_url": "/login/",
    "phone_attribute": "phone_number",
    # Development (a throw-away key, codes on the console) only while debugging locally.
    "settings": Settings.from_env(development=DEBUG and "SMS2FA_SECRET_KEY" not in os.environ),
}

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/account/"
LOGOUT_REDIRECT_URL = "/"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DJANGO_DB_PATH", str(BASE_DIR / "db.sqlite3")),
    }
}

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
            ]
        },
    }
]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
