"""The Django shop: ``DJANGO_SETTINGS_MODULE=tests.support.template_apps.django_shop.settings``,
served by uvicorn (``tests.support.template_apps.django_shop.asgi:application``). Its
challenge page is its own ``templates/sms2fa/challenge.html`` (extending its ``base.html``);
the other pages are the package's templates in its ``base.html``. SMS settings come from
the environment (``Settings.from_env()``)."""
