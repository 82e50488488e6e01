"""What ``identify`` may return, the cookie's audience, Origin ``null`` and private responses
(issue 11, items 6 and 9), on both adapters through real servers (see ``tests/apps.py``).

``identify`` here reads the ``X-User`` header and returns whatever the test put in
``IDENTITIES`` for that user: an int auth_id, a national number, no number, garbage, or an
exception to raise.
"""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from apps import Site, serve
from test_middleware import (
    ALICE,
    CHALLENGE,
    COOKIE,
    HTML,
    Browser,
    attempts_shown,
    csrf_token,
    get_with_cookie,
    json_401,
    set_cookies,
)

from sms2fa_middleware import Identity, Settings
from sms2fa_middleware.testing import FakeFlowroute

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
SECRET_IN_ERROR = "leaked-secret-0123"
NATIONAL = "(206) 555-1234"  # ALICE, as an app may keep it


@pytest.fixture(params=["flask", "starlette"])
def framework(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_site(
    framework: str, make_settings: Callable[..., Settings]
) -> Iterator[Callable[..., Site]]:
    """Serve ``framework``'s test app; ``identities`` maps X-User to what identify returns
    (an exception instance is raised); other keywords go to the middleware."""
    sites: list[Site] = []

    def build(identities: dict[str, Any] | None = None, **options: Any) -> Site:
        table = identities or {}

        def identify(request: Any) -> Any:
            found = table.get(request.headers.get("x-user"))
            if isinstance(found, BaseException):
                raise found
            return found

        if identities is not None:
            options["identify"] = identify
        site = serve(framework, make_settings(resend_cooldown=0), {"alice": ALICE}, **options)
        sites.append(site)
        return site

    yield build
    for site in sites:
        site.stop()


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


# (guard names new in this change are imported inside the tests that use them, so the rest
# of this file runs -- and fails -- on the code before it.)


# -- identify(): what it may return (item 6) -----------------------------------------------


@SQLITE_ONLY
def test_int_auth_id_goes_through_the_challenge(
    make_site: Callable[..., Site], fake_flowroute: FakeFlowroute
) -> None:
    site = make_site({"alice": Identity(42, ALICE)})
    browser = Browser(site, "alice")  # the code is bound to the browser that asked
    first = browser.nav("/account")
    assert first.status_code == 303, first.text[:300]
    assert first.headers["location"] == "/sms2fa/challenge?next=%2Faccount"
    done = browser.submit(fake_flowroute.last_code(ALICE))
    assert done.status_code == 303
    assert browser.nav("/account").text == "account of 42"
    assert browser.api("/api/data").json() == {"auth_id": "42", "recipient": ALICE}
    site.middleware.revoke(42)  # the same id the app knows, as an int
    json_401(browser.api("/api/data"), "VerificationRequired")


@SQLITE_ONLY
def test_uuid_auth_id_and_national_number(
    make_site: Callable[..., Site], fake_flowroute: FakeFlowroute
) -> None:
    user_id = uuid.UUID("12345678-1234-5678-1234-567812345678")
    site = make_site({"alice": Identity(user_id, NATIONAL)})
    browser = Browser(site, "alice")
    assert browser.nav("/account").status_code == 303
    assert len(fake_flowroute.messages_to(ALICE)) == 1  # sent to the E.164 form
    page = browser.page()
    assert "+1••••••••34" in page.text
    assert attempts_shown(page) == 3
    assert browser.submit(fake_flowroute.last_code(ALICE)).status_code == 303
    assert browser.api("/api/data").json() == {"auth_id": str(user_id), "recipient": ALICE}


@SQLITE_ONLY
@pytest.mark.parametrize("number", [None, "", "not a number"])
def test_no_phone_on_file_gets_a_clear_answer(
    number: str | None, make_site: Callable[..., Site], fake_flowroute: FakeFlowroute
) -> None:
    site = make_site({"alice": Identity("alice", number)})
    page = nav(site, "/account")
    assert page.status_code == 403
    assert "text/html" in page.headers["content-type"]
    assert "No phone number on file" in page.text
    assert nav(site, CHALLENGE + "?next=/account").status_code == 403  # not a 500
    answer = api(site, "/api/data")
    assert answer.status_code == 403
    assert answer.json()["reason"] == "NoPhoneOnFile"
    resend = requests.post(
        site.url + CHALLENGE + "/resend",
        data={"next": "/account"},
        headers={"X-User": "alice"},
        timeout=10,
        allow_redirects=False,
    )
    assert resend.status_code == 403
    assert fake_flowroute.messages == []


@SQLITE_ONLY
def test_no_phone_on_file_goes_to_enroll_url(
    make_site: Callable[..., Site], fake_flowroute: FakeFlowroute
) -> None:
    site = make_site({"alice": Identity(7, None)}, enroll_url="/settings/phone")
    first = nav(site, "/account?tab=2")
    assert first.status_code == 303
    assert first.headers["location"] == "/settings/phone?next=%2Faccount%3Ftab%3D2"
    page = nav(site, CHALLENGE + "?next=/account")
    assert page.headers["location"] == "/settings/phone?next=%2Faccount"
    answer = api(site, "/api/data")
    assert answer.status_code == 403
    assert answer.json() == {
        "message": answer.json()["message"],
        "reason": "NoPhoneOnFile",
        "enroll": "/settings/phone",
    }
    assert fake_flowroute.messages == []


@SQLITE_ONLY
@pytest.mark.parametrize(
    "returned",
    [
        RuntimeError(f"database said {SECRET_IN_ERROR}"),
        Identity("x" * 121, ALICE),
        Identity(["alice"], ALICE),
        Identity(True, ALICE),
        Identity("alice", 12.5),
        f"alice {SECRET_IN_ERROR}",
    ],
    ids=["raises", "long", "list", "bool", "float number", "a str"],
)
def test_identify_failing_is_a_quiet_500(
    returned: Any,
    make_site: Callable[..., Site],
    caplog: pytest.LogCaptureFixture,
    fake_flowroute: FakeFlowroute,
) -> None:
    site = make_site({"alice": returned})
    with caplog.at_level(logging.ERROR, logger="sms2fa"):
        answer = api(site, "/api/data")
        page = nav(site, "/account")
        challenge = nav(site, CHALLENGE)
    assert answer.status_code == 500
    assert answer.json() == {"message": "Internal error.", "reason": "InternalError"}
    for html_page in (page, challenge):
        assert html_page.status_code == 500
        assert "text/html" in html_page.headers["content-type"]
        assert "Traceback" not in html_page.text and SECRET_IN_ERROR not in html_page.text
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name == "sms2fa")
    assert "identify()" in logged
    assert SECRET_IN_ERROR not in logged and ALICE not in logged
    assert nav(site, "/public/x").text == "public x"  # pass-through never calls identify
    assert fake_flowroute.messages == []


@SQLITE_ONLY
def test_identity_normalised_once(make_settings: Callable[..., Settings]) -> None:
    from sms2fa_middleware.guard import Guard, IdentifyError

    guard = Guard(make_settings(), protect=["/a"], default_region="gb")
    try:
        assert guard.identity(None) is None
        assert guard.identity(Identity(1, "+12065551234")) == ("1", "+12065551234")
        assert guard.identity(Identity("u", "020 7946 0018")) == ("u", "+442079460018")
        assert guard.identity(Identity("u", "12065551234")) == ("u", "+12065551234")
        assert guard.identity(("u", 12065551234)) == ("u", "+12065551234")
        assert guard.identity(Identity("u", "  ")) == ("u", None)
        # 1 == True as a dict key: the cache must not answer True with "1".
        with pytest.raises(IdentifyError, match="identify"):
            guard.identity(Identity(True, "+12065551234"))
        for bad in (
            "u",
            Identity("", ALICE),
            Identity("a\nb", ALICE),
            Identity(b"7", ALICE),
            Identity("u", object()),
            (1, 2, 3),
        ):
            with pytest.raises(IdentifyError, match="identify"):
                guard.identity(bad)
    finally:
        guard.verifier.store.dispose()


# -- the cookie's audience (item 9) ---------------------------------------------------------


@SQLITE_ONLY
def test_cookie_is_refused_by_another_app_with_the_same_secret(
    make_site: Callable[..., Site], fake_flowroute: FakeFlowroute
) -> None:
    site = make_site()
    cookie = Browser(site, "alice").verify(fake_flowroute)
    assert get_with_cookie(site, "/api/data", "alice", cookie).status_code == 200
    others = [
        make_site(audience="billing"),
        make_site(prefix="/2fa"),
        make_site(cookie_name="other"),
    ]
    for other, name in zip(others, (COOKIE, COOKIE, "other")):
        json_401(
            get_with_cookie(other, "/api/data", "alice", cookie, name=name), "VerificationRequired"
        )
    # The same options on another process accept it: the audience is configuration, not luck.
    assert get_with_cookie(make_site(), "/api/data", "alice", cookie).status_code == 200


# -- Origin: null (item 9) ------------------------------------------------------------------


@SQLITE_ONLY
def test_origin_null_is_refused_on_the_challenge_forms(
    make_site: Callable[..., Site], fake_flowroute: FakeFlowroute
) -> None:
    site = make_site()
    browser = Browser(site, "alice")
    browser.nav("/account")
    code = fake_flowroute.last_code(ALICE)
    token = csrf_token(browser.page())
    null = {"Origin": "null"}
    check = browser.post(
        CHALLENGE, {"csrf_token": token, "next": "/account", "code": code}, headers=null
    )
    resend = browser.post(
        CHALLENGE + "/resend", {"csrf_token": token, "next": "/account"}, headers=null
    )
    assert (check.status_code, resend.status_code) == (403, 403)
    assert COOKIE not in set_cookies(check)
    assert len(fake_flowroute.messages) == 1
    assert site.middleware.verifier.store.get_code("alice").attempts_left == 3
    same = {"Origin": site.url}  # the control: this site's own origin passes
    assert browser.submit(code, token=token, headers=same).status_code == 303


# -- private responses (item 9) -------------------------------------------------------------


@SQLITE_ONLY
def test_verified_responses_are_private(
    make_site: Callable[..., Site], fake_flowroute: FakeFlowroute
) -> None:
    site = make_site()
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
    make_site: Callable[..., Site], fake_flowroute: FakeFlowroute
) -> None:
    site = make_site(private_responses=False)
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


# -- cookies split over several headers -------------------------------------------------------


def _raw_get(site: Site, path: str, headers: list[tuple[str, str]]) -> tuple[int, str]:
    """GET over a socket with exactly these header lines (repeated names kept)."""
    host, port = site.url.removeprefix("http://").split(":")
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Connection: close",
        *(f"{name}: {value}" for name, value in headers),
    ]
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode("utf-8", "replace")


@SQLITE_ONLY
def test_a_verified_cookie_in_a_second_cookie_header(
    make_site: Callable[..., Site], fake_flowroute: FakeFlowroute, framework: str
) -> None:
    """HTTP/2 clients may split cookies over several headers (RFC 9113, 8.2.3): on ASGI,
    where the server hands them over as they came, the verified cookie counts wherever it
    is. WSGI servers join repeated headers with "," (no cookie separator), and there the
    request fails closed: refused, never let through on a garbled value."""
    site = make_site()
    cookie = Browser(site, "alice").verify(fake_flowroute)
    base = [("X-User", "alice"), ("Accept", "application/json")]
    for split in (
        [("Cookie", "theme=dark"), ("Cookie", f"{COOKIE}={cookie}")],
        [("Cookie", f"{COOKIE}={cookie}"), ("Cookie", "theme=dark")],
    ):
        status, body = _raw_get(site, "/api/data", [*base, *split])
        if framework == "starlette":
            assert status == 200, body
        else:
            assert status == 401 and "VerificationRequired" in body
    status, body = _raw_get(site, "/api/data", [*base, ("Cookie", f"{COOKIE}={cookie}")])
    assert status == 200, body
