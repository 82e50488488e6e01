"""A CSP that fits: the challenge page's Content-Security-Policy by default, extended by an
app (``page_csp`` as a mapping), or the app's own (a policy string) -- and, whatever the app
says, scripts only by this response's nonce, ``frame-ancestors 'none'`` and ``form-action
'self'``. The header is read off real responses (Flask, Starlette, Django's client)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from sms2fa_middleware.guard import GuardOptions
from sms2fa_middleware.guard.csp import PageCsp
from sms2fa_middleware.testing import FakeFlowroute
from tests.support.apps import Site
from tests.support.browsing import Browser
from tests.support.django_example import ALICE, HTML, PASSWORD

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

DEFAULT = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-N'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
EXTEND = {"style-src": "'self'", "img-src": ["'self'", "data:"], "font-src": "https://fonts.x"}
HOSTILE = (
    "default-src *; script-src 'unsafe-inline' 'unsafe-eval' https://cdn.example "
    "'nonce-guessed'; script-src-elem 'unsafe-inline'; script-src-attr 'unsafe-inline'; "
    "frame-ancestors *; form-action https://evil.example; base-uri 'self'"
)


def directives(policy: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for part in policy.split(";"):
        tokens = part.split()
        if tokens:
            assert tokens[0] not in found, f"{tokens[0]} twice in {policy!r}"
            found[tokens[0]] = tokens[1:]
    return found


def assert_invariants(policy: str, nonce: str) -> None:
    d = directives(policy)
    assert d["frame-ancestors"] == ["'none'"]
    assert d["form-action"] == ["'self'"]
    for name in ("script-src", "script-src-elem"):
        if name in d:
            assert d[name][0] == f"'nonce-{nonce}'", policy
            assert "'unsafe-inline'" not in d[name]
            assert not [s for s in d[name][1:] if s.startswith("'nonce-")]
    assert "script-src" in d
    assert d.get("script-src-attr", ["'none'"]) == ["'none'"]
    assert "," not in policy


def header(option: Any) -> str:
    return PageCsp.from_option(option).header("N")[1]


# -- the policy ----------------------------------------------------------------------------


def test_default_extended_and_custom() -> None:
    assert header(None) == DEFAULT
    extended = directives(header(EXTEND))
    assert extended["style-src"] == ["'unsafe-inline'", "'self'"]
    assert extended["img-src"] == ["'self'", "data:"]
    assert extended["font-src"] == ["https://fonts.x"]
    assert extended["default-src"] == ["'none'"]
    assert_invariants(header(EXTEND), "N")
    custom = directives(header("default-src 'self'; img-src * data:; style-src 'self'"))
    assert custom["default-src"] == ["'self'"] and custom["img-src"] == ["*", "data:"]
    assert custom["base-uri"] == ["'none'"]  # added when the app's policy has none
    assert_invariants(header("default-src 'self'"), "N")


def test_the_invariants_cannot_be_removed() -> None:
    policy = header(HOSTILE)
    assert_invariants(policy, "N")
    d = directives(policy)
    assert d["script-src"] == ["'nonce-N'", "'unsafe-eval'", "https://cdn.example"]
    assert d["default-src"] == ["*"] and d["base-uri"] == ["'self'"]  # the app's to choose
    # A mapping may not loosen them either: it is refused, naming the directive.
    for name in ("frame-ancestors", "form-action"):
        with pytest.raises(ValueError, match=name):
            PageCsp.from_option({name: "*"})
    loosened = header({"script-src": "'unsafe-inline' https://cdn.example"})
    assert directives(loosened)["script-src"] == ["'nonce-N'", "https://cdn.example"]


def test_options_with_a_mapping_stay_hashable() -> None:
    one = GuardOptions(protect=["/a"], page_csp=dict(EXTEND))
    assert one == GuardOptions(protect=["/a"], page_csp=dict(EXTEND))
    assert hash(one) == hash(GuardOptions(protect=["/a"], page_csp=dict(EXTEND)))
    assert one != GuardOptions(protect=["/a"], page_csp={"img-src": "'self'"})


@pytest.mark.parametrize(
    "bad",
    [
        "default-src 'self', script-src *",  # a second policy
        "default-src 'self'\r\nx-evil: 1",  # header injection
        "default-src 'sélf'",
        "",
        " ; ",
        {"img src": "'self'"},
        {"img-src": "'self';script-src *"},
        {"img-src": ["a,b"]},
        42,
    ],
)
def test_malformed_options_are_refused(bad: Any) -> None:
    with pytest.raises(ValueError, match="page_csp"):
        GuardOptions(protect=["/a"], page_csp=bad)


# -- on the page ---------------------------------------------------------------------------


def _page_policy(site: Site, user: str = "alice") -> tuple[str, str]:
    """(the Content-Security-Policy header, the nonce of the page's one script)."""
    browser = Browser(site, user)
    browser.nav("/account")
    page = browser.page()
    scripts = re.findall(r'<script nonce="([^"]+)">', page.text)
    assert len(scripts) == 1, page.text[-800:]
    return page.headers["content-security-policy"], scripts[0]


@SQLITE_ONLY
def test_the_page_sends_each_policy(
    make_site: Callable[..., Site],
    fake_flowroute: FakeFlowroute,
) -> None:
    policy, nonce = _page_policy(make_site())
    assert policy == DEFAULT.replace("'nonce-N'", f"'nonce-{nonce}'")
    _, other = _page_policy(make_site())
    assert other != nonce  # a nonce a response

    policy, nonce = _page_policy(make_site(page_csp=EXTEND), "bob")
    assert directives(policy)["img-src"] == ["'self'", "data:"]
    assert_invariants(policy, nonce)


@SQLITE_ONLY
def test_the_page_keeps_the_invariants_of_a_hostile_policy(
    make_site: Callable[..., Site],
    fake_flowroute: FakeFlowroute,
) -> None:
    policy, nonce = _page_policy(make_site(page_csp=HOSTILE))
    assert_invariants(policy, nonce)
    assert directives(policy)["default-src"] == ["*"]


def test_django_takes_the_option_from_settings(
    sms2fa: Any,
    fake_flowroute: FakeFlowroute,
) -> None:
    from django.test import Client

    sms2fa(page_csp={"img-src": "'self'"})
    client = Client()
    client.login(username=ALICE, password=PASSWORD)
    page = client.get(client.get("/account/", headers=HTML)["location"], headers=HTML)
    assert page.status_code == 200
    policy = page["content-security-policy"]
    nonce = re.search(r'<script nonce="([^"]+)">', page.text)
    assert nonce is not None
    assert directives(policy)["img-src"] == ["'self'"]
    assert_invariants(policy, nonce.group(1))
