"""Flask conveniences: ``identify`` from Flask-Login (:func:`flask_login_identify`), a view
decorator that double-checks the middleware, a start-up check of the app's routes against
the patterns, the ``flask sms2fa check`` command, and the middleware's pages made with the
app's templates (:func:`flask_render`).

Defence in depth: the middleware decides which requests need a verified session; a view
decorated with :func:`verified_required` refuses (403) any request the middleware did not
verify -- so a route that the ``protect`` patterns miss fails closed instead of open::

    @app.get("/account")
    @verified_required
    def account(): ...
"""

from __future__ import annotations

import functools
import inspect
import io
import re
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any, TypeVar, overload

import click
from flask import Flask, current_app, g, has_request_context, request
from flask import Response as FlaskResponse
from flask.cli import AppGroup
from werkzeug.wrappers import Request as WerkzeugRequest

from . import Identity, route_checks
from .messages import Request as SansIORequest
from .pages import Render, chosen_pages, template_values
from .users import UserField, phone_text, reader
from .wsgi import ENVIRON_KEY, MIDDLEWARE_KEY, SMS2FAMiddleware, request_from_environ

ViewT = TypeVar("ViewT", bound=Callable[..., Any])


def _sans_io() -> SansIORequest:
    """The view's request as the guard reads it (no body: never too large)."""
    made = request_from_environ(request.environ, read_body=False, native=request)
    assert made is not None
    return made


def _refuse() -> tuple[bytes, int, dict[str, str]]:
    """The 403, in the request's language (the middleware's pages' if it is found)."""
    middleware = request.environ.get(MIDDLEWARE_KEY)
    options = middleware.options if isinstance(middleware, SMS2FAMiddleware) else None
    status, body, headers = route_checks.refusal_answer(
        request.path, request.headers.get("accept", ""), _sans_io(), options
    )
    return body, status, headers


def _check(max_age: int | None) -> Any:
    """None when the view may run: the middleware verified the request (and, with
    ``max_age``, the code is recent enough); else the answer."""
    identity = request.environ.get(ENVIRON_KEY)
    if identity is None:
        return _refuse()
    if max_age is None:
        return None
    middleware = request.environ.get(MIDDLEWARE_KEY)
    if not isinstance(middleware, SMS2FAMiddleware):  # verified by whom? Fail closed.
        return _refuse()
    sans_io = _sans_io()
    guard = middleware.guard
    verdict = guard.step_up(sans_io, identity, max_age)
    if verdict is None:
        return None
    answer = guard.answer(verdict, sans_io)
    return FlaskResponse(answer.body, answer.status, answer.headers)


@overload
def verified_required(view: ViewT) -> ViewT: ...


@overload
def verified_required(*, max_age: int | None = None) -> Callable[[ViewT], ViewT]: ...


def verified_required(view: ViewT | None = None, *, max_age: int | None = None) -> Any:
    """Refuse (403) the request unless the middleware verified it (``sms2fa.identity`` in
    the WSGI environ). Sync and async views. ``@verified_required(max_age=300)`` also asks
    for a code entered at most 300 s ago: an older session gets the step-up a rule's
    ``max_age`` gets (a browser: the challenge; an API client: 401 with RFC 9470's
    ``insufficient_user_authentication`` and ``max_age``)."""
    route_checks.checked_max_age(max_age)
    if view is None:
        return functools.partial(verified_required, max_age=max_age)
    if inspect.iscoroutinefunction(view):

        @functools.wraps(view)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            refused = _check(max_age)
            if refused is not None:
                return refused
            return await view(*args, **kwargs)

        return async_wrapper

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        refused = _check(max_age)
        if refused is not None:
            return refused
        return view(*args, **kwargs)

    return wrapper


def route_paths(app: Flask) -> list[str]:
    """Sample paths for a Flask app's URL rules (blueprints included), variables as ``x``."""
    return [re.sub(r"<[^>]*>", "x", rule.rule) for rule in app.url_map.iter_rules()]


def route_methods(app: Flask) -> dict[str, set[str]]:
    """Each sample path of :func:`route_paths` and the methods its URL rules answer."""
    found: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<[^>]*>", "x", rule.rule)
        found.setdefault(path, set()).update(rule.methods or ())
    return found


def check_routes(
    app: Flask, protect: Iterable[str], exclude: Iterable[str] = (), public: Iterable[str] = ()
) -> list[str]:
    """Start-up check: log (and return) a warning for each route the patterns may leave open
    -- a near miss such as ``protect=["/admin/*"]`` with a route ``/admin``, see
    :func:`~sms2fa_middleware.guard.paths.route_warnings` -- unless ``exclude`` or
    ``public`` (routes deliberately open) matches it, for each protect pattern or rule that
    matches no route, and for each route whose methods a rule covers only in part, or rule
    whose routes answer none of its methods
    (:func:`~sms2fa_middleware.guard.rule_checks.method_warnings`; ``rule.methods``).
    Variable parts of a rule are tried as ``x``."""
    return route_checks.report(route_methods(app), protect, exclude, public)


def flask_login_identify(
    app: Flask,
    phone_attribute: UserField = "phone_number",
) -> Callable[[WerkzeugRequest], Identity | None]:
    """``identify`` for a Flask-Login app: the user is who Flask-Login says -- its user
    loader for the session, its remember-me cookie after a browser restart, its request
    loader -- because Flask-Login itself answers, in a request context of ``app``.
    ``Identity(user.get_id(), <phone_attribute>)``; ``phone_attribute`` is an attribute,
    a dotted path (``"profile.phone"``) or a function of the user.

    The context is a throwaway: it sees no request body (a request loader that reads the
    form finds it empty; the app still gets the body), its session changes are not saved
    (a remember-me login is redone by the app), and its teardown functions run as after
    any request."""
    phone = reader(phone_attribute)

    def identify(request: WerkzeugRequest) -> Identity | None:
        import flask_login  # the extra the helper is for; imported when first used

        environ = dict(request.environ)  # the context caches its request in the environ
        environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(), "0"
        with app.request_context(environ):
            # An app context already pushed (a test, a CLI) may be reused: leave its g as
            # it was, so the app's own request loads the user again.
            loaded_before = "_login_user" in g
            try:
                user = flask_login.current_user._get_current_object()
                if user is None or not user.is_authenticated:
                    return None
                return Identity(user.get_id(), phone_text(phone(user)))
            finally:
                if not loaded_before:
                    g.pop("_login_user", None)

    return identify


def find_middleware(app: Flask) -> SMS2FAMiddleware | None:
    """The SMS2FAMiddleware in ``app.wsgi_app``'s chain of wrappers (each one's ``.app``)."""
    wrapped: Any = app.wsgi_app
    for _ in range(32):  # a chain of middleware, never a cycle
        if isinstance(wrapped, SMS2FAMiddleware):
            return wrapped
        wrapped = getattr(wrapped, "app", None)
        if wrapped is None:
            return None
    return None


#: ``flask sms2fa ...``: registered for every Flask app through the ``flask.commands``
#: entry point, or by hand with ``app.cli.add_command(sms2fa_cli)``.
sms2fa_cli = AppGroup("sms2fa", help="SMS second factor (sms2fa-middleware).")


@sms2fa_cli.command("check")
def check_command() -> None:
    """Read and check the middleware's settings now; exit 1 naming what is missing."""
    from .errors import ConfigurationError

    middleware = find_middleware(current_app)
    if middleware is None:
        raise click.ClickException("no SMS2FAMiddleware wraps app.wsgi_app")
    try:
        middleware.check()
    except ConfigurationError as exc:
        raise click.ClickException(f"sms2fa: {exc}") from None
    click.echo("sms2fa: settings OK")


def flask_render(
    app: Flask, *, layout: str | None = None, pages: Iterable[str] | None = None
) -> Render:
    """A ``render`` hook that makes the middleware's pages with the app's Jinja environment
    (``render_template``'s: its globals, filters and context processors; ``url_for``,
    ``session``, ``current_user`` work in a request context made from the page's request)::

        render = flask_render(app, layout="base.html")
        app.wsgi_app = SMS2FAMiddleware(app.wsgi_app, ..., render=render)

    Each page is ``sms2fa/<page>.html`` from the app's templates, else the package's
    (:data:`~sms2fa_middleware.pages.JINJA2_TEMPLATES`), which extend ``layout`` (the app's
    base template, with blocks ``title`` and ``content``; default the package's
    ``sms2fa/base.html``). ``pages``: only these pages (default all); the others are the
    built-in pages."""
    from .jinja import page_template, with_package_templates

    wanted = chosen_pages(pages)
    made: list[Any] = []  # the environment, made at the first page (after app set-up)

    def render(page: str, context: Mapping[str, Any]) -> str | None:
        if page not in wanted:
            return None
        if not made:
            made.append(with_package_templates(app.jinja_env))
        native = context.get("request")
        with _flask_context(app, getattr(native, "environ", None)):
            values = template_values(context, layout, request=False)
            app.update_template_context(values)  # the app's context processors
            return page_template(made[0], page).render(values)

    return render


def _flask_context(app: Flask, environ: dict[str, Any] | None) -> AbstractContextManager[Any]:
    """The request context of ``environ`` (the one in use when it is the same request, as
    in a view's route-level check), or the app context when there is no request."""
    if has_request_context() and request.environ is environ:
        return nullcontext()
    if environ is not None:
        return app.request_context(environ)
    return app.app_context()


__all__ = [
    "check_routes",
    "find_middleware",
    "flask_login_identify",
    "flask_render",
    "route_methods",
    "route_paths",
    "sms2fa_cli",
    "verified_required",
]
