"""SMS pumping and toll fraud: who may make the service send, how many texts, to which
numbers, with which text.

From the defects of the original Flowroute sms-verification service, the attacks of issue
11, a security review of the guard and the abuse review."""

from __future__ import annotations

import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import phonenumbers
import pytest
from phonenumbers import PhoneNumberType

from sms2fa_middleware import (
    Settings,
    Verifier,
)
from sms2fa_middleware.api.service import VerificationService
from sms2fa_middleware.errors import InvalidAPIUsage, RateLimited
from sms2fa_middleware.settings import DEFAULT_NUMBER_TYPES, DEFAULT_REGIONS
from sms2fa_middleware.testing import FakeFlowroute
from tests.support import SECRET, Client, in_threads
from tests.support.apps import Site
from tests.support.browsing import ALICE, CHALLENGE, HTML
from tests.support.databases import new_database

with warnings.catch_warnings():  # starlette >= 1.0 would rather have httpx2
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


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


JSON = {"Accept": "application/json"}

with warnings.catch_warnings():  # starlette >= 1.0 would rather have httpx2
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


NO_LIMITS: dict[str, Any] = {
    "resend_cooldown": 0,
    "recipient_send_limit": 0,
    "address_send_limit": 0,
    "address_check_limit": 0,
}

with warnings.catch_warnings():  # starlette >= 1.0 would rather have httpx2
    warnings.simplefilter("ignore")


pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
if sys.platform == "win32":  # pragma: no cover
    pytestmark = [pytestmark, pytest.mark.skip("POSIX only")]


NUMBER = "+12065551234"


# -- "No authentication and no rate limit on POST: anyone who reaches it sends SMS anywhere." --


def test_post_can_require_a_token_and_is_rate_limited_by_default(
    make_client: Client, fake_flowroute: FakeFlowroute
) -> None:
    """Defect: "No authentication and no rate limit on POST: anyone who reaches it sends SMS
    anywhere (SMS pumping)." """
    # The default budgets, spelled out: the same recipient gets at most 5 codes per window.
    api, _ = make_client(
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


# -- 1. per-request messages, segments, and which number proved it -------------------------


def test_per_request_message_is_off_by_default(
    make_verifier: Callable[..., Verifier], fake_flowroute: FakeFlowroute
) -> None:
    """Issue 11.1: a 981-character phishing text went out as one request."""
    api = TestClient(VerificationService(make_verifier(**NO_LIMITS)))
    response = api.post(
        "/", json={"auth_id": "u1", "recipient": NUMBER, "message": "Your bank: call us. {code}"}
    )
    assert response.status_code == 400, response.text
    assert response.json()["reason"] == "InvalidAPIUsage"
    assert "SMS2FA_ALLOW_CUSTOM_MESSAGE" in response.json()["message"]
    assert fake_flowroute.messages == []


@pytest.mark.parametrize(
    "message",
    [
        "{code} " + "x" * 154,  # 161 with a 6-digit code: two GSM segments
        "{code} " + "ł" * 64,  # 71: two UCS-2 segments ("ł" is not in the GSM alphabet)
        "{code} " + "€" * 77,  # 161 septets: "€" takes two in the GSM alphabet
        "{code} " + "😀" * 32,  # 71 UTF-16 units: an emoji takes two
        "Phish! " * 140 + "{code}",  # 981
    ],
)
def test_a_long_per_request_message_is_refused(
    make_verifier: Callable[..., Verifier], fake_flowroute: FakeFlowroute, message: str
) -> None:
    api = TestClient(VerificationService(make_verifier(**NO_LIMITS, allow_custom_message=True)))
    response = api.post("/", json={"auth_id": "u1", "recipient": NUMBER, "message": message})
    assert response.status_code == 400, response.text
    assert response.json()["reason"] == "InvalidAPIUsage"
    assert fake_flowroute.messages == []
    # One segment, enabled: it goes out.
    one = "{code} " + "x" * 153
    response = api.post("/", json={"auth_id": "u1", "recipient": NUMBER, "message": one})
    assert response.status_code == 200, response.text


def test_send_budgets_count_segments(
    make_verifier: Callable[..., Verifier], fake_flowroute: FakeFlowroute
) -> None:
    verifier = make_verifier(
        resend_cooldown=0, recipient_send_limit=3, auth_message="{code} " + "x" * 200
    )  # two segments
    verifier.start("u1", NUMBER)
    with pytest.raises(RateLimited) as info:  # 4 segments > 3
        verifier.start("u2", NUMBER)
    assert info.value.budget == "recipient"
    assert len(fake_flowroute.messages) == 1


def test_verifier_refuses_a_custom_message_when_off(verifier: Verifier) -> None:
    with pytest.raises(InvalidAPIUsage):
        verifier.start("u1", NUMBER, message="{code}")


# -- counters under a parallel burst ------------------------------------------------------------


def test_a_burst_of_first_visits_and_json_sends_texts_once(
    make_site: Callable[..., Site],
    fake_flowroute: FakeFlowroute,
) -> None:
    """Twelve requests at once that each would send a code -- browser navigations (each sees
    no code waiting yet) and JSON ``/challenge/send`` posts -- send one SMS: the resend
    cooldown is taken atomically, not read and then written."""
    site = make_site(settings={"resend_cooldown": 30})
    barrier = threading.Barrier(12)
    answers: list[int] = []

    def one(i: int) -> None:
        with httpx.Client(base_url=site.url, headers={"X-User": "alice"}, timeout=10) as http:
            barrier.wait()
            if i % 2:
                answers.append(http.get("/account", headers={"Accept": HTML}).status_code)
            else:
                answers.append(http.post(CHALLENGE + "/send", json={}).status_code)

    in_threads(one, 12)
    assert len(answers) == 12
    assert len(fake_flowroute.messages_to(ALICE)) == 1
    assert answers.count(200) <= 1  # at most one JSON send says it sent
    assert set(answers) <= {200, 303, 429}


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
