"""Driving a served test app (tests/support/apps.py) as a browser or an API client would:
the users and their numbers, the challenge's paths, and readers of the challenge page."""

from __future__ import annotations

import html
import re
from datetime import datetime, timezone
from typing import Any

import requests

from sms2fa_middleware.testing import FakeFlowroute
from sms2fa_middleware.text import status as status_text

from .apps import Site

ALICE, BOB = "+12065551234", "+14155552671"
NEW_NUMBER = "+13125550199"
USERS = {"alice": ALICE, "bob": BOB}
HTML = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
CHALLENGE = "/sms2fa/challenge"
ACCOUNT_CHALLENGE = "/sms2fa/challenge?next=%2Faccount"
COOKIE = "sms2fa"
FLASH = "sms2fa_flash"
EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)


class Browser:
    """A requests.Session against one site, as ``user`` (the X-User header), never following
    redirects by itself."""

    def __init__(self, site: Site, user: str | None = None, **headers: str) -> None:
        self.site = site
        self.http = requests.Session()
        if user:
            self.http.headers["X-User"] = user
        self.http.headers.update(headers)

    def plant(self, value: str) -> None:
        """Put a verified-session cookie in the jar, as if the server had set it."""
        self.http.cookies.set(COOKIE, value, domain="127.0.0.1", path="/")

    def nav(self, path: str, **kw: Any) -> requests.Response:
        """A top-level navigation: GET with a browser's Accept header."""
        headers = {"Accept": HTML, **kw.pop("headers", {})}
        return self.http.get(
            self.site.url + path, headers=headers, allow_redirects=False, timeout=10, **kw
        )

    def api(self, path: str, method: str = "GET", **kw: Any) -> requests.Response:
        headers = {"Accept": "application/json", **kw.pop("headers", {})}
        return self.http.request(
            method, self.site.url + path, headers=headers, allow_redirects=False, timeout=10, **kw
        )

    def page(self, next_url: str = "/account", **kw: Any) -> requests.Response:
        response = self.nav(CHALLENGE, params={"next": next_url}, **kw)
        assert response.status_code == 200, (response.status_code, response.text[:300])
        return response

    def post(self, path: str, data: dict[str, str], **kw: Any) -> requests.Response:
        return self.http.post(
            self.site.url + path,
            data=data,
            allow_redirects=False,
            timeout=10,
            headers={"Accept": HTML, **kw.pop("headers", {})},
            **kw,
        )

    def submit(
        self, code: str, next_url: str = "/account", token: str | None = None, **kw: Any
    ) -> requests.Response:
        """Post the challenge form (with a fresh token from the page unless one is given)."""
        if token is None:
            token = csrf_token(self.page(next_url))
        return self.post(CHALLENGE, {"csrf_token": token, "next": next_url, "code": code}, **kw)

    def resend(self, next_url: str = "/account") -> requests.Response:
        token = csrf_token(self.page(next_url))
        return self.post(CHALLENGE + "/resend", {"csrf_token": token, "next": next_url})

    def verify(self, fake: FakeFlowroute, next_url: str = "/account") -> str:
        """Walk the whole challenge; return the verified-session cookie's value."""
        first = self.nav(next_url)
        assert first.status_code == 303, first.text
        number = self.site.users[self.http.headers["X-User"]]
        done = self.submit(fake.last_code(number), next_url)
        assert done.status_code == 303, done.text[:500]
        assert done.headers["location"] == next_url
        value = done.cookies.get(COOKIE)
        assert value
        return str(value)


def csrf_token(page: requests.Response) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, page.text[:500]
    return html.unescape(found.group(1))


def hidden_next(page: requests.Response) -> str:
    found = re.search(r'name="next" value="([^"]*)"', page.text)
    assert found, page.text[:500]
    return html.unescape(found.group(1))


def attempts_shown(page: requests.Response) -> int | None:
    """The "N attempts left." the page shows; None when it shows no code form."""
    found = re.search(r"(\d+) attempts? left\.", page.text)
    if found is None:
        assert 'name="code"' not in page.text
        return None
    return int(found.group(1))


def set_cookies(response: requests.Response) -> dict[str, list[str]]:
    """Every Set-Cookie of a response: name -> [value, attribute, ...]."""
    found: dict[str, list[str]] = {}
    for header in response.raw.headers.getlist("Set-Cookie"):
        parts = [p.strip() for p in header.split(";")]
        name, _, value = parts[0].partition("=")
        found[name] = [value, *parts[1:]]
    return found


def shows(page: requests.Response, status: str) -> bool:
    """Whether the challenge page shows the message for a send ``status``."""
    return html.escape(status_text(status)) in page.text


def wrong(code: str) -> str:
    return str((int(code) + 1) % 10 ** len(code)).zfill(len(code))


def get_with_cookie(
    site: Site, path: str, user: str, cookie: str, name: str = COOKIE
) -> requests.Response:
    return requests.get(
        site.url + path,
        headers={"X-User": user, "Cookie": f"{name}={cookie}", "Accept": "application/json"},
        allow_redirects=False,
        timeout=10,
    )


def json_401(response: requests.Response, reason: str) -> dict[str, Any]:
    assert response.status_code == 401, response.text[:300]
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert body["reason"] == reason
    return body
