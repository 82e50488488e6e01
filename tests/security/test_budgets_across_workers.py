"""The budgets under a real multi-worker server: every send budget and the failed-check cap
live in the store, so they must hold across ``sms2fa serve --workers 4`` -- on SQLite and on
PostgreSQL -- under 1,000 parallel requests.

PostgreSQL tests get a private database on the server named by SMS2FA_TEST_POSTGRES_URL
(see support/databases.py), so other suites running on that server cannot disturb them.

From the abuse review (its pumping and logging tests: test_pumping.py, test_logging.py).
"""

from __future__ import annotations

import secrets
import sys
import threading
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import phonenumbers
import pytest
import requests

from tests.support import SECRET
from tests.support.databases import new_database
from tests.support.servers import STARTED, serve

with warnings.catch_warnings():  # starlette >= 1.0 would rather have httpx2
    warnings.simplefilter("ignore")

from sms2fa_middleware.store import Store, utcnow
from sms2fa_middleware.testing import FakeFlowroute

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

WORKERS = 4
REQUESTS = 1000
THREADS = 32
RECIPIENT_LIMIT = 5
ADDRESS_LIMIT = 20
GLOBAL_LIMIT = 200
FAILURE_CAP = 10  # SMS2FA_MAX_FAILED_CHECKS, the default


# -- databases ---------------------------------------------------------------------------------

# SQLite files, and private databases on the PostgreSQL server (see support/databases.py).
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


# -- the live server ---------------------------------------------------------------------------


class Server:
    def __init__(self, base: str, fake: FakeFlowroute, database_url: str) -> None:
        self.base = base
        self.fake = fake
        self.database_url = database_url
        self._local = threading.local()

    def session(self) -> requests.Session:
        """One keep-alive session per thread: the connections spread over the workers."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def post(
        self, path: str, body: dict[str, Any], address: str | None = None
    ) -> tuple[int, dict[str, Any], requests.structures.CaseInsensitiveDict[str]]:
        headers = {"X-Forwarded-For": address} if address else {}
        response = self.session().post(self.base + path, json=body, headers=headers, timeout=60)
        return response.status_code, response.json(), response.headers

    def get(
        self, auth_id: str, code: str
    ) -> tuple[int, dict[str, Any], requests.structures.CaseInsensitiveDict[str]]:
        response = self.session().get(
            self.base + "/", params={"auth_id": auth_id, "code": code}, timeout=60
        )
        return response.status_code, response.json(), response.headers


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp(f"abuse-{request.param}")
    log = folder / "server.log"
    with new_database(request.param, folder, "abuse") as database_url, FakeFlowroute() as fake:
        env = {
            **fake.settings_env(),
            "SMS2FA_SECRET_KEY": SECRET,
            "SMS2FA_DATABASE_URL": database_url,
            "SMS2FA_API_TOKEN": "",
            # 50 client addresses come through one (trusted) proxy hop.
            "SMS2FA_TRUSTED_PROXIES": "1",
            # The per-auth_id cooldown would hide the shared budgets; each test names its own.
            "SMS2FA_RESEND_COOLDOWN": "0",
            "SMS2FA_RECIPIENT_SEND_LIMIT": str(RECIPIENT_LIMIT),
            "SMS2FA_ADDRESS_SEND_LIMIT": str(ADDRESS_LIMIT),
            "SMS2FA_GLOBAL_SEND_LIMIT": str(GLOBAL_LIMIT),
            "SMS2FA_MAX_FAILED_CHECKS": str(FAILURE_CAP),
            # Checks all come from one address; the per-address check budget has its own test.
            "SMS2FA_ADDRESS_CHECK_LIMIT": "0",
        }
        with serve(env, workers=WORKERS, log_path=str(log)) as base:  # waits for the workers
            started = log.read_text(errors="replace")
            assert started.count(STARTED) >= WORKERS, f"{WORKERS} workers did not start:\n{started}"
            yield Server(base, fake, database_url)
        text_ = log.read_text(errors="replace")
        assert "Traceback" not in text_, text_


def _blast(calls: Iterable[Callable[[], Any]], threads: int = THREADS) -> list[Any]:
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(lambda call: call(), list(calls)))


def _assert_rate_limited(body: dict[str, Any], headers: Any, budget: str) -> None:
    assert body["reason"] == "RateLimited", body
    assert body["budget"] == budget, body
    assert isinstance(body["retry_after"], int) and body["retry_after"] >= 1, body
    assert headers["retry-after"] == str(body["retry_after"])


def _numbers(area: str, count: int) -> list[str]:
    """``count`` distinct valid US numbers (11-digit form) in the 555 exchange of ``area``."""
    numbers = [f"1{area}555{i:04d}" for i in range(count)]
    for number in numbers[:3] + numbers[-3:]:
        parsed = phonenumbers.parse("+" + number)
        assert phonenumbers.is_valid_number(parsed)
    return numbers


# -- budgets across four workers --------------------------------------------------------------


@pytest.mark.slow
def test_recipient_budget_holds_across_four_workers(server: Server) -> None:
    """1,000 starts for one recipient from 50 client addresses send exactly the budget."""
    number = "12065550142"

    def start(i: int) -> Callable[[], Any]:
        return lambda: server.post(
            "/", {"auth_id": f"pump-{i}", "recipient": number}, address=f"198.51.100.{i % 50}"
        )

    answers = _blast(start(i) for i in range(REQUESTS))
    statuses = Counter(status for status, _, _ in answers)
    assert set(statuses) <= {200, 429}, statuses
    assert statuses[200] == RECIPIENT_LIMIT, statuses
    assert len(server.fake.messages_to(number)) == RECIPIENT_LIMIT
    for status, body, headers in answers:
        if status == 429:
            _assert_rate_limited(body, headers, "recipient")


@pytest.mark.slow
def test_client_address_budget_holds_across_four_workers(server: Server) -> None:
    """1,000 starts from one client address to 1,000 different numbers send exactly its
    budget; a forged address to the left of the trusted hop does not escape it, another
    client is not affected."""
    numbers = _numbers("425", REQUESTS + 2)
    address = "192.0.2.77"

    def start(i: int) -> Callable[[], Any]:
        return lambda: server.post(
            "/", {"auth_id": f"spray-{i}", "recipient": numbers[i]}, address=address
        )

    answers = _blast(start(i) for i in range(REQUESTS))
    statuses = Counter(status for status, _, _ in answers)
    assert set(statuses) <= {200, 429}, statuses
    assert statuses[200] == ADDRESS_LIMIT, statuses
    assert sum(len(server.fake.messages_to(n)) for n in numbers) == ADDRESS_LIMIT
    for status, body, headers in answers:
        if status == 429:
            _assert_rate_limited(body, headers, "client_address")

    status, body, headers = server.post(
        "/",
        {"auth_id": "spray-forged", "recipient": numbers[-2]},
        address=f"203.0.113.9, {address}",
    )
    assert status == 429
    _assert_rate_limited(body, headers, "client_address")
    status, body, _ = server.post(
        "/", {"auth_id": "spray-other", "recipient": numbers[-1]}, address="192.0.2.78"
    )
    assert status == 200, body


@pytest.mark.slow
def test_failed_check_cap_holds_across_four_workers(server: Server) -> None:
    """1,000 parallel wrong checks for one auth_id, spread over fresh codes (a start every
    tenth request), evaluate at most SMS2FA_MAX_FAILED_CHECKS guesses in all."""
    auth_id = "brute-force-victim"
    numbers = _numbers("503", 101)
    rng = secrets.SystemRandom()
    status, body, _ = server.post(
        "/", {"auth_id": auth_id, "recipient": numbers[100]}, address="10.2.0.1"
    )
    assert status == 200, body

    calls: list[Callable[[], Any]] = []
    for i in range(REQUESTS):
        guess = f"{rng.randrange(10**6):06d}"
        if i % 10 == 0:  # a fresh code, from another number and address each time
            calls.append(
                lambda i=i: (
                    "start",
                    *server.post(
                        "/",
                        {"auth_id": auth_id, "recipient": numbers[i // 10]},
                        address=f"10.1.{i // 256}.{i % 256}",
                    ),
                )
            )
        if i % 2:
            calls.append(lambda guess=guess: ("check", *server.get(auth_id, guess)))
        else:
            calls.append(
                lambda guess=guess: (
                    "check",
                    *server.post("/check", {"auth_id": auth_id, "code": guess}),
                )
            )

    answers = _blast(calls)
    checks = [(status, body, headers) for kind, status, body, headers in answers if kind == "check"]
    starts = [(status, body, headers) for kind, status, body, headers in answers if kind == "start"]
    assert len(checks) == REQUESTS
    statuses = Counter(status for status, _, _ in checks)
    assert set(statuses) <= {400, 429}, statuses  # never a 5xx, never a success
    reasons = Counter(body["reason"] for _, body, _ in checks)
    evaluated = reasons["InvalidAuthCode"]
    assert 1 <= evaluated <= FAILURE_CAP, reasons
    assert set(reasons) <= {"InvalidAuthCode", "UnknownAuthId", "RateLimited"}, reasons
    for status, body, headers in checks:
        if status == 429:
            _assert_rate_limited(body, headers, "failed_checks")

    start_statuses = Counter(status for status, _, _ in starts)
    assert set(start_statuses) <= {200, 429}, start_statuses
    for status, body, headers in starts:
        if status == 429:
            _assert_rate_limited(body, headers, "failed_checks")

    # Locked: no new code is sent, and even the right code of the last SMS is not evaluated
    # (429 while that code lives; once its attempts are used up it is simply gone).
    last = server.fake.messages[-1]
    code = server.fake.last_code(last.to)
    status, body, headers = server.get(auth_id, code)
    assert (status, body["reason"]) in ((429, "RateLimited"), (400, "UnknownAuthId")), body
    if status == 429:
        _assert_rate_limited(body, headers, "failed_checks")
    sent = len(server.fake.messages)
    status, body, headers = server.post(
        "/", {"auth_id": auth_id, "recipient": numbers[0]}, address="10.3.0.1"
    )
    assert status == 429
    _assert_rate_limited(body, headers, "failed_checks")
    assert len(server.fake.messages) == sent


@pytest.mark.slow
def test_global_budget_holds_across_four_workers(server: Server) -> None:
    """1,000 starts from 1,000 addresses to 1,000 numbers stop at the hourly global budget."""
    store = Store(server.database_url)
    try:
        spent, _ = store.peek("global", utcnow())
    finally:
        store.dispose()
    assert spent < GLOBAL_LIMIT
    numbers = _numbers("360", REQUESTS)
    before = len(server.fake.messages)

    def start(i: int) -> Callable[[], Any]:
        return lambda: server.post(
            "/",
            {"auth_id": f"global-{i}", "recipient": numbers[i]},
            address=f"10.3.{i // 256}.{i % 256}",
        )

    answers = _blast(start(i) for i in range(REQUESTS))
    statuses = Counter(status for status, _, _ in answers)
    assert set(statuses) <= {200, 429}, statuses
    assert statuses[200] == GLOBAL_LIMIT - spent, (spent, statuses)
    assert len(server.fake.messages) - before == GLOBAL_LIMIT - spent
    for status, body, headers in answers:
        if status == 429:
            _assert_rate_limited(body, headers, "global")


# -- pumping: refused numbers never reach the provider ----------------------------------------


# -- logs --------------------------------------------------------------------------------------


# Run ``sms2fa serve`` exactly as the CLI does, with everything (uvicorn too) at DEBUG.


if sys.platform == "win32":  # pragma: no cover
    pytestmark = [pytestmark, pytest.mark.skip("POSIX only")]
