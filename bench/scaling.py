"""Scaling with data: check latency with 1,000 and with 1,000,000 pending codes in the store.

Engine level, in-process: ``Verifier.check`` with a wrong code on a pending id, and with an
unknown id. Two stores side by side -- one holding 1,000 pending codes (the floor), one
holding 1,000,000 -- measured in alternating rounds of 50 checks so that machine noise hits
both alike (each round on new connections: see measure()). The rows are
written in one ``INSERT ... SELECT`` over a recursive CTE. Every answer is checked
(InvalidAuthCode / UnknownAuthId).

Target: latency with 1,000,000 codes <= 1.25x latency with 1,000 (median).

SQLite (a WAL file) always; PostgreSQL too when reachable (``SMS2FA_BENCH_POSTGRES_URL``, each
store in a private schema dropped afterwards), unless ``--no-postgres``.

    python bench/scaling.py [--big 1000000] [--samples 2000] [--no-postgres]
"""

# ruff: noqa: RUF001  (the tables print multiplication signs and en dashes on purpose)

from __future__ import annotations

import argparse
import logging
import os
import random
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import _common
from _common import SECRET_KEY, fmt, median, percentile, table, verdict

SMALL = 1_000
TARGET = 1.25
STORED_CODE, WRONG_GUESS = "111111", "000000"
ATTEMPTS = 20
ROUND_SIZE = 50  # checks per store before switching to the other one


def fill(verifier: Any, count: int) -> float:
    """Write ``count`` live codes p-0 .. p-(count-1) in one statement; seconds taken."""
    from sqlalchemy import Integer, String, bindparam, cast, literal, select

    from sms2fa_middleware.engine.codes import digest
    from sms2fa_middleware.store import UTCDateTime, codes

    now = datetime.now(timezone.utc)
    seq = select(literal(0, Integer).label("i")).cte("seq", recursive=True)
    seq = seq.union_all(select(seq.c.i + 1).where(seq.c.i < count - 1))
    rows = select(
        literal("p-", String) + cast(seq.c.i, String),
        literal("+12065550100", String),
        # One digest for every row: a wrong guess costs the same whichever row it meets.
        literal(digest(STORED_CODE, "p-0", SECRET_KEY), String),
        literal(ATTEMPTS, Integer),
        bindparam("now", now, type_=UTCDateTime),
        bindparam("expires", now + timedelta(hours=1), type_=UTCDateTime),
    )
    stmt = codes.insert().from_select(
        ["auth_id", "recipient", "digest", "attempts_left", "created_at", "expires_at"],
        rows,
    )
    t0 = time.perf_counter()
    verifier.store.run(lambda conn: conn.execute(stmt))
    if verifier.store.dialect == "postgresql":
        verifier.store.run(lambda conn: conn.exec_driver_sql("ANALYZE sms2fa_codes"))
    else:
        verifier.store.run(lambda conn: conn.exec_driver_sql("ANALYZE"))
    elapsed = time.perf_counter() - t0
    assert verifier.store.count_codes() == count, verifier.store.count_codes()
    return elapsed


class Probe:
    """One store under test: its verifier, its ids, its samples."""

    def __init__(self, verifier: Any, size: int, seed: int) -> None:
        self.verifier = verifier
        self.size = size
        self.rng = random.Random(seed)
        self.used: dict[int, int] = {}
        self.unknown_counter = 0
        self.samples: dict[str, list[float]] = {"wrong": [], "unknown": []}

    def _pending_id(self) -> str:
        while True:
            n = self.rng.randrange(self.size)
            if self.used.get(n, 0) < ATTEMPTS - 2:  # never let a code run out mid-run
                self.used[n] = self.used.get(n, 0) + 1
                return f"p-{n}"

    def wrong(self, record: bool = True) -> None:
        from sms2fa_middleware import InvalidAuthCode

        auth_id = self._pending_id()
        t0 = time.perf_counter()
        try:
            self.verifier.check(auth_id, WRONG_GUESS)
        except InvalidAuthCode:
            elapsed = time.perf_counter() - t0
        else:
            raise AssertionError("a wrong code was accepted")
        if record:
            self.samples["wrong"].append(elapsed)

    def unknown(self, record: bool = True) -> None:
        from sms2fa_middleware import UnknownAuthId

        self.unknown_counter += 1
        auth_id = f"nobody-{os.getpid()}-{self.size}-{self.unknown_counter}"
        t0 = time.perf_counter()
        try:
            self.verifier.check(auth_id, WRONG_GUESS)
        except UnknownAuthId:
            elapsed = time.perf_counter() - t0
        else:
            raise AssertionError("an unknown id was accepted")
        if record:
            self.samples["unknown"].append(elapsed)


def measure(small: Probe, big: Probe, samples: int) -> None:
    done = 0
    while done < samples:
        size = min(ROUND_SIZE, samples - done)
        for probe in (small, big):
            # New connections each round: on PostgreSQL a server process that happens to
            # share this process's CPU answers in half the time of one on the other CPU, and
            # that placement holds for a connection's life. Fresh ones average it out.
            probe.verifier.store.dispose()
            for _ in range(10):  # warm up the new connection (psycopg prepares at 5 uses)
                probe.wrong(record=False)
                probe.unknown(record=False)
            for _ in range(size):
                probe.wrong()
            for _ in range(size):
                probe.unknown()
        done += size


@contextmanager
def sqlite_urls(tmp: Path) -> Iterator[tuple[str, str]]:
    yield f"sqlite:///{tmp / 'small.db'}", f"sqlite:///{tmp / 'big.db'}"


@contextmanager
def postgres_urls(url: str) -> Iterator[tuple[str, str]]:
    with ExitStack() as stack:
        small = stack.enter_context(_common.postgres_schema(url, f"sms2fa_scale_s_{os.getpid()}"))
        big = stack.enter_context(_common.postgres_schema(url, f"sms2fa_scale_b_{os.getpid()}"))
        yield small, big


def run_backend(
    name: str, urls: tuple[str, str], big_size: int, samples: int
) -> tuple[list[list[str]], list[str], dict[str, float]]:
    from sms2fa_middleware import Settings, Verifier

    probes = []
    fill_times = []
    for url, size in zip(urls, (SMALL, big_size)):
        settings = Settings(
            secret_key=(SECRET_KEY,),
            sms_backend="console",
            database_url=url,
            max_failed_checks=100,
            retries_allowed=ATTEMPTS,
        )
        verifier = Verifier(settings)
        verifier.create_schema()
        fill_times.append(fill(verifier, size))
        probes.append(Probe(verifier, size, seed=size))
    small, big = probes
    measure(small, big, samples)
    for probe in probes:
        probe.verifier.store.dispose()

    rows = []
    ratios = {}
    for kind, label in (
        ("wrong", "check, wrong code on a pending id"),
        ("unknown", "check, unknown id"),
    ):
        s, b = small.samples[kind], big.samples[kind]
        ratio = median(b) / median(s)
        ratios[kind] = ratio
        rows.append(
            [
                name,
                label,
                f"{fmt(median(s) * 1e3, 3)} / {fmt(percentile(s, 99) * 1e3, 3)}",
                f"{fmt(median(b) * 1e3, 3)} / {fmt(percentile(b, 99) * 1e3, 3)}",
                f"{ratio:.2f}×",
                f"{percentile(b, 99) / percentile(s, 99):.2f}×",
                verdict(ratio <= TARGET),
            ]
        )
    fills = [
        f"{name}: filled {SMALL:,} codes in {fill_times[0]:.3f} s and {big_size:,} in "
        f"{fill_times[1]:.1f} s"
    ]
    return rows, fills, ratios


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument(
        "--samples", type=int, default=2000, help="timed checks per kind and store (default 2000)"
    )
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    logging.getLogger("sms2fa").setLevel(logging.ERROR)

    rows: list[list[str]] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="sms2fa-bench-") as tmp:
        with sqlite_urls(Path(tmp)) as urls:
            more, fills, _ = run_backend("SQLite (WAL file)", urls, args.big, args.samples)
            rows += more
            notes += fills
        pg = _common.postgres_or_note(args.no_postgres, notes)
        if pg is not None:
            with postgres_urls(pg) as urls:
                more, fills, _ = run_backend("PostgreSQL", urls, args.big, args.samples)
                rows += more
                notes += fills

    print(f"## Scaling with data: {SMALL:,} vs {args.big:,} pending codes\n")
    print(
        f"`Verifier.check` in-process, {args.samples:,} timed checks per kind and store in "
        f"alternating rounds of {ROUND_SIZE}. {_common.machine_line()}\n"
    )
    print(
        table(
            [
                "store",
                "check",
                f"{SMALL:,} codes: p50 / p99 ms (floor)",
                f"{args.big:,} codes: p50 / p99 ms",
                "p50 ratio",
                "p99 ratio",
                f"target p50 ≤ {TARGET}×",
            ],
            rows,
        )
    )
    for note in notes:
        print(f"\n_{note}_")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
