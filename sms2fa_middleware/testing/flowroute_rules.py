"""What Flowroute's ``POST /v2.1/messages`` accepts, as pure functions (no sockets, no
state): the fake's server answers with these, in the order the package docstring lists."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
import uuid
from dataclasses import dataclass, field
from email.message import Message
from http import HTTPStatus
from typing import Any, NamedTuple

MEDIA_TYPE = "application/vnd.api+json"
MESSAGES_PATH = "/v2.1/messages"
NANP = re.compile(r"1[2-9][0-9]{2}[2-9][0-9]{6}")
_ATTRIBUTES = frozenset({"to", "from", "body", "is_mms", "media_urls", "dlr_callback"})

#: Titles as Flowroute writes them; Python's own phrases change (3.13 renamed 422 to
#: "Unprocessable Content"), the provider's do not.
_TITLES = {422: "Unprocessable Entity", 413: "Request Entity Too Large"}


@dataclass
class Reply:
    """What the fake answers one request with."""

    status: int
    document: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


class Account(NamedTuple):
    """The fake's credentials and its one number (11 digits)."""

    access_key: str
    secret_key: str
    number: str


def error(status: int, detail: str, headers: dict[str, str] | None = None) -> Reply:
    """A JSON:API error answer: ``{"errors": [{"id", "status", "title", "detail"}]}``."""
    try:
        title = _TITLES.get(status) or HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    problem = {"id": str(uuid.uuid4()), "status": status, "title": title, "detail": detail}
    return Reply(status, {"errors": [problem]}, headers or {})


def check_request(
    method: str, path: str, headers: Message, raw: bytes, account: Account
) -> Reply | dict[str, Any]:
    """The error the real API would answer this request with, or, for a message it would
    take, the message's attributes (``to``, ``from``, ``body``, ...)."""
    if path != MESSAGES_PATH:
        return error(404, f"no such resource: {path}")
    if method != "POST":
        return error(405, f"{method} is not allowed here", {"Allow": "POST"})
    if not authorised(headers.get("Authorization"), account):
        return error(
            401,
            "Missing or invalid credentials: use HTTP Basic with the access key and secret key",
            {"WWW-Authenticate": 'Basic realm="Flowroute API"'},
        )
    content_type = headers.get("Content-Type")
    if not jsonapi_media_type(content_type):
        return error(415, f"Content-Type must be {MEDIA_TYPE}, got {content_type!r}")
    attributes = read_attributes(raw)
    if isinstance(attributes, Reply):
        return attributes
    problem = check_attributes(attributes)
    if problem:
        return error(422, problem)
    if attributes["from"] != account.number:
        return error(403, "'from' is not a number on this account")
    return attributes


def authorised(header: str | None, account: Account) -> bool:
    """HTTP Basic with exactly the account's keys."""
    scheme, _, encoded = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    user, colon, password = decoded.partition(b":")
    # Both comparisons always run, so the timing tells nothing about which one failed.
    good_user = hmac.compare_digest(user, account.access_key.encode("utf-8"))
    good_password = hmac.compare_digest(password, account.secret_key.encode("utf-8"))
    return bool(colon) and good_user and good_password


def jsonapi_media_type(value: str | None) -> bool:
    """``application/vnd.api+json``, with ``; charset=utf-8`` at most."""
    if not value:
        return False
    media_type, *params = value.split(";")
    if media_type.strip().lower() != MEDIA_TYPE:
        return False
    for param in params:
        name, _, val = param.partition("=")
        if name.strip().lower() != "charset" or val.strip().strip('"').lower() != "utf-8":
            return False
    return True


def read_attributes(raw: bytes) -> Reply | dict[str, Any]:
    """The message attributes of a JSON:API (or flat) body, or the 400 it deserves."""
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return error(400, "the body is not valid UTF-8 JSON")
    if not isinstance(document, dict):
        return error(400, "the body must be a JSON object")
    if "data" not in document:
        return document  # the flat form {"to", "from", "body"}
    data = document["data"]
    if not isinstance(data, dict) or not isinstance(data.get("attributes"), dict):
        return error(400, "'data' must be an object with an 'attributes' object")
    if data.get("type") != "message":
        return error(400, "'data.type' must be \"message\"")
    attributes: dict[str, Any] = data["attributes"]
    return attributes


def check_attributes(attributes: dict[str, Any]) -> str | None:
    """Why the message attributes are unacceptable (422), or None."""
    unknown = sorted(set(attributes) - _ATTRIBUTES)
    if unknown:
        return f"unknown attribute(s): {', '.join(unknown)}"
    for name in ("to", "from"):
        value = attributes.get(name)
        if not isinstance(value, str) or not NANP.fullmatch(value):
            return f"'{name}' must be an 11-digit number like \"12065551234\" (digits only)"
    body = attributes.get("body")
    if not isinstance(body, str) or not body.strip():
        return "'body' must be a non-empty string"
    if not isinstance(attributes.get("is_mms", False), bool):
        return "'is_mms' must be a boolean"
    media_urls = attributes.get("media_urls", [])
    if not isinstance(media_urls, list) or not all(isinstance(u, str) for u in media_urls):
        return "'media_urls' must be a list of URLs"
    callback = attributes.get("dlr_callback")
    if callback is not None and not (
        isinstance(callback, str) and callback.startswith(("http://", "https://"))
    ):
        return "'dlr_callback' must be an http(s) URL"
    return None
