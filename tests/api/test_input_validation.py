"""Bad input to the HTTP API and the engine: a 400 in JSON naming what is wrong, never a
500, and no number parsed with int().

From the defects of the original Flowroute sms-verification service (each docstring quotes
one)."""

from __future__ import annotations

import warnings
from typing import Any

import pytest

from sms2fa_middleware import (
    InvalidAPIUsage,
    Verifier,
)
from sms2fa_middleware.testing import FakeFlowroute

with warnings.catch_warnings():  # starlette >= 1.0 would rather have httpx2
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")


NUMBER = "12065551234"


def json_400(response: Any) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert body["reason"] == "InvalidAPIUsage"
    return body


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


def test_engine_refuses_malformed_check_input(quiet: Verifier) -> None:
    """The engine itself refuses what the HTTP layer lets through, with InvalidAPIUsage."""
    for auth_id, code in ((None, "1234"), ("u1", None), ("u1", 1234), ("u1", "+1234")):
        with pytest.raises(InvalidAPIUsage):
            quiet.check(auth_id, code)  # type: ignore[arg-type]
