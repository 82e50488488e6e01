"""The start-up route check and ``protect`` rules: a rule that matches no route is named; a
route whose methods a rule covers in part, leaving a method that changes something open, is
warned about (Flask's ``rule.methods``, Starlette's and FastAPI's ``route.methods``); so is a
rule whose routes answer none of its methods; the common cases (a read left open beside
protected writes among them) stay quiet. Django views declare no methods: its check reads a
rule's path only (and does not fail on rules)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sms2fa_middleware.guard.rule_checks import method_warnings
from sms2fa_middleware.guard.rules import Rule

POST_ONLY = {"path": "/account", "methods": ["POST"]}

ACCOUNT_OPEN = (
    "route '/account' answers DELETE, GET, POST, PUT, but protect covers only POST there "
    "(path '/account', methods POST): DELETE, PUT reach the app unverified; add them to "
    "the rule's methods, or declare the route public if they are meant to be open"
)


def flask_app() -> Any:
    from flask import Flask

    app = Flask("sms2fa_rules_audit")
    app.add_url_rule("/account", "account", lambda: "x", methods=["GET", "POST", "PUT", "DELETE"])
    # one path, two views: the methods of both count
    app.add_url_rule("/orders/<int:pk>", "order", lambda pk: "x", methods=["GET"])
    app.add_url_rule("/orders/<int:pk>", "cancel", lambda pk: "x", methods=["DELETE"])
    app.add_url_rule("/profile", "profile", lambda: "x")  # GET (HEAD, OPTIONS added)
    app.add_url_rule("/comments", "comments", lambda: "x", methods=["GET", "POST"])
    return app


def fastapi_app() -> Any:
    from fastapi import APIRouter, FastAPI
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def view(request: Any) -> PlainTextResponse:
        return PlainTextResponse("x")

    app = FastAPI()
    app.add_api_route("/account", lambda: "x", methods=["GET", "POST", "PUT", "DELETE"])
    orders = APIRouter(prefix="/orders")
    orders.add_api_route("/{pk}", lambda pk: "x", methods=["GET"])
    orders.add_api_route("/{pk}", lambda pk: "x", methods=["DELETE"])
    app.include_router(orders)
    app.add_api_route("/profile", lambda: "x", methods=["GET"])
    app.router.routes.append(Route("/comments", view, methods=["GET", "POST"]))
    app.mount("/files", view)  # an app of its own: its methods are unknown, never warned
    return app


def flask_check(protect: list[Any], **kw: Any) -> list[str]:
    from sms2fa_middleware.flask import check_routes

    return check_routes(flask_app(), protect, **kw)


def fastapi_check(protect: list[Any], **kw: Any) -> list[str]:
    from sms2fa_middleware.starlette import check_routes

    return check_routes(fastapi_app(), protect, **kw)


CHECKS = {"flask": flask_check, "fastapi": fastapi_check}


@pytest.fixture(params=sorted(CHECKS))
def check(request: pytest.FixtureRequest) -> Any:
    return CHECKS[request.param]


def test_a_rule_covering_some_methods_of_a_route_is_warned_about(check: Any) -> None:
    assert check([POST_ONLY]) == [ACCOUNT_OPEN]
    # two views on one path: a step-up for reading an order leaves cancelling it open
    warnings = check([{"path": "/orders/*", "methods": ["GET"], "max_age": 300}])
    assert warnings == [
        "route '/orders/x' answers DELETE, GET, but protect covers only GET there "
        "(path '/orders/*', methods GET, max_age 300 s): DELETE reaches the app unverified; "
        "add it to the rule's methods, or declare the route public if it is meant to be open"
    ]


def test_the_common_cases_give_no_method_warning(check: Any) -> None:
    assert check(["/account"]) == []  # a plain pattern: every method
    assert check([{"path": "/account", "max_age": 300}]) == []  # a rule without methods
    # every method the route declares (HEAD and OPTIONS, which frameworks add, need not be)
    assert check([{"path": "/account", "methods": ["GET", "POST", "PUT", "DELETE"]}]) == []
    # step-up for one method on a path a plain pattern protects for all
    assert check(["/account", {"path": "/account", "methods": ["DELETE"], "max_age": 300}]) == []
    # a rule for GET covers HEAD: a route answering only GET is fully covered
    assert check([{"path": "/profile", "methods": ["GET"]}]) == []
    # rules together cover every method
    assert check([POST_ONLY, {"path": "/account", "methods": ["GET", "PUT", "DELETE"]}]) == []
    # a when rule decides per request on purpose: it counts as covering its methods
    when = Rule("/account", frozenset({"GET", "PUT", "DELETE"}), when=lambda r, i: True)
    assert check([POST_ONLY, when]) == []


def test_a_read_left_open_beside_protected_writes_is_no_warning(check: Any) -> None:
    # anyone reads the comments, a verified user posts: the usual intent
    assert check([{"path": "/comments", "methods": ["POST"]}]) == []
    assert check([{"path": "/orders/*", "methods": ["DELETE"]}]) == []
    assert check([{"path": "/account", "methods": ["POST", "PUT", "DELETE"]}]) == []


def test_public_or_exclude_silences_the_method_warning(check: Any) -> None:
    assert check([POST_ONLY], public=["/account"]) == []
    assert check([POST_ONLY], exclude=["/account"]) == [
        "protect rule (path '/account', methods POST) matches no route"
    ]


def test_a_rule_whose_routes_answer_none_of_its_methods(check: Any) -> None:
    assert check([{"path": "/profile", "methods": ["DELETE"]}]) == [
        "protect rule (path '/profile', methods DELETE) protects nothing: the routes it "
        "matches ('/profile') answer none of DELETE; check its methods"
    ]


def test_a_rule_matching_no_route_is_named(check: Any) -> None:
    assert check(["/account", {"path": "/acount", "methods": ["POST"], "idle": 600}]) == [
        "protect rule (path '/acount', methods POST, idle 600 s) matches no route"
    ]
    assert check(["/acount"]) == ["protect pattern '/acount' matches no route"]


def test_a_route_whose_methods_are_unknown_is_not_checked() -> None:
    # a Mount's app (FastAPI above: /files), or a framework that does not say
    routes: dict[str, Any] = {"/files/x": None, "/account": {"GET", "POST"}}
    assert method_warnings(routes, [{"path": "/files", "methods": ["POST"]}]) == []
    assert method_warnings(routes, [{"path": "/*", "methods": ["DELETE"]}]) == []
    assert method_warnings({"/account": {"GET", "POST"}}, [{"path": "/*", "methods": ["DELETE"]}])


def test_the_cli_check_reads_the_middlewares_rules(tmp_path: Path) -> None:
    from sms2fa_middleware import Settings
    from sms2fa_middleware.app_routes import check_app
    from sms2fa_middleware.asgi import SMS2FAMiddleware as ASGIMiddleware
    from sms2fa_middleware.wsgi import SMS2FAMiddleware

    app = flask_app()
    settings = Settings(
        secret_key="k" * 32,
        database_url=f"sqlite:///{tmp_path / 'sms2fa.db'}",
        sms_backend="console",
    )
    app.wsgi_app = SMS2FAMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, settings, identify=lambda request: None, protect=["/profile", POST_ONLY]
    )
    assert check_app(app) == [ACCOUNT_OPEN]
    wrapped = ASGIMiddleware(
        fastapi_app(), settings, identify=lambda scope: None, protect=["/profile", POST_ONLY]
    )
    assert check_app(wrapped) == [ACCOUNT_OPEN]


def test_django_checks_a_rule_by_its_path_only(sms2fa: Any) -> None:
    from django.test import override_settings

    from sms2fa_middleware.django import check_routes
    from tests.support.django_locallibrary_urls import PROTECT

    sms2fa(protect=PROTECT, protect_views=[])
    rules = [
        {"path": "/catalog/books", "methods": ["POST"]},  # methods: not comparable in Django
        {"path": "/catalog/nosuch", "methods": ["POST"], "max_age": 60},
    ]
    with override_settings(ROOT_URLCONF="tests.support.django_locallibrary_urls"):
        assert check_routes(protect=[*PROTECT, *rules]) == [
            "protect rule (path '/catalog/nosuch', methods POST, max_age 60 s) matches no route"
        ]
