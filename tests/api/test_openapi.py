"""The OpenAPI 3.1 description at ``{prefix}/openapi.json``, and schemathesis against it.

schemathesis runs against a live ``sms2fa serve`` (two workers, a real SQLite file, a real
FakeFlowroute) with every check but one, in both generation modes, for at least 500 cases:
no answer is a 5xx and every answer matches the document. The one check left out,
``positive_data_acceptance``, expects every schema-valid request to succeed; a verification
API rightly refuses many of them (an unknown auth_id, a wrong code, a number that is not a
mobile phone) with the documented 400.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import warnings
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import requests

from tests.support import SECRET
from tests.support.servers import serve

with warnings.catch_warnings():  # starlette >= 1.0 would rather have httpx2
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from sms2fa_middleware import Settings, Verifier
from sms2fa_middleware.api.openapi import openapi_document
from sms2fa_middleware.api.service import VerificationService
from sms2fa_middleware.guard import Guard
from sms2fa_middleware.testing import FakeFlowroute

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

PREFIX = "/verify"
MIN_CASES = 500
IN_CI = os.environ.get("CI", "").lower() == "true"


def _require(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        if IN_CI:
            pytest.fail(f"CI=true but {module} is not installed (pip install -e '.[test]')")
        pytest.skip(f"{module} is not installed")


def _assert_valid_31(document: dict[str, Any]) -> None:
    _require("openapi_spec_validator")
    from openapi_spec_validator import OpenAPIV31SpecValidator, validate

    assert document["openapi"].startswith("3.1.")
    validate(document, cls=OpenAPIV31SpecValidator)  # raises on any error


def test_document_is_valid_openapi_31() -> None:
    document = openapi_document()
    _assert_valid_31(document)
    operations = {(path, method) for path, item in document["paths"].items() for method in item}
    assert operations == {("/", "post"), ("/", "get"), ("/check", "post")}
    for path, method in operations:
        responses = document["paths"][path][method]["responses"]
        # Every answer the API can give to a well-routed request is described.
        for status in ("200", "400", "401", "413", "429", "503"):
            assert status in responses, (path, method, status)
        for answer in responses.values():
            assert "application/json" in answer["content"]
    assert "502" in document["paths"]["/"]["post"]["responses"]
    # 429 documents its Retry-After header and the budget that was spent.
    limited = document["paths"]["/check"]["post"]["responses"]["429"]
    assert limited["headers"]["Retry-After"]["required"] is True
    schema = limited["content"]["application/json"]["schema"]
    assert {"budget", "retry_after"} <= set(schema["required"])


def test_recovery_codes_are_described_only_where_mounted(make_client: Any) -> None:
    """/recovery-codes is in the document the service serves behind a token, with the
    answers of the API's other operations, and absent without a token."""
    document = openapi_document(recovery_codes=True)
    _assert_valid_31(document)
    operations = {(path, method) for path, item in document["paths"].items() for method in item}
    assert operations == {
        ("/", "post"),
        ("/", "get"),
        ("/check", "post"),
        ("/recovery-codes", "post"),
        ("/recovery-codes", "get"),
        ("/recovery-codes/use", "post"),
    }
    made = {
        "/recovery-codes": {"post": "201", "get": "200"},
        "/recovery-codes/use": {"post": "200"},
    }
    for path, methods in made.items():
        for method, success in methods.items():
            responses = document["paths"][path][method]["responses"]
            for status in (success, "400", "401", "413", "429", "503"):
                assert status in responses, (path, method, status)
            limited = responses["429"]
            assert limited["headers"]["Retry-After"]["required"] is True
    created = document["paths"]["/recovery-codes"]["post"]["responses"]["201"]
    schema = created["content"]["application/json"]["schema"]
    assert schema["properties"]["recovery_codes"]["minItems"] == 10
    use = document["paths"]["/recovery-codes/use"]["post"]
    body = use["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["auth_id", "recovery_code"]
    assert set(body["properties"]) == {"auth_id", "recovery_code", "recipient"}
    assert body["additionalProperties"] is False
    wrong = use["responses"]["400"]["content"]["application/json"]["schema"]
    assert "InvalidAuthCode" in wrong["properties"]["reason"]["enum"]
    assert "attempts_left" in wrong["properties"]

    with_token = make_client(api_token="t" * 32)[0].get("/openapi.json").json()
    assert with_token == document
    assert make_client()[0].get("/openapi.json").json() == openapi_document()
    assert "/recovery-codes" not in openapi_document()["paths"]


@pytest.mark.parametrize("prefix", ["/", PREFIX, "/a/b"])
def test_document_is_served_under_the_prefix(
    tmp_path: Path, fake_flowroute: FakeFlowroute, prefix: str
) -> None:
    settings = Settings(
        secret_key=SECRET,
        database_url=f"sqlite:///{tmp_path / 'd.db'}",
        **fake_flowroute.settings_kwargs(),
    )
    verifier = Verifier(settings)
    try:
        api = TestClient(VerificationService(verifier, prefix))
        url = prefix.rstrip("/") + "/openapi.json"
        response = api.get(url)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert response.json() == openapi_document()
        _assert_valid_31(response.json())
        if prefix != "/":
            assert api.get("/openapi.json").status_code == 404
        # Mounted by the middleware too, when its API is on.
        guard = Guard(verifier=verifier, protect=["/private"], public_api=True)
        from sms2fa_middleware.messages import Request

        answer = guard.handle_prefix(Request("GET", "/sms2fa/openapi.json"), None)
        assert answer.status == 200
        assert json.loads(answer.body) == openapi_document(api=True, challenge=True)
    finally:
        verifier.store.dispose()


def test_document_describes_the_verification_required_answer(
    tmp_path: Path, fake_flowroute: FakeFlowroute
) -> None:
    """The 401 VerificationRequired protected paths give an API client: its optional
    max_age and idle, and RFC 9470's WWW-Authenticate challenge -- and what the guard
    really answers matches it."""
    document = openapi_document(api=False, challenge=True)
    _assert_valid_31(document)
    answer = document["components"]["responses"]["VerificationRequired"]
    schema = answer["content"]["application/json"]["schema"]
    assert schema == document["components"]["schemas"]["VerificationRequired"]
    assert schema["properties"]["reason"] == {"const": "VerificationRequired"}
    assert {"max_age", "idle"} <= set(schema["properties"])
    assert not {"max_age", "idle"} & set(schema["required"])  # only when a rule asks
    header = answer["headers"]["WWW-Authenticate"]
    assert header["required"] is True
    assert 'Bearer error="insufficient_user_authentication"' in header["description"]
    assert "max_age=N" in header["description"]
    # /recovery's 401 may be it too; the API-only document has none of it.
    recovery = document["paths"]["/recovery"]["get"]["responses"]["401"]
    assert schema in recovery["content"]["application/json"]["schema"]["anyOf"]
    assert "WWW-Authenticate" in recovery["headers"]
    assert "responses" not in openapi_document()["components"]

    settings = Settings(
        secret_key=SECRET,
        database_url=f"sqlite:///{tmp_path / 'd.db'}",
        **fake_flowroute.settings_kwargs(),
    )
    verifier = Verifier(settings)
    try:
        from sms2fa_middleware.guard.refusals import Fresh
        from sms2fa_middleware.messages import Request

        guard = Guard(verifier=verifier, protect=["/private"])
        request = Request("POST", "/private", headers={"accept": "application/json"})
        for fresh in (Fresh(), Fresh(max_age=300), Fresh(idle=900), Fresh(300, 900)):
            real = guard.refusals.verification_required(request, "/private", fresh)
            assert real.status == 401
            body = json.loads(real.body)
            jsonschema.validate(body, schema, cls=jsonschema.Draft202012Validator)
            assert ("max_age" in body, "idle" in body) == (
                fresh.max_age is not None,
                fresh.idle is not None,
            )
            challenges = [v for k, v in real.headers if k == "www-authenticate"]
            assert challenges[0] == 'SMS2FA challenge="/sms2fa/challenge"'
            bearer = [c for c in challenges if c.startswith("Bearer ")]
            if fresh.max_age is None:
                assert bearer == []
            else:
                assert bearer == [
                    'Bearer error="insufficient_user_authentication", '
                    'error_description="More recent authentication is required", '
                    "max_age=300"
                ]
    finally:
        verifier.store.dispose()


def _operation(document: dict[str, Any], method: str, path: str) -> dict[str, Any] | None:
    item = document["paths"].get(path)
    return None if item is None else item.get(method.lower())


SCHEMATHESIS_TOKEN = "schemathesis-token-0123456789abcdef"


@pytest.mark.slow
@pytest.mark.parametrize("token", ["", SCHEMATHESIS_TOKEN], ids=["open", "token"])
def test_schemathesis_finds_no_5xx_and_no_answer_off_the_schema(tmp_path: Path, token: str) -> None:
    """Open (no token), and behind a token: then with /recovery-codes mounted and described,
    schemathesis sending the token."""
    _require("schemathesis")
    har = tmp_path / "schemathesis.har.json"
    with FakeFlowroute() as fake:
        env = {
            **fake.settings_env(),
            "SMS2FA_SECRET_KEY": SECRET,
            "SMS2FA_DATABASE_URL": f"sqlite:///{tmp_path / 'schemathesis.db'}",
            "SMS2FA_API_TOKEN": token,
            # Budgets off, so that answers are about the requests, not about 429 (which is
            # documented anyway, and still comes for a guessed-at auth_id).
            "SMS2FA_RESEND_COOLDOWN": "0",
            "SMS2FA_RECIPIENT_SEND_LIMIT": "0",
            "SMS2FA_ADDRESS_SEND_LIMIT": "0",
            "SMS2FA_MAX_FAILED_CHECKS": "100",
        }
        with serve(env, workers=2, prefix=PREFIX, log_path=str(tmp_path / "serve.log")) as base:
            schema_url = base + PREFIX + "/openapi.json"
            document = requests.get(schema_url, timeout=10).json()
            _assert_valid_31(document)
            command = [
                sys.executable,
                "-m",
                "schemathesis.cli",
                "run",
                schema_url,
                "--url",
                base + PREFIX,
                "--checks",
                "all",
                "--exclude-checks",
                "positive_data_acceptance",
                "--mode",
                "all",
                "--phases",
                "examples,coverage,fuzzing",
                "--max-examples",
                "200",
                "--workers",
                # One thread behind the token: under CPython 3.11, schemathesis's threads
                # compiling at once were seen to fail ("AST constructor recursion depth
                # mismatch"), and this run, with more operations, met it most.
                "1" if token else "4",
                "--continue-on-failure",
                "--request-timeout",
                "30",
                "--generation-database",
                "none",
                "--report",
                "har",
                "--report-har-path",
                str(har),
                "--no-color",
            ]
            if token:
                command += ["--header", f"Authorization: Bearer {token}"]
            run = subprocess.run(
                command, cwd=tmp_path, capture_output=True, text=True, timeout=240, check=False
            )
        server_log = (tmp_path / "serve.log").read_text(errors="replace")
    report = run.stdout[-20000:] + run.stderr[-5000:]
    assert run.returncode == 0, report
    assert "Traceback" not in server_log, server_log

    entries = json.loads(har.read_text())["log"]["entries"]
    cases = [
        e
        for e in entries
        if any(h["name"].lower() == "x-schemathesis-testcaseid" for h in e["request"]["headers"])
    ]
    assert len(cases) >= MIN_CASES, (len(cases), report)

    # schemathesis checked every answer; look again, independently, at what it recorded.
    seen: Counter[tuple[str, str, int]] = Counter()
    for entry in entries:
        request, response = entry["request"], entry["response"]
        status = response["status"]
        path = urlsplit(request["url"]).path[len(PREFIX) :] or "/"
        seen[(request["method"], path, status)] += 1
        assert status < 500, entry
        if status == 0:  # a request schemathesis could not even send (e.g. a NUL in a header)
            continue
        # The header as the server sent it (schemathesis on 3.10 leaves HAR's mimeType empty).
        headers = {h["name"].lower(): h["value"] for h in response["headers"]}
        assert headers["content-type"].startswith("application/json"), entry
        body = json.loads(response["content"]["text"])
        operation = _operation(document, request["method"], path)
        if operation is None:
            assert status in (404, 405), entry
            assert body["reason"] in ("NotFound", "MethodNotAllowed"), entry
            continue
        answer = operation["responses"].get(str(status))
        assert answer is not None, f"undocumented status {status}: {entry}"
        jsonschema.validate(
            body,
            answer["content"]["application/json"]["schema"],
            cls=jsonschema.Draft202012Validator,
        )
        if status == 429:
            assert headers["retry-after"] == str(body["retry_after"]), entry
    # The run reached every operation, with successes as well as refusals.
    assert {(m, p) for m, p, _ in seen} >= {("POST", "/"), ("GET", "/"), ("POST", "/check")}
    assert seen[("POST", "/", 200)] > 0, seen
    assert any(s == 400 for m, p, s in seen if p == "/check"), seen
    recovery = {("POST", "/recovery-codes"), ("GET", "/recovery-codes")}
    recovery.add(("POST", "/recovery-codes/use"))
    if token:
        assert {(m, p) for m, p, _ in seen} >= recovery
        assert seen[("POST", "/recovery-codes", 201)] > 0, seen
        assert any(s == 400 for m, p, s in seen if p == "/recovery-codes/use"), seen
    else:
        assert "/recovery-codes" not in document["paths"]


# -- the middleware's account endpoints: /enroll, /phone, /recovery, /browsers ---------------


def test_the_account_endpoints_are_described_where_they_are_mounted(
    tmp_path: Path, fake_flowroute: FakeFlowroute
) -> None:
    full = openapi_document(api=True, challenge=True, enroll=True, browsers=True)
    _assert_valid_31(full)
    operations = {(path, method) for path, item in full["paths"].items() for method in item}
    assert {
        ("/enroll", "get"),
        ("/enroll", "post"),
        ("/phone", "get"),
        ("/phone", "post"),
        ("/recovery", "get"),
        ("/recovery", "post"),
        ("/browsers", "get"),
        ("/browsers", "post"),
    } <= operations
    # The change and new recovery codes may ask for a recent code: their 401 says so.
    for path in ("/phone", "/recovery"):
        answer = full["paths"][path]["post"]["responses"]["401"]
        assert "WWW-Authenticate" in answer["headers"]
        body = answer["content"]["application/json"]["schema"]["anyOf"]
        assert any("max_age" in schema.get("properties", {}) for schema in body)
    reasons = full["paths"]["/phone"]["post"]["responses"]["400"]["content"]["application/json"]
    assert {"InvalidRecipient", "SameNumber"} <= set(
        reasons["schema"]["properties"]["reason"]["enum"]
    )

    settings = Settings(
        secret_key=SECRET,
        database_url=f"sqlite:///{tmp_path / 'd.db'}",
        **fake_flowroute.settings_kwargs(),
    )
    verifier = Verifier(settings)
    try:
        from sms2fa_middleware.messages import Request

        def served(**options: Any) -> dict[str, Any]:
            guard = Guard(verifier=verifier, protect=["/private"], **options)
            answer = guard.handle_prefix(Request("GET", "/sms2fa/openapi.json"), None)
            document: dict[str, Any] = json.loads(answer.body)
            return document

        assert served() == openapi_document(api=False, challenge=True)
        assert not {"/enroll", "/phone", "/browsers"} & set(served()["paths"])
        both = served(on_enroll=lambda auth_id, number: None, trust_browser_for=86400)
        assert both == openapi_document(api=False, challenge=True, enroll=True, browsers=True)
        assert {"/enroll", "/phone", "/browsers"} <= set(both["paths"])
        assert "/browsers" not in served(on_enroll=lambda auth_id, number: None)["paths"]
    finally:
        verifier.store.dispose()


def _matches(document: dict[str, Any], method: str, path: str, answer: Any) -> dict[str, Any]:
    """``answer`` (a requests.Response to ``/sms2fa<path>``) is described by the document:
    its status is listed for the operation, and its JSON body fits that status's schema."""
    operation = _operation(document, method, path)
    assert operation is not None, (method, path)
    described = operation["responses"].get(str(answer.status_code))
    assert described is not None, (method, path, answer.status_code, answer.text[:300])
    body: dict[str, Any] = answer.json()
    schema = described["content"]["application/json"]["schema"]
    jsonschema.validate(body, schema, cls=jsonschema.Draft202012Validator)
    return body


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("framework", ["flask"], indirect=True)
def test_the_account_endpoints_answer_as_described(
    make_identity_site: Any, fake_flowroute: FakeFlowroute
) -> None:
    """A JSON client walks enrollment, a change of number, recovery codes and trusted
    browsers; every answer, right or refused, fits the served document."""
    from sms2fa_middleware import Identity
    from tests.support.browsing import ALICE, NEW_NUMBER, Browser, wrong

    table: dict[str, Any] = {"alice": Identity("alice", ALICE), "carol": Identity("carol", None)}

    def on_enroll(auth_id: str, number: str) -> None:
        table[auth_id] = Identity(auth_id, number)

    site = make_identity_site(table, on_enroll=on_enroll, trust_browser_for=86400)
    alice, carol = Browser(site, "alice"), Browser(site, "carol")
    document = alice.api("/sms2fa/openapi.json").json()
    assert {"/enroll", "/phone", "/browsers"} <= set(document["paths"])

    def call(who: Browser, method: str, path: str, body: Any = None) -> dict[str, Any]:
        return _matches(document, method, path, who.api("/sms2fa" + path, method, json=body))

    # Enrollment (carol has no number).
    assert call(carol, "GET", "/enroll") == {"pending": False, "sent_to": None}
    assert call(carol, "POST", "/enroll", {"phone": "not a number"})["reason"] == "InvalidRecipient"
    assert "sent_to" in call(carol, "POST", "/enroll", {"phone": "+13125550100"})
    code = fake_flowroute.last_code("+13125550100")
    assert call(carol, "POST", "/enroll", {"code": wrong(code)})["reason"] == "InvalidAuthCode"
    assert call(carol, "POST", "/enroll", {"code": code})["verified"] is True
    assert call(alice, "POST", "/enroll", {"phone": NEW_NUMBER})["reason"] == "PhoneOnFile"
    assert call(Browser(site), "GET", "/enroll")["reason"] == "LoginRequired"

    # Unverified: /phone, /recovery and /browsers say where to verify.
    for method, path in (("GET", "/phone"), ("POST", "/recovery"), ("GET", "/browsers")):
        assert call(alice, method, path, {} if method == "POST" else None)["challenge"]
    assert call(alice, "POST", "/challenge/send", {})["sent_to"]
    checked = alice.api(
        "/sms2fa/challenge", "POST", json={"code": fake_flowroute.last_code(ALICE), "trust": True}
    )
    assert checked.status_code == 200, checked.text

    # Recovery codes and trusted browsers.
    assert len(call(alice, "POST", "/recovery", {})["codes"]) == 10
    assert call(alice, "GET", "/recovery") == {"remaining": 10}
    listed = call(alice, "GET", "/browsers")["browsers"]
    assert len(listed) == 1 and listed[0]["this_browser"] is True
    assert call(alice, "POST", "/browsers", {"revoke": 5})["reason"] == "InvalidAPIUsage"
    assert call(alice, "POST", "/browsers", {"revoke": "nosuch"})["revoked"] == 0

    # The change of number.
    assert call(alice, "GET", "/phone")["pending"] is False
    assert call(alice, "POST", "/phone", {"phone": ALICE})["reason"] == "SameNumber"
    assert call(alice, "POST", "/phone", {"code": "123456"})["reason"] == "UnknownAuthId"
    assert call(alice, "POST", "/phone", {"phone": NEW_NUMBER})["sent_to"]
    assert call(alice, "GET", "/phone")["pending"] is True
    code = fake_flowroute.last_code(NEW_NUMBER)
    assert call(alice, "POST", "/phone", {"code": wrong(code)})["reason"] == "InvalidAuthCode"
    changed = call(alice, "POST", "/phone", {"code": code})
    assert changed["verified"] is True and changed["recovery_codes_left"] == 0
    assert call(alice, "GET", "/browsers") == {"browsers": []}
    assert call(alice, "GET", "/recovery") == {"remaining": 0}
