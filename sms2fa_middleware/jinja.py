"""The Jinja2 side of the ``render`` helpers (:func:`sms2fa_middleware.flask.flask_render`,
:func:`sms2fa_middleware.starlette.jinja2_render`): the app's environment, with the package's
templates found after the app's own.

The app's environment is left as it is: an overlay of it (its globals, filters, tests,
extensions and autoescaping shared) looks up each name in the app's loader first, then in
:data:`~sms2fa_middleware.pages.JINJA2_TEMPLATES`. So an app's ``templates/sms2fa/challenge.html``
replaces ours, ours extend the app's ``layout``, and the app's templates may extend
``sms2fa/base.html`` or include ours.
"""

from __future__ import annotations

from jinja2 import BaseLoader, ChoiceLoader, Environment, FileSystemLoader, Template

from .pages import JINJA2_TEMPLATES, template_names


def with_package_templates(env: Environment) -> Environment:
    """An overlay of ``env`` whose loader tries ``env``'s first, then the package's."""
    loaders: list[BaseLoader] = [] if env.loader is None else [env.loader]
    loaders.append(FileSystemLoader(JINJA2_TEMPLATES))
    return env.overlay(loader=ChoiceLoader(loaders))


def page_template(env: Environment, page: str) -> Template:
    """The template that makes ``page`` (:func:`~sms2fa_middleware.pages.template_names`)."""
    return env.select_template(template_names(page))


__all__ = ["page_template", "with_package_templates"]
