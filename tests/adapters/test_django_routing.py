"""Django: every URL the resolver sends to a protected URL pattern is protected.

Django routes one URL pattern under more paths than its own: ``i18n_patterns`` under every
language's prefix (``/fr/account/``), a case-insensitive ``re_path`` in every letter case
(``/BILLING/``). The path rules see only the path; the middleware's ``process_view`` checks
the route Django resolved, and ``protect_views`` protects by URL name. Each case is tried
with Django's test clients (sync and async) and under real servers (gunicorn for WSGI,
uvicorn for ASGI); ``check_routes()`` warns about each. The URLconfs are in
tests/support/django_routing_urls.py (default language prefixed) and
django_routing_urls_unprefixed.py.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from sms2fa_middleware.testing import FakeFlowroute
from tests.support import ROOT, SECRET
from tests.support.django_example import (
    ALICE,
    ALICE_PHONE,
    EXAMPLE,
    FORM,
    HTML,
    PASSWORD,
    csrf,
    form_body,
)
from tests.support.servers import free_port, launch

pytest.importorskip("django")

JSON = {"accept": "application/json"}
LANGUAGES = [("en", "English"), ("fr", "French"), ("de", "German")]
MARKER = "SMS2FA-ROUTING-VIEW-RAN"  # django_routing_urls.MARKER (it needs Django set up)
URLCONFS = {
    "prefixed": "tests.support.django_routing_urls",
    "unprefixed": "tests.support.django_routing_urls_unprefixed",
}


def protect_for(lang: str) -> list[str]:
    """The protect patterns a developer writes for the default language's paths."""
    return [f"{lang}/account", f"{lang}/settings/*", "/billing"]


def guarded_paths(lang: str) -> list[str]:
    """Paths whose view must not run unverified: the patterns' own, and the other ways
    Django routes the same URL patterns (other languages, other letter case, by name)."""
    return [
        f"{lang}/account/",
        "/fr/account/",
        "/de/account/",
        f"{lang}/settings/profile/",
        "/fr/settings/profile/",
        "/de/settings/profile/",
        "/billing/",
        "/BILLING/",
        "/Billing/",
        "/team/members/",
        "/team/async/",
    ]


@pytest.fixture(params=list(URLCONFS))
def routing(request: pytest.FixtureRequest, sms2fa: Any) -> Iterator[str]:
    """The routing URLconf with LocaleMiddleware and three languages; SMS2FA protects the
    default language's paths and the team namespace. Yields the default language's prefix."""
    from django.conf import settings
    from django.test import override_settings

    lang = "/en" if request.param == "prefixed" else ""
    sms2fa(protect=protect_for(lang), protect_views=["team:*"])  # before the override below
    middleware = list(settings.MIDDLEWARE)
    middleware.insert(
        middleware.index("django.contrib.sessions.middleware.SessionMiddleware") + 1,
        "django.middleware.locale.LocaleMiddleware",
    )
    with override_settings(
        ROOT_URLCONF=URLCONFS[request.param],
        USE_I18N=True,
        LANGUAGE_CODE="en",
        LANGUAGES=LANGUAGES,
        MIDDLEWARE=middleware,
    ):
        yield lang


def _challenged(path: str, html: Any, api: Any) -> list[str]:
    """What went wrong for one path: [] when the browser was sent to the challenge and the
    API client got 401 VerificationRequired, and the view ran for neither."""
    problems = []
    if html.status_code != 303 or "/sms2fa/challenge" not in html["location"]:
        problems.append(f"{path} (browser): {html.status_code}")
    if api.status_code != 401 or api.json().get("reason") != "VerificationRequired":
        problems.append(f"{path} (API): {api.status_code}")
    if MARKER in html.content.decode() + api.content.decode():
        problems.append(f"{path}: the view ran")
    return problems


def _verify(client: Any, fake_flowroute: FakeFlowroute, path: str) -> None:
    """Pass the challenge for ``path`` with the texted code (sync client)."""
    page = client.get(client.get(path, headers=HTML)["location"], headers=HTML)
    done = client.post(
        "/sms2fa/challenge",
        form_body(
            {
                "csrf_token": csrf(page.text),
                "next": path,
                "code": fake_flowroute.last_code(ALICE_PHONE),
            }
        ),
        FORM,
        headers=HTML,
    )
    assert done.status_code == 303 and done["location"] == path


def test_sync_every_route_to_a_protected_pattern_is_challenged(
    routing: str, fake_flowroute: FakeFlowroute
) -> None:
    from django.test import Client

    client = Client()
    client.login(username=ALICE, password=PASSWORD)
    problems = []
    for path in guarded_paths(routing):
        problems += _challenged(
            path, client.get(path, headers=HTML), client.get(path, headers=JSON)
        )
    assert not problems, "\n".join(problems)
    public = client.get("/public/", headers=HTML)  # not protected: no challenge
    assert public.status_code == 200 and MARKER in public.text

    _verify(client, fake_flowroute, "/fr/account/")
    for path in guarded_paths(routing):  # verified: each view runs, kept out of shared caches
        page = client.get(path, headers=HTML)
        assert page.status_code == 200 and MARKER in page.text, path
        assert "private" in page["cache-control"] and "Cookie" in page["vary"], path
        assert page.wsgi_request.sms2fa.recipient == ALICE_PHONE


def test_async_every_route_to_a_protected_pattern_is_challenged(
    routing: str, fake_flowroute: FakeFlowroute
) -> None:
    """Under ASGI the async process_view decides; identify (request.user) runs off the loop."""
    from django.test import AsyncClient

    async def flow() -> None:
        client = AsyncClient()
        login = await client.post(
            "/login/", {"username": ALICE, "password": PASSWORD, "next": "/public/"}
        )  # no reverse(): (?i)
        assert login.status_code == 302
        problems = []
        for path in guarded_paths(routing):
            problems += _challenged(
                path, await client.get(path, headers=HTML), await client.get(path, headers=JSON)
            )
        assert not problems, "\n".join(problems)
        challenge = await client.get("/de/account/", headers=HTML)
        page = await client.get(challenge["location"], headers=HTML)
        done = await client.post(
            "/sms2fa/challenge",
            form_body(
                {
                    "csrf_token": csrf(page.text),
                    "next": "/de/account/",
                    "code": fake_flowroute.last_code(ALICE_PHONE),
                }
            ),
            FORM,
            headers=HTML,
        )
        assert done.status_code == 303
        for path in guarded_paths(routing):
            reached = await client.get(path, headers=HTML)
            assert reached.status_code == 200 and MARKER in reached.text, path
            assert "private" in reached["cache-control"], path

    asyncio.run(flow())


def test_anonymous_requests_are_answered_as_on_the_protected_path(routing: str) -> None:
    """Nobody logged in: the login page (browser) or 401 LoginRequired, as for the path
    the patterns name; anonymous="app" hands them to the app, as there."""
    from django.test import Client

    for path in ("/fr/account/", "/BILLING/", "/team/members/"):
        browser = Client().get(path, headers=HTML)
        assert browser.status_code == 303 and browser["location"].startswith("/login/"), path
        api = Client().get(path, headers=JSON)
        assert api.status_code == 401 and api.json()["reason"] == "LoginRequired", path


def test_protect_views_alone(sms2fa: Any, routing: str) -> None:
    """protect_views without protect: the named URL patterns only, sync and async views."""
    from django.test import AsyncClient, Client

    sms2fa(protect=[], protect_views=["billing", "team:async"])
    client = Client()
    client.login(username=ALICE, password=PASSWORD)
    assert not _challenged(
        "/billing/", client.get("/billing/", headers=HTML), client.get("/billing/", headers=JSON)
    )
    assert client.get("/team/members/").status_code == 200  # not named
    # No path rules now: the middleware lets the account page through, and its own
    # verified_required refuses (defence in depth).
    assert client.get(f"{routing}/account/").status_code == 403

    async def named_async_view() -> None:
        client = AsyncClient()
        await client.post("/login/", {"username": ALICE, "password": PASSWORD, "next": "/public/"})
        assert not _challenged(
            "/team/async/",
            await client.get("/team/async/", headers=HTML),
            await client.get("/team/async/", headers=JSON),
        )

    asyncio.run(named_async_view())


def test_check_routes_samples_every_language_and_regex(sms2fa: Any, routing: str) -> None:
    from sms2fa_middleware.django import check_routes, route_paths

    paths = set(route_paths())
    assert {
        f"{routing}/account/",
        "/fr/account/",
        "/de/account/",
        "/fr/settings/x/",
        "/settings/",
        "/billing/",
        "/team/members/",
    } <= paths
    assert not any("^" in p or "$" in p or "(" in p for p in paths), paths
    assert check_routes(protect=["/public"], protect_views=["team:*"]) == []

    # i18n: the default language's path only is protected (another language is not).
    warnings = check_routes(protect=["/account"], protect_views=[])
    if routing:  # every language prefixed: "/account" is no path at all
        assert "protect pattern '/account' matches no route" in warnings
    else:
        for lang in ("fr", "de"):
            assert any(
                w.startswith(f"route '/{lang}/account/' is not matched by protect")
                and "'/account/' (another language)" in w
                for w in warnings
            ), warnings
    # re_path: its regex sampled as a path, so a glob that misses it is caught.
    warnings = check_routes(protect=["/settings/*", "/billing"], protect_views=[])
    assert any(
        w.startswith("route '/settings/' is not protected, though protect has '/settings/*'")
        for w in warnings
    ), warnings
    # (?i): the other-case spellings escape the protect patterns.
    assert any(
        w.startswith("route '/BILLING/' is not matched by protect") and "another letter case" in w
        for w in warnings
    ), warnings
    assert check_routes(protect=["/billing"], exclude=["/BILLING"], protect_views=[]) == []
    warnings = check_routes(protect=["/public"], protect_views=["team:*", "nosuch:*"])
    assert warnings == ["protect_views name 'nosuch:*' matches no URL pattern"]


# -- real servers: gunicorn (WSGI) and uvicorn (ASGI) --------------------------------------------

SERVERS = {
    "uvicorn": ["uvicorn", "project.asgi:application", "--port", "{port}"],
    "gunicorn": ["gunicorn", "-w", "1", "-b", "127.0.0.1:{port}", "project.wsgi:application"],
}


@pytest.fixture(
    scope="module", params=[(s, u) for s in SERVERS for u in URLCONFS], ids=lambda p: "-".join(p)
)
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """The example project with django_routing_settings, served for real; (base URL, the
    default language's prefix)."""
    name, urlconf = request.param
    tmp = tmp_path_factory.mktemp(f"routing-{name}-{urlconf}")
    with FakeFlowroute() as fake:
        env = {
            **os.environ,
            **fake.settings_env(),
            "SMS2FA_SECRET_KEY": SECRET,
            "SMS2FA_DATABASE_URL": f"sqlite:///{tmp / 'sms2fa.db'}",
            "DJANGO_DB_PATH": str(tmp / "django.db"),
            "DJANGO_DEBUG": "0",
            "DJANGO_SETTINGS_MODULE": "tests.support.django_routing_settings",
            "ROUTING_PREFIX_DEFAULT": "1" if urlconf == "prefixed" else "0",
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(EXAMPLE), *sys.path]),
        }
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v0"],
            cwd=EXAMPLE,
            env=env,
            check=True,
            capture_output=True,
        )
        port = free_port()
        args = [a.replace("{port}", str(port)) for a in SERVERS[name]]
        with launch(
            args,
            env,
            port,
            path="/public/",
            log_path=tmp / "server.log",
            cwd=EXAMPLE,
            inherit_env=False,
        ) as (base, _):
            yield base, "/en" if urlconf == "prefixed" else ""


@pytest.mark.slow
def test_real_servers_never_run_a_protected_pattern_unverified(served: tuple[str, str]) -> None:
    base, lang = served
    problems = []
    for path in guarded_paths(lang):
        html = requests.get(base + path, headers=HTML, allow_redirects=False, timeout=30)
        api = requests.get(base + path, headers=JSON, allow_redirects=False, timeout=30)
        if html.status_code != 303 or not html.headers["location"].startswith("/login/"):
            problems.append(f"{path} (browser): {html.status_code}")
        if api.status_code != 401 or api.json().get("reason") != "LoginRequired":
            problems.append(f"{path} (API): {api.status_code}")
        if MARKER in html.text + api.text:
            problems.append(f"{path}: the view ran")
    assert not problems, f"{base}:\n" + "\n".join(problems)
    public = requests.get(base + "/public/", timeout=30)
    assert public.status_code == 200 and MARKER in public.text


REGEXES = [
    r"^settings/$",
    r"^articles/(?P<year>[0-9]{4})/(?P<slug>[\w-]+)/$",
    r"^files/(?P<p>.*)$",
    r"^(?:en|fr)/news/$",
    r"^a+b?c*/\d{2,3}/$",
    r"^x/(?P<n>[^/]+)/(?P=n)/$",
    r"^y/(?=z)z\.json$",
    r"^q/[^a-x]/$",
    r"(?i)^caps/[A-Z]+/$",
    r"^esc/\(\$\)/$",
]


def test_every_re_path_sample_resolves_to_its_own_pattern(project: None) -> None:
    """route_paths() turns each regex into a path that Django routes to that very regex."""
    import types

    from django.urls import re_path, resolve

    from sms2fa_middleware.django import route_paths

    urlconf = types.ModuleType("sampled_urls")
    urlconf.urlpatterns = [re_path(regex, lambda request: None) for regex in REGEXES]  # type: ignore[attr-defined]
    samples = route_paths(urlconf)  # type: ignore[arg-type]
    assert len(samples) == len(REGEXES)
    for regex, sample in zip(REGEXES, samples):
        assert resolve(sample, urlconf).route == regex, (regex, sample)


# -- the start-up audit of a real-shaped URLconf (MDN's LocalLibrary) ---------------------------


@pytest.fixture
def locallibrary(sms2fa: Any) -> Iterator[list[str]]:
    """The LocalLibrary-shaped URLconf, SMS2FA protecting its librarian pages."""
    from django.test import override_settings

    from tests.support.django_locallibrary_urls import PROTECT

    sms2fa(protect=PROTECT, protect_views=[])
    with override_settings(ROOT_URLCONF="tests.support.django_locallibrary_urls"):
        yield list(PROTECT)


def test_check_routes_is_quiet_for_locallibrary(locallibrary: list[str]) -> None:
    from sms2fa_middleware.django import check_routes

    # 23 public pages sit under /catalog beside /catalog/*/create: none is a reading of it.
    assert check_routes() == []


def test_check_routes_finds_the_open_route_in_a_broken_locallibrary(
    locallibrary: list[str],
) -> None:
    from django.test import override_settings

    from sms2fa_middleware.django import check_routes

    broken = [p for p in locallibrary if p not in ("/admin", "/catalog/mybooks")]
    broken += ["/admin/*", "/catalog/mybooks/*"]
    warnings = check_routes(protect=broken)
    assert warnings == [
        "route '/admin/' is not protected, though protect has '/admin/*', which protects "
        "'/admin/x'; protect it too, or declare it public",
        "route '/catalog/mybooks/' is not protected, though protect has "
        "'/catalog/mybooks/*', which protects '/catalog/mybooks/x'; protect it too, or "
        "declare it public",
        "protect pattern '/catalog/mybooks/*' matches no route",
    ]
    # a deliberately public route: no warning (and protection is unchanged)
    warnings = check_routes(protect=broken, public=["/catalog/mybooks"])
    assert [w for w in warnings if "is not protected" in w] == [warnings[0]]
    with override_settings(SMS2FA_PUBLIC_ROUTES=["/admin", "/catalog/mybooks"]):
        assert check_routes(protect=broken) == [
            "protect pattern '/catalog/mybooks/*' matches no route"
        ]
