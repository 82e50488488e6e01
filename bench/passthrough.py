"""Pass-through cost: what the middleware adds to a request it has nothing to do with.

A trivial Flask app (WSGI) and a trivial Starlette app (ASGI) are called in-process on a path
that is neither protected nor under the prefix: bare, behind a no-op pure wrapper (the floor:
one path check, then call the app), and behind ``SMS2FAMiddleware``. Best of N rounds of M
calls each (default 5 x 20,000), the variants interleaved so drift hits them alike.

Target: our added cost <= 1.5x the no-op wrapper's added cost.

Because the added costs are a fraction of a microsecond on top of 10-60 us, the same wrappers
are also timed around a null app (returns at once): the same quantity, far less noise.

    python bench/passthrough.py [--calls 20000] [--rounds 5]
"""

# ruff: noqa: RUF001  (the tables print multiplication signs and en dashes on purpose)

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
from pathlib import Path
from typing import Any

import _common
from _common import SECRET_KEY, fmt, table, verdict
from _inprocess import (
    PATH,
    ASGIDriver,
    NoopASGI,
    NoopWSGI,
    WSGIDriver,
    asgi_scope,
    best_of,
    flask_app,
    starlette_app,
    wsgi_environ,
)

TARGET = 1.5


def rows_for(label: str, best: dict[str, float]) -> tuple[list[list[str]], float]:
    bare, noop, ours = best["bare"] * 1e6, best["noop"] * 1e6, best["ours"] * 1e6
    noop_added, ours_added = noop - bare, ours - bare
    ratio = ours_added / noop_added if noop_added > 0 else float("inf")
    rows = [
        [label, "bare", fmt(bare), "–", "1.00×"],
        [label, "no-op pure wrapper (floor)", fmt(noop), fmt(noop_added, 3), f"{noop / bare:.3f}×"],
        [label, "SMS2FAMiddleware", fmt(ours), fmt(ours_added, 3), f"{ours / bare:.3f}×"],
    ]
    return rows, ratio


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    logging.getLogger("sms2fa").setLevel(logging.ERROR)  # the console backend's warning

    from sms2fa_middleware import Settings
    from sms2fa_middleware.asgi import SMS2FAMiddleware as ASGIMiddleware
    from sms2fa_middleware.wsgi import SMS2FAMiddleware as WSGIMiddleware

    with tempfile.TemporaryDirectory(prefix="sms2fa-bench-") as tmp:
        settings = Settings(
            secret_key=(SECRET_KEY,),
            sms_backend="console",
            database_url=f"sqlite:///{Path(tmp) / 'bench.db'}",
        )

        def ours_wsgi(app: Any) -> Any:
            return WSGIMiddleware(app, settings, protect=["/account"], identify=lambda r: None)

        def ours_asgi(app: Any) -> Any:
            return ASGIMiddleware(app, settings, protect=["/account"], identify=lambda r: None)

        # -- WSGI / Flask -------------------------------------------------------------------
        wsgi = WSGIDriver(wsgi_environ(PATH))
        flask = flask_app()
        wsgi_variants = {"bare": flask, "noop": NoopWSGI(flask), "ours": ours_wsgi(flask)}
        for name, app in wsgi_variants.items():
            body = wsgi.check(app)
            assert wsgi.status.startswith("200") and body == b"ok", (name, wsgi.status, body)
        wsgi_best = best_of(wsgi_variants, wsgi.time, args.calls, args.rounds)

        def null_wsgi(environ: Any, start_response: Any) -> list[bytes]:
            start_response("200 OK", [])
            return [b"ok"]

        wsgi_null = best_of(
            {"bare": null_wsgi, "noop": NoopWSGI(null_wsgi), "ours": ours_wsgi(null_wsgi)},
            wsgi.time,
            args.calls * 5,
            args.rounds,
        )

        # -- ASGI / Starlette ---------------------------------------------------------------
        loop = asyncio.new_event_loop()
        try:
            asgi = ASGIDriver(asgi_scope(PATH), loop)
            star = starlette_app()
            asgi_variants = {"bare": star, "noop": NoopASGI(star), "ours": ours_asgi(star)}
            for name, app in asgi_variants.items():
                status, body = asgi.check(app)
                assert status == 200 and body == b"ok", (name, status, body)
            asgi_best = best_of(asgi_variants, asgi.time, args.calls, args.rounds)

            async def null_asgi(scope: Any, receive: Any, send: Any) -> None:
                return None

            asgi_null = best_of(
                {"bare": null_asgi, "noop": NoopASGI(null_asgi), "ours": ours_asgi(null_asgi)},
                asgi.time,
                args.calls * 5,
                args.rounds,
            )
        finally:
            loop.close()

    print(f"## Pass-through cost (path {PATH!r}: not protected, not under the prefix)\n")
    print(f"Best of {args.rounds} × {args.calls:,} in-process calls. {_common.machine_line()}\n")
    rows: list[list[str]] = []
    ratios: dict[str, float] = {}
    for label, best in (("Flask (WSGI)", wsgi_best), ("Starlette (ASGI)", asgi_best)):
        more, ratios[label] = rows_for(label, best)
        rows += more
    print(table(["app", "variant", "µs / request", "added µs", "vs bare"], rows))

    print(
        f"\nThe same wrappers around a null app (best of {args.rounds} × "
        f"{args.calls * 5:,}): the added cost alone, with little noise.\n"
    )
    rows = []
    null_ratios: dict[str, float] = {}
    for label, best in (("null WSGI app", wsgi_null), ("null ASGI app", asgi_null)):
        more, null_ratios[label] = rows_for(label, best)
        rows += more
    print(table(["app", "variant", "µs / request", "added µs", "vs bare"], rows))

    print(f"\nTarget: our added cost ≤ {TARGET}× the no-op wrapper's added cost.\n")
    summary = []
    for (label, ratio), (null_label, null_ratio) in zip(ratios.items(), null_ratios.items()):
        summary.append(
            [label, f"{ratio:.2f}×", f"{null_ratio:.2f}×", verdict(null_ratio <= TARGET)]
        )
    print(
        table(
            [
                "adapter",
                "ours/no-op added (real app)",
                "ours/no-op added (null app)",
                "target ≤ 1.5×",
            ],
            summary,
        )
    )
    print(
        "\n_The verdict follows the null-app ratio: on the real apps both added costs are a "
        "fraction of a microsecond on top of 10-60 µs, within run-to-run noise (a negative or "
        "infinite ratio there means exactly that)._"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
