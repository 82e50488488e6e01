"""The OpenAPI 3.1 description of the HTTP API, served at ``{prefix}/openapi.json``."""

from __future__ import annotations

from typing import Any

_ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["message", "reason"],
    "properties": {
        "message": {"type": "string"},
        "reason": {"type": "string"},
        "attempts_left": {"type": "integer", "minimum": 0},
        "budget": {"type": "string"},
        "retry_after": {"type": "integer", "minimum": 1},
    },
}
_CHECK_ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["message", "reason"],
    "properties": {
        "message": {"type": "string"},
        "reason": {
            "enum": ["UnknownAuthId", "ExpiredAuthCode", "InvalidAuthCode", "InvalidAPIUsage"]
        },
        "attempts_left": {"type": "integer", "minimum": 0},
    },
}
_AUTH_ID = {"type": "string", "minLength": 1, "maxLength": 120}
_CODE = {"type": "string", "pattern": "^[0-9]{1,10}$"}
_RECOVERY_CODE = {"type": "string", "maxLength": 40, "examples": ["abcde-fghjk"]}
_VERIFIED = {
    "type": "object",
    "required": ["authenticated", "auth_id", "message", "sent_to"],
    "properties": {
        "authenticated": {"const": True},
        "auth_id": {"type": "string"},
        "message": {"type": "string"},
        "sent_to": {
            "type": "string",
            "description": (
                "The number the code went to, masked (+1••••••••34). A verified auth_id proves "
                "only that someone read a code sent to this number: bind auth_id to your own "
                "user and check that this is their number, or anyone can create a code for your "
                "user's auth_id to their own phone."
            ),
        },
    },
}
_VERIFIED_TEXT = (
    "Verified; the code is consumed. It proves the caller read an SMS sent to "
    "sent_to: bind auth_id to your own user and compare the number."
)

_RATE_LIMITED = {
    "type": "object",
    "required": ["message", "reason", "budget", "retry_after"],
    "properties": {
        "message": {"type": "string"},
        "reason": {"const": "RateLimited"},
        "budget": {
            "enum": [
                "resend_cooldown",
                "recipient",
                "client_address",
                "global",
                "failed_checks",
                "client_address_checks",
                "failed_authorization",
            ]
        },
        "retry_after": {"type": "integer", "minimum": 1},
    },
}


def _error(reason: str) -> dict[str, Any]:
    """An error body whose ``reason`` is always ``reason``."""
    return {**_ERROR, "properties": {**_ERROR["properties"], "reason": {"const": reason}}}


def _answer(
    description: str, schema: dict[str, Any], headers: dict[str, Any] | None = None
) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }
    if headers:
        answer["headers"] = headers
    return answer


def _json_request(
    fields: list[str], properties: dict[str, Any], required: bool = True
) -> dict[str, Any]:
    """A JSON object body with exactly these ``properties``, ``fields`` of them required."""
    schema: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
    }
    if fields:
        schema["required"] = fields
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def _common_errors() -> dict[str, Any]:
    return {
        "401": _answer("A bearer token is configured and was not given.", _error("Unauthorized")),
        "413": _answer("The body is larger than 16 KiB.", _error("InvalidAPIUsage")),
        "429": _answer(
            "A budget is spent; come back after Retry-After seconds.",
            _RATE_LIMITED,
            {
                "Retry-After": {
                    "description": "Seconds to wait (the body's retry_after).",
                    "required": True,
                    "schema": {"type": "string", "pattern": "^[1-9][0-9]*$"},
                }
            },
        ),
        "503": _answer("The store is unreachable.", _error("ServiceUnavailable")),
    }


def _create() -> dict[str, Any]:
    """POST / : create a code and send it."""
    return {
        "summary": "Create a verification code and send it by SMS",
        "operationId": "createAuth",
        "requestBody": _json_request(
            ["auth_id", "recipient"],
            {
                "auth_id": _AUTH_ID,
                "recipient": {"type": "string", "pattern": r"^(1[0-9]{10}|\+[1-9][0-9]{6,14})$"},
                "code_length": {"type": "integer", "minimum": 4, "maximum": 10},
                "expiration": {"type": "integer", "minimum": 30, "maximum": 3600},
                "retries": {"type": "integer", "minimum": 1, "maximum": 20},
                "message": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 1000,
                    "description": (
                        "A template with {code}; refused unless the service enables it "
                        "(SMS2FA_ALLOW_CUSTOM_MESSAGE), and then at most one SMS segment with the "
                        "code filled in (160 characters, 70 beyond ASCII)."
                    ),
                },
            },
        ),
        "responses": {
            "200": _answer(
                "Created and sent.",
                {
                    "type": "object",
                    "required": ["message", "auth_id", "expires_at", "attempts_left"],
                    "properties": {
                        "message": {"type": "string"},
                        "auth_id": {"type": "string"},
                        "expires_at": {"type": "string", "format": "date-time"},
                        "attempts_left": {"type": "integer", "minimum": 1},
                    },
                },
            ),
            "400": _answer("Malformed request.", _error("InvalidAPIUsage")),
            "502": _answer(
                "The SMS provider failed; no new code is pending.", _error("SMSDeliveryFailed")
            ),
            **_common_errors(),
        },
    }


def _check_by_query() -> dict[str, Any]:
    """GET / : the original service's check."""
    return {
        "summary": "Check a code (the original service's form)",
        "operationId": "authenticateCode",
        "parameters": [
            {"name": "auth_id", "in": "query", "required": True, "schema": _AUTH_ID},
            {"name": "code", "in": "query", "required": True, "schema": _CODE},
        ],
        "responses": {
            "200": _answer(_VERIFIED_TEXT, _VERIFIED),
            "400": _answer("Not verified.", _CHECK_ERROR),
            **_common_errors(),
        },
    }


def _check() -> dict[str, Any]:
    """POST /check : check a code without putting it in a URL."""
    return {
        "summary": "Check a code without putting it in a URL",
        "operationId": "checkCode",
        "requestBody": _json_request(["auth_id", "code"], {"auth_id": _AUTH_ID, "code": _CODE}),
        "responses": {
            "200": _answer(_VERIFIED_TEXT, _VERIFIED),
            "400": _answer("Not verified.", _CHECK_ERROR),
            **_common_errors(),
        },
    }


# -- recovery codes for an auth_id (the service, behind its token) ----------------------------

_LEFT = {"type": "integer", "minimum": 0, "maximum": 10}
_RECOVERY_CHECK_ERROR = {
    **_CHECK_ERROR,
    "properties": {
        **_CHECK_ERROR["properties"],
        "reason": {"enum": ["InvalidAuthCode", "InvalidAPIUsage"]},
    },
}


def _recovery_codes_new() -> dict[str, Any]:
    """POST /recovery-codes : a new set for an auth_id."""
    return {
        "summary": "Make ten new recovery codes for an auth_id (the old ones stop working)",
        "operationId": "createRecoveryCodes",
        "description": "Shown once: the service keeps only keyed digests. Give them to the "
        "user after a fresh verification of theirs, never to someone merely asking.",
        "requestBody": _json_request(["auth_id"], {"auth_id": _AUTH_ID}),
        "responses": {
            "201": _answer(
                "The new set.",
                {
                    "type": "object",
                    "required": ["auth_id", "recovery_codes", "left"],
                    "properties": {
                        "auth_id": {"type": "string"},
                        "recovery_codes": {
                            "type": "array",
                            "minItems": 10,
                            "maxItems": 10,
                            "items": {"type": "string", "pattern": "^[a-z2-9]{5}-[a-z2-9]{5}$"},
                        },
                        "left": {"const": 10},
                    },
                },
            ),
            "400": _answer("Malformed request.", _error("InvalidAPIUsage")),
            **_common_errors(),
        },
    }


def _recovery_codes_left() -> dict[str, Any]:
    """GET /recovery-codes : how many are left."""
    return {
        "summary": "How many unused recovery codes an auth_id has",
        "operationId": "recoveryCodesLeft",
        "parameters": [{"name": "auth_id", "in": "query", "required": True, "schema": _AUTH_ID}],
        "responses": {
            "200": _answer(
                "The count (0 for an auth_id that never had any).",
                {
                    "type": "object",
                    "required": ["auth_id", "left"],
                    "properties": {"auth_id": {"type": "string"}, "left": _LEFT},
                },
            ),
            "400": _answer("Malformed request.", _error("InvalidAPIUsage")),
            **_common_errors(),
        },
    }


def _recovery_codes_use() -> dict[str, Any]:
    """POST /recovery-codes/use : spend one."""
    return {
        "summary": "Verify an auth_id with one of its recovery codes (single use)",
        "operationId": "useRecoveryCode",
        "description": "A wrong code is a failed check of the auth_id, as a wrong SMS code "
        "is: the two share attempts and the lock (429 failed_checks).",
        "requestBody": _json_request(
            ["auth_id", "recovery_code"],
            {
                "auth_id": _AUTH_ID,
                "recovery_code": _RECOVERY_CODE,
                "recipient": {
                    "type": "string",
                    "pattern": r"^(1[0-9]{10}|\+[1-9][0-9]{6,14})$",
                    "description": "The user's number: texted a notice of the use (no code "
                    "in it). Checked before the code is spent.",
                },
            },
        ),
        "responses": {
            "200": _answer(
                "Verified; the code is spent.",
                {
                    "type": "object",
                    "required": ["authenticated", "auth_id", "message", "left"],
                    "properties": {
                        "authenticated": {"const": True},
                        "auth_id": {"type": "string"},
                        "message": {"type": "string"},
                        "left": _LEFT,
                    },
                },
            ),
            "400": _answer(
                "Not verified: a wrong or spent code (InvalidAuthCode, with attempts_left), "
                "or a malformed request or recipient (InvalidAPIUsage: nothing spent, no "
                "guess counted).",
                _RECOVERY_CHECK_ERROR,
            ),
            **_common_errors(),
        },
    }


_STATUS = {
    "type": "object",
    "required": ["sent_to", "expires_at", "attempts_left", "resend_after"],
    "properties": {
        "pending": {"type": "boolean", "description": "A code is waiting for this user."},
        "sent_to": {"type": "string", "description": "The user's number, masked."},
        "expires_at": {"type": ["string", "null"], "format": "date-time"},
        "attempts_left": {"type": "integer", "minimum": 0},
        "resend_after": {
            "type": "integer",
            "minimum": 0,
            "description": "Seconds until a new code may be asked for.",
        },
        "recovery_codes_left": {
            "type": "integer",
            "minimum": 0,
            "description": "The user's unused recovery codes (status only).",
        },
    },
}

#: The middleware's 401 to an API client at a protected path of the app (and at
#: ``/recovery``) without a live verified session, or with one too old for a rule.
_VERIFICATION_REQUIRED = {
    "type": "object",
    "required": ["message", "reason", "challenge"],
    "properties": {
        "message": {"type": "string"},
        "reason": {"const": "VerificationRequired"},
        "challenge": {
            "type": "string",
            "format": "uri-reference",
            "description": "Where to verify: the challenge, its query kept (max_age and idle "
            "when a rule asked for them) -- GET it for the status, POST /challenge/send, "
            "then POST the code to it.",
        },
        "max_age": {
            "type": "integer",
            "minimum": 1,
            "description": "Step-up: a protect rule (or a route-level check, or "
            "account_max_age for /phone and for making recovery codes) asks for a code "
            "entered at most this many seconds ago, and the session's is older. Also in the "
            "RFC 9470 challenge of WWW-Authenticate.",
        },
        "idle": {
            "type": "integer",
            "minimum": 1,
            "description": "The session went unused for longer than this many seconds (the "
            "idle option, or a rule's idle): it has ended; verify again.",
        },
    },
}
_WWW_AUTHENTICATE = {
    "description": 'SMS2FA challenge="{prefix}/challenge" (where to verify). With max_age, '
    'also RFC 9470\'s step-up challenge: Bearer error="insufficient_user_authentication", '
    'error_description="More recent authentication is required", max_age=N. The two '
    "challenges may come as two header fields or as one, comma-joined.",
    "schema": {"type": "string"},
}


def _verification_required() -> dict[str, Any]:
    """The 401 ``VerificationRequired`` answer, as an OpenAPI response object."""
    return _answer(
        "No live verified session (it never was, it went idle, or a rule's max_age asks for "
        "a more recent code): verify at the challenge, then retry.",
        _VERIFICATION_REQUIRED,
        {"WWW-Authenticate": {**_WWW_AUTHENTICATE, "required": True}},
    )


def _challenge_refusals() -> dict[str, Any]:
    return {
        "401": _answer(
            "Not logged in (the app's identify() found no user).", _error("LoginRequired")
        ),
        "403": _answer(
            "No phone number on file (NoPhoneOnFile), or a post from another "
            "origin (OriginRejected).",
            _ERROR,
        ),
        "503": _answer("The store is unreachable.", _error("ServiceUnavailable")),
    }


def _challenge_status() -> dict[str, Any]:
    return {
        "summary": "The logged-in user's pending code (send Accept: application/json)",
        "operationId": "challengeStatus",
        "responses": {
            "200": _answer(
                "The pending code, if any.",
                {**_STATUS, "required": ["pending", *_STATUS["required"]]},
            ),
            **_challenge_refusals(),
        },
    }


def _challenge_send() -> dict[str, Any]:
    return {
        "summary": "Send a code to the logged-in user's number",
        "operationId": "challengeSend",
        "requestBody": _json_request([], {}, required=False),
        "responses": {
            "200": {
                **_answer(
                    "Sent. The code verifies only with the sms2fa_challenge cookie this "
                    "answer sets (send it back with the check).",
                    _STATUS,
                ),
                "headers": {"Set-Cookie": {"required": True, "schema": {"type": "string"}}},
            },
            "400": _answer("Malformed request, or a number codes cannot go to.", _ERROR),
            "429": _common_errors()["429"],
            "502": _answer("The SMS provider failed.", _error("SMSDeliveryFailed")),
            **_challenge_refusals(),
        },
    }


def _challenge_check() -> dict[str, Any]:
    return {
        "summary": "Check the code (or a recovery code); a right one sets the "
        "verified-session cookie",
        "operationId": "challengeCheck",
        "description": "The code verifies only with the sms2fa_challenge cookie its send "
        'set. Instead of a code, {"recovery_code": ...} spends one recovery code.',
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            _json_request(
                                ["code"],
                                {
                                    "code": _CODE,
                                    "trust": {
                                        "type": "boolean",
                                        "description": "Trust this browser (with the "
                                        "trust_browser_for option; else ignored).",
                                    },
                                },
                            )["content"]["application/json"]["schema"],
                            _json_request(["recovery_code"], {"recovery_code": _RECOVERY_CODE})[
                                "content"
                            ]["application/json"]["schema"],
                        ]
                    }
                }
            },
        },
        "responses": {
            "200": {
                **_answer(
                    "Verified: the Set-Cookie header carries the verified session "
                    "(send it back as a cookie).",
                    {
                        "type": "object",
                        "required": ["verified", "remember_for"],
                        "properties": {
                            "verified": {"const": True},
                            "remember_for": {"type": "integer", "minimum": 1},
                            "recovery_codes_left": {"type": "integer", "minimum": 0},
                            "trusted_for": {"type": "integer", "minimum": 1},
                        },
                    },
                ),
                "headers": {"Set-Cookie": {"required": True, "schema": {"type": "string"}}},
            },
            "400": _answer(
                "Not verified (a wrong, expired or unknown code; RecipientChanged "
                "when the number changed while the code was out).",
                _ERROR,
            ),
            "429": _common_errors()["429"],
            **_challenge_refusals(),
        },
    }


def _recovery() -> dict[str, Any]:
    codes = {
        "type": "object",
        "required": ["codes", "remaining"],
        "properties": {
            "codes": {"type": "array", "items": _RECOVERY_CODE, "minItems": 10, "maxItems": 10},
            "remaining": {"type": "integer", "minimum": 0},
        },
    }
    refusals = {
        **_challenge_refusals(),
        "401": _answer(
            "Not logged in (LoginRequired), or no live verified session (VerificationRequired, "
            "with WWW-Authenticate).",
            {"anyOf": [_error("LoginRequired"), _VERIFICATION_REQUIRED]},
            {"WWW-Authenticate": _WWW_AUTHENTICATE},
        ),
    }
    return {
        "get": {
            "summary": "How many recovery codes the verified user has left",
            "operationId": "recoveryStatus",
            "responses": {
                "200": _answer(
                    "The count.",
                    {
                        "type": "object",
                        "required": ["remaining"],
                        "properties": {"remaining": {"type": "integer", "minimum": 0}},
                    },
                ),
                **refusals,
            },
        },
        "post": {
            "summary": "Make ten new recovery codes (the old ones stop working); shown once",
            "operationId": "recoveryGenerate",
            "description": "Needs a verified session whose code is at most account_max_age "
            "seconds old (300 by default), the first set too; else 401 with max_age.",
            "requestBody": _json_request([], {}, required=False),
            "responses": {
                "200": _answer("The new codes.", codes),
                "400": _answer("Malformed request.", _ERROR),
                **refusals,
                "401": _login_or_step_up(),
            },
        },
    }


# -- the account endpoints: enrollment, the change of number, trusted browsers -----------------

_MASKED = {"type": "string", "description": "A phone number, masked (+1••••••••34)."}
_PHONE = {
    "type": "string",
    "minLength": 1,
    "maxLength": 64,
    "description": "A mobile number in any common format; without a + it is read in the "
    "middleware's default_region.",
    "examples": ["(206) 555-0123", "+44 7911 123456"],
}
_PHONE_OR_CODE = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "oneOf": [
                    {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["phone"],
                        "properties": {"phone": _PHONE},
                        "description": "Send a code to this number (checked against the "
                        "sending policy first: refused before any SMS).",
                    },
                    {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["code"],
                        "properties": {"code": _CODE},
                        "description": "Confirm with the code sent to it (with the "
                        "sms2fa_challenge cookie the send set).",
                    },
                ]
            }
        }
    },
}
_CODE_SENT = {
    "type": "object",
    "required": ["sent_to", "expires_at", "attempts_left"],
    "properties": {
        "sent_to": _MASKED,
        "expires_at": {"type": "string", "format": "date-time"},
        "attempts_left": {"type": "integer", "minimum": 1},
    },
}
_SET_COOKIE = {"Set-Cookie": {"required": True, "schema": {"type": "string"}}}
_PHONE_ERROR = {
    **_ERROR,
    "properties": {
        **_ERROR["properties"],
        "reason": {
            "enum": [
                "InvalidAPIUsage",
                "InvalidRecipient",
                "SameNumber",
                "InvalidAuthCode",
                "ExpiredAuthCode",
                "UnknownAuthId",
            ]
        },
    },
}


def _login_or_step_up() -> dict[str, Any]:
    """The 401 of a page that needs a verified session (with max_age: a recent one)."""
    return _answer(
        "Not logged in (LoginRequired), or no live verified session, or one whose code is "
        "older than account_max_age where a recent one is needed (VerificationRequired, "
        "with max_age and RFC 9470's WWW-Authenticate challenge).",
        {"anyOf": [_error("LoginRequired"), _VERIFICATION_REQUIRED]},
        {"WWW-Authenticate": _WWW_AUTHENTICATE},
    )


def _sends_and_confirms(verified: dict[str, Any], forbidden: str) -> dict[str, Any]:
    """The answers of a POST that sends a code to a typed number, or confirms it."""
    return {
        "200": {
            **_answer(
                "A code was sent (the first schema; the sms2fa_challenge cookie to send back), "
                "or the code was right (the second; the verified-session cookie).",
                {"oneOf": [_CODE_SENT, verified]},
            ),
            "headers": _SET_COOKIE,
        },
        "400": _answer(
            "Malformed, a number outside the sending policy (InvalidRecipient: nothing was "
            "sent), or a wrong, expired or missing code (nothing changed).",
            _PHONE_ERROR,
        ),
        "401": _login_or_step_up(),
        "403": _answer(forbidden, _ERROR),
        "429": _common_errors()["429"],
        "500": _answer("on_enroll raised: nothing changed.", _error("InternalError")),
        "502": _answer("The SMS provider failed.", _error("SMSDeliveryFailed")),
        "503": _answer("The store is unreachable.", _error("ServiceUnavailable")),
    }


def _enroll() -> dict[str, Any]:
    enrolled = {
        "type": "object",
        "required": ["verified", "enrolled", "remember_for"],
        "properties": {
            "verified": {"const": True},
            "enrolled": _MASKED,
            "remember_for": {"type": "integer", "minimum": 1},
        },
    }
    refusals = {
        "401": _answer(
            "Not logged in (the app's identify() found no user).", _error("LoginRequired")
        ),
        "403": _answer(
            "A number is on file already (PhoneOnFile: changing it is /phone's), or a post "
            "from another origin (OriginRejected).",
            _ERROR,
        ),
        "503": _answer("The store is unreachable.", _error("ServiceUnavailable")),
    }
    return {
        "get": {
            "summary": "Whether a code for a first number is waiting (with on_enroll)",
            "operationId": "enrollStatus",
            "responses": {
                "200": _answer(
                    "The waiting code's number, if this browser holds one.",
                    {
                        "type": "object",
                        "required": ["pending", "sent_to"],
                        "properties": {
                            "pending": {"type": "boolean"},
                            "sent_to": {"anyOf": [_MASKED, {"type": "null"}]},
                        },
                    },
                ),
                **refusals,
            },
        },
        "post": {
            "summary": "Add a first phone number: send a code to it, then confirm it",
            "operationId": "enroll",
            "description": "For a logged-in user with no number on file. A right code "
            "calls on_enroll(auth_id, e164) for the app to store the number (the one the "
            "code went to), and sets the verified session for it.",
            "requestBody": _PHONE_OR_CODE,
            "responses": {
                **_sends_and_confirms(enrolled, "PhoneOnFile or OriginRejected."),
                "401": refusals["401"],
                "403": refusals["403"],
            },
        },
    }


def _phone() -> dict[str, Any]:
    changed = {
        "type": "object",
        "required": ["verified", "changed_to", "remember_for", "recovery_codes_left"],
        "properties": {
            "verified": {"const": True},
            "changed_to": _MASKED,
            "remember_for": {"type": "integer", "minimum": 1},
            "recovery_codes_left": {
                "const": 0,
                "description": "A change ends the recovery codes: make new ones.",
            },
        },
    }
    forbidden = "No number on file (NoPhoneOnFile: enroll one), or a post from another origin."
    return {
        "get": {
            "summary": "The number on file, and a waiting code for a new one (with on_enroll)",
            "operationId": "phoneStatus",
            "description": "Needs a verified session whose code is at most account_max_age "
            "seconds old (300 by default), as the POST does.",
            "responses": {
                "200": _answer(
                    "The number on file and the waiting code's number, masked.",
                    {
                        "type": "object",
                        "required": ["phone", "pending", "sent_to"],
                        "properties": {
                            "phone": _MASKED,
                            "pending": {"type": "boolean"},
                            "sent_to": {"anyOf": [_MASKED, {"type": "null"}]},
                        },
                    },
                ),
                "401": _login_or_step_up(),
                "403": _answer(forbidden, _ERROR),
                "503": _answer("The store is unreachable.", _error("ServiceUnavailable")),
            },
        },
        "post": {
            "summary": "Change the phone number: send a code to the new one, then confirm it",
            "operationId": "changePhone",
            "description": "Needs a verified session whose code (on the old number, or a "
            "recovery code) is at most account_max_age seconds old, else 401 with max_age. "
            "The number on file is refused (SameNumber). A right code calls "
            "on_enroll(auth_id, e164), then ends every verified session of the user (other "
            "browsers), every trusted browser and the recovery codes, texts the old number a "
            "notice, emits number_changed, and sets this client's verified session for the "
            "new number.",
            "requestBody": _PHONE_OR_CODE,
            "responses": _sends_and_confirms(changed, forbidden),
        },
    }


_BROWSER = {
    "type": "object",
    "required": [
        "id",
        "created_at",
        "expires_at",
        "last_used",
        "user_agent",
        "network",
        "this_browser",
    ],
    "properties": {
        "id": {"type": "string"},
        "created_at": {"type": "string", "format": "date-time"},
        "expires_at": {"type": "string", "format": "date-time"},
        "last_used": {"type": "string", "format": "date-time"},
        "user_agent": {"type": "string", "maxLength": 200},
        "network": {
            "type": "string",
            "description": "The coarse network it was trusted from (an IPv4 /24, an IPv6 "
            '/48), or "unknown".',
        },
        "this_browser": {"type": "boolean"},
    },
}


def _browsers() -> dict[str, Any]:
    listed = {"type": "array", "items": _BROWSER}
    refusals = {
        "401": _login_or_step_up(),
        "403": _answer("No number on file, or a post from another origin.", _ERROR),
        "503": _answer("The store is unreachable.", _error("ServiceUnavailable")),
    }
    return {
        "get": {
            "summary": "The verified user's trusted browsers (with trust_browser_for)",
            "operationId": "browsersList",
            "responses": {
                "200": _answer(
                    "The most recently trusted first.",
                    {
                        "type": "object",
                        "required": ["browsers"],
                        "properties": {"browsers": listed},
                    },
                ),
                **refusals,
            },
        },
        "post": {
            "summary": "Revoke one trusted browser, or all",
            "operationId": "browsersRevoke",
            "requestBody": _json_request(
                ["revoke"],
                {
                    "revoke": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 64,
                        "description": 'A browser\'s id, or "all".',
                    }
                },
            ),
            "responses": {
                "200": _answer(
                    "How many were revoked, and those left (this browser's cookie is deleted "
                    "if it was one).",
                    {
                        "type": "object",
                        "required": ["revoked", "browsers"],
                        "properties": {
                            "revoked": {"type": "integer", "minimum": 0},
                            "browsers": listed,
                        },
                    },
                ),
                "400": _answer("Malformed request.", _error("InvalidAPIUsage")),
                **refusals,
            },
        },
    }


def openapi_document(
    api: bool = True,
    challenge: bool = False,
    enroll: bool = False,
    browsers: bool = False,
    recovery_codes: bool = False,
) -> dict[str, Any]:
    """The description (paths relative to where it is mounted): the verification ``api``
    (with ``recovery_codes``, its ``/recovery-codes``: the service behind a token);
    the middleware's JSON ``challenge`` flow and recovery codes (for the logged-in user);
    with ``enroll`` (``on_enroll``) ``/enroll`` and ``/phone``; with ``browsers``
    (``trust_browser_for``) ``/browsers``."""
    paths: dict[str, Any] = {}
    if api:
        paths["/"] = {"post": _create(), "get": _check_by_query()}
        paths["/check"] = {"post": _check()}
        if recovery_codes:
            paths["/recovery-codes"] = {
                "post": _recovery_codes_new(),
                "get": _recovery_codes_left(),
            }
            paths["/recovery-codes/use"] = {"post": _recovery_codes_use()}
    if challenge:
        paths["/challenge"] = {"get": _challenge_status(), "post": _challenge_check()}
        paths["/challenge/send"] = {"post": _challenge_send()}
        paths["/recovery"] = _recovery()
        if enroll:
            paths["/enroll"] = _enroll()
            paths["/phone"] = _phone()
        if browsers:
            paths["/browsers"] = _browsers()
    schemes: dict[str, Any] = {"bearer": {"type": "http", "scheme": "bearer"}}
    if challenge:
        schemes["verifiedSession"] = {
            "type": "apiKey",
            "in": "cookie",
            "name": "sms2fa",
            "description": "The verified session the challenge sets (``__Host-sms2fa`` over "
            "HTTPS); protected paths of the app need it. Without it an API client gets "
            "the 401 VerificationRequired of components.responses (WWW-Authenticate: SMS2FA "
            'challenge="{prefix}/challenge", and with max_age RFC 9470\'s Bearer '
            'error="insufficient_user_authentication").',
        }
    components: dict[str, Any] = {"securitySchemes": schemes}
    if challenge:
        # What protected paths of the app answer; they are the app's, not in paths.
        components["schemas"] = {"VerificationRequired": _VERIFICATION_REQUIRED}
        components["responses"] = {"VerificationRequired": _verification_required()}
    return {
        "openapi": "3.1.0",
        "info": {"title": "sms2fa verification API", "version": "1"},
        "paths": paths,
        "components": components,
    }
