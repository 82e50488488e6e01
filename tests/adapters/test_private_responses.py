"""Verified responses are private (``Cache-Control: private``, ``Vary: Cookie``) unless
turned off, merged with what the app set, repeated raw headers included; on both adapters
through real servers.

From issue 11 (items 6 and 9)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests

from sms2fa_middleware.testing import FakeFlowroute
from tests.support.apps import Site
from tests.support.browsing import (
    HTML,
    Browser,
)

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def nav(site: Site, path: str, user: str = "alice", **kw: Any) -> requests.Response:
    return requests.get(
        site.url + path,
        headers={"X-User": user, "Accept": HTML},
        allow_redirects=False,
        timeout=10,
        **kw,
    )


def api(site: Site, path: str, user: str = "alice") -> requests.Response:
    return requests.get(
        site.url + path,
        headers={"X-User": user, "Accept": "application/json"},
        allow_redirects=False,
        timeout=10,
    )


# -- private responses (item 9) -------------------------------------------------------------


@SQLITE_ONLY
def test_verified_responses_are_private(
    make_identity_site: Callable[..., Site], fake_flowroute: FakeFlowroute
) -> None:
    site = make_identity_site()
    browser = Browser(site, "alice")
    browser.verify(fake_flowroute)

    def headers(**set_by_app: str) -> requests.structures.CaseInsensitiveDict[str]:
        answer = browser.nav("/account/headers", params=set_by_app)
        assert answer.status_code == 200 and answer.text == "ok"
        return answer.headers

    plain = headers()
    assert plain["cache-control"] == "private"
    assert "Cookie" in plain["vary"]
    kept = headers(**{"Cache-Control": "no-store", "Vary": "Accept-Encoding"})
    assert kept["cache-control"] == "no-store"
    assert kept["vary"] == "Accept-Encoding, Cookie"
    public = headers(**{"Cache-Control": "public, max-age=60, s-maxage=600"})
    assert public["cache-control"] == "private, max-age=60"
    # What a CDN follows before Cache-Control goes (RFC 9213 and vendors' forms).
    cdn = headers(
        **{
            "CDN-Cache-Control": "max-age=3600",
            "Surrogate-Control": "max-age=60",
            "Cloudflare-CDN-Cache-Control": "max-age=9",
            "X-Kept": "yes",
        }
    )
    assert cdn["cache-control"] == "private" and cdn["x-kept"] == "yes"
    assert not {"cdn-cache-control", "surrogate-control", "cloudflare-cdn-cache-control"} & {
        name.lower() for name in cdn
    }
    assert browser.api("/api/data").headers["cache-control"] == "private"
    # Pass-through is untouched.
    assert "cache-control" not in browser.nav("/public/x").headers


@SQLITE_ONLY
def test_private_responses_can_be_turned_off(
    make_identity_site: Callable[..., Site], fake_flowroute: FakeFlowroute
) -> None:
    site = make_identity_site(private_responses=False)
    browser = Browser(site, "alice")
    browser.verify(fake_flowroute)
    answer = browser.nav("/account/headers", params={"Cache-Control": "public, max-age=60"})
    assert answer.headers["cache-control"] == "public, max-age=60"
    assert "cookie" not in answer.headers.get("vary", "").lower()


@pytest.mark.parametrize(
    ("vary", "cache_control", "expected"),
    [
        (None, None, ("Cookie", "private")),
        ("Accept", "no-cache", ("Accept, Cookie", "private, no-cache")),
        ("cookie", "NO-STORE", ("cookie", "NO-STORE")),
        ("*", "private, max-age=5", ("*", "private, max-age=5")),
        (None, 'private="Set-Cookie", max-age=5', ("Cookie", "private, max-age=5")),
        (None, "Public, S-MaxAge=9, must-revalidate", ("Cookie", "private, must-revalidate")),
    ],
)
def test_private_merges_with_what_the_app_set(
    vary: str | None, cache_control: str | None, expected: tuple[str, str]
) -> None:
    from sms2fa_middleware.guard.private import _private

    assert _private(vary, cache_control) == expected


def test_private_raw_headers_merges_repeated_headers() -> None:
    from sms2fa_middleware.guard import private_raw_headers

    headers = [
        (b"content-type", b"text/plain"),
        (b"vary", b"Accept"),
        (b"Vary", b"Origin"),
        (b"cache-control", b"max-age=5"),
    ]
    assert private_raw_headers(headers) == [
        (b"content-type", b"text/plain"),
        (b"vary", b"Accept, Origin, Cookie"),
        (b"cache-control", b"private, max-age=5"),
    ]
