"""Verified request cost: a protected path with a valid verified cookie.

The same trivial Flask and Starlette apps are called in-process at ``/account`` (protected),
with ``identify`` reading the ``X-User`` header and a cookie minted by the guard's own signer:
bare (no middleware at all) and behind ``SMS2FAMiddleware``. One HMAC-SHA256 over a short
message plus ``hmac.compare_digest`` is timed in the same run; that is the unit of the target.

Target: our added cost <= 3 HMAC verifications, and no database query on this path (SQLAlchemy
``before_cursor_execute`` events on the verifier's engine are counted during the timed loops,
after the first revocation refresh; ``revocation_interval`` is an hour so none falls due).

    python bench/verified.py [--calls 20000] [--rounds 5]
"""

# ruff: noqa: RUF001  (the tables print multiplication signs and en dashes on purpose)

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import logging
import tempfile
import time
import timeit
from pathlib import Path
from typing import Any

import _common
from _common import SECRET_KEY, fmt, table, verdict
from _inprocess import (
    ASGIDriver,
    WSGIDriver,
    asgi_scope,
    best_of,
    flask_app,
    starlette_app,
    wsgi_environ,
)

PATH = "/account"
USER = "alice"
PHONE = "+12065550100"
TARGET_HMACS = 3


def time_hmac(rounds: int) -> float:
    """Seconds for one HMAC-SHA256 over a short message + compare_digest (best of rounds)."""
    key = hashlib.sha256(b"k").digest()
    message = b"18c3f0a9b2e.q5XbH0Zk3c1u9sTf\x00alice\x00+12065550100"
    expected = hmac.new(key, message, hashlib.sha256).digest()

    def one() -> bool:
        return hmac.compare_digest(hmac.new(key, message, hashlib.sha256).digest(), expected)

    number = 100_000
    return min(timeit.repeat(one, number=number, repeat=rounds)) / number


def time_call(fn: Any, rounds: int, number: int = 50_000) -> float:
    return min(timeit.repeat(fn, number=number, repeat=rounds)) / number


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    logging.getLogger("sms2fa").setLevel(logging.ERROR)

    from sqlalchemy import event
    from starlette.requests import Request as StarletteRequest
    from werkzeug.wrappers import Request as WerkzeugRequest

    from sms2fa_middleware import Identity, Settings, Verifier
    from sms2fa_middleware.asgi import SMS2FAMiddleware as ASGIMiddleware
    from sms2fa_middleware.guard import Guard
    from sms2fa_middleware.wsgi import SMS2FAMiddleware as WSGIMiddleware

    def identify_wsgi(request: Any) -> Identity | None:
        user = request.headers.get("X-User")
        return Identity(user, PHONE) if user else None

    # async: the ASGI adapter awaits it on the loop. A sync identify runs in a worker thread
    # (it may block on an ORM), which costs a thread hop: timed apart below.
    async def identify_asgi(request: Any) -> Identity | None:
        return identify_asgi_sync(request)

    def identify_asgi_sync(request: Any) -> Identity | None:
        user = request.headers.get("x-user")
        return Identity(user, PHONE) if user else None

    with tempfile.TemporaryDirectory(prefix="sms2fa-bench-") as tmp:
        settings = Settings(
            secret_key=(SECRET_KEY,),
            sms_backend="console",
            database_url=f"sqlite:///{Path(tmp) / 'bench.db'}",
        )
        verifier = Verifier(settings)
        verifier.create_schema()
        queries = [0]

        def _count(_sql: str) -> None:
            queries[0] += 1

        # Count at the driver: the store runs its hot statements on the DBAPI cursor, where
        # SQLAlchemy's execute events never see them. Connections opened from here on
        # (the store's pools are emptied) report every statement.
        def _trace(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.set_trace_callback(_count)

        for engine in {verifier.store.engine, verifier.store.reader}:
            event.listen(engine, "connect", _trace)
        verifier.store.dispose()

        def guard() -> Guard:
            return Guard(protect=["/account"], revocation_interval=3600.0, verifier=verifier)

        wsgi_guard, asgi_guard = guard(), guard()
        identity = Identity(USER, PHONE)
        cookie = wsgi_guard.signer.issue(identity, int(time.time() * 1000))
        headers = {"X-User": USER, "Cookie": f"{wsgi_guard.cookie_for(False)}={cookie}"}

        def ours_wsgi(app: Any) -> Any:
            return WSGIMiddleware(
                app, protect=["/account"], identify=identify_wsgi, guard=wsgi_guard
            )

        def ours_asgi(app: Any, identify: Any = identify_asgi) -> Any:
            return ASGIMiddleware(app, protect=["/account"], identify=identify, guard=asgi_guard)

        def null_wsgi(environ: Any, start_response: Any) -> list[bytes]:
            start_response("200 OK", [])
            return [b"ok"]

        async def null_asgi(scope: Any, receive: Any, send: Any) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

        # -- WSGI ---------------------------------------------------------------------------
        wsgi = WSGIDriver(wsgi_environ(PATH, headers))
        flask = flask_app(PATH)
        wsgi_variants = {
            "bare": flask,
            "ours": ours_wsgi(flask),
            "null": null_wsgi,
            "ours-null": ours_wsgi(null_wsgi),
        }
        for name, app in wsgi_variants.items():  # also the first revocation refresh
            body = wsgi.check(app)
            assert wsgi.status.startswith("200") and body == b"ok", (name, wsgi.status, body)
        assert queries[0] > 0, "the counter saw no query, not even the revocation refresh"
        before = queries[0]
        wsgi_best = best_of(wsgi_variants, wsgi.time, args.calls, args.rounds)
        wsgi_queries = queries[0] - before

        # -- ASGI ---------------------------------------------------------------------------
        loop = asyncio.new_event_loop()
        try:
            asgi = ASGIDriver(asgi_scope(PATH, headers), loop)
            star = starlette_app(PATH)
            asgi_variants = {
                "bare": star,
                "ours": ours_asgi(star),
                "null": null_asgi,
                "ours-null": ours_asgi(null_asgi),
                "ours-null-sync": ours_asgi(null_asgi, identify_asgi_sync),
            }
            for name, app in asgi_variants.items():
                status, body = asgi.check(app)
                assert status == 200 and body == b"ok", (name, status, body)
            before = queries[0]
            asgi_best = best_of(asgi_variants, asgi.time, args.calls, args.rounds)
            asgi_queries = queries[0] - before
        finally:
            loop.close()

        # -- building blocks ----------------------------------------------------------------
        hmac_s = time_hmac(args.rounds)
        cookie_header = headers["Cookie"]
        verify_s = time_call(
            lambda: wsgi_guard.is_verified(cookie_header, False, identity), args.rounds
        )
        environ = wsgi_environ(PATH, headers)
        werk_s = time_call(
            lambda: identify_wsgi(WerkzeugRequest(environ, shallow=True)), args.rounds
        )
        scope = asgi_scope(PATH, headers)
        star_s = time_call(
            lambda: identify_asgi_sync(StarletteRequest(scope, ASGIDriver.receive)), args.rounds
        )
        assert wsgi_guard.is_verified(cookie_header, False, identity)
        verifier.store.dispose()

    us = 1e6
    hmac_us = hmac_s * us
    print(f"## Verified request cost (protected {PATH!r}, valid verified cookie)\n")
    print(f"Best of {args.rounds} × {args.calls:,} in-process calls. {_common.machine_line()}\n")
    rows = []
    added: dict[str, tuple[float, float]] = {}
    for label, best in (("Flask (WSGI)", wsgi_best), ("Starlette (ASGI)", asgi_best)):
        real_added = (best["ours"] - best["bare"]) * us
        null_added = (best["ours-null"] - best["null"]) * us
        added[label] = (real_added, null_added)
        rows += [
            [label, "bare app", fmt(best["bare"] * us), "–"],
            [label, "app + SMS2FAMiddleware", fmt(best["ours"] * us), fmt(real_added)],
            [label, "null app", fmt(best["null"] * us), "–"],
            [label, "null app + SMS2FAMiddleware", fmt(best["ours-null"] * us), fmt(null_added)],
        ]
    sync_added = (asgi_best["ours-null-sync"] - asgi_best["null"]) * us
    rows.append(
        [
            "Starlette (ASGI)",
            "null app + SMS2FAMiddleware, sync identify (thread)",
            fmt(asgi_best["ours-null-sync"] * us),
            fmt(sync_added),
        ]
    )
    print(table(["app", "variant", "µs / request", "added µs"], rows))

    print("\nBuilding blocks, same run:\n")
    print(
        table(
            ["what", "µs"],
            [
                [
                    "one HMAC-SHA256 (short message) + `hmac.compare_digest` — the unit",
                    fmt(hmac_us),
                ],
                [
                    "`Guard.is_verified` (cookie lookup, HMAC, expiry, revocation dict)",
                    fmt(verify_s * us),
                ],
                [
                    "identify (WSGI): `werkzeug.Request(environ, shallow=True)` + X-User header",
                    fmt(werk_s * us),
                ],
                [
                    "identify (ASGI): `starlette.Request(scope, receive)` + x-user header",
                    fmt(star_s * us),
                ],
            ],
        )
    )

    print(
        f"\nTarget: added cost ≤ {TARGET_HMACS} HMAC verifications "
        f"({TARGET_HMACS} × {fmt(hmac_us)} = {fmt(TARGET_HMACS * hmac_us)} µs here); "
        "no DB query on this path.\n"
    )
    summary = []
    for (label, (real_added, null_added)), n_queries, identify_us in zip(
        added.items(), (wsgi_queries, asgi_queries), (werk_s * us, star_s * us)
    ):
        without = null_added - identify_us
        summary.append(
            [
                label,
                fmt(real_added),
                fmt(null_added),
                f"{null_added / hmac_us:.1f}",
                verdict(null_added <= TARGET_HMACS * hmac_us),
                f"{fmt(without)} ({without / hmac_us:.1f})",
                f"{n_queries} ({verdict(n_queries == 0)})",
            ]
        )
    print(
        table(
            [
                "adapter",
                "added µs (real app)",
                "added µs (null app)",
                "in HMACs (null app)",
                f"≤ {TARGET_HMACS} HMACs",
                "null-app added minus identify µs (HMACs)",
                "DB queries in timed loops",
            ],
            summary,
        )
    )
    print(
        "\n_Added cost includes `identify` and the framework request object the adapter builds "
        "for it; the verdict uses the null-app figure (the real-app one carries the apps' "
        'run-to-run noise). "minus identify" subtracts the identify building block above: '
        "what the middleware's own code costs._"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
