"""The middleware's pages made with the project's Django templates (:func:`django_render`)."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from django.http import HttpRequest
from django.template import Engine, engines
from django.template.backends.django import DjangoTemplates
from django.template.backends.django import Template as BackendTemplate

from ..pages import DJANGO_TEMPLATES, Render, chosen_pages, template_names, template_values


def django_render(
    *,
    layout: str | None = None,
    pages: Iterable[str] | None = None,
    using: str | None = None,
) -> Render:
    """A ``render`` hook that makes the middleware's pages with the project's Django
    templates (its loaders, libraries and context processors: ``user``, ``request``,
    ``{% csrf_token %}`` work as in a view)::

        # myproject/pages.py
        render = django_render(layout="base.html")
        # settings.py
        SMS2FA = {..., "render": "myproject.pages.render"}

    Each page is ``sms2fa/<page>.html`` from the project's templates, else the package's
    (:data:`~sms2fa_middleware.pages.DJANGO_TEMPLATES`), which extend ``layout`` (the
    project's base template, with blocks ``title`` and ``content``; default the package's
    ``sms2fa/base.html``). ``pages``: only these pages (default all); the others are the
    built-in pages. ``using``: the ``TEMPLATES`` entry's ``NAME`` (default: the first
    Django-language one). The project's settings are left as they are: an engine of the
    same configuration, with the package's templates found last, renders the pages."""
    wanted = chosen_pages(pages)
    made = _Engines(using)

    def render(page: str, context: Mapping[str, Any]) -> str | None:
        if page not in wanted:
            return None
        backend, engine = made.get()
        template = engine.select_template(template_names(page))
        native = context.get("request")
        request = native if isinstance(native, HttpRequest) else None
        return str(
            BackendTemplate(template, backend).render(template_values(context, layout), request)
        )

    return render


class _Engines:
    """The project's engine with the package's templates after its own, made at the first
    page and again when ``TEMPLATES`` changes (Django then makes new backends)."""

    def __init__(self, using: str | None) -> None:
        self.using = using
        self._made: tuple[DjangoTemplates, Engine] | None = None
        self._lock = threading.Lock()

    def get(self) -> tuple[DjangoTemplates, Engine]:
        backend = self._backend()
        made = self._made
        if made is not None and made[0] is backend:
            return made
        with self._lock:
            self._made = (backend, with_package_templates(backend.engine))
            return self._made

    def _backend(self) -> DjangoTemplates:
        if self.using is not None:
            found = engines[self.using]
            if not isinstance(found, DjangoTemplates):
                raise TypeError(f"TEMPLATES {self.using!r} is not Django's template language")
            return found
        for found in engines.all():
            if isinstance(found, DjangoTemplates):
                return found
        raise LookupError("no DjangoTemplates entry in settings.TEMPLATES")


def with_package_templates(engine: Engine) -> Engine:
    """An engine configured as ``engine`` whose loaders end with the package's templates."""
    ours: Any = ("django.template.loaders.filesystem.Loader", [str(DJANGO_TEMPLATES)])
    if not engine.debug:  # as Django does: templates read once
        ours = ("django.template.loaders.cached.Loader", [ours])
    return Engine(
        dirs=list(engine.dirs),
        app_dirs=False,  # ``engine.loaders`` has the app directories' loader already
        context_processors=list(engine.context_processors),
        debug=engine.debug,
        loaders=[*engine.loaders, ours],
        string_if_invalid=engine.string_if_invalid,
        file_charset=engine.file_charset,
        libraries=dict(engine.libraries),
        builtins=[b for b in engine.builtins if b not in Engine.default_builtins],
        autoescape=engine.autoescape,
    )


__all__ = ["django_render", "with_package_templates"]
