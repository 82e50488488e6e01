"""Verified sessions and revocations when the store is away, and the logout edge cases.

Two workers share one database, each a Flask app wrapped in the WSGI middleware and driven
by werkzeug's test client (the real adapter, no server needed): worker A reaches the
database directly, worker B through a TCP proxy the test stops and resumes (PostgreSQL), or
the SQLite file is held locked by another process. A session revoked on A must never be
accepted on B while B cannot read revocations: B answers 503 (as when the store is down),
and a revoke made during the outage holds on the worker that made it at once, and raises.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import Client

from sms2fa_middleware import Identity, Settings
from sms2fa_middleware.errors import StoreUnavailable
from sms2fa_middleware.store import sqlite as sqlite_store
from sms2fa_middleware.testing import FakeFlowroute, verified_cookie
from tests.support import SECRET
from tests.support.apps import flask_app, starlette_app
from tests.support.databases import private_postgres
from tests.support.tcp_proxy import PausableProxy

ALICE = "+12065550100"
USERS = {"alice": ALICE, "bob": "+12065550111", "sms2fa-session:abc": "+12065550122"}
JSON = {"Accept": "application/json"}
EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)


class Worker:
    """One process's middleware around the test app, and a client for it."""

    def __init__(
        self, database_url: str, fake: FakeFlowroute, framework: str = "flask", **options: Any
    ) -> None:
        settings = Settings(secret_key=SECRET, database_url=database_url, **fake.settings_kwargs())
        self.client: Any
        if framework == "flask":
            self.app, self.middleware = flask_app(dict(USERS), settings, **options)
            self.client = Client(self.app, use_cookies=False)  # the Cookie header is ours
        else:
            from starlette.testclient import TestClient

            self.app, self.middleware = starlette_app(dict(USERS), settings, [], **options)
            self.client = TestClient(
                self.app, raise_server_exceptions=False, follow_redirects=False
            )

    def get(self, path: str, user: str, cookie: str, **headers: str) -> Any:
        return self.client.get(path, headers={"X-User": user, "Cookie": cookie, **headers})

    def logout_device(self, cookie: str, user: str = "alice") -> Any:
        return self.client.post("/logout/device", headers={"X-User": user, "Cookie": cookie})

    def cookie(self, user: str) -> str:
        name, value = verified_cookie(self.app, Identity(user, USERS[user]))
        return f"{name}={value}"

    def close(self) -> None:
        self.middleware.verifier.store.dispose()


@pytest.fixture
def fake() -> Iterator[FakeFlowroute]:
    with FakeFlowroute() as running:
        yield running


@contextmanager
def workers(
    direct: str, proxied: str, fake: FakeFlowroute, **options: Any
) -> Iterator[tuple[Worker, Any]]:
    made: list[Worker] = []

    def worker(through_proxy: bool = True, **more: Any) -> Worker:
        made.append(Worker(proxied if through_proxy else direct, fake, **{**options, **more}))
        return made[-1]

    try:
        yield worker(through_proxy=False), worker
    finally:
        for w in made:
            w.close()


@pytest.mark.server
def test_a_worker_started_while_postgres_is_away_accepts_no_session(
    fake: FakeFlowroute, framework: str
) -> None:
    """A logged out this device; B starts during an outage, so it never read the
    revocations: it must not accept that session (nor any other: it cannot know), and
    answers 503 with Retry-After, as when the store is down. Once the database is back,
    B refuses the revoked session and accepts the others."""
    with private_postgres("outage") as url:
        proxy, proxied = PausableProxy.to(url)
        with workers(url, proxied, fake, framework=framework) as (a, worker):
            revoked, kept = a.cookie("alice"), a.cookie("bob")
            assert a.get("/account", "alice", revoked).status_code == 200
            assert a.logout_device(revoked).status_code == 303
            assert a.get("/api/data", "alice", revoked, **JSON).status_code == 401
            proxy.stop()
            b = worker()
            refused = b.get("/account", "alice", revoked)
            assert refused.status_code == 503, refused.text[:300]
            assert refused.headers["Retry-After"]
            assert b.get("/api/data", "bob", kept, **JSON).status_code == 503
            proxy.resume()
            time.sleep(1.2)  # a failed read is retried a second later
            assert b.get("/api/data", "alice", revoked, **JSON).status_code == 401
            assert b.get("/account", "bob", kept).status_code == 200
            proxy.stop()


@pytest.mark.server
def test_a_worker_whose_refresh_fails_stops_accepting_sessions(
    fake: FakeFlowroute, framework: str
) -> None:
    """B has read the revocations, then loses the database; A logs alice out meanwhile.
    Once what B knows is older than revocation_interval (and a second), B accepts no session
    (503) -- before, it went on accepting the revoked one for as long as the outage lasted."""
    with private_postgres("outage") as url:
        proxy, proxied = PausableProxy.to(url)
        with workers(url, proxied, fake, framework=framework, revocation_interval=0.5) as (
            a,
            worker,
        ):
            b = worker()
            session = a.cookie("alice")
            assert b.get("/account", "alice", session).status_code == 200
            proxy.stop()
            a.middleware.revoke("alice")
            time.sleep(1.7)  # past revocation_interval and its second of slack: B cannot read
            refused = b.get("/account", "alice", session)
            assert refused.status_code == 503, refused.text[:300]
            assert b.get("/api/data", "alice", session, **JSON).status_code == 503
            proxy.resume()
            time.sleep(1.2)
            assert b.get("/api/data", "alice", session, **JSON).status_code == 401
            proxy.stop()


@pytest.mark.server
def test_a_revoke_during_an_outage_holds_here_at_once_and_raises(
    fake: FakeFlowroute, framework: str
) -> None:
    """While B still trusts what it read (within revocation_interval), the database goes
    away and B logs a device out, then a user: the write fails and says so (the app's
    logout view gets the error), but B refuses those sessions at once."""
    with private_postgres("outage") as url:
        proxy, proxied = PausableProxy.to(url)
        with workers(url, proxied, fake, framework=framework, revocation_interval=60) as (
            _,
            worker,
        ):
            b = worker()
            device, other_device, bob = b.cookie("alice"), b.cookie("alice"), b.cookie("bob")
            assert b.get("/account", "alice", device).status_code == 200
            proxy.stop()
            assert b.logout_device(device).status_code == 500  # raised into the app's view
            assert b.get("/api/data", "alice", device, **JSON).status_code == 401
            assert b.get("/account", "alice", other_device).status_code == 200
            with pytest.raises(StoreUnavailable):
                b.middleware.revoke("alice")
            assert b.get("/api/data", "alice", other_device, **JSON).status_code == 401
            assert b.get("/account", "bob", bob).status_code == 200
            proxy.resume()


LOCKER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA locking_mode=EXCLUSIVE")  # readers are shut out too, even in WAL mode
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()  # until the test closes our stdin
"""


@contextmanager
def sqlite_locked(path: Path) -> Iterator[None]:
    """Another process holds the SQLite file locked (past any busy timeout) meanwhile."""
    locker = subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
        yield
    finally:
        assert locker.stdin is not None
        locker.stdin.close()
        locker.wait(timeout=30)
        if locker.stdout is not None:  # an open pipe left to the GC is a ResourceWarning
            locker.stdout.close()


@pytest.mark.slow
def test_sqlite_held_locked_by_another_process(
    tmp_path: Path, fake: FakeFlowroute, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same on SQLite, held locked by another process past the busy timeout (30 s per
    blocked statement in production; 2 s here, and this test waits for two). B1 starts
    during the lock and must not accept the session A logged out; B2, which read before the
    lock, logs a device out during it: an error for the app, and that session refused at
    once."""
    monkeypatch.setattr(sqlite_store, "BUSY_TIMEOUT", 2.0)
    path = tmp_path / "sms2fa.db"
    url = f"sqlite:///{path}"
    with workers(url, url, fake, revocation_interval=600) as (a, worker):
        revoked, other = a.cookie("alice"), a.cookie("alice")
        assert a.logout_device(revoked).status_code == 303
        b2 = worker()
        assert b2.get("/account", "alice", other).status_code == 200
        for w in (a, b2):  # an exclusive-mode lock on a WAL file needs no other open handle
            w.close()
        with sqlite_locked(path):
            b1 = worker()
            refused = b1.get("/account", "alice", revoked)
            assert refused.status_code == 503, refused.text[:300]
            assert b2.logout_device(other).status_code == 500
            assert b2.get("/api/data", "alice", other, **JSON).status_code == 401
        assert b1.get("/api/data", "alice", revoked, **JSON).status_code == 401


# -- logout edge cases ---------------------------------------------------------------------------


def test_logouts_with_made_up_session_ids_store_nothing(
    tmp_path: Path, fake: FakeFlowroute
) -> None:
    """Anonymous "log out this device" requests with well-formed but made-up cookies: none
    may become a revocation row (each would be loaded by every worker); a real session's
    logout still reaches the other workers."""
    url = f"sqlite:///{tmp_path / 'sms2fa.db'}"
    with workers(url, url, fake) as (a, worker):
        for i in range(300):  # ids of the old length, and of the new one with a wrong tag
            made_up = f"{'A' * 12}{i:04d}" if i % 2 else f"{'A' * 28}{i:04d}"
            junk = f"sms2fa={i:x}.{made_up}.{'B' * 43}"
            assert a.client.post("/logout/device", headers={"Cookie": junk}).status_code == 303
        legacy = f"sms2fa=1.{'C' * 16}.{'D' * 43}"  # the old format: no tag to check
        a.client.post("/logout/device", headers={"Cookie": legacy})
        assert a.middleware.verifier.revocations_since(EPOCH) == []
        session = a.cookie("alice")
        assert a.logout_device(session).status_code == 303
        assert len(a.middleware.verifier.revocations_since(EPOCH)) == 1
        assert worker().get("/api/data", "alice", session, **JSON).status_code == 401


def test_any_auth_id_can_be_revoked(tmp_path: Path, fake: FakeFlowroute) -> None:
    """An auth_id that looks like a session revocation's key is a user like any other: its
    revoke ends its sessions here and on the other workers."""
    url = f"sqlite:///{tmp_path / 'sms2fa.db'}"
    with workers(url, url, fake) as (a, worker):
        user = "sms2fa-session:abc"
        session = a.cookie(user)
        assert a.get("/account", user, session).status_code == 200
        a.middleware.revoke(user)
        assert a.get("/api/data", user, session, **JSON).status_code == 401
        assert worker().get("/api/data", user, session, **JSON).status_code == 401


def test_a_planted_cookie_of_the_same_name_does_not_hide_the_real_one(
    tmp_path: Path, fake: FakeFlowroute
) -> None:
    """With cookie_domain set the session cookie has no __Host- prefix, so a sibling
    subdomain can plant one of the same name (with a longer Path, the browser sends it
    first): the verified user must still get through, not loop through the challenge."""
    url = f"sqlite:///{tmp_path / 'sms2fa.db'}"
    with workers(url, url, fake, cookie_domain="example.com") as (a, _):
        real = a.cookie("alice")
        planted = f"sms2fa=1.{'A' * 32}.{'B' * 43}"
        assert a.get("/account", "alice", f"{planted}; {real}").status_code == 200
        assert a.get("/account", "alice", f"{real}; {planted}").status_code == 200


def test_the_challenge_cookies_keep_host_prefix_with_a_cookie_domain(
    tmp_path: Path, fake: FakeFlowroute
) -> None:
    """The challenge's CSRF cookie is set and read by one host: __Host- (no Domain) on https
    even when cookie_domain shares the session cookie, so it cannot be planted either."""
    url = f"sqlite:///{tmp_path / 'sms2fa.db'}"
    with workers(url, url, fake, cookie_domain="example.com") as (a, _):
        page = a.client.get(
            "/account",
            base_url="https://example.com",
            headers={"X-User": "alice", "Accept": "text/html", "Sec-Fetch-Mode": "navigate"},
        )
        assert page.status_code in (200, 303), page.text[:300]
        if page.status_code == 303:
            page = a.client.get(
                page.headers["Location"],
                base_url="https://example.com",
                headers={"X-User": "alice", "Accept": "text/html", "Sec-Fetch-Mode": "navigate"},
            )
        csrf = [c for c in page.headers.getlist("Set-Cookie") if "_csrf=" in c]
        assert csrf and all(c.startswith("__Host-sms2fa_csrf=") for c in csrf), csrf
        assert not any("Domain" in c for c in csrf)
