"""Every page the middleware serves, made one way: its context (:mod:`sms2fa_middleware.pages`),
the app's ``render`` hook or else the built-in page (:mod:`.flows.pages`), and the
middleware's own headers (the Content-Security-Policy with this response's nonce, no-store,
no framing) and script, whatever the hook returned.

The flows render through ``options.renderer``. The plain pages (forbidden, error,
unavailable) are made deep inside flows that know no options, as the language they speak is:
:meth:`Renderer.active` makes a guard's renderer the one :func:`message_page` uses for the
request (a context variable, like :func:`sms2fa_middleware.text.speaking`).

The hook runs where the answer is made: in a worker thread on ASGI (and Django under ASGI),
the request's thread on WSGI. A sync hook runs there; an async hook (or one that returns an
awaitable) is awaited on the app's event loop when the adapter named it (:data:`LOOP`: the
thread waits), else on a loop of its own in this thread (WSGI). If the hook raises or times
out, the built-in page is served and the error logged: a broken template must not lock a
user out of their account.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
import secrets
from collections.abc import Awaitable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from ..messages import Request, Response
from ..pages import Render
from .csp import DEFAULT_CSP, PageCsp
from .flows.pages import Pages, common, script

log = logging.getLogger("sms2fa")

PAGE_HEADERS = (
    ("content-type", "text/html; charset=utf-8"),
    ("cache-control", "no-store"),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "same-origin"),
)

#: The app's event loop, set by the ASGI adapters before they hand an answer to a worker
#: thread (the thread sees it: the context is copied): an async ``render`` is awaited there,
#: where the app's own async resources (a database pool) live.
LOOP: ContextVar[asyncio.AbstractEventLoop | None] = ContextVar("sms2fa_loop", default=None)
#: Seconds a worker thread waits for an async ``render`` on the app's loop before it serves
#: the built-in page (a loop that is shutting down never answers).
ASYNC_RENDER_TIMEOUT = 30.0


def app_url(request: Request, url: str) -> str:
    """``url`` as the client must ask for it: an app-relative path (``/login``) gets the
    app's root path in front (a Mount, ``--root-path``, SCRIPT_NAME); anything else (an
    absolute URL, ``//host/x``) is left as given."""
    if url.startswith("/") and not url.startswith("//"):
        return request.root_path.rstrip("/") + url
    return url


class Renderer:
    """A guard's pages: the hook (``render``), the policy (``page_csp``), the "Log out" link
    and the built-in pages (``template_dir``)."""

    def __init__(
        self,
        hook: Render | None = None,
        csp: PageCsp = DEFAULT_CSP,
        logout_link: str | None = None,
        template_dir: str | Path | None = None,
    ) -> None:
        self.hook = hook
        self.csp = csp
        self.logout_link = logout_link
        self.builtin = Pages(template_dir)

    @contextmanager
    def active(self) -> Iterator[None]:
        """Make this the renderer of the plain pages made in this context (one request)."""
        token = _ACTIVE.set(self)
        try:
            yield
        finally:
            _ACTIVE.reset(token)

    def context(
        self, request: Request | None, page: str, status: int, title: str
    ) -> dict[str, Any]:
        """A page's common keys (:class:`~sms2fa_middleware.pages.PageContext`) with a fresh
        script nonce; the caller adds the page's own."""
        link = self.logout_link
        return common(
            page,
            status,
            title,
            secrets.token_urlsafe(16),
            app_url(request, link) if link and request is not None else link,
            request.native if request is not None else None,
        )

    def respond(
        self, context: Mapping[str, Any], headers: Iterable[tuple[str, str]] = ()
    ) -> Response:
        """The page for ``context`` (its ``page``, ``status`` and ``csp_nonce``): the hook's
        HTML with our script added, or the built-in page; our headers either way."""
        page, nonce = context["page"], context["csp_nonce"]
        html = self._hooked(page, context) if self.hook is not None else None
        if html is None:
            html = self.builtin.render(page, context)
        else:
            html = with_script(html, script(context))
        return Response(
            context["status"],
            html.encode("utf-8"),
            [*PAGE_HEADERS, self.csp.header(nonce), *headers],
        )

    def message(
        self,
        request: Request | None,
        page: str,
        status: int,
        title: str,
        sentence: str,
        link: tuple[str, str] | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> Response:
        """A plain page (:class:`~sms2fa_middleware.pages.MessageContext`): ``title``, one
        ``sentence``, and maybe a ``link`` (its URL, its text)."""
        context = self.context(request, page, status, title)
        context.update(
            sentence=sentence,
            link_url=link[0] if link else None,
            link_text=link[1] if link else None,
        )
        return self.respond(context, headers)

    def _hooked(self, page: str, context: Mapping[str, Any]) -> str | None:
        """The hook's HTML for the page, or None: the built-in page (the hook said so, or
        failed: logged, without the context, which holds the CSRF token)."""
        assert self.hook is not None
        try:
            result = self.hook(page, dict(context))  # a copy: our script reads the context
            if inspect.isawaitable(result):
                result = run_awaitable(result)
        except Exception as exc:
            log.error(
                "sms2fa: render(%r) raised %s; the built-in page was served (the logger "
                "'sms2fa' at DEBUG has the traceback)",
                page,
                type(exc).__name__,
            )
            log.debug("sms2fa: render(%r) failed", page, exc_info=True)
            return None
        if result is None or isinstance(result, str):
            return result
        if isinstance(result, bytes):
            return result.decode("utf-8", "replace")
        log.error(
            "sms2fa: render(%r) returned a %s, not HTML; the built-in page was served",
            page,
            type(result).__name__,
        )
        return None


#: The renderer of plain pages made outside any guard's request: the built-in pages.
_DEFAULT = Renderer()
_ACTIVE: ContextVar[Renderer] = ContextVar("sms2fa_renderer", default=_DEFAULT)


def current() -> Renderer:
    """The renderer of this request (:meth:`Renderer.active`), else the built-in pages'."""
    return _ACTIVE.get()


def message_page(
    request: Request | None,
    page: str,
    status: int,
    title: str,
    sentence: str,
    link: tuple[str, str] | None = None,
    headers: Iterable[tuple[str, str]] = (),
) -> Response:
    """:meth:`Renderer.message` with this request's renderer."""
    return current().message(request, page, status, title, sentence, link, headers)


def with_script(html: str, script_html: str) -> str:
    """``html`` with our script before its last ``</body>`` (at its end when there is none)."""
    if not script_html:
        return html
    at = html.lower().rfind("</body>")
    return html[:at] + script_html + html[at:] if at >= 0 else html + script_html


def run_awaitable(awaitable: Awaitable[Any]) -> Any:
    """Await ``awaitable`` from a thread that has no running loop: on the app's loop when
    the adapter named it (:data:`LOOP`), else on a new loop in this thread."""
    loop = LOOP.get()
    if loop is not None and loop.is_running() and not _running(loop):
        future = asyncio.run_coroutine_threadsafe(_awaited(awaitable), loop)
        try:
            return future.result(ASYNC_RENDER_TIMEOUT)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise
    return asyncio.run(_awaited(awaitable))


def _running(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether ``loop`` runs in this thread (waiting for it here would never end)."""
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


async def _awaited(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


__all__ = [
    "ASYNC_RENDER_TIMEOUT",
    "LOOP",
    "PAGE_HEADERS",
    "Renderer",
    "app_url",
    "current",
    "message_page",
    "run_awaitable",
    "with_script",
]
