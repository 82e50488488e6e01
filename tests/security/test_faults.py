"""Faults, each against a real ``sms2fa serve``: the SMS provider failing in every documented
way, PostgreSQL stopped and started under the service, a worker killed with SIGKILL under load.

What each must show: the documented answer (502 ``SMSDeliveryFailed`` for a provider failure,
503 ``ServiceUnavailable`` while the database is down -- JSON, never a 500), no pending code
left behind by a failed send, and a service that recovers by itself, with nobody restarting it.

PostgreSQL: the provider faults and the SIGKILL run on a private database of the server named
by SMS2FA_TEST_POSTGRES_URL; the stop/start test runs its own throw-away cluster (``initdb``
on a free port), never the shared server.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import select

from sms2fa_middleware.store import Store, codes
from sms2fa_middleware.testing import FakeFlowroute
from tests.support import SECRET
from tests.support.databases import IN_CI, new_database
from tests.support.servers import STARTED, free_port, serve_process

pytestmark = pytest.mark.slow

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


# -- helpers -----------------------------------------------------------------------------------


def _json(response: requests.Response) -> dict[str, Any]:
    assert response.headers["content-type"] == "application/json", response.text
    body: dict[str, Any] = response.json()
    return body


def _pending(database_url: str, auth_id: str) -> list[dict[str, Any]]:
    store = Store(database_url)
    try:
        return store.run(
            lambda conn: [
                dict(r._mapping)
                for r in conn.execute(select(codes.c.auth_id).where(codes.c.auth_id == auth_id))
            ]
        )
    finally:
        store.dispose()


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


# -- the SMS provider fails -------------------------------------------------------------------


@dataclass
class Live:
    base: str
    fake: FakeFlowroute
    database_url: str
    log: Path

    def create(self, auth_id: str, number: str) -> requests.Response:
        return requests.post(
            self.base + "/", json={"auth_id": auth_id, "recipient": number}, timeout=30
        )

    def check(self, auth_id: str, code: str) -> requests.Response:
        return requests.get(self.base + "/", params={"auth_id": auth_id, "code": code}, timeout=30)


SMS_TIMEOUT = 1  # seconds: the smallest SMS2FA_SMS_TIMEOUT, so "slowly" is quick to test


@pytest.fixture(scope="module", params=BACKENDS)
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    folder = tmp_path_factory.mktemp(f"faults-{request.param}")
    log = folder / "server.log"
    with new_database(request.param, folder, "faults") as database_url, FakeFlowroute() as fake:
        env = {
            **fake.settings_env(),
            "SMS2FA_SECRET_KEY": SECRET,
            "SMS2FA_DATABASE_URL": database_url,
            "SMS2FA_API_TOKEN": "",
            "SMS2FA_SMS_TIMEOUT": str(SMS_TIMEOUT),
            # The cooldown stays on: a failed send must give it back.
            "SMS2FA_RESEND_COOLDOWN": "30",
            "SMS2FA_RECIPIENT_SEND_LIMIT": "0",
            "SMS2FA_ADDRESS_SEND_LIMIT": "0",
            "SMS2FA_ADDRESS_CHECK_LIMIT": "0",  # every request comes from 127.0.0.1
        }
        with serve_process(env, 2, log) as (base, _):
            yield Live(base, fake, database_url, log)
        output = log.read_text(errors="replace")
        assert "Traceback" not in output, output


# fault -> (inject it, how many requests the sender may make: retries only where allowed)
FAULTS: dict[str, tuple[Callable[[FakeFlowroute], None], int]] = {
    "401": (lambda f: f.fail_next(401), 1),
    "403": (lambda f: f.fail_next(403), 1),
    "422": (lambda f: f.fail_next(422), 1),
    # Retry-After beyond what a request can wait: give up at once, do not hammer.
    "429 with Retry-After": (lambda f: f.fail_next(429, retry_after=120), 1),
    # No hint: a bounded retry with back-off, then give up.
    "429 without Retry-After": (lambda f: f.fail_next(429, count=3), 3),
    "500": (lambda f: f.fail_next(500), 1),
    "503": (lambda f: f.fail_next(503, count=3), 3),
    # Longer than the read timeout; ambiguous (the SMS may go out), so never resent.
    "slowly": (lambda f: f.delay_next(SMS_TIMEOUT + 1.5), 1),
    # The connection drops after the request went out: ambiguous too.
    "dropped connection": (lambda f: f.drop_next(), 1),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_provider_fault_answers_502_leaves_nothing_pending_and_recovers(
    live: Live, fault: str
) -> None:
    inject, attempts = FAULTS[fault]
    fake = live.fake
    fake.reset_faults()
    number = f"1206555{300 + list(FAULTS).index(fault):04d}"
    auth_id = f"fault-{fault.replace(' ', '-')}"
    seen = fake.requests_seen

    inject(fake)
    response = live.create(auth_id, number)
    assert response.status_code == 502, response.text
    body = _json(response)
    assert body["reason"] == "SMSDeliveryFailed" and set(body) == {"message", "reason"}, body
    assert "retry-after" not in response.headers
    assert fake.requests_seen - seen == attempts
    assert _pending(live.database_url, auth_id) == []  # nothing pending

    if fault == "slowly":
        # The provider still took the late message; its code must not be checkable.
        _wait_for(lambda: bool(fake.messages_to(number)), 10, "the late message")
        late = fake.last_code(number)
        refused = _json(live.check(auth_id, late))
        assert refused["reason"] == "UnknownAuthId", refused
    else:
        assert fake.messages_to(number) == []
        assert _json(live.check(auth_id, "123456"))["reason"] == "UnknownAuthId"

    # Recovers by itself, at once: the failed send gave the resend cooldown back.
    sent_before = len(fake.messages_to(number))
    response = live.create(auth_id, number)
    assert response.status_code == 200, response.text
    assert len(fake.messages_to(number)) == sent_before + 1
    verified = live.check(auth_id, fake.last_code(number))
    assert verified.status_code == 200, verified.text
    assert _json(verified)["authenticated"] is True
    assert _pending(live.database_url, auth_id) == []


@pytest.mark.parametrize("status, retry_after", [(429, 1), (503, None), (429, None)])
def test_transient_provider_refusal_is_retried_within_the_request(
    live: Live, status: int, retry_after: int | None
) -> None:
    """A single 429/503 (the provider did not take the message) is retried, honouring
    Retry-After: the user never sees it."""
    fake = live.fake
    fake.reset_faults()
    number = f"1206555{400 + status + (retry_after or 0):04d}"
    auth_id = f"transient-{status}-{retry_after}"
    seen = fake.requests_seen
    fake.fail_next(status, retry_after=retry_after)
    started = time.monotonic()
    response = live.create(auth_id, number)
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text
    assert fake.requests_seen - seen == 2
    assert len(fake.messages_to(number)) == 1
    if retry_after:
        assert elapsed >= retry_after
    assert live.check(auth_id, fake.last_code(number)).status_code == 200


# -- PostgreSQL stopped and started mid-run ---------------------------------------------------


def _pg_bindir() -> str | None:
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(p.split("/")[-2]) if p.split("/")[-2].isdigit() else 0,
        reverse=True,
    )
    for folder in candidates:
        if os.access(os.path.join(folder, "initdb"), os.X_OK):
            return folder
    found = shutil.which("initdb")
    return os.path.dirname(found) if found else None


class Cluster:
    """A throw-away PostgreSQL cluster on a free port, run as the ``postgres`` user."""

    def __init__(self, bindir: str, folder: str) -> None:
        self.bindir = bindir
        self.folder = folder
        self.data = os.path.join(folder, "data")
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = [os.path.join(self.bindir, args[0]), *args[1:]]
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, (command, result.stdout, result.stderr)

    def init(self) -> None:
        self._run(
            "initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off"
        )
        self._run(
            "pg_ctl",
            "-D",
            self.data,
            "-l",
            os.path.join(self.folder, "pg.log"),
            "-o",
            options,
            "-w",
            "-t",
            "30",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "30", "stop")


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    bindir = _pg_bindir()
    if bindir is None or (os.geteuid() == 0 and shutil.which("runuser") is None):
        if IN_CI:
            pytest.fail(
                "CI=true but no PostgreSQL initdb/pg_ctl (or runuser) to run a private cluster"
            )
        pytest.skip("needs PostgreSQL's initdb and pg_ctl (e.g. /usr/lib/postgresql/15/bin)")
    # Not under pytest's tmp_path: its parents are private to root, and the server runs as
    # the postgres user.
    folder = tempfile.mkdtemp(prefix="sms2fa-pg-")
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    made = Cluster(bindir, folder)
    try:
        made.init()
        made.start()
        yield made
    finally:
        if os.path.exists(os.path.join(made.data, "postmaster.pid")):
            with contextlib.suppress(AssertionError):
                made.stop("immediate")
        shutil.rmtree(folder, ignore_errors=True)


def test_postgres_stopped_and_started_mid_run(cluster: Cluster, tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with FakeFlowroute() as fake:
        env = {
            **fake.settings_env(),
            "SMS2FA_SECRET_KEY": SECRET,
            "SMS2FA_DATABASE_URL": cluster.url,
            "SMS2FA_API_TOKEN": "",
            "SMS2FA_RESEND_COOLDOWN": "0",
            "SMS2FA_RECIPIENT_SEND_LIMIT": "0",
            "SMS2FA_ADDRESS_SEND_LIMIT": "0",
            "SMS2FA_ADDRESS_CHECK_LIMIT": "0",  # every request comes from 127.0.0.1
        }
        with serve_process(env, 2, log) as (base, _):
            live = Live(base, fake, cluster.url, log)
            before_number, during_number, after_number = (
                "12065550201",
                "12065550202",
                "12065550203",
            )
            assert live.create("before", before_number).status_code == 200
            code = fake.last_code(before_number)

            cluster.stop()
            sent = len(fake.messages)
            answers = []
            for i in range(6):  # enough to go through every worker's pool
                answers.append(live.create(f"during-{i}", during_number))
                answers.append(live.check("before", code))
                answers.append(
                    requests.post(
                        base + "/check", json={"auth_id": "before", "code": code}, timeout=30
                    )
                )
            for response in answers:
                assert response.status_code == 503, response.text
                body = _json(response)
                assert body["reason"] == "ServiceUnavailable", body
                assert set(body) == {"message", "reason"}
            assert len(fake.messages) == sent  # no SMS without a store to keep its code

            cluster.start()
            # Recovers by itself: nobody restarts the service.
            statuses: Counter[int] = Counter()
            deadline = time.monotonic() + 30
            while True:
                response = live.create("after", after_number)
                statuses[response.status_code] += 1
                if response.status_code == 200 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert response.status_code == 200, (statuses, response.text)
            assert set(statuses) <= {200, 503}, statuses
            # The code sent before the outage survived it, and still works (once).
            assert live.check("before", code).status_code == 200
            assert live.check("after", fake.last_code(after_number)).status_code == 200
            for i in range(6):
                assert _pending(cluster.url, f"during-{i}") == []
    output = log.read_text(errors="replace")
    assert "Traceback" not in output, output


# -- a worker killed with SIGKILL under load --------------------------------------------------


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found |= {int(c) for c in (task / "children").read_text().split()}
        return found
    except OSError:  # no /proc/<pid>/task/*/children on this kernel
        result = subprocess.run(
            ["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False
        )
        return {int(c) for c in result.stdout.split()}


def _workers(pid: int) -> set[int]:
    """uvicorn's worker processes (multiprocessing children; not its resource tracker)."""
    workers = set()
    for child in _children(pid):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"resource_tracker" in cmdline:
            continue  # its command line names this interpreter, whose path may say sms2fa
        if b"spawn_main" in cmdline or b"sms2fa" in cmdline:
            workers.add(child)
    return workers


@dataclass
class Outcome:
    kind: str  # create | check
    auth_id: str
    status: int | None  # None: the connection broke (the request was on the killed worker)
    at: float
    reason: str | None = None


@pytest.mark.parametrize("kind", BACKENDS)
def test_worker_killed_with_sigkill_under_load(kind: str, tmp_path: Path) -> None:
    workers = 4
    threads = 16
    log = tmp_path / "server.log"
    numbers = [f"1206555{700 + i:04d}" for i in range(threads)]
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    stop = threading.Event()

    with new_database(kind, tmp_path, "faults") as database_url, FakeFlowroute() as fake:
        env = {
            **fake.settings_env(),
            "SMS2FA_SECRET_KEY": SECRET,
            "SMS2FA_DATABASE_URL": database_url,
            "SMS2FA_API_TOKEN": "",
            "SMS2FA_RESEND_COOLDOWN": "0",
            "SMS2FA_RECIPIENT_SEND_LIMIT": "0",
            "SMS2FA_ADDRESS_SEND_LIMIT": "0",
            "SMS2FA_ADDRESS_CHECK_LIMIT": "0",  # every request comes from 127.0.0.1
        }
        with serve_process(env, workers, log) as (base, parent):
            before = _workers(parent.pid)
            assert len(before) == workers, (before, log.read_text())

            def record(
                kind: str, auth_id: str, call: Callable[[], requests.Response]
            ) -> requests.Response | None:
                try:
                    # A new connection per request: only requests in flight on the killed
                    # worker can break, not idle kept-alive ones.
                    response = call()
                except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
                    # Killed mid-request, or between sending the headers and the body.
                    response = None
                reason = None
                if response is not None and response.status_code != 200:
                    reason = _json(response).get("reason")
                with lock:
                    outcomes.append(
                        Outcome(
                            kind,
                            auth_id,
                            None if response is None else response.status_code,
                            time.monotonic(),
                            reason,
                        )
                    )
                return response

            errors: list[BaseException] = []

            def load(t: int) -> None:
                try:
                    run_load(t)
                except BaseException as exc:  # a thread's failure must fail the test
                    errors.append(exc)
                    raise

            def run_load(t: int) -> None:
                n = 0
                while not stop.is_set():
                    n += 1
                    auth_id = f"load-{t}-{n}"
                    created = record(
                        "create",
                        auth_id,
                        lambda auth_id=auth_id: requests.post(
                            base + "/",
                            json={"auth_id": auth_id, "recipient": numbers[t]},
                            headers={"Connection": "close"},
                            timeout=30,
                        ),
                    )
                    if created is None or created.status_code != 200:
                        continue
                    code = fake.last_code(numbers[t])
                    record(
                        "check",
                        auth_id,
                        lambda auth_id=auth_id, code=code: requests.post(
                            base + "/check",
                            json={"auth_id": auth_id, "code": code},
                            headers={"Connection": "close"},
                            timeout=30,
                        ),
                    )

            pool = [threading.Thread(target=load, args=(t,), daemon=True) for t in range(threads)]
            for thread in pool:
                thread.start()
            try:
                time.sleep(1.5)
                victim = sorted(before)[0]
                os.kill(victim, signal.SIGKILL)
                killed_at = time.monotonic()
                # uvicorn's supervisor notices the dead worker and starts a new one.
                _wait_for(
                    lambda: (
                        len(_workers(parent.pid)) == workers and victim not in _workers(parent.pid)
                    ),
                    30,
                    "a replacement worker",
                )
                _wait_for(
                    lambda: log.read_text(errors="replace").count(STARTED) > workers,
                    30,
                    "the new worker to start",
                )
                ready_at = time.monotonic()
                time.sleep(1.5)  # load on the repaired service
            finally:
                stop.set()
                for thread in pool:
                    thread.join(timeout=60)
            assert not errors, errors
            assert parent.poll() is None  # the service itself never went down
            after = _workers(parent.pid)
            assert len(after) == workers and victim not in after
            assert f"Child process [{victim}] died" in log.read_text(errors="replace")

            # No half-done state: every code row is one the provider accepted, and a create
            # that broke with the worker either stored its code or left nothing behind.
            store = Store(database_url)
            try:
                stored = store.run(
                    lambda conn: {
                        r.auth_id: r.message_id
                        for r in conn.execute(select(codes.c.auth_id, codes.c.message_id))
                    }
                )
            finally:
                store.dispose()
            assert None not in stored.values()
            assert set(stored.values()) <= {m.id for m in fake.messages}
            broken_creates = {
                o.auth_id for o in outcomes if o.kind == "create" and o.status is None
            }
            created = {o.auth_id for o in outcomes if o.kind == "create" and o.status == 200}
            assert set(stored) <= created | broken_creates

    statuses = Counter(o.status for o in outcomes)
    assert not [o for o in outcomes if o.status is not None and o.status >= 500], statuses
    broken = [o for o in outcomes if o.status is None]
    # Only what was in flight on the killed worker broke, at the moment it was killed.
    assert len(broken) <= threads, statuses
    assert all(killed_at - 0.5 <= o.at <= killed_at + 5 for o in broken), (killed_at, broken)
    # The service kept answering: the other workers while the replacement started, then all.
    assert ready_at - killed_at < 0.5 or any(
        o.status == 200 and killed_at + 0.2 < o.at < ready_at for o in outcomes
    ), statuses
    assert sum(o.status == 200 for o in outcomes if o.at > ready_at) > 10, statuses
    checks = Counter((o.status, o.reason) for o in outcomes if o.kind == "check")
    # A check fails only when its create's code was overtaken by a message broken mid-kill.
    assert sum(n for (status, _), n in checks.items() if status not in (200, None)) <= threads, (
        checks
    )
