"""Two small shops whose own templates make the middleware's pages (the ``render`` option):
Flask (``flask_shop``, its Jinja2 templates through ``flask_render``) and Django
(``django_shop``, its templates through ``django_render``). Each has a ``base.html``, a
``static/style.css``, its own ``sms2fa/challenge.html`` extending the base, a ``/login``
that sets a ``user`` cookie and a protected ``/account``; tests/e2e/test_app_templates.py
serves them for real and drives them in Chromium."""
