"""The Django shop under ASGI (uvicorn)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.support.template_apps.django_shop.settings")
application = get_asgi_application()
