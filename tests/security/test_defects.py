"""One test (or a few) per defect of the original Flowroute sms-verification service.

Each docstring quotes the defect; each test fails on the original's behaviour. The two races
that need several processes are in test_multiprocess.py:
``test_parallel_wrong_guesses_never_exceed_the_allowance`` (attempt counting) and
``test_four_workers_start_on_a_new_database`` / ``test_schema_creation_race_in_four_processes``
(schema creation); in-process thread versions of both are here as well.
"""

from __future__ import annotations

import inspect
import logging
import random
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import select, update

from sms2fa_middleware import (
    ConfigurationError,
    InvalidAPIUsage,
    RateLimited,
    Settings,
    VerificationError,
    Verifier,
)
from sms2fa_middleware.api.service import VerificationService
from sms2fa_middleware.engine import codes as code_tools
from sms2fa_middleware.store import codes, metadata
from sms2fa_middleware.testing import FakeFlowroute
from tests.support.databases import create_schema_concurrently, table_names

with warnings.catch_warnings():  # starlette >= 1.0 would rather have httpx2
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

NUMBER = "12065551234"
NO_BUDGETS: dict[str, Any] = {
    "resend_cooldown": 0,
    "recipient_send_limit": 0,
    "address_send_limit": 0,
}


@pytest.fixture
def make_api(make_verifier: Callable[..., Verifier]) -> Callable[..., tuple[TestClient, Verifier]]:
    def build(**overrides: Any) -> tuple[TestClient, Verifier]:
        verifier = make_verifier(**{**NO_BUDGETS, **overrides})
        return TestClient(VerificationService(verifier)), verifier

    return build


@pytest.fixture
def api(make_api: Callable[..., tuple[TestClient, Verifier]]) -> TestClient:
    return make_api()[0]


@pytest.fixture
def quiet(make_verifier: Callable[..., Verifier]) -> Verifier:
    """A verifier with the send budgets off."""
    return make_verifier(**NO_BUDGETS)


def json_400(response: Any) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert body["reason"] == "InvalidAPIUsage"
    return body


def wrong(code: str) -> str:
    return str((int(code) + 1) % 10 ** len(code)).zfill(len(code))


def reason_of(call: Callable[[], object]) -> str:
    try:
        call()
    except VerificationError as exc:
        return exc.reason
    return "ok"


# -- "Missing key, a body that is not JSON, or no JSON content type: 500 with an HTML page." --


@pytest.mark.parametrize(
    "content, headers",
    [
        (b'{"auth_id": "u1"}', {"content-type": "application/json"}),
        (b'{"recipient": "12065551234"}', {"content-type": "application/json"}),
        (b"auth_id=u1&recipient=12065551234", {"content-type": "application/json"}),
        (b'{"auth_id": "u1", "recipient": "12065551234"}', {}),
        (
            b'{"auth_id": "u1", "recipient": "12065551234"}',
            {"content-type": "application/x-www-form-urlencoded"},
        ),
    ],
    ids=["missing recipient", "missing auth_id", "not JSON", "no content type", "form type"],
)
def test_missing_key_or_not_json_is_a_400_json_not_a_500_html_page(
    api: TestClient, content: bytes, headers: dict[str, str]
) -> None:
    """Defect: "Missing key, a body that is not JSON, or no JSON content type: 500 with an
    HTML page." """
    response = api.post("/", content=content, headers=headers)
    json_400(response)
    assert "<html" not in response.text.lower()


# -- "`recipient` parsed with `int()`: ... accepted." -----------------------------------------


@pytest.mark.parametrize(
    "recipient",
    [
        " 1206555123",
        "-1206555123",
        "+1206555123",
        "1_206555123",
        " 12065551234",
        "12065551234 ",
        "-12065551234",
        "1_2065551234",
        "+ 12065551234",
        "\uff11\uff12\uff10\uff16\uff15\uff15\uff15\uff11\uff12\uff13\uff14",  # int() takes these
        "12065551234.0",
        12065551234.0,
        True,
    ],
)
def test_recipient_is_not_parsed_with_int(
    api: TestClient, fake_flowroute: FakeFlowroute, recipient: object
) -> None:
    """Defect: "`recipient` parsed with `int()`: `" 1206555123"`, `"-1206555123"`,
    `"+1206555123"`, `"1_206555123"` accepted." """
    json_400(api.post("/", json={"auth_id": "u1", "recipient": recipient}))
    assert fake_flowroute.requests_seen == 0


def test_recipient_outside_the_allowed_regions_is_refused(
    api: TestClient, fake_flowroute: FakeFlowroute
) -> None:
    """Part of the SMS pumping defect: a Jamaican (+1 876) number looks like 1XXXXXXXXXX."""
    json_400(api.post("/", json={"auth_id": "u1", "recipient": "18765550123"}))
    json_400(api.post("/", json={"auth_id": "u1", "recipient": "+442071838750"}))
    assert fake_flowroute.requests_seen == 0


# -- "`auth_id` length (120) not enforced; any JSON type accepted (`null` became "None")." ------


@pytest.mark.parametrize(
    "auth_id", [None, 12, 1.5, True, ["u1"], {"id": "u1"}, "", "a" * 121, "u1\n", "u\x001"]
)
def test_auth_id_must_be_a_string_of_1_to_120_characters(
    api: TestClient, fake_flowroute: FakeFlowroute, auth_id: object
) -> None:
    """Defect: "`auth_id` length (120) not enforced; any JSON type accepted (`null` became
    `"None"`)." """
    json_400(api.post("/", json={"auth_id": auth_id, "recipient": NUMBER}))
    assert fake_flowroute.requests_seen == 0
    # null must not have become the id "None":
    assert (
        api.get("/", params={"auth_id": "None", "code": "123456"}).json()["reason"]
        == "UnknownAuthId"
    )


def test_auth_id_of_120_characters_works(api: TestClient, fake_flowroute: FakeFlowroute) -> None:
    """The other side of the same defect: the documented limit itself is accepted."""
    auth_id = "é" * 120
    assert api.post("/", json={"auth_id": auth_id, "recipient": NUMBER}).status_code == 200
    code = fake_flowroute.last_code(NUMBER)
    assert api.post("/check", json={"auth_id": auth_id, "code": code}).status_code == 200


# -- "Code from `random.randint` (not a CSPRNG), range off by one (can be one digit short),
#    stored as an integer (leading zeros lost), stored in plain text, logged at DEBUG,
#    compared with `==`." ---------------------------------------------------------------------


def test_code_does_not_come_from_the_random_module(
    quiet: Verifier, fake_flowroute: FakeFlowroute
) -> None:
    """Defect: "Code from `random.randint` (not a CSPRNG)": the same seed of `random` must not
    give the same code."""
    state = random.getstate()
    try:
        sent = []
        for _ in range(3):
            random.seed(1234)
            quiet.start("u1", NUMBER, code_length=10)
            sent.append(fake_flowroute.last_code(NUMBER, length=10))
    finally:
        random.setstate(state)
    assert len(set(sent)) == 3, sent  # 10 digits: two equal by chance is a 1e-10 event


def test_code_always_has_exactly_the_asked_length(
    quiet: Verifier, fake_flowroute: FakeFlowroute
) -> None:
    """Defect: "range off by one (can be one digit short)"."""
    for length in (4, 5, 6, 8, 10):
        for _ in range(4):
            quiet.start("u1", NUMBER, code_length=length)
            assert len(fake_flowroute.last_code(NUMBER)) == length
    # The generator itself, many times over: every length exact, every first digit seen
    # (randint(10**(n-1), 10**n - 1) would never start with 0).
    generated = [code_tools.generate_code(4) for _ in range(20000)]
    assert {len(c) for c in generated} == {4}
    assert {c[0] for c in generated} == set("0123456789")


def test_code_keeps_its_leading_zeros(quiet: Verifier, fake_flowroute: FakeFlowroute) -> None:
    """Defect: "stored as an integer (leading zeros lost)"."""
    for _ in range(300):  # P(no leading zero in 300 tries) is about 2e-14
        quiet.start("u1", NUMBER, code_length=4)
        code = fake_flowroute.last_code(NUMBER, length=4)
        if code.startswith("0"):
            break
    else:
        pytest.fail("no 4-digit code with a leading zero in 300 codes")
    assert reason_of(lambda: quiet.check("u1", str(int(code)))) == "InvalidAuthCode"
    assert reason_of(lambda: quiet.check("u1", code)) == "ok"


def test_code_is_not_stored_in_plain_text(quiet: Verifier, fake_flowroute: FakeFlowroute) -> None:
    """Defect: "stored in plain text"."""
    quiet.start("u1", NUMBER, code_length=10)
    code = fake_flowroute.last_code(NUMBER, length=10)
    rows = quiet.store.run(lambda conn: conn.execute(select(codes)).all())
    assert len(rows) == 1
    stored = " ".join(str(value) for value in rows[0])
    assert code not in stored
    assert str(int(code)) not in stored
    digest = rows[0].digest
    assert len(digest) == 64 and set(digest) <= set("0123456789abcdef")
    # Keyed: the digest is not a plain hash anyone could brute-force without the secret.
    assert digest != code_tools.digest(code, "u1", "")


def test_code_and_number_never_logged_even_at_debug(
    make_api: Callable[..., tuple[TestClient, Verifier]],
    fake_flowroute: FakeFlowroute,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Defect: the code was "logged at DEBUG". Neither it nor the full number may be logged.

    Every logger at DEBUG (urllib3, SQLAlchemy, the fake, ours) over a full flow: create,
    a wrong guess, the right code by GET, a new code, a failed send, the right code by POST.
    The test's own HTTP client (httpx) logs the URLs it requests -- those are this test's
    logs, not the service's, so they are left out.
    """
    api, _ = make_api()
    with caplog.at_level(logging.DEBUG):  # the root logger: every library inherits it
        assert api.post("/", json={"auth_id": "u1", "recipient": NUMBER}).status_code == 200
        first = fake_flowroute.last_code(NUMBER)
        assert api.get("/", params={"auth_id": "u1", "code": wrong(first)}).status_code == 400
        assert api.get("/", params={"auth_id": "u1", "code": first}).status_code == 200
        fake_flowroute.fail_next(500)
        assert api.post("/", json={"auth_id": "u2", "recipient": NUMBER}).status_code == 502
        assert api.post("/", json={"auth_id": "u2", "recipient": NUMBER}).status_code == 200
        second = fake_flowroute.last_code(NUMBER)
        assert api.post("/check", json={"auth_id": "u2", "code": second}).status_code == 200
    records = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert any(r.name == "sms2fa" for r in records)  # the flow was logged at all
    text = "\n".join(f"{r.getMessage()} {r.args!r}" for r in records)
    for secret in (first, second, NUMBER, "+" + NUMBER):
        assert secret not in text


def test_code_compared_in_constant_time() -> None:
    """Defect: codes "compared with `==`". A timing test would be flaky, so this one reads the
    code: the comparison of digests is :func:`hmac.compare_digest`, and every key is tried."""
    source = inspect.getsource(code_tools.matches)
    assert "hmac.compare_digest" in source
    assert "==" not in source
    digest = code_tools.digest("123456", "u1", "old-key")
    assert code_tools.matches("123456", "u1", digest, ["new-key", "old-key"])
    assert not code_tools.matches("123457", "u1", digest, ["new-key", "old-key"])


# -- "Code parsed with `int()`: `+0001268` matched `1268`." -----------------------------------


def test_code_is_not_parsed_with_int(api: TestClient, fake_flowroute: FakeFlowroute) -> None:
    """Defect: "Code parsed with `int()`: `+0001268` matched `1268`." """
    assert (
        api.post("/", json={"auth_id": "u1", "recipient": NUMBER, "retries": 20}).status_code == 200
    )
    code = fake_flowroute.last_code(NUMBER)
    full_width = code.translate({ord(d): ord(d) + 0xFEE0 for d in "0123456789"})
    for variant in (
        "+" + code,
        "+000" + code,
        " " + code,
        code + " ",
        "-" + code,
        code[:2] + "_" + code[2:],
        code + ".0",
        full_width,
    ):
        response = api.get("/", params={"auth_id": "u1", "code": variant})
        json_400(response)
        response = api.post("/check", json={"auth_id": "u1", "code": variant})
        json_400(response)
    json_400(api.post("/check", json={"auth_id": "u1", "code": int(code)}))
    # Zero-padded: digits, so a guess -- and a wrong one.
    response = api.get("/", params={"auth_id": "u1", "code": "000" + code})
    assert response.json()["reason"] == "InvalidAuthCode"
    assert api.get("/", params={"auth_id": "u1", "code": code}).status_code == 200


# -- "Attempt counting is read-modify-write ..." ----------------------------------------------


def test_attempt_counting_is_atomic_in_threads(
    make_verifier: Callable[..., Verifier], fake_flowroute: FakeFlowroute
) -> None:
    """Defect: "Attempt counting is read-modify-write: with 4 workers and 16 parallel wrong
    guesses, 3 to 7 guesses were evaluated against an allowance of 3 ... 12 of 480 requests
    answered 500 (StaleDataError)."

    Threads in one process here; test_multiprocess.py fires them at 4 worker processes.
    """
    verifier = make_verifier(**NO_BUDGETS, max_failed_checks=100)
    for trial in range(3):
        auth_id = f"race{trial}"
        verifier.start(auth_id, NUMBER, retries=3)
        code = fake_flowroute.last_code(NUMBER)
        guess = wrong(code)
        with ThreadPoolExecutor(16) as pool:
            outcomes = list(pool.map(lambda _: _outcome(verifier, auth_id, guess), range(32)))
        evaluated = sorted(left for reason, left in outcomes if reason == "InvalidAuthCode")
        assert evaluated == [0, 1, 2], outcomes
        assert {reason for reason, _ in outcomes} <= {"InvalidAuthCode", "UnknownAuthId"}


def test_right_code_succeeds_exactly_once_in_parallel(
    make_verifier: Callable[..., Verifier], fake_flowroute: FakeFlowroute
) -> None:
    """The other half of the attempt race: parallel submissions of the right code must give
    exactly one success (single use, and never zero)."""
    verifier = make_verifier(**NO_BUDGETS, max_failed_checks=100)
    tally = []
    with ThreadPoolExecutor(20) as pool:
        for trial in range(20):
            auth_id = f"right{trial}"
            verifier.start(auth_id, NUMBER, retries=3)
            code = fake_flowroute.last_code(NUMBER)
            outcomes = list(pool.map(lambda _: _outcome(verifier, auth_id, code), range(20)))
            reasons = Counter(reason for reason, _ in outcomes)
            assert set(reasons) <= {"ok", "UnknownAuthId"}, reasons
            tally.append(reasons["ok"])
    assert tally == [1] * 20, f"successes per trial: {tally}"


def _outcome(verifier: Verifier, auth_id: str, code: str) -> tuple[str, int | None]:
    try:
        verifier.check(auth_id, code)
    except VerificationError as exc:
        return exc.reason, exc.attempts_left
    return "ok", None


# -- "A new POST resets the attempt counter: unlimited guessing by re-requesting codes." ------


def test_new_code_does_not_reset_the_guess_allowance(
    make_verifier: Callable[..., Verifier], fake_flowroute: FakeFlowroute
) -> None:
    """Defect: "A new POST resets the attempt counter: unlimited guessing by re-requesting
    codes." """
    verifier = make_verifier(**NO_BUDGETS, max_failed_checks=10, lockout_seconds=600)
    evaluated = 0
    locked = False
    for _ in range(10):  # 10 codes x 3 guesses would be 30 guesses in the original
        try:
            verifier.start("u1", NUMBER)
        except RateLimited as exc:
            assert exc.budget == "failed_checks"
            locked = True
            break
        code = fake_flowroute.last_code(NUMBER)
        for _ in range(3):
            reason = reason_of(lambda c=code: verifier.check("u1", wrong(c)))
            if reason == "InvalidAuthCode":
                evaluated += 1
            else:
                assert reason == "RateLimited"
    assert locked
    assert evaluated == 10
    # While locked even the right code of a live code is not evaluated.
    assert reason_of(lambda: verifier.check("u1", "123456")) == "RateLimited"


# -- "No authentication and no rate limit on POST: anyone who reaches it sends SMS anywhere." --


def test_post_can_require_a_token_and_is_rate_limited_by_default(
    make_api: Callable[..., tuple[TestClient, Verifier]], fake_flowroute: FakeFlowroute
) -> None:
    """Defect: "No authentication and no rate limit on POST: anyone who reaches it sends SMS
    anywhere (SMS pumping)." """
    # The default budgets, spelled out: the same recipient gets at most 5 codes per window.
    api, _ = make_api(
        resend_cooldown=30,
        recipient_send_limit=5,
        address_send_limit=20,
        api_token="a-token-for-the-api-0123456789abcdef",
    )
    auth = {"authorization": "Bearer a-token-for-the-api-0123456789abcdef"}
    assert api.post("/", json={"auth_id": "x", "recipient": NUMBER}).status_code == 401
    assert fake_flowroute.requests_seen == 0
    statuses = [
        api.post("/", json={"auth_id": f"u{i}", "recipient": NUMBER}, headers=auth).status_code
        for i in range(8)
    ]
    assert statuses == [200] * 5 + [429] * 3
    assert len(fake_flowroute.messages) == 5
    assert (
        api.post("/", json={"auth_id": "u0", "recipient": "14155552671"}, headers=auth).status_code
        == 429
    )  # per-auth_id cooldown
    defaults = Settings(secret_key="s" * 32)
    assert defaults.recipient_send_limit > 0
    assert defaults.address_send_limit > 0
    assert defaults.resend_cooldown > 0


# -- "If the SMS send fails, the row is already committed and stays; the answer is a 500 HTML
#    page." -------------------------------------------------------------------------------------


def test_failed_send_leaves_no_row_and_answers_502_json(
    make_api: Callable[..., tuple[TestClient, Verifier]], fake_flowroute: FakeFlowroute
) -> None:
    """Defect: "If the SMS send fails, the row is already committed and stays; the answer is a
    500 HTML page." """
    api, verifier = make_api()
    fake_flowroute.fail_next(500)
    response = api.post("/", json={"auth_id": "u1", "recipient": NUMBER})
    assert response.status_code == 502
    assert response.headers["content-type"] == "application/json"
    assert response.json()["reason"] == "SMSDeliveryFailed"
    assert verifier.store.count_codes() == 0
    assert (
        api.get("/", params={"auth_id": "u1", "code": "123456"}).json()["reason"] == "UnknownAuthId"
    )


def test_code_not_checkable_while_its_sms_is_in_flight(
    quiet: Verifier, fake_flowroute: FakeFlowroute
) -> None:
    """Same defect, the other window: the original stored the row before the provider
    answered. Until it accepted the SMS, there must be no code to check."""
    fake_flowroute.delay = 1.0
    done = threading.Event()
    thread = threading.Thread(target=lambda: (quiet.start("u1", NUMBER), done.set()))
    thread.start()
    try:
        deadline = datetime.now(timezone.utc) + timedelta(seconds=5)
        while fake_flowroute.requests_seen == 0 and datetime.now(timezone.utc) < deadline:
            time.sleep(0.01)
        assert fake_flowroute.requests_seen == 1 and not done.is_set()  # in flight
        assert quiet.store.count_codes() == 0
        assert quiet.pending("u1") is None
        assert reason_of(lambda: quiet.check("u1", "123456")) == "UnknownAuthId"
    finally:
        thread.join(10)
    assert done.is_set()
    assert quiet.pending("u1") is not None


# -- "Codes that are never checked stay in the database forever." -----------------------------


def _expire_all(verifier: Verifier) -> None:
    past = datetime.now(timezone.utc) - timedelta(seconds=1)
    verifier.store.run(lambda conn: conn.execute(update(codes).values(expires_at=past)))


def test_unchecked_codes_are_purged(
    make_verifier: Callable[..., Verifier], fake_flowroute: FakeFlowroute
) -> None:
    """Defect: "Codes that are never checked stay in the database forever." (``sms2fa purge``
    is tested in test_cli.py.)"""
    verifier = make_verifier(**NO_BUDGETS)
    verifier.start("u1", NUMBER)
    verifier.start("u2", NUMBER)
    _expire_all(verifier)
    verifier.start("u3", NUMBER)  # live: stays
    assert verifier.store.count_codes() == 3
    assert verifier.purge() >= 2
    assert verifier.store.count_codes() == 1
    assert verifier.pending("u3") is not None
    # Without anyone calling purge(): a new process purges on its first start, in a thread
    # of its own (the start does not wait for it).
    _expire_all(verifier)
    other = make_verifier(**NO_BUDGETS)
    other.start("u4", NUMBER)
    deadline = time.monotonic() + 10
    while other.store.count_codes() > 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert other.store.count_codes() == 1
    assert other.pending("u4") is not None


# -- "Starting 4 workers on a new database crashes (`table auth_code already exists`)" --------


def test_schema_creation_in_parallel_threads(database_url: str) -> None:
    """Defect: "Starting 4 workers on a new database crashes (`table auth_code already
    exists`): schema creation races." Threads here; processes in test_multiprocess.py."""
    errors = create_schema_concurrently(database_url, 4)
    assert errors == []
    assert {t.name for t in metadata.sorted_tables} <= table_names(database_url)


# -- "Naive UTC timestamps; DEBUG_MODE hard-coded; the test database selected by a flag in
#    code." -------------------------------------------------------------------------------------


def test_timestamps_are_timezone_aware_utc(
    make_api: Callable[..., tuple[TestClient, Verifier]],
) -> None:
    """Defect: "Naive UTC timestamps"."""
    api, verifier = make_api()
    response = api.post("/", json={"auth_id": "u1", "recipient": NUMBER})
    expires_at = response.json()["expires_at"]
    assert expires_at.endswith("Z")
    parsed = datetime.fromisoformat(expires_at.replace("Z", "+00:00"))
    assert parsed.tzinfo is not None
    row = verifier.store.run(lambda conn: conn.execute(select(codes)).one())
    for value in (row.created_at, row.expires_at):
        assert value.tzinfo is not None and value.utcoffset() == timedelta(0)
    assert abs(row.expires_at - parsed) < timedelta(seconds=1)
    if verifier.store.dialect == "postgresql":
        columns = {
            c["name"]: c["type"]
            for c in sa_inspect(verifier.store.engine).get_columns("sms2fa_codes")
        }
        assert columns["expires_at"].timezone is True
    # The store refuses naive datetimes outright rather than guessing their zone.
    with pytest.raises(Exception, match="naive"):
        verifier.store.run(
            lambda conn: conn.execute(
                update(codes).values(expires_at=datetime.now(timezone.utc).replace(tzinfo=None))
            )
        )


def test_debug_mode_is_not_hard_coded() -> None:
    """Defect: "DEBUG_MODE hard-coded": development mode is off unless asked for, and asking
    is configuration, not code."""
    assert Settings(secret_key="s" * 32).development is False
    assert Settings.from_env({"SMS2FA_SECRET_KEY": "s" * 32}).development is False
    assert Settings.from_env({"SMS2FA_DEVELOPMENT": "1"}).development is True
    # Production (the default) will not start without a real key.
    with pytest.raises(ConfigurationError, match="SMS2FA_SECRET_KEY"):
        Settings.from_env({})


def test_database_is_chosen_by_configuration_not_a_flag(tmp_path: Any) -> None:
    """Defect: "the test database selected by a flag in code"."""
    url = f"sqlite:///{tmp_path / 'chosen.db'}"
    settings = Settings.from_env(
        {"SMS2FA_SECRET_KEY": "s" * 32, "SMS2FA_DATABASE_URL": url, "SMS2FA_SMS_BACKEND": "console"}
    )
    assert settings.database_url == url
    verifier = Verifier(settings)
    try:
        verifier.create_schema()
        assert (tmp_path / "chosen.db").exists()
    finally:
        verifier.store.dispose()


def test_default_database_is_in_the_data_directory_not_the_working_directory(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SMS2FA_DATA_DIR", str(tmp_path / "data"))
    url = Settings(secret_key="s" * 32).database_url
    assert url == f"sqlite:///{tmp_path / 'data' / 'sms2fa.db'}"
    assert not (tmp_path / "data").exists()  # building Settings touches no disk
    verifier = Verifier(Settings(secret_key="s" * 32, sms_backend="console"))
    try:
        verifier.create_schema()
        assert (tmp_path / "data" / "sms2fa.db").exists()
        assert (tmp_path / "data").stat().st_mode & 0o777 == 0o700
    finally:
        verifier.store.dispose()
    monkeypatch.delenv("SMS2FA_DATA_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert Settings(secret_key="s" * 32).database_url == (
        f"sqlite:///{tmp_path / 'xdg' / 'sms2fa' / 'sms2fa.db'}"
    )
    assert list(tmp_path.glob("*.db")) == []


def test_engine_refuses_malformed_check_input(quiet: Verifier) -> None:
    """The engine itself refuses what the HTTP layer lets through, with InvalidAPIUsage."""
    for auth_id, code in ((None, "1234"), ("u1", None), ("u1", 1234), ("u1", "+1234")):
        with pytest.raises(InvalidAPIUsage):
            quiet.check(auth_id, code)  # type: ignore[arg-type]
