"""The challenge page's "Log out" link (the ``logout_url`` option): there when given, as the
app's root path and HTML escaping make it, and absent otherwise; on Flask, Starlette and
Django."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from sms2fa_middleware.guard import GuardOptions
from sms2fa_middleware.testing import FakeFlowroute
from tests.support.apps import Site
from tests.support.browsing import Browser
from tests.support.django_example import ALICE, HTML, PASSWORD

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

LINK = re.compile(r'<p class="logout"><a href="([^"]*)">Log out</a></p>')


def links(page_html: str) -> list[str]:
    return LINK.findall(page_html)


@SQLITE_ONLY
def test_the_link_is_there_only_when_given(
    make_site: Callable[..., Site],
    fake_flowroute: FakeFlowroute,
) -> None:
    assert links(Browser(make_site(), "alice").page().text) == []
    page = Browser(make_site(logout_url="/bye"), "alice").page()
    assert links(page.text) == ["/bye"]
    elsewhere = "https://id.example/logout?app=1&next=/"
    assert links(Browser(make_site(logout_url=elsewhere), "bob").page().text) == [
        "https://id.example/logout?app=1&amp;next=/"
    ]


def test_the_option_is_a_path_or_several_and_the_first_plain_one_is_the_link() -> None:
    assert GuardOptions(protect=["/a"]).logout_link is None
    both = GuardOptions(protect=["/a"], logout_url=["/a/logout*", "/a/logout", "/bye"])
    assert both.logout_link == "/a/logout"
    assert both.exclude == ("/a/logout*", "/a/logout", "/bye")
    with pytest.raises(ValueError, match="logout_url"):
        GuardOptions(protect=["/a"], logout_url=True)  # type: ignore[arg-type]


def test_django_shows_the_link(sms2fa: Any, fake_flowroute: FakeFlowroute) -> None:
    from django.test import Client

    sms2fa(logout_url="/logout/")
    client = Client()
    client.login(username=ALICE, password=PASSWORD)
    page = client.get(client.get("/account/", headers=HTML)["location"], headers=HTML)
    assert links(page.text) == ["/logout/"]
