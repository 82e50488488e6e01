"""Abuse: the budgets under a real multi-worker server, pumping defence, and what is logged.

* Every send budget and the failed-check cap live in the store, so they must hold across
  ``sms2fa serve --workers 4`` -- on SQLite and on PostgreSQL -- under 1,000 parallel requests.
* Numbers of refused regions and types never reach the SMS provider (SMS pumping, toll fraud).
* A full flow, through the middleware and the API, logged at DEBUG, leaks no code, secret or
  full phone number -- in-process and from a ``sms2fa serve`` subprocess.

PostgreSQL tests get a private database on the server named by SMS2FA_TEST_POSTGRES_URL
(see databases.py), so other suites running on that server cannot disturb them.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import sys
import threading
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import phonenumbers
import pytest
import requests
from phonenumbers import PhoneNumberType
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tests.support import SECRET
from tests.support.databases import new_database
from tests.support.servers import STARTED, free_port, running, serve

with warnings.catch_warnings():  # starlette >= 1.0 would rather have httpx2
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from sms2fa_middleware import Identity, Settings, Verifier
from sms2fa_middleware.api.service import VerificationService
from sms2fa_middleware.asgi import SMS2FAMiddleware
from sms2fa_middleware.settings import DEFAULT_NUMBER_TYPES, DEFAULT_REGIONS
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

# SQLite files, and private databases on the PostgreSQL server (see databases.py).
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


_BLOCKED_TYPES = {
    # NANP area codes whose numbers are valid but not mobile, with the type phonenumbers gives.
    "800": PhoneNumberType.TOLL_FREE,
    "833": PhoneNumberType.TOLL_FREE,
    "844": PhoneNumberType.TOLL_FREE,
    "855": PhoneNumberType.TOLL_FREE,
    "866": PhoneNumberType.TOLL_FREE,
    "877": PhoneNumberType.TOLL_FREE,
    "888": PhoneNumberType.TOLL_FREE,
    "900": PhoneNumberType.PREMIUM_RATE,
    "500": PhoneNumberType.PERSONAL_NUMBER,
    "533": PhoneNumberType.PERSONAL_NUMBER,
    "544": PhoneNumberType.PERSONAL_NUMBER,
    "566": PhoneNumberType.PERSONAL_NUMBER,
    "577": PhoneNumberType.PERSONAL_NUMBER,
    "588": PhoneNumberType.PERSONAL_NUMBER,
    "600": PhoneNumberType.VOIP,
}


_TYPE_NAMES = {v: n for n, v in vars(PhoneNumberType).items() if n.isupper()}


def _blocked_type_numbers(count: int) -> list[str]:
    """Valid numbers in allowed regions whose type is refused (toll-free, premium, ...)."""
    found: list[str] = []
    per_area: dict[str, list[str]] = {}
    for area, kind in _BLOCKED_TYPES.items():
        candidates = []
        for exchange in ("234", "345", "456", "567", "678", "789"):
            for line in ("1234", "5678", "2468"):
                number = phonenumbers.parse(f"+1{area}{exchange}{line}")
                if (
                    phonenumbers.is_valid_number(number)
                    and phonenumbers.number_type(number) == kind
                    and phonenumbers.region_code_for_number(number) in DEFAULT_REGIONS
                ):
                    candidates.append(f"1{area}{exchange}{line}")
        per_area[area] = candidates
    assert sum(map(len, per_area.values())) >= count, per_area
    while len(found) < count:  # round-robin, so every type is well represented
        for candidates in per_area.values():
            if candidates and len(found) < count:
                found.append(candidates.pop(0))
    # A fixed line in American Samoa: allowed region, refused type.
    samoa = phonenumbers.example_number_for_type("AS", PhoneNumberType.FIXED_LINE)
    assert phonenumbers.number_type(samoa) == PhoneNumberType.FIXED_LINE
    found[-1] = phonenumbers.format_number(samoa, phonenumbers.PhoneNumberFormat.E164)
    return found


def _blocked_region_numbers(count: int) -> list[str]:
    """Valid mobile numbers of regions outside the allow-list; NANP ones (the Caribbean,
    a favourite of SMS pumping) first and in the 11-digit form."""
    nanp: list[str] = []
    others: list[str] = []
    seen: set[str] = set()
    for region in sorted(phonenumbers.SUPPORTED_REGIONS - set(DEFAULT_REGIONS)):
        for kind in (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE):
            number = phonenumbers.example_number_for_type(region, kind)
            if number is not None and phonenumbers.is_valid_number(number):
                break
        else:
            continue
        e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        if e164 in seen:  # some regions share their example number (GB, GG, JE, IM, ...)
            continue
        seen.add(e164)
        if number.country_code == 1:
            nanp.append(e164[1:])
        else:
            others.append(e164)
    assert len(nanp) >= 10 and len(nanp) + len(others) >= count
    return (nanp + others)[:count]


@pytest.fixture(params=BACKENDS)
def any_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with new_database(request.param, tmp_path, "abuse") as url:
        yield url


def test_numbers_of_refused_regions_and_types_never_reach_flowroute(
    any_database: str, fake_flowroute: FakeFlowroute
) -> None:
    regions = _blocked_region_numbers(100)
    kinds = _blocked_type_numbers(100)
    blocked = regions + kinds
    assert len(set(blocked)) == 200
    for number in blocked:  # each is a real number: policy refuses it, not the parser
        parsed = phonenumbers.parse(number if number.startswith("+") else "+" + number)
        assert phonenumbers.is_valid_number(parsed), number
        region = phonenumbers.region_code_for_number(parsed)
        kind = _TYPE_NAMES[phonenumbers.number_type(parsed)]
        assert region not in DEFAULT_REGIONS or kind not in DEFAULT_NUMBER_TYPES, number

    # Generous budgets, so that nothing but the number policy can refuse.
    verifier = Verifier(
        Settings(
            secret_key=SECRET,
            database_url=any_database,
            resend_cooldown=0,
            recipient_send_limit=0,
            address_send_limit=0,
            **fake_flowroute.settings_kwargs(),
        )
    )
    try:
        api = TestClient(VerificationService(verifier))
        for i, number in enumerate(blocked):
            response = api.post("/", json={"auth_id": f"pump-{i}", "recipient": number})
            assert response.status_code == 400, (number, response.text)
            body = response.json()
            assert body["reason"] == "InvalidAPIUsage", (number, body)
            digits = number.lstrip("+")
            assert digits not in response.text and digits[-7:] not in response.text
        assert fake_flowroute.requests_seen == 0
        assert fake_flowroute.messages == []
        assert verifier.store.count_codes() == 0
        # The service still sends to an allowed mobile number: the refusals were policy.
        response = api.post("/", json={"auth_id": "ok", "recipient": "12065551234"})
        assert response.status_code == 200, response.text
        assert fake_flowroute.requests_seen == 1
    finally:
        verifier.store.dispose()


# -- logs --------------------------------------------------------------------------------------


ALICE = "+12065550100"
BOB = "12065550111"
CAROL = "+14155552671"
API_TOKEN = "api-token-" + "7" * 24


def _forbidden_strings(fake: FakeFlowroute, *extra: str) -> set[str]:
    """Everything that must never appear in a log line."""
    found = {SECRET, API_TOKEN, fake.secret_key, *extra}
    for number in (ALICE, BOB, CAROL):
        digits = number.lstrip("+")
        found |= {digits, "+" + digits, digits[1:]}  # E.164, 11-digit, national digits
        parsed = phonenumbers.parse("+" + digits)
        found |= {
            phonenumbers.format_number(parsed, style)
            for style in (
                phonenumbers.PhoneNumberFormat.NATIONAL,
                phonenumbers.PhoneNumberFormat.INTERNATIONAL,
            )
        }
    for message in fake.messages:
        found |= set(re.findall(r"(?<![0-9])[0-9]{4,10}(?![0-9])", message.body))
    return {s for s in found if s}


def _assert_clean(log_text: str, forbidden: set[str]) -> None:
    # Short digit strings (codes) are looked for as whole words, so that a code that happens
    # to be part of a hex message id or a longer number is not taken for a leak.
    leaked = sorted(
        s
        for s in forbidden
        if re.search(
            rf"(?<![0-9A-Za-z]){re.escape(s)}(?![0-9A-Za-z])"
            if s.isdigit() and len(s) <= 10
            else re.escape(s),
            log_text,
        )
    )
    assert not leaked, f"leaked into the log: {leaked}\n{log_text}"


def _wrong(code: str) -> str:
    return "".join(str((int(d) + 1) % 10) for d in code)


def _protected_app(fake: FakeFlowroute, database_url: str) -> SMS2FAMiddleware:
    users = {"alice": ALICE, "bob": BOB}

    async def account(request: StarletteRequest) -> PlainTextResponse:
        return PlainTextResponse(f"hello {request.state.sms2fa.auth_id}")

    def identify(request: StarletteRequest) -> Identity | None:
        user = request.cookies.get("user")
        return Identity(user, users[user]) if user in users else None

    settings = Settings(
        secret_key=SECRET,
        database_url=database_url,
        api_token=API_TOKEN,
        resend_cooldown=0,
        recipient_send_limit=0,
        address_send_limit=0,
        max_failed_checks=3,
        retries_allowed=5,  # the code outlives the failure cap, so the lock is what refuses
        **fake.settings_kwargs(),
    )
    return SMS2FAMiddleware(
        Starlette(routes=[Route("/account", account)]),
        settings,
        protect=["/account"],
        identify=identify,
    )


def _csrf(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, page
    return match.group(1)


def test_full_flow_at_debug_logs_no_code_secret_or_number(
    tmp_path: Path, fake_flowroute: FakeFlowroute, caplog: pytest.LogCaptureFixture
) -> None:
    """Middleware (challenge, wrong code, resend, right code, failed send, lockout) and the
    mounted API (create, wrong and right checks, a bad token), every logger at DEBUG."""
    fake = fake_flowroute
    html = {"accept": "text/html"}
    cookies: list[str] = []
    with caplog.at_level(logging.DEBUG):  # the root logger: every library inherits it
        app = _protected_app(fake, f"sqlite:///{tmp_path / 'flow.db'}")
        client = TestClient(app, follow_redirects=False)
        client.cookies.set("user", "alice")

        response = client.get("/account", headers=html)
        assert response.status_code == 303, response.text
        challenge = response.headers["location"]
        page = client.get(challenge, headers=html)
        assert page.status_code == 200
        token = _csrf(page.text)
        cookies.append(client.cookies["sms2fa_csrf"])
        first = fake.last_code(ALICE)
        form = {"csrf_token": token, "next": "/account"}
        assert (
            client.post("/sms2fa/challenge", data={**form, "code": _wrong(first)}).status_code
            == 400
        )
        assert client.post("/sms2fa/challenge/resend", data=form).status_code == 303
        second = fake.last_code(ALICE)
        response = client.post("/sms2fa/challenge", data={**form, "code": second})
        assert response.status_code == 303 and response.headers["location"] == "/account"
        cookies.append(client.cookies["sms2fa"])
        assert client.get("/account").text == "hello alice"

        client.cookies.clear()
        client.cookies.set("user", "bob")
        fake.fail_next(500)
        response = client.get("/account", headers=html)
        assert response.status_code == 303 and fake.messages_to(BOB) == []  # send failed
        response = client.get("/account", headers=html)  # sends now
        assert response.status_code == 303
        token = _csrf(client.get(response.headers["location"], headers=html).text)
        bob_code = fake.last_code(BOB)
        for _ in range(4):  # three wrong guesses lock bob out; the fourth is refused (429)
            client.post(
                "/sms2fa/challenge",
                data={"csrf_token": token, "next": "/account", "code": _wrong(bob_code)},
            )
        assert (
            client.post(
                "/sms2fa/challenge",
                data={"csrf_token": token, "next": "/account", "code": bob_code},
            ).status_code
            == 429
        )

        api = TestClient(app)
        bearer = {"authorization": f"Bearer {API_TOKEN}"}
        assert (
            api.post("/sms2fa/", json={"auth_id": "carol", "recipient": CAROL}).status_code == 401
        )
        assert (
            api.post(
                "/sms2fa/", json={"auth_id": "carol", "recipient": CAROL}, headers=bearer
            ).status_code
            == 200
        )
        carol_code = fake.last_code(CAROL)
        assert (
            api.get(
                "/sms2fa/", params={"auth_id": "carol", "code": _wrong(carol_code)}, headers=bearer
            ).status_code
            == 400
        )
        assert (
            api.post(
                "/sms2fa/check", json={"auth_id": "carol", "code": carol_code}, headers=bearer
            ).status_code
            == 200
        )
        app.verifier.store.dispose()

    # The test's own HTTP client (httpx) logs the URLs it asks for: those are this test's
    # logs, not the library's.
    records = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert any(r.name == "sms2fa" for r in records)  # the flow was logged at all
    assert any(r.levelno == logging.DEBUG for r in records)  # ... and at DEBUG
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    log_text = "\n".join(formatter.format(r) + f" {r.args!r}" for r in records)
    _assert_clean(log_text, _forbidden_strings(fake, *cookies, fake.access_key))


# Run ``sms2fa serve`` exactly as the CLI does, with everything (uvicorn too) at DEBUG.
_DEBUG_SERVE = """
import logging, sys
import uvicorn
logging.basicConfig(level=logging.DEBUG, format="%(name)s %(levelname)s %(message)s")
_run = uvicorn.run
def run(*args, **kwargs):
    kwargs["log_level"] = "debug"
    return _run(*args, **kwargs)
uvicorn.run = run
from sms2fa_middleware.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_serve_at_debug_logs_no_code_secret_or_number(tmp_path: Path) -> None:
    """The same for a ``sms2fa serve`` process: its whole output at DEBUG."""
    log = tmp_path / "serve.log"
    (tmp_path / "debug_serve.py").write_text(_DEBUG_SERVE)
    port = free_port()
    with FakeFlowroute() as fake:
        env = {
            **fake.settings_env(),
            "SMS2FA_SECRET_KEY": SECRET,
            "SMS2FA_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}",
            "SMS2FA_API_TOKEN": API_TOKEN,
            "SMS2FA_RESEND_COOLDOWN": "0",
            "SMS2FA_MAX_FAILED_CHECKS": "3",
            "SMS2FA_RETRIES_ALLOWED": "5",  # the code outlives the cap: the lock refuses
        }
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(tmp_path), os.environ.get("PYTHONPATH", "")) if p
        )
        args = ["debug_serve", "serve", "--port", str(port), "--workers", "1"]
        with running(args, env, port, log_path=str(log)) as base:
            bearer = {"Authorization": f"Bearer {API_TOKEN}"}
            with requests.Session() as http:
                assert (
                    http.post(base + "/", json={"auth_id": "alice", "recipient": ALICE}).status_code
                    == 401
                )
                for auth_id, number in (("alice", ALICE), ("bob", BOB)):
                    assert (
                        http.post(
                            base + "/",
                            json={"auth_id": auth_id, "recipient": number},
                            headers=bearer,
                        ).status_code
                        == 200
                    )
                    code = fake.last_code(number)
                    assert (
                        http.get(
                            base + "/",
                            params={"auth_id": auth_id, "code": _wrong(code)},
                            headers=bearer,
                        ).status_code
                        == 400
                    )
                    assert (
                        http.get(
                            base + "/", params={"auth_id": auth_id, "code": code}, headers=bearer
                        ).status_code
                        == 200
                    )
                fake.fail_next(500)
                assert (
                    http.post(
                        base + "/", json={"auth_id": "carol", "recipient": CAROL}, headers=bearer
                    ).status_code
                    == 502
                )
                assert (
                    http.post(
                        base + "/", json={"auth_id": "carol", "recipient": CAROL}, headers=bearer
                    ).status_code
                    == 200
                )
                code = fake.last_code(CAROL)
                for _ in range(4):
                    http.post(
                        base + "/check",
                        json={"auth_id": "carol", "code": _wrong(code)},
                        headers=bearer,
                    )
                assert (
                    http.post(
                        base + "/check", json={"auth_id": "carol", "code": code}, headers=bearer
                    ).status_code
                    == 429
                )
        output = log.read_text(errors="replace")
        assert "sms2fa DEBUG" in output or "urllib3.connectionpool DEBUG" in output, output
        assert "event=approved" in output, output
        _assert_clean(output, _forbidden_strings(fake, fake.access_key))


if sys.platform == "win32":  # pragma: no cover
    pytestmark = [pytestmark, pytest.mark.skip("POSIX only")]
