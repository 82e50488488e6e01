"""A Django project whose middleware pages are the package's own Django templates and
``sms2fa/base.html`` (``django_render()``, no template of its own), for the accessibility
walk: ``DJANGO_SETTINGS_MODULE=tests.support.template_apps.django_package.settings``, served
by ``uvicorn --factory django.core.asgi:get_asgi_application``. Users as in
tests/e2e/test_accessibility.py: the ``X-User`` header names one; alice has a phone, carol
none, "broken" makes identify() raise. ``SMS2FA_TEST_ENROLL=1``: carol is offered
enrollment (``on_enroll``), else the no-phone page. SMS settings come from the environment."""
