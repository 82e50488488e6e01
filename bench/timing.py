"""Timing as an oracle: does a check take longer for an auth_id with a live code?

With uniform errors on, an unknown, a locked and a live auth_id answer alike (a 400 "Invalid or
expired code"); this measures whether their *time* differs. The API in-process (the sans-IO
``VerificationAPI.handle``, JSON and all, as the service runs it), a wrong code against:

* unknown -- an auth_id that never had a code;
* locked  -- one with a live code whose failed-check count is spent;
* live    -- one with a live code and attempts left (each probe on a new id, so none locks).

The three kinds are probed interleaved in a random order (drift and noise hit them alike),
each probe on its own auth_id, from one client address (the per-address check budget is on,
with room for every probe). Target, uniform mode: no median differs from another by more
than 5%. The same run with uniform errors off is shown for comparison (there an unknown id is
answered from a read: its answer says "unknown" anyway).

SQLite (a WAL file) always; PostgreSQL too when reachable (``SMS2FA_BENCH_POSTGRES_URL``, in a
private schema dropped afterwards), unless ``--no-postgres``.

    python bench/timing.py [--probes 2000] [--no-postgres]
"""

# ruff: noqa: RUF001  (the tables print multiplication signs on purpose)

from __future__ import annotations

import argparse
import gc
import json
import logging
import random
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import _common
from _common import SECRET_KEY, fmt, median, table, verdict

KINDS = ("unknown", "locked", "live")
TARGET = 0.05
STORED_CODE, WRONG_GUESS = "111111", "000000"
NUMBER = "+12065550100"
MAX_FAILED = 10


def build(database_url: str, uniform: bool) -> Any:
    from sms2fa_middleware import Settings, Verifier
    from sms2fa_middleware.api.verification import VerificationAPI

    settings = Settings(
        secret_key=SECRET_KEY,
        database_url=database_url,
        sms_backend="console",
        uniform_errors=uniform,
        max_failed_checks=MAX_FAILED,
        address_check_limit=1_000_000,
        resend_cooldown=0,
    )
    verifier = Verifier(settings)
    verifier.create_schema()
    return verifier, VerificationAPI(verifier)


def prepare(verifier: Any, prefix: str, probes: int) -> None:
    """Live codes for the locked and live ids; the locked ones' failures spent."""
    from sms2fa_middleware.engine.codes import digest
    from sms2fa_middleware.store import CodeRow

    now = datetime.now(timezone.utc)
    expires = now + timedelta(minutes=30)
    for kind in ("locked", "live"):
        for i in range(probes):
            auth_id = f"{prefix}{kind}-{i}"
            verifier.store.put_code(
                CodeRow(auth_id, NUMBER, digest(STORED_CODE, auth_id, SECRET_KEY), 3, expires), now
            )
            if kind == "locked":
                verifier.store.hit(f"failed:{auth_id}", 3600, now, amount=MAX_FAILED)


def probe(api: Any, auth_id: str) -> int:
    from sms2fa_middleware.messages import Request

    body = json.dumps({"auth_id": auth_id, "code": WRONG_GUESS}).encode()
    request = Request(
        "POST",
        "/check",
        headers={"content-type": "application/json"},
        body=body,
        client="198.51.100.7",
    )
    started = time.perf_counter_ns()
    response = api.handle(request, "/check")
    took = time.perf_counter_ns() - started
    assert response.status in (400, 429), response.body  # never verified, never a 5xx
    return took


def measure(database_url: str, uniform: bool, probes: int, prefix: str) -> dict[str, float]:
    """Median microseconds per kind."""
    verifier, api = build(database_url, uniform)
    try:
        prepare(verifier, prefix, probes)
        order = [(kind, i) for kind in KINDS for i in range(probes)]
        random.Random(7).shuffle(order)
        for i in range(200):  # warm-up: connections, caches, code paths
            probe(api, f"{prefix}warm-{i}")
        samples: dict[str, list[float]] = {kind: [] for kind in KINDS}
        gc.collect()
        gc.disable()
        try:
            for kind, i in order:
                samples[kind].append(probe(api, f"{prefix}{kind}-{i}") / 1000)
        finally:
            gc.enable()
        return {kind: median(values) for kind, values in samples.items()}
    finally:
        verifier.store.dispose()


def spread(medians: dict[str, float]) -> float:
    return max(medians.values()) / min(medians.values()) - 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=2000, help="probes per kind")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    logging.getLogger("sms2fa").setLevel(logging.ERROR)

    notes: list[str] = []
    rows = []
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        backends = [("SQLite", f"sqlite:///{Path(tmp) / 'timing.db'}")]
        pg = _common.postgres_or_note(args.no_postgres, notes)
        stack = []
        if pg is not None:
            schema = _common.postgres_schema(pg, "sms2fa_bench_timing")
            stack.append(schema)
            backends.append(("PostgreSQL", schema.__enter__()))
        try:
            for name, url in backends:
                for uniform in (True, False):
                    prefix = f"{'u' if uniform else 'n'}-"
                    medians = measure(url, uniform, args.probes, prefix)
                    worst = spread(medians)
                    met = worst <= TARGET
                    if uniform:
                        ok &= met
                    rows.append(
                        [
                            name,
                            "on" if uniform else "off (reference)",
                            *(fmt(medians[k], 0) for k in KINDS),
                            f"{worst * 100:.1f}%",
                            verdict(met) if uniform else "–",
                        ]
                    )
        finally:
            for schema in stack:
                schema.__exit__(None, None, None)
    print(f"### Check timing by auth_id state ({args.probes:,} probes per kind, median µs)\n")
    print(
        table(
            [
                "store",
                "uniform errors",
                "unknown",
                "locked",
                "live",
                "largest difference",
                f"≤ {TARGET:.0%}",
            ],
            rows,
        )
    )
    print()
    for note in notes:
        print(f"_{note}_\n")
    print(_common.machine_line())
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
