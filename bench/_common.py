"""Shared helpers for the benchmark scripts (not a test module; nothing here is timed)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent

# Run from a fresh checkout without installing: the package is one directory up, and the
# tests' server helpers (tests/support) beside it.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.servers import free_port as free_port  # noqa: E402  (re-exported)
from tests.support.servers import wait_until_up as wait_until_up  # noqa: E402

SECRET_KEY = "bench-secret-key-" + "x" * 32
POSTGRES_URL_ENV = "SMS2FA_BENCH_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table; numbers right-aligned by the renderer, text as given."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(cells[0], widths)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    for row in cells[1:]:
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")
    return "\n".join(lines)


def fmt(value: float, digits: int = 2) -> str:
    return f"{value:,.{digits}f}"


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**MISSED**"


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (pct in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


@contextmanager
def running(
    cmd: list[str], env: Mapping[str, str], probe_url: str, cwd: str | Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``cmd`` (output to /dev/null) until the block ends; wait for ``probe_url`` first."""
    process = subprocess.Popen(
        cmd,
        env={**os.environ, **env},
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_until_up(probe_url, process, timeout=60)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def postgres_url() -> str:
    return os.environ.get(POSTGRES_URL_ENV, DEFAULT_POSTGRES_URL)


def postgres_or_note(skip: bool, notes: list[str]) -> str | None:
    """The PostgreSQL URL to measure, or None with the reason added to ``notes``."""
    if skip:
        notes.append("PostgreSQL skipped (--no-postgres).")
        return None
    url = postgres_url()
    why = postgres_reachable(url)
    if why is not None:
        notes.append(f"PostgreSQL skipped: {url.split('@')[-1]} unreachable ({why}).")
        return None
    return url


def postgres_reachable(url: str) -> str | None:
    """None if PostgreSQL at ``url`` answers, else why not (one line)."""
    try:
        from sqlalchemy import create_engine, text

        engine = create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # any failure means: skip PostgreSQL
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"


@contextmanager
def postgres_schema(url: str, name: str) -> Iterator[str]:
    """A private schema for one run, so the bench never touches the tests' tables.

    Yields a URL whose connections use it (libpq ``options=-csearch_path=...``); drops it after.
    """
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
        conn.execute(text(f'CREATE SCHEMA "{name}"'))
    scoped = make_url(url).update_query_dict({"options": f"-csearch_path={name}"})
    try:
        yield scoped.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
        admin.dispose()


def machine_line() -> str:
    import platform

    try:
        load = " load average {:.2f} {:.2f} {:.2f},".format(*os.getloadavg())
    except OSError:
        load = ""
    return (
        f"_{platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPU(s),{load} {platform.machine()}_"
    )
