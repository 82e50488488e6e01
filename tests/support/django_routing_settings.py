"""Settings for the real servers of tests/adapters/test_django_routing.py: the example
project's, with LocaleMiddleware, three languages and the routing URLconf
(ROUTING_PREFIX_DEFAULT=0: the default language unprefixed)."""

import os

from project.settings import *  # noqa: F403
from project.settings import MIDDLEWARE, SMS2FA

PREFIXED = os.environ.get("ROUTING_PREFIX_DEFAULT", "1") == "1"
ROOT_URLCONF = (
    "tests.support.django_routing_urls"
    if PREFIXED
    else "tests.support.django_routing_urls_unprefixed"
)
USE_I18N = True
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("fr", "French"), ("de", "German")]
MIDDLEWARE = [*MIDDLEWARE]
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.contrib.sessions.middleware.SessionMiddleware") + 1,
    "django.middleware.locale.LocaleMiddleware",
)
LANG = "/en" if PREFIXED else ""
SMS2FA = {
    **SMS2FA,
    "protect": [f"{LANG}/account", f"{LANG}/settings/*", "/billing"],
    "protect_views": ["team:*"],
}
