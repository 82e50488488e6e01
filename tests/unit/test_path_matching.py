"""Classifying a path costs time linear in the path, and an app's own root path opens nothing.

1. Globs were one backtracking regex: ``protect=["/exports/*-*-*.csv"]`` took 0.37 s on
   ``/exports/`` + 800 dashes (cubic), stalling the worker's event loop. The matcher now
   places fixed-width pieces left to right; a Hypothesis test checks it agrees with the old
   regex translation (the reference semantics) on short inputs, and paths past the cost cap
   are protected without being read (fail closed).
2. ``FastAPI(root_path="/api")`` wrapped as ``SMS2FAMiddleware(api, ...)``: FastAPI writes
   its root path into the scope after the wrapper classified, then routes the path minus
   it, so ``/api/users/me`` reached the protected endpoint. Served by a real uvicorn.
"""

from __future__ import annotations

import asyncio
import re
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sms2fa_middleware import Settings
from sms2fa_middleware.guard.globs import Glob
from sms2fa_middleware.guard.paths import (
    KIND_CACHE_KEY_MAX,
    MAX_PATH_CHARS,
    MAX_PATH_SEGMENTS,
    PASS,
    PROTECTED,
    PathPatterns,
    PathPolicy,
    app_root_paths,
    normalize,
)
from tests.support import ROOT, SECRET, path_apps
from tests.support.path_apps import marker
from tests.support.servers import free_port, launch

# FastAPI deprecates its root_path parameter (use the server's); apps still set it.
ROOT_PATH_DEPRECATED = pytest.mark.filterwarnings("ignore:The `root_path` parameter is deprecated")


def reference_regex(pattern: str) -> str:
    """The translation globs had before (a regex over canonical paths), with a negated class
    kept inside one segment: the semantics the linear matcher must keep. Only ever run here,
    on short inputs (it backtracks)."""
    out = ""
    for segment in pattern.strip("/").split("/"):
        if segment == "**":
            out += "(?:/[^/]+)*"
            continue
        out += "/"
        i = 0
        while i < len(segment):
            c = segment[i]
            if c == "*":
                out += "[^/]*"
            elif c == "?":
                out += "[^/]"
            elif c == "[" and "]" in segment[i + 2 :]:
                end = segment.index("]", i + 2)
                body = segment[i + 1 : end].replace("\\", "\\\\").replace("/", "")
                if body.startswith(("!", "^")):  # kept inside the segment (the old "^/"
                    body = "^/" + body[1:]  # was stripped again: "[!a]" matched "/")
                out += "[" + body + "]"
                i = end
            else:
                out += re.escape(c)
            i += 1
    return out + "(?:/.*)?"


# -- 1. linear time ---------------------------------------------------------------------------


def fastest(call: Callable[[], object], runs: int = 5) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


WORST = ["/exports/*-*-*.csv", "/exports/*?-?*-?*[!x].csv", "/**/*a*a*/*a*a*/b"]


def test_a_long_path_against_a_three_star_pattern_is_classified_in_under_10_ms() -> None:
    policy = PathPolicy(["/exports/*-*-*.csv", "/**/*a*a*/*a*a*/b"], [], "/sms2fa")
    patterns = PathPatterns(WORST)
    # The report's request first: 0.37 s before (and 60 KB would never end).
    assert fastest(lambda: policy.classify("/exports/" + "-" * 800)) < 0.01
    for path in (
        "/exports/" + "-" * 60_000,
        "/exports/" + "-" * (MAX_PATH_CHARS - 20),
        "/a" * MAX_PATH_SEGMENTS,
        ("/" + "a" * 60) * (MAX_PATH_SEGMENTS - 2),
    ):
        assert fastest(lambda p=path: policy.classify(p)) < 0.01, len(path)  # type: ignore[misc]
        # The matcher itself, past the cap: linear, not merely cut off.
        assert fastest(lambda p=path: patterns.match(normalize(p))) < 0.01, len(path)  # type: ignore[misc]


def test_a_path_past_the_cost_cap_is_protected_and_not_remembered() -> None:
    policy = PathPolicy(["/account"], ["/static"], "/sms2fa")
    under = "/public/" + "x" * (MAX_PATH_CHARS - 8)
    assert len(under) == MAX_PATH_CHARS and policy.classify(under) == PASS
    assert policy.classify(under + "x") == PROTECTED  # fail closed, even where excluded
    assert policy.classify("/static/" + "x" * MAX_PATH_CHARS) == PROTECTED
    separators = "/public" + "/x" * (MAX_PATH_SEGMENTS - 1)
    assert policy.classify(separators) == PASS
    assert policy.classify(separators + "/x") == PROTECTED
    assert policy.classify("/public" + "\\x" * MAX_PATH_SEGMENTS) == PROTECTED  # \ and %
    assert policy.classify("/public" + "%2Fx" * MAX_PATH_SEGMENTS) == PROTECTED  # are too
    assert policy.remember(under + "x", under + "x") == PROTECTED
    assert all(len(key) <= KIND_CACHE_KEY_MAX for key in policy.kinds)


# Every row of the "How paths are matched" table (docs/middleware.md), and the report's pattern.
TABLE = [
    ("/admin/*", ["/admin/users", "/admin/users/7"], ["/admin", "/administrator/x"]),
    ("/admin/**", ["/admin", "/admin/users/7"], ["/administrator"]),
    ("/docs/*.pdf", ["/docs/a.pdf", "/docs/a.pdf/raw"], ["/docs/x/a.pdf", "/docs/a.txt"]),
    ("/docs/**/*.pdf", ["/docs/a.pdf", "/docs/x/y/a.pdf"], ["/docs/a.txt"]),
    ("/v[12]/x", ["/v1/x"], ["/v3/x"]),
    ("/u/?", ["/u/7"], ["/u/77"]),
    (
        "/exports/*-*-*.csv",
        ["/exports/a-b-c.csv", "/exports/---.csv", "/exports/1-2-3.csv/x"],
        ["/exports/a-b.csv", "/exports/a-b-c.csvx", "/exports/x/a-b-c.csv"],
    ),
    ("/*", ["/", "/x"], []),
    ("/**/x/*", ["/x/y", "/a/b/x/y"], ["/x", "/a/x"]),
    ("/a[!b]c", ["/axc", "/axc/d"], ["/abc", "/a/c"]),  # a class stays inside its segment
]


@pytest.mark.parametrize(("pattern", "yes", "no"), TABLE)
def test_the_documented_patterns(pattern: str, yes: list[str], no: list[str]) -> None:
    patterns = PathPatterns([pattern])
    reference = re.compile(reference_regex(normalize(pattern)))
    for path in yes:
        assert patterns.match(path) and reference.fullmatch(path), (pattern, path)
    for path in no:
        assert not patterns.match(path) and not reference.fullmatch(path), (pattern, path)


PIECES = [
    "a",
    "b",
    "-",
    ".",
    "*",
    "*",
    "?",
    "[ab]",
    "[!a]",
    "[^a]",
    "[a-c]",
    "[]a]",
    "[!]",
    "\\",
    "**",
]


@st.composite
def glob_patterns(draw: st.DrawFn) -> str:
    segments = []
    for _ in range(draw(st.integers(1, 4))):
        if draw(st.integers(0, 4)) == 0:
            segments.append("**")
        else:
            segments.append(
                "".join(draw(st.lists(st.sampled_from(PIECES), min_size=1, max_size=5)))
            )
    pattern = "/" + "/".join(segments)
    return pattern if any(c in pattern for c in "*?[") else pattern + "*"


paths = st.lists(st.text("ab-.]c\\[", max_size=5), max_size=5).map(
    lambda segments: normalize("/" + "/".join(segments))
)


@settings(max_examples=600, deadline=None)
@given(glob_patterns(), paths)
def test_the_matcher_agrees_with_the_regex_it_replaced(pattern: str, path: str) -> None:
    canonical = normalize(pattern)
    expected = re.fullmatch(reference_regex(canonical), path) is not None
    assert Glob(canonical).match(path[1:].split("/")) == expected
    if any(c in canonical for c in "*?["):  # still a glob once ".." resolved ("/**/..": "/")
        assert PathPatterns([pattern]).match(path) == expected


# -- 2. an app's own root path ----------------------------------------------------------------


@ROOT_PATH_DEPRECATED
def test_the_root_paths_of_wrapped_apps_are_found() -> None:
    from fastapi import FastAPI
    from starlette.middleware.gzip import GZipMiddleware

    api = FastAPI(root_path="/api")
    assert app_root_paths(api) == ("/api",)
    assert app_root_paths(GZipMiddleware(api)) == ("/api",)  # behind middleware (.app)
    assert app_root_paths(FastAPI()) == ()


def test_every_reading_with_and_without_the_root_path_is_classified() -> None:
    policy = PathPolicy(["/users/me"], ["/users/me/avatar"], "/sms2fa")
    assert policy.classify("/api/users/me") == PASS
    policy.kinds["/api/users/me"] = PASS  # remembered before the root path was known
    policy.add_root_paths(["/api/"])
    assert "/api/users/me" not in policy.kinds  # forgotten
    for path in (
        "/api/users/me",
        "/users/me",
        "/api//users/me",
        "/api/x/../users/me",
        "/api/users/me/",
        "/api/users/me/x",
        "//api/users/me",
        "/api/%2Fusers/me",
    ):
        assert policy.classify(path) == PROTECTED, path
    for path in ("/apix/users/me", "/api/users/me/avatar", "/api", "/api/public"):
        assert policy.classify(path) == PASS, path


def _settings() -> Settings:
    tmp = tempfile.mkdtemp(prefix="sms2fa-matching-")
    return Settings(
        secret_key=SECRET,
        sms_backend="console",
        database_url=f"sqlite:///{Path(tmp) / 'matching.db'}",
    )


def _get(app: Any, path: str) -> tuple[int, bytes]:
    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "root_path": "",
        "raw_path": path.encode(),
        "query_string": b"",
        "scheme": "http",
        "headers": [(b"x-user", b"alice"), (b"accept", b"application/json")],
        "server": ("127.0.0.1", 80),
        "client": ("127.0.0.1", 1),
        "http_version": "1.1",
        "state": {},
    }
    status, body = 0, b""

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, body
        if message["type"] == "http.response.start":
            status = message["status"]
        else:
            body += message.get("body", b"")

    asyncio.run(app(scope, receive, send))
    return status, body


@ROOT_PATH_DEPRECATED
def test_a_wrapped_fastapi_root_path_opens_nothing_in_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in {
        "SMS2FA_SECRET_KEY": SECRET,
        "SMS2FA_SMS_BACKEND": "console",
        "SMS2FA_DATABASE_URL": _settings().database_url,
    }.items():
        monkeypatch.setenv(name, value)
    app = path_apps.fastapi_root_path_app()
    for path in ("/api/users/me", "/users/me"):
        status, body = _get(app, path)
        assert status == 401 and marker("me").encode() not in body, (path, status, body)
    assert _get(app, "/api/public") == (200, marker("public").encode())


# -- the same behind a real uvicorn -----------------------------------------------------------


def _raw_get(port: int, target: str) -> bytes:
    head = (
        f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-User: alice\r\n"
        f"Accept: application/json\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.fixture(scope="module", params=["fastapi_root_path_app", "fastapi_root_path_added"])
def fastapi_port(request: pytest.FixtureRequest) -> Iterator[int]:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="sms2fa-matching-") as tmp:
        env = {
            "SMS2FA_SECRET_KEY": SECRET,
            "SMS2FA_SMS_BACKEND": "console",
            "SMS2FA_DATABASE_URL": f"sqlite:///{Path(tmp) / 'matching.db'}",
        }
        args = [
            "uvicorn",
            "--factory",
            "--port",
            str(port),
            f"tests.support.path_apps:{request.param}",
        ]
        with launch(args, env, port, path="/api/public", log_path=Path(tmp) / "log", cwd=ROOT):
            yield port


@pytest.mark.slow
def test_fastapi_root_path_behind_uvicorn_opens_nothing(fastapi_port: int) -> None:
    """``/api/users/me`` and ``/users/me`` both route to the protected endpoint; both are
    challenged, wrapped as the README shows or added with ``add_middleware``."""
    public = _raw_get(fastapi_port, "/api/public")
    assert marker("public").encode() in public, public[:300]  # the marker can be seen
    for target in ("/api/users/me", "/users/me", "/api//users/me", "/api/users/me/"):
        response = _raw_get(fastapi_port, target)
        assert marker("me").encode() not in response, (target, response[:300])
        assert response.startswith(b"HTTP/1.1 401"), (target, response[:300])
        assert b"VerificationRequired" in response
