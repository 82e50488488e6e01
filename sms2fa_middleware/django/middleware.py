"""``SMS2FAMiddleware``: translates between Django and the guard's one decision, for
requests by path (``__call__``) and by the route Django resolved (``process_view``); sync
and async share each step."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from asgiref.sync import async_to_sync, iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings as django_settings
from django.contrib.auth.signals import user_logged_out
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse, HttpResponseBase

from ..guard import PASS, PROTECTED, RULED, Guard
from ..guard.decision import Verdict
from ..guard.private import make_private
from ..guard.rendering import LOOP
from ..guard.rules import PLAIN, Need, WhenFailed
from ..identity import Identity
from ..messages import MAX_BODY, Request, Response, too_large
from .conf import check_order, installed


class SMS2FAMiddleware:
    """Demand a verified SMS second factor on the ``protect``ed paths of a Django project."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
        self.installed = installed()
        if self.installed.default_identify:
            check_order()
        self.identify = self.installed.identify
        self.paths = self.installed.paths
        self._kinds = self.paths.kinds
        self.routes = self.installed.routes
        if self.is_async:  # Django awaits an async process_view in an async chain
            self.process_view = self._aprocess_view  # type: ignore[method-assign]
        user_logged_out.connect(_logged_out, dispatch_uid="sms2fa_middleware.django")

    @property
    def guard(self) -> Guard:
        """The guard (built at the first request it decides: see ``Installed.guard``)."""
        return self.installed.guard

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        kind = self._classify(request)
        if kind == PASS:  # the hot path: one dict lookup (process_view checks the route)
            return self._done(request, self.get_response(request))
        answer = self._guard(request, kind)
        return answer if answer is not None else self._done(request, self.get_response(request))

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        kind = self._classify(request)
        if kind == PASS:
            return self._done(request, await self.get_response(request))
        answer = await self._aguard(request, kind)
        if answer is not None:
            return answer
        return self._done(request, await self.get_response(request))

    def process_view(
        self, request: HttpRequest, view: Any, args: Any, kwargs: Any
    ) -> HttpResponseBase | None:
        """The second line: once Django has resolved the request, a route that is protected
        (in any language, any letter case, or by ``protect_views``) gets the guard's decision,
        though the path rules let the request through. Django calls the async twin
        (:meth:`_aprocess_view`) in an async chain (set in ``__init__``)."""
        if not self._route_protects(request):
            return None
        return self._guard(request, PROTECTED)

    async def _aprocess_view(
        self, request: HttpRequest, view: Any, args: Any, kwargs: Any
    ) -> HttpResponseBase | None:
        if not self._route_protects(request):
            return None
        return await self._aguard(request, PROTECTED)

    def _guard(self, request: HttpRequest, kind: int) -> HttpResponseBase | None:
        """The guard's decision for a PROTECTED or PREFIX request (blocking): None lets it
        through to the view (``request.sms2fa`` set when verified), else the answer."""
        guard = self.guard
        identity, failure = None, None
        try:
            raw = (
                async_to_sync(self.identify)(request)
                if self.installed.identify_is_async
                else self.identify(request)
            )
            identity = guard.identity(raw)
            need = _need(request)
            if need.pending:  # rules with a `when`: ask them about this request
                request._sms2fa_need = need.resolve(
                    [_sync_result(rule.when, request, identity) for rule in need.pending]
                )
        except Exception as exc:  # a bug in identify or a `when`, or a value that is no identity
            failure = exc
        if guard.revocations_stale():
            guard.refresh_revocations()
        verdict = self._decide(request, kind, identity, failure)
        return None if verdict.to_app else self._answer(request, verdict)

    async def _aguard(self, request: HttpRequest, kind: int) -> HttpResponseBase | None:
        """:meth:`_guard` under ASGI: identify and the store work off the event loop."""
        guard = self.guard
        identity, failure = None, None
        try:
            if self.installed.identify_is_async:
                raw = await self.identify(request)
            else:  # request.user and most identify()s read the database: not on the loop
                raw = await sync_to_async(self.identify)(request)
            identity = guard.identity(raw)
            need = _need(request)
            if need.pending:  # rules with a `when`: ask them about this request
                request._sms2fa_need = need.resolve(
                    [await _async_result(rule.when, request, identity) for rule in need.pending]
                )
        except Exception as exc:  # a bug in identify or a `when`, or a value that is no identity
            failure = exc
        if guard.revocations_stale():
            await sync_to_async(guard.refresh_revocations, thread_sensitive=False)()
        verdict = self._decide(request, kind, identity, failure)
        if verdict.to_app:
            return None
        token = LOOP.set(asyncio.get_running_loop())  # an async render runs on this loop
        try:
            return await sync_to_async(self._answer, thread_sensitive=False)(request, verdict)
        finally:
            LOOP.reset(token)

    def _decide(
        self, request: HttpRequest, kind: int, identity: Identity | None, failure: Exception | None
    ) -> Verdict:
        """The guard's one decision (shared by both paths, and by :meth:`process_view`)."""
        request._sms2fa_kind = kind  # decided: process_view need not ask again
        verdict = self.guard.decide(
            kind,
            identity,
            failure,
            request.META.get("HTTP_COOKIE", ""),
            request.is_secure(),
            _need(request),
        )
        if verdict.to_app:
            request.sms2fa = verdict.identity
            request._sms2fa_private = verdict.private
            request._sms2fa_cookie = verdict.cookie
        return verdict

    def _answer(self, request: HttpRequest, verdict: Verdict) -> HttpResponse:
        """The guard's own answer (blocking: the store, maybe an SMS); a request under the
        prefix has its (small) body read first."""
        body = b""
        if verdict.reads_body:
            length = request.META.get("CONTENT_LENGTH") or "0"
            if length.isdigit() and int(length) > MAX_BODY:
                return django_response(too_large())
            body = request.body
            if len(body) > MAX_BODY:  # no Content-Length (chunked, under ASGI)
                return django_response(too_large())
        return django_response(self.guard.answer(verdict, guard_request(request, body)))

    def _classify(self, request: HttpRequest) -> int:
        """PASS, PROTECTED or PREFIX for Django's ``path_info`` (already decoded and relative
        to SCRIPT_NAME: the path Django routes); attaches the middleware to the request."""
        request.sms2fa_middleware = self
        request.sms2fa = None
        path = request.path_info
        kind = self._kinds.get(path)
        if kind is None:
            kind = self.paths.remember(path, path)
        if kind == RULED:  # a rule that says more than its path: the method decides
            kind, need = self.paths.demand(path, path, request.method or "GET")
            if kind != PASS:  # a route protected by name (process_view) needs no rule's pass
                request._sms2fa_need = need
        request._sms2fa_kind = kind
        return kind

    def _route_protects(self, request: HttpRequest) -> bool:
        """Whether the route Django resolved for a request the path rules let through is
        protected after all (see :class:`Routes`)."""
        if getattr(request, "_sms2fa_kind", PASS) != PASS:
            return False  # decided in __call__ already
        match = request.resolver_match
        if match is None:
            return False
        return self.routes.protects(match, request.path_info, getattr(request, "urlconf", None))

    @staticmethod
    def _done(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        # A verified page, when the decision says so: no shared cache may keep it.
        if getattr(request, "_sms2fa_private", False):
            make_private(response.headers)
        cookie = getattr(request, "_sms2fa_cookie", None)
        if cookie is not None:  # the session's last-seen time, renewed
            response.cookies.load(cookie[1])
        for _, value in getattr(request, "_sms2fa_logged_out", ()):  # delete the cookie
            response.cookies.load(value)
        return response

    def revoke(self, auth_id: object) -> None:
        """End ``auth_id``'s verified sessions on every worker and host (logout, a new
        number). Any id ``identify`` gives (``user.pk`` by default). It writes to the
        store: from async code, ``await sync_to_async(middleware.revoke)(user.pk)``."""
        self.guard.revoke(str(auth_id))

    def revoke_session(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        """End only ``request``'s verified session ("forget this device") on every worker
        and host, and delete its cookie on ``response``; the user's other devices stay
        verified (Django's ``logout()`` ends them all). Writes to the store, as
        :meth:`revoke` does."""
        for _, value in self.guard.revoke_session(request.META.get("HTTP_COOKIE", "")):
            response.cookies.load(value)
        return response


def _need(request: HttpRequest) -> Need:
    """What the rules covering the request ask (set by ``_classify``; a path no rule
    matches, or a route protected by name: a plain protected path)."""
    need: Need = getattr(request, "_sms2fa_need", PLAIN)
    return need


def _sync_result(when: Any, request: HttpRequest, identity: Identity | None) -> bool:
    """A rule's ``when`` asked about a request, from sync code (an async one through
    ``async_to_sync``, as an async ``identify``)."""
    try:
        if iscoroutinefunction(when):
            return bool(async_to_sync(when)(request, identity))
        return bool(when(request, identity))
    except Exception as exc:
        raise WhenFailed(when) from exc


async def _async_result(when: Any, request: HttpRequest, identity: Identity | None) -> bool:
    """A rule's ``when`` asked from async code: awaited, or a sync one in a thread."""
    try:
        if iscoroutinefunction(when):
            return bool(await when(request, identity))
        return bool(await sync_to_async(when)(request, identity))
    except Exception as exc:
        raise WhenFailed(when) from exc


def _logged_out(
    sender: Any, request: HttpRequest | None = None, user: Any = None, **kwargs: Any
) -> None:
    """``user_logged_out``: revoke the user's verified sessions (all their devices) and this
    device's session, whose cookie the response then deletes. The signal is sent before the
    session is flushed, so ``identify`` still sees the user."""
    if request is None or user is None:
        return
    middleware = getattr(request, "sms2fa_middleware", None)
    chosen = middleware.installed if isinstance(middleware, SMS2FAMiddleware) else None
    if chosen is None:  # a logout outside a request through the middleware (a test, a shell)
        chosen = installed()
    auth_id = chosen.auth_id(request, user)
    if auth_id is not None:  # trusted browsers stay: "trust" is for the next login
        chosen.guard.revoke(auth_id, browsers=False)
    request._sms2fa_logged_out = chosen.guard.revoke_session(request.META.get("HTTP_COOKIE", ""))


def guard_request(request: HttpRequest, body: bytes = b"") -> Request:
    """The sans-IO request for the guard: the path as Django routes it (``path_info``),
    the scheme as Django sees it (SECURE_PROXY_SSL_HEADER)."""
    meta = request.META
    return Request(
        method=request.method or "GET",
        path=request.path_info,
        query_string=meta.get("QUERY_STRING", ""),
        headers={name.lower(): value for name, value in request.headers.items()},
        body=body,
        client=meta.get("REMOTE_ADDR"),
        scheme=request.scheme or "http",
        root_path=request.path[: len(request.path) - len(request.path_info)],  # SCRIPT_NAME
        host=_host(request),
        trusted_origins=tuple(getattr(django_settings, "CSRF_TRUSTED_ORIGINS", ())),
        native=request,
    )


def _host(request: HttpRequest) -> str:
    """The host Django trusts (ALLOWED_HOSTS, USE_X_FORWARDED_HOST); "" when it refuses it,
    so an Origin cannot match it."""
    try:
        return str(request.get_host())
    except DisallowedHost:
        return ""


def django_response(response: Response) -> HttpResponse:
    """The guard's answer as a Django response; cookies go to ``response.cookies`` (Django
    writes each as its own Set-Cookie header)."""
    out = HttpResponse(response.body, status=response.status)
    del out["content-type"]  # the guard's own, or none (a redirect)
    for name, value in response.headers:
        if name.lower() == "set-cookie":
            out.cookies.load(value)
        else:
            out[name] = value
    return out


__all__ = ["SMS2FAMiddleware", "django_response", "guard_request"]
