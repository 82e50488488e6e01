"""Fast, sans-IO tests of the guard's parts -- options, paths, cookies, CSRF, sessions and the
HTML flow -- with :class:`~sms2fa_middleware.messages.Request` objects and no server in front
(the flow tests use a real SQLite file and FakeFlowroute). The real-server suites
(adapters/test_middleware.py, security/test_path_spellings.py, ...) stay the proof; these pin
the edge cases cheaply.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from sms2fa_middleware import Identity, Settings, text
from sms2fa_middleware.guard import PASS, PREFIX, PROTECTED, Guard, GuardOptions
from sms2fa_middleware.guard.cookies import Cookies, cookie_value
from sms2fa_middleware.guard.csrf import Csrf, origin_ok
from sms2fa_middleware.guard.paths import PathPolicy
from sms2fa_middleware.guard.responses import app_url, request_target, with_next
from sms2fa_middleware.messages import Request, wire
from sms2fa_middleware.testing import FakeFlowroute
from tests.support import SECRET

ALICE = Identity("alice", "+12065551234")
HTML = "text/html,application/xhtml+xml"


# -- options ---------------------------------------------------------------------------------


def test_options_are_normalised_once() -> None:
    options = GuardOptions(protect="/account", prefix="2fa/", remember_for="60")  # type: ignore[arg-type]
    assert options.protect == ("/account",)
    assert options.prefix == "/2fa"
    assert options.remember_for == 60
    assert options.cookie_audience == "sms2fa\x00/2fa\x00"


@pytest.mark.parametrize(
    "bad",
    [{"protect": []}, {"protect": ["/a"], "prefix": "/"}, {"protect": ["/a"], "remember_for": 0}],
)
def test_options_refuse_what_would_protect_nothing_or_break(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        GuardOptions(**bad)


def test_options_from_a_settings_mapping_name_unknown_keys() -> None:
    options = GuardOptions.from_mapping({"protect": ["/a"], "identify": "x.y"}, ignore=["identify"])
    assert options.protect == ("/a",)
    with pytest.raises(ValueError, match="protekt"):
        GuardOptions.from_mapping({"protect": ["/a"], "protekt": ["/b"]})


def test_an_adapter_keyword_that_is_no_option_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="protekt"):
        GuardOptions.from_keywords({"protect": ["/a"], "protekt": ["/b"]})


# -- paths -----------------------------------------------------------------------------------


def test_path_policy_classifies_and_remembers() -> None:
    policy = PathPolicy(["/account"], ["/account/help"], "/sms2fa")
    assert policy.classify("/sms2fa") == PREFIX
    assert policy.classify("/sms2fa/challenge") == PREFIX
    assert policy.classify("/sms2faX") == PASS
    assert policy.classify("/account") == PROTECTED
    assert policy.classify("//account") == PROTECTED
    assert policy.classify("/public/../account") == PROTECTED
    assert policy.classify("/account/help") == PASS
    assert policy.remember("/x", "/account") == PROTECTED
    assert policy.kinds == {"/x": PROTECTED}
    policy.remember("/" + "a" * 300, "/a")  # long keys are classified, not remembered
    assert len(policy.kinds) == 1


# -- cookies ---------------------------------------------------------------------------------


def test_cookie_names_take_host_prefix_only_when_the_browser_enforces_it() -> None:
    assert Cookies("s").session(False) == "s"
    assert Cookies("s").session(True) == "__Host-s"
    assert Cookies("s", secure=True).session(False) == "__Host-s"
    assert Cookies("s", domain="example.com").session(True) == "s"
    assert Cookies("s").csrf(True) == "__Host-s_csrf"
    assert Cookies("s").flash(False) == "s_flash"


def test_cookie_attributes() -> None:
    _, plain = Cookies("s").set(False, "s", "v", 60)
    assert plain == "s=v; Path=/; Max-Age=60; HttpOnly; SameSite=Lax"
    _, secure = Cookies("s", domain="example.com").set(True, "s", "v", 60)
    assert secure.endswith("; Secure; Domain=example.com")
    _, host = Cookies("s", domain="example.com").set(True, "__Host-s", "v", 60)
    assert "Domain" not in host  # the browser would refuse a __Host- cookie with one
    assert Cookies("s").delete(False, "s")[1].startswith("s=; Path=/; Max-Age=0")


def test_cookie_value_reads_only_the_named_cookie() -> None:
    header = 'a=1; sms2fa_csrf=x; sms2fa="y"'
    assert cookie_value(header, "sms2fa") == "y"
    assert cookie_value(header, "sms2fa_csrf") == "x"
    assert cookie_value(header, "sms2") is None


# -- CSRF ------------------------------------------------------------------------------------


def _post(cookie: str = "", **headers: str) -> Request:
    return Request(
        "POST", "/sms2fa/challenge", headers={"host": "site.test", "cookie": cookie, **headers}
    )


@pytest.mark.parametrize(
    ("origin", "ok"),
    [
        (None, True),
        ("http://site.test", True),
        ("https://site.test", False),
        ("http://evil.test", False),
        ("null", False),
    ],
)
def test_origin_check(origin: str | None, ok: bool) -> None:
    request = _post(**({"origin": origin} if origin else {}))
    assert origin_ok(request) is ok


def test_an_origin_without_a_host_to_compare_is_refused() -> None:
    """No Host (an HTTP/1.0 client, a server that drops it): an Origin cannot be checked,
    so a post that carries one is refused; one without Origin is no browser's cross-site post."""
    no_host = {"origin": "http://evil.test"}
    assert not origin_ok(Request("POST", "/sms2fa/challenge", headers=no_host))
    assert origin_ok(Request("POST", "/sms2fa/challenge", headers={}))


def test_csrf_token_is_bound_to_the_user_and_the_nonce_cookie() -> None:
    csrf = Csrf([SECRET], Cookies("sms2fa"))
    nonce, set_cookie = csrf.nonce(_post())
    assert set_cookie is not None and set_cookie[1].startswith(f"sms2fa_csrf={nonce};")
    again, none = csrf.nonce(_post(cookie=f"sms2fa_csrf={nonce}"))
    assert (again, none) == (nonce, None)  # kept, not replaced
    token = csrf.token("alice", nonce)
    assert csrf.ok(_post(cookie=f"sms2fa_csrf={nonce}"), "alice", token)
    assert not csrf.ok(_post(cookie=f"sms2fa_csrf={nonce}"), "bob", token)
    assert not csrf.ok(_post(cookie="sms2fa_csrf=" + "x" * 32), "alice", token)
    assert not csrf.ok(_post(), "alice", token)
    assert not csrf.ok(_post(cookie=f"sms2fa_csrf={nonce}", origin="null"), "alice", token)
    other = Csrf(["another-secret-key-0123456789"], Cookies("sms2fa"))
    assert not other.ok(_post(cookie=f"sms2fa_csrf={nonce}"), "alice", token)


# -- URLs ------------------------------------------------------------------------------------


def test_urls_are_built_from_the_root_path() -> None:
    mounted = Request("GET", "/account", "tab=2", root_path="/sub")
    assert request_target(mounted) == "/sub/account?tab=2"
    assert app_url(mounted, "/login") == "/sub/login"
    assert app_url(mounted, "https://id.example/login") == "https://id.example/login"
    assert app_url(mounted, "//id.example/login") == "//id.example/login"
    assert request_target(Request("GET", "/café?")) == "/caf%C3%A9%3F"
    assert with_next("/login?x=1", "//evil.test") == "/login?x=1&next=%2F"


def test_wire_strips_head_bodies_but_keeps_their_length() -> None:
    from sms2fa_middleware.messages import Response

    headers, body = wire(Response(200, b"hello"), head=True)
    assert body == b"" and ("content-length", "5") in headers
    assert wire(Response(200, b"hello"))[1] == b"hello"


def test_plurals_come_from_the_catalogue() -> None:
    assert text.attempts_left(1) == "1 attempt left."
    assert text.attempts_left(2) == "2 attempts left."
    assert text.too_many_wrong(1).endswith("1 minute.")

    class Pirate:  # a language with its own plural forms: its catalogue decides
        def gettext(self, message: str, /) -> str:
            return "Arr! " + message

        def ngettext(self, singular: str, plural: str, n: int, /) -> str:
            return "{n} tries, matey." if n > 2 else "Arr! " + (singular if n == 1 else plural)

    text.use(Pirate())
    try:
        assert text.attempts_left(3) == "3 tries, matey."
        assert text.attempts_left(2) == "Arr! 2 attempts left."
        assert text.wrong_code().startswith("Arr! ")
    finally:
        text.use(None)
    assert text.attempts_left(3) == "3 attempts left."


# -- the guard, sans-IO ------------------------------------------------------------------------


@pytest.mark.parametrize(("length", "builds"), [(4, False), (5, False), (6, True), (10, True)])
def test_the_middleware_refuses_codes_shorter_than_six_digits(
    tmp_path: Path, length: int, builds: bool
) -> None:
    """A login's second factor needs 6 digits at least (the HTTP API alone keeps 4-10, for
    the old service's callers): a shorter SMS2FA_CODE_LENGTH stops the guard at start-up."""
    settings = Settings(
        secret_key=SECRET,
        database_url=f"sqlite:///{tmp_path / 'g.db'}",
        code_length=length,
        sms_backend="console",
    )
    if builds:
        Guard(settings, protect=["/account"]).verifier.store.dispose()
    else:
        with pytest.raises(ValueError, match="at least 6 digits"):
            Guard(settings, protect=["/account"])


@pytest.fixture
def guard(tmp_path: Path, fake_flowroute: FakeFlowroute) -> Iterator[Guard]:
    settings = Settings(
        secret_key=SECRET,
        database_url=f"sqlite:///{tmp_path / 'g.db'}",
        code_length=7,
        **fake_flowroute.settings_kwargs(),
    )
    made = Guard(settings, protect=["/account"], login_url="/login")
    yield made
    made.verifier.store.dispose()


def _cookies(response: Any) -> dict[str, str]:
    found = {}
    for name, value in response.headers:
        if name == "set-cookie":
            key, _, rest = value.partition("=")
            found[key] = rest.split(";")[0]
    return found


def _header(response: Any, name: str) -> str:
    return next(v for k, v in response.headers if k == name)


def test_flow_navigation_code_and_back(guard: Guard, fake_flowroute: FakeFlowroute) -> None:
    nav = Request(
        "GET", "/account", "tab=2", {"accept": HTML, "host": "site.test"}, root_path="/app"
    )
    first = guard.deny(nav, ALICE)
    assert first.status == 303
    bound = _cookies(first)["sms2fa_challenge"]  # the code verifies with it only
    location = _header(first, "location")
    assert location == "/app/sms2fa/challenge?next=%2Fapp%2Faccount%3Ftab%3D2"
    query = urlsplit(location).query
    page = guard.handle_prefix(
        Request("GET", "/sms2fa/challenge", query, {"accept": HTML}, root_path="/app"), ALICE
    )
    body = page.body.decode()
    assert page.status == 200 and 'maxlength="13"' in body  # code_length 7, plus 6
    nonce = _cookies(page)["sms2fa_csrf"]
    token = re.search(r'name="csrf_token" value="([^"]+)"', body)
    assert token is not None
    code = fake_flowroute.last_code(ALICE.recipient or "", length=7)
    form = f"code={code}&csrf_token={token.group(1)}&next={parse_qs(query)['next'][0]}"
    done = guard.handle_prefix(
        Request(
            "POST",
            "/sms2fa/challenge",
            headers={
                "content-type": "application/x-www-form-urlencoded",
                "host": "site.test",
                "cookie": f"sms2fa_csrf={nonce}; sms2fa_challenge={bound}",
            },
            body=form.encode(),
            root_path="/app",
        ),
        ALICE,
    )
    assert done.status == 303 and _header(done, "location") == "/app/account?tab=2"
    session = _cookies(done)["sms2fa"]
    assert guard.is_verified(f"sms2fa={session}", False, ALICE)
    assert not guard.is_verified(f"sms2fa={session}", False, Identity("bob", ALICE.recipient))


def test_a_wrong_code_shows_the_page_again_with_its_next(guard: Guard) -> None:
    guard.deny(Request("GET", "/account", headers={"accept": HTML}), ALICE)
    page = guard.handle_prefix(
        Request("GET", "/sms2fa/challenge", "next=/account", {"accept": HTML}), ALICE
    )
    nonce = _cookies(page)["sms2fa_csrf"]
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.body.decode())
    assert token is not None
    again = guard.handle_prefix(
        Request(
            "POST",
            "/sms2fa/challenge",
            headers={
                "content-type": "application/x-www-form-urlencoded; charset=UTF-8",
                "cookie": f"sms2fa_csrf={nonce}",
            },
            body=f"code=12&csrf_token={token.group(1)}&next=/account/x".encode(),
        ),
        ALICE,
    )
    assert again.status == 400
    assert 'name="next" value="/account/x"' in again.body.decode()
    assert text.attempts_left(2) in again.body.decode()


def test_refusals(guard: Guard) -> None:
    api = Request("GET", "/account", headers={"accept": "application/json"})
    assert guard.deny(api, ALICE).status == 401
    assert guard.deny(api, None).status == 401
    login = guard.deny(Request("GET", "/account", headers={"accept": HTML}, root_path="/r"), None)
    assert _header(login, "location") == "/r/login?next=%2Fr%2Faccount"
    assert guard.deny(api, Identity("alice", None)).status == 403
    forged = guard.handle_prefix(
        Request(
            "POST",
            "/sms2fa/challenge",
            headers={"content-type": "application/x-www-form-urlencoded"},
            body=b"code=1",
        ),
        ALICE,
    )
    assert forged.status == 403
    assert guard.handle_prefix(Request("PUT", "/sms2fa/challenge"), ALICE).status == 404


def test_head_gets_the_page_headers(guard: Guard) -> None:
    head = guard.handle_prefix(Request("HEAD", "/sms2fa/challenge", "", {"accept": HTML}), ALICE)
    assert head.status == 200 and _header(head, "content-type").startswith("text/html")


def test_guard_keywords_are_the_options() -> None:
    with pytest.raises(TypeError, match="protekt"):  # checked before any database work
        Guard(None, protect=["/a"], protekt=["/b"])


def test_came_from_is_a_same_origin_page_or_the_apps_root() -> None:
    from sms2fa_middleware.guard.responses import came_from

    def post(root: str = "", **headers: str) -> Request:
        return Request("POST", "/account", headers={"host": "site.test", **headers}, root_path=root)

    assert came_from(post(referer="http://site.test/a/b?x=1")) == "/a/b?x=1"
    assert came_from(post(**{"hx-current-url": "https://site.test/h", "referer": "/r"})) == "/h"
    assert came_from(post(referer="http://evil.test/a")) == "/"
    assert came_from(post(referer="http://site.test//evil.test/")) == "/"
    assert came_from(post("/sub")) == "/sub/"


def test_json_flow_sans_io(guard: Guard, fake_flowroute: FakeFlowroute) -> None:
    def call(method: str, path: str, body: bytes = b"", **headers: str) -> Any:
        return guard.handle_prefix(
            Request(
                method,
                path,
                headers={
                    "accept": "application/json",
                    "content-type": "application/json",
                    **headers,
                },
                body=body,
            ),
            ALICE,
        )

    assert call("GET", "/sms2fa/challenge").status == 200
    sent = call("POST", "/sms2fa/challenge/send", b"{}")
    assert sent.status == 200
    code = fake_flowroute.last_code(ALICE.recipient or "", length=7)
    bound = f"sms2fa_challenge={_cookies(sent)['sms2fa_challenge']}"
    done = call("POST", "/sms2fa/challenge", f'{{"code": "{code}"}}'.encode(), cookie=bound)
    assert done.status == 200 and _cookies(done)["sms2fa"]
    assert not any(k == "www-authenticate" for k, _ in done.headers)
    refused = guard.deny(Request("GET", "/account", headers={"accept": "*/*"}), ALICE)
    assert _header(refused, "www-authenticate") == 'SMS2FA challenge="/sms2fa/challenge"'


def test_one_device_revoked_leaves_the_others(guard: Guard) -> None:
    phone, laptop = guard.sessions.issue(ALICE), guard.sessions.issue(ALICE)
    assert guard.is_verified(f"sms2fa={phone}", False, ALICE)  # now in the verified cache
    deleted = guard.revoke_session(f"a=1; sms2fa={phone}")
    assert deleted == [("set-cookie", "sms2fa=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax")]
    assert not guard.is_verified(f"sms2fa={phone}", False, ALICE)
    assert guard.is_verified(f"sms2fa={laptop}", False, ALICE)
    assert guard.revoke_session("other=1") == []


def test_the_session_cookies_in_a_header_are_found_under_each_name_they_may_have() -> None:
    values, deletions = Cookies("sms2fa").sessions_in("sms2fa=a; __Host-sms2fa=b; sms2fa=c")
    assert values == ["a", "c", "b"]  # every one of a name: one may be planted
    assert [v.split(";")[0] for _, v in deletions] == ["sms2fa=", "__Host-sms2fa="]
    values, deletions = Cookies("sms2fa", secure=True).sessions_in("sms2fa=a; __Host-sms2fa=b")
    assert values == ["b"] and len(deletions) == 1
    assert Cookies("sms2fa").sessions_in("other=1") == ([], [])


def test_the_code_sender_sends_once_per_waiting_code_and_names_why_not(
    guard: Guard, fake_flowroute: FakeFlowroute
) -> None:
    from sms2fa_middleware.guard.sending import CodeSender

    sender = CodeSender(guard.verifier)
    request = Request("GET", "/account", client="203.0.113.9")
    assert sender.send_unless_waiting(ALICE, request) is None
    assert sender.send_unless_waiting(ALICE, request) is None  # a reload sends none
    assert len(fake_flowroute.messages) == 1
    assert sender.send(ALICE, request) == "rate_limited"  # the resend cooldown
    assert sender.send(Identity("alice", None), request) == "bad_number"
    fake_flowroute.fail_next(500)
    assert sender.send(Identity("bob", "+12065550100"), request) == "send_failed"
    moved = Identity("alice", "+12065550199")  # the waiting code is not the new number's:
    assert sender.send_unless_waiting(moved, request) == "rate_limited"  # a send is tried


def test_split_cookie_headers_are_one_cookie_header_for_the_guard() -> None:
    """The prefix's requests (the challenge forms, logout of one device) see every cookie of
    an HTTP/2 request that split them over several headers, and the last of other repeats."""
    from sms2fa_middleware.asgi_io import request_from_scope

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/sms2fa/challenge",
        "headers": [
            (b"cookie", b"a=1"),
            (b"x-other", b"first"),
            (b"Cookie", b"b=2"),
            (b"x-other", b"second"),
        ],
    }
    request = request_from_scope(scope)
    assert request.header("cookie") == "a=1; b=2"
    assert request.header("x-other") == "second"
