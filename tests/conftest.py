"""Shared fixtures: every store test runs on a real SQLite file and on the real PostgreSQL.

PostgreSQL tests need SMS2FA_TEST_POSTGRES_URL (CI sets it). Without it they skip and say why;
with CI=true a missing variable or an unreachable server fails the run instead. They run in a
private database that this session creates on that server and drops at its end, never in the
database the variable names (see support/databases.py).

Every fixture shared by more than one module is defined here, once; helpers that are not
fixtures live in tests/support/.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from sms2fa_middleware import Settings, Verifier
from sms2fa_middleware.testing import FakeFlowroute
from tests.support import NO_BUDGETS, SECRET, Client
from tests.support.apps import Site, serve
from tests.support.browsing import USERS
from tests.support.databases import fresh_database, private_postgres

# -- the `server` marker: what starts a process or a server ----------------------------------

# Fixtures that start a server (in a thread or a process) for the tests that use them.
SERVER_FIXTURES = {
    "make_site",  # tests/support/apps.py: werkzeug or uvicorn in a thread
    "site",
    "make_identity_site",
    "server",  # a module's own real server (sms2fa serve, gunicorn, uvicorn ...)
    "served",
    "django_server",
    "channels_server",
    "fastapi_port",
    "example",
    "public_site",
    "base",  # tests/api/test_client.py: sms2fa serve
    "token_base",
    "live",  # tests/security/test_faults.py: sms2fa serve
}


# The server tests every supported Python runs (.ci/run): one or a few per kind of server,
# where the Python version can matter (asyncio, fork, argparse, urllib); the whole server
# tier runs on the main Python. Node ids without the parameters.
SMOKE = {
    "tests/api/test_client.py",  # sms2fa serve, one worker
    "tests/e2e/test_cli.py",  # the sms2fa command
    "tests/adapters/test_middleware.py::test_login_challenge_success_and_redirect_back",
    "tests/e2e/test_examples.py::test_example_protects_the_account_page_with_an_sms_code",
    "tests/adapters/test_django.py::test_real_server_full_flow_and_logout",  # uvicorn, gunicorn
    "tests/adapters/test_channels.py::test_an_unverified_websocket_is_refused_before_the_handshake",
    "tests/e2e/test_multiprocess.py::test_four_workers_start_on_a_new_database",
    "tests/security/test_path_spellings.py::test_no_spelling_reaches_a_protected_view_unverified",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark ``server`` every test that starts a process or a server: all of tests/e2e, the
    ``slow`` and ``browser`` ones, and every user of a server fixture; the rest mark
    themselves. ``pytest -m "not server"`` is the quick inner loop. Mark ``smoke`` the
    tests of SMOKE."""
    e2e = Path(__file__).parent / "e2e"
    for item in items:
        node = item.nodeid.split("[")[0]
        if node in SMOKE or node.split("::")[0] in SMOKE:
            item.add_marker(pytest.mark.smoke)
        if (
            e2e in Path(str(item.path)).parents
            or item.get_closest_marker("slow")
            or item.get_closest_marker("browser")
            or SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        ):
            item.add_marker(pytest.mark.server)


@pytest.fixture(scope="session", autouse=True)
def _data_directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Settings without a database_url put their SQLite file in the data directory: here a
    temporary one, not the developer's ~/.local/share/sms2fa."""
    previous = os.environ.get("SMS2FA_DATA_DIR")
    os.environ["SMS2FA_DATA_DIR"] = str(tmp_path_factory.mktemp("data"))
    yield
    if previous is None:
        del os.environ["SMS2FA_DATA_DIR"]
    else:
        os.environ["SMS2FA_DATA_DIR"] = previous


@pytest.fixture(scope="session")
def postgres_database_url() -> Iterator[str]:
    """This session's own database on the test PostgreSQL server (``sms2fa_test_<random>``),
    dropped at the end. Tests that share it call ``fresh_database()`` on it first."""
    with private_postgres() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """A real, empty database: a SQLite file, then this session's PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'sms2fa.db'}"
    return fresh_database(request.getfixturevalue("postgres_database_url"))


@pytest.fixture
def make_settings(database_url: str, fake_flowroute: FakeFlowroute) -> Callable[..., Settings]:
    """Settings on the test database and FakeFlowroute; keyword arguments override."""

    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "secret_key": SECRET,
            "database_url": database_url,
            **fake_flowroute.settings_kwargs(),
        }
        values.update(overrides)
        return Settings(**values)

    return build


@pytest.fixture
def make_verifier(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., Verifier]]:
    made: list[Verifier] = []

    def build(**overrides: Any) -> Verifier:
        verifier = Verifier(make_settings(**overrides))
        verifier.create_schema()  # tests write to its tables before its first call
        made.append(verifier)
        return verifier

    yield build
    for verifier in made:
        verifier.store.dispose()


@pytest.fixture
def quiet(make_verifier: Callable[..., Verifier]) -> Verifier:
    """A verifier with the send budgets off."""
    return make_verifier(**NO_BUDGETS)


@pytest.fixture
def make_client(make_verifier: Callable[..., Verifier]) -> Client:
    """A starlette TestClient on the HTTP API service (in-process) and its Verifier; keyword
    arguments override the settings (send budgets off unless given)."""
    import warnings

    from sms2fa_middleware.api.service import VerificationService

    with warnings.catch_warnings():  # starlette >= 1.0 would rather have httpx2
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    def build(prefix: str = "/", **overrides: Any) -> tuple[TestClient, Verifier]:
        verifier = make_verifier(**{**NO_BUDGETS, **overrides})
        return TestClient(VerificationService(verifier, prefix)), verifier

    return build


@pytest.fixture
def api(make_client: Client) -> Any:
    """A TestClient on the HTTP API service with the default settings (budgets off)."""
    return make_client()[0]


@pytest.fixture
def verifier(make_verifier: Callable[..., Verifier]) -> Verifier:
    """A Verifier with the default policy (resend cooldown off, so tests can start twice)."""
    return make_verifier(resend_cooldown=0)


# -- the test apps (tests/support/apps.py), served for real --------------------------------


@pytest.fixture(params=["flask", "starlette"])
def framework(request: pytest.FixtureRequest) -> str:
    """Which test app: Flask (the WSGI adapter) or Starlette (the ASGI adapter)."""
    return str(request.param)


@pytest.fixture
def make_site(
    framework: str, make_settings: Callable[..., Settings]
) -> Iterator[Callable[..., Site]]:
    """Serve the ``framework`` app; ``settings`` overrides the Settings (resend cooldown off
    unless given), other keywords go to the middleware."""
    sites: list[Site] = []

    def build(
        settings: dict[str, Any] | None = None, users: dict[str, str] | None = None, **options: Any
    ) -> Site:
        built = make_settings(**{"resend_cooldown": 0, **(settings or {})})
        site = serve(framework, built, dict(USERS if users is None else users), **options)
        sites.append(site)
        return site

    yield build
    for site in sites:
        site.stop()


@pytest.fixture
def site(make_site: Callable[..., Site]) -> Site:
    """The ``framework`` app with the default options."""
    return make_site()


@pytest.fixture
def make_identity_site(
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
        site = serve(
            framework, make_settings(resend_cooldown=0), {"alice": USERS["alice"]}, **options
        )
        sites.append(site)
        return site

    yield build
    for site in sites:
        site.stop()


# -- the Django example project (tests/support/django_example.py) --------------------------


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The example project set up in this process (once per process)."""
    pytest.importorskip("django")
    from tests.support.django_example import set_up_project

    set_up_project(tmp_path_factory)


@pytest.fixture
def sms2fa(project: None, fake_flowroute: FakeFlowroute, tmp_path: Path) -> Iterator[Any]:
    """``settings.SMS2FA`` as the example's, with SMS through FakeFlowroute and a store of
    this test's own; returns a function that overrides it further (keyword arguments)."""
    from django.conf import settings
    from django.test import override_settings

    base = {
        **settings.SMS2FA,
        "settings": Settings(
            secret_key=SECRET,
            database_url=f"sqlite:///{tmp_path / 'sms2fa.db'}",
            **fake_flowroute.settings_kwargs(),
        ),
    }
    with ExitStack() as stack:

        def configure(**changes: Any) -> None:
            stack.enter_context(override_settings(SMS2FA={**base, **changes}))

        configure()
        yield configure


@pytest.fixture(scope="module", params=["uvicorn", "gunicorn"])
def django_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The example project served for real by uvicorn, then gunicorn (2 workers each)."""
    pytest.importorskip("django")
    from tests.support.django_example import serve_example

    with serve_example(request.param, tmp_path_factory.mktemp(f"django-{request.param}")) as server:
        yield server
