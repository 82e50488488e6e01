"""Service throughput: ``sms2fa serve --workers 4`` under wrk, on SQLite and on PostgreSQL.

Load: ``wrk -t2 -c16 -d10s`` with one Lua script per workload, beside the original service's
figures (measured on this machine kind) and a 10x target; the floor -- a trivial Starlette JSON
endpoint under ``uvicorn --workers 4``, same load -- is measured in the same run.

Workloads (every answer is checked in Lua: status *and* reason):

* create: ``POST /`` with random auth_ids and random valid numbers 1206555 0100-0199 -> 200;
* check, unknown id: ``GET /?auth_id=<never created>&code=123456`` -> 400 UnknownAuthId;
* check, wrong code on a pending id: ids pre-created with 20 attempts (the maximum), spread so
  that none runs out during the run -> 400 InvalidAuthCode;
* check, right code: ids pre-created with a known code, each consumed once -> 200.

The SMS sender costs nothing: the console backend, its stderr sent to /dev/null. Send budgets
are off (the create workload would hit them at once) and max failed checks is at its maximum.
Pending ids are written straight into the store's table (the same digest and key the server
uses), not through HTTP. PostgreSQL runs in a private schema that is dropped afterwards; it is
skipped, with a note, when unreachable.

    python bench/service.py [--duration 10] [--no-postgres]
    SMS2FA_BENCH_DURATION=3 python bench/service.py          # a quick run
    SMS2FA_BENCH_POSTGRES_URL=postgresql+psycopg://... python bench/service.py
"""

# ruff: noqa: RUF001  (the tables print multiplication signs and en dashes on purpose)

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from typing import Any

import _common
from _common import BENCH_DIR, ROOT, SECRET_KEY, fmt, table, verdict

THREADS, CONNECTIONS, WORKERS = 2, 16, 4
RIGHT_CODE, WRONG_GUESS, STORED_WRONG = "123456", "000000", "111111"
MAX_RETRIES = 20  # the most attempts a code can have (engine limit)

# The original service (gunicorn -w 4, sync workers, no-op SMS), measured on this machine kind.
ORIGINAL = {"create": (480, 29, 361), "unknown": (1450, 11, 16), "wrong": (430, 32, 387)}
LABELS = {
    "floor": "floor: trivial Starlette JSON endpoint, uvicorn --workers 4",
    "create": "create (POST /)",
    "unknown": "check, unknown id",
    "wrong": "check, wrong code on a pending id",
    "right": "check, right code (consumed once)",
}

LUA_COMMON = r"""
local threads = {}
local T = %(threads)d

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

ok, bad, s5xx, n = 0, 0, 0, 0
first_bad = nil

function init(args)
  math.randomseed(os.time() * 1000 + tid * 7919 + math.floor(os.clock() * 1000000))
  tag = string.format("%%d%%06x", tid, math.random(0, 0xffffff))
end

function response(status, headers, body)
  if status == EXPECT_STATUS
     and (EXPECT_TEXT == nil or string.find(body, EXPECT_TEXT, 1, true)) then
    ok = ok + 1
  else
    bad = bad + 1
    if status >= 500 then s5xx = s5xx + 1 end
    if first_bad == nil then first_bad = status .. " " .. string.sub(body or "", 1, 160) end
  end
end

function done(summary, latency, requests)
  local okc, badc, s5, sample = 0, 0, 0, ""
  for _, t in ipairs(threads) do
    okc = okc + t:get("ok")
    badc = badc + t:get("bad")
    s5 = s5 + t:get("s5xx")
    local fb = t:get("first_bad")
    if fb then sample = fb end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%%d,"duration_us":%%d,"ok":%%d,"bad":%%d,"s5xx":%%d,' ..
    '"connect":%%d,"read":%%d,"write":%%d,"timeout":%%d,' ..
    '"p50":%%d,"p90":%%d,"p99":%%d,"max":%%d}\n',
    summary.requests, summary.duration, okc, badc, s5, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
  io.write("BENCH_SAMPLE " .. string.gsub(sample, "\n", " ") .. "\n")
end
"""

# Checks on ids <prefix>0 .. <prefix>(N-1), created before the run.
PENDING_IDS = r"""
local N = %%(count)d
local i = -1
function request()
  i = i + 1
  local id = (tid + T * i) %%%% N
  return wrk.format("GET", string.format("/?auth_id=%(prefix)s%%%%d&code=%(code)s", id))
end
"""

LUA_WORKLOADS = {
    # No request(): wrk sends its prebuilt GET; any 200 with a JSON body is fine.
    "floor": r"""
EXPECT_STATUS, EXPECT_TEXT = 200, '"ok"'
""",
    "create": r"""
EXPECT_STATUS, EXPECT_TEXT = 200, "Verification code created"
local k = 0
local headers = {["Content-Type"] = "application/json"}
function request()
  k = k + 1
  local body = string.format('{"auth_id":"c%s-%d","recipient":"1206555%04d"}',
                             tag, k, 100 + math.random(0, 99))
  return wrk.format("POST", "/", headers, body)
end
""",
    "unknown": r"""
EXPECT_STATUS, EXPECT_TEXT = 400, "UnknownAuthId"
local k = 0
function request()
  k = k + 1
  return wrk.format("GET", string.format("/?auth_id=u%%s-%%d&code=%(right)s", tag, k))
end
""",
    # Ids w-0 .. w-(N-1): thread t walks t, t+T, t+2T, ... and wraps; N is large enough that no
    # id takes more than its attempts.
    "wrong": r"""
EXPECT_STATUS, EXPECT_TEXT = 400, "InvalidAuthCode"
"""
    + PENDING_IDS % {"prefix": "w-", "code": WRONG_GUESS},
    # Ids r-0 .. r-(N-1), each asked once (a wrap would be counted as an error).
    "right": r"""
EXPECT_STATUS, EXPECT_TEXT = 200, '"authenticated":true'
"""
    + PENDING_IDS % {"prefix": "r-", "code": RIGHT_CODE},
}


@dataclass
class Result:
    workload: str
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    unexpected: int
    socket_errors: int
    timeouts: int
    s5xx: int
    sample: str


def lua_script(workload: str, directory: Path, count: int = 0) -> Path:
    values = {"threads": THREADS, "count": count, "right": RIGHT_CODE, "wrong": WRONG_GUESS}
    text = LUA_COMMON % values
    body = LUA_WORKLOADS[workload]
    text += (body % values) if "%(" in body else body
    path = directory / f"{workload}.lua"
    path.write_text(text)
    return path


def run_wrk(url: str, script: Path, duration: float, workload: str) -> Result:
    cmd = [
        "wrk",
        f"-t{THREADS}",
        f"-c{CONNECTIONS}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "2s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("BENCH ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stdout}\n{proc.stderr}")
    data = json.loads(line[len("BENCH ") :])
    sample = next(
        (
            x[len("BENCH_SAMPLE ") :]
            for x in proc.stdout.splitlines()
            if x.startswith("BENCH_SAMPLE ")
        ),
        "",
    )
    socket_errors = data["connect"] + data["read"] + data["write"] + data["timeout"]
    return Result(
        workload=workload,
        rps=data["requests"] / (data["duration_us"] / 1e6),
        p50_ms=data["p50"] / 1000,
        p99_ms=data["p99"] / 1000,
        requests=data["requests"],
        unexpected=data["bad"],
        socket_errors=socket_errors,
        timeouts=data["timeout"],
        s5xx=data["s5xx"],
        sample=sample.strip(),
    )


def insert_pending(database_url: str, prefix: str, count: int, code: str, attempts: int) -> float:
    """Write ``count`` live codes ``<prefix>0..`` straight into the store; seconds taken."""
    from sms2fa_middleware.engine.codes import digest
    from sms2fa_middleware.store import Store, codes

    t0 = time.perf_counter()
    store = Store(database_url)
    store.create_schema()
    now = datetime.now(timezone.utc)
    expires = now + timedelta(seconds=3600)
    chunk = 5000
    for start in range(0, count, chunk):
        rows = [
            {
                "auth_id": f"{prefix}{i}",
                "recipient": "+12065550100",
                "digest": digest(code, f"{prefix}{i}", SECRET_KEY),
                "attempts_left": attempts,
                "created_at": now,
                "expires_at": expires,
                "message_id": None,
            }
            for i in range(start, min(count, start + chunk))
        ]
        store.run(partial(_insert, codes, rows))
    store.dispose()
    return time.perf_counter() - t0


def _insert(table: Any, rows: list[dict[str, Any]], conn: Any) -> None:
    conn.execute(table.insert(), rows)


def server_env(database_url: str) -> dict[str, str]:
    return {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "SMS2FA_SECRET_KEY": SECRET_KEY,
        "SMS2FA_DATABASE_URL": database_url,
        "SMS2FA_SMS_BACKEND": "console",  # writes to stderr, which goes to /dev/null
        "SMS2FA_RECIPIENT_SEND_LIMIT": "0",
        "SMS2FA_ADDRESS_SEND_LIMIT": "0",
        "SMS2FA_GLOBAL_SEND_LIMIT": "0",
        "SMS2FA_RESEND_COOLDOWN": "0",
        "SMS2FA_ADDRESS_CHECK_LIMIT": "0",  # every request comes from 127.0.0.1
        "SMS2FA_MAX_FAILED_CHECKS": "100",
        "SMS2FA_RETRIES_ALLOWED": str(MAX_RETRIES),
    }


def measure_floor(duration: float, tmp: Path) -> Result:
    port = _common.free_port()
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "--app-dir",
        str(BENCH_DIR),
        "_apps:floor_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(WORKERS),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    url = f"http://127.0.0.1:{port}/"
    with _common.running(cmd, {}, url, cwd=ROOT):
        run_wrk(url, lua_script("floor", tmp), min(2, duration), "floor")  # warm-up
        return run_wrk(url, lua_script("floor", tmp), duration, "floor")


def measure_service(database_url: str, duration: float, tmp: Path) -> list[Result]:
    """Start ``sms2fa serve --workers 4`` on ``database_url`` and run every workload."""
    from sms2fa_middleware.store import Store

    store = Store(database_url)
    store.create_schema()
    store.dispose()
    n_wrong = max(20_000, int(2_000 * duration))
    insert_pending(database_url, "w-", n_wrong, STORED_WRONG, MAX_RETRIES)

    port = _common.free_port()
    cmd = [
        sys.executable,
        "-m",
        "sms2fa_middleware",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(WORKERS),
    ]
    url = f"http://127.0.0.1:{port}/"
    results = []
    with _common.running(cmd, server_env(database_url), url + "openapi.json", cwd=ROOT):
        run_wrk(url, lua_script("unknown", tmp), min(2, duration), "unknown")  # warm-up
        for workload in ("create", "unknown", "wrong"):
            results.append(run_wrk(url, lua_script(workload, tmp, n_wrong), duration, workload))
        # Enough right codes for the fastest rate seen, with room to spare: each is used once.
        fastest = max(r.rps for r in results)
        n_right = max(20_000, int(fastest * duration * 2))
        insert_pending(database_url, "r-", n_right, RIGHT_CODE, 3)
        results.append(run_wrk(url, lua_script("right", tmp, n_right), duration, "right"))
    return results


def render(backend: str, results: list[Result], floor: Result) -> tuple[str, list[str]]:
    rows = []
    misses = []
    for r in results:
        original = ORIGINAL.get(r.workload)
        target = original[0] * 10 if original else None
        errors = r.unexpected + r.socket_errors
        met = (target is None or r.rps >= target) and r.s5xx == 0 and errors == 0
        if target is not None and r.rps < target:
            misses.append(
                f"{backend}: {LABELS[r.workload]} {fmt(r.rps, 0)} req/s < {target:,} req/s"
            )
        if r.unexpected or r.s5xx:
            misses.append(
                f"{backend}: {LABELS[r.workload]}: {r.unexpected} unexpected answers, "
                f"{r.s5xx} of them 5xx (first: {r.sample or '-'})"
            )
        if r.socket_errors:
            misses.append(
                f"{backend}: {LABELS[r.workload]}: {r.socket_errors} socket errors, "
                f"{r.timeouts} of them timeouts (no answer within wrk's 2 s)"
            )
        rows.append(
            [
                LABELS[r.workload],
                fmt(r.rps, 0),
                fmt(r.p50_ms, 1),
                fmt(r.p99_ms, 1),
                f"{r.unexpected} / {r.socket_errors}",
                str(r.s5xx),
                f"{100 * r.rps / floor.rps:.1f}%",
                f"{original[0]:,} / {original[1]} / {original[2]}" if original else "–",
                f"{r.rps / original[0]:.1f}×" if original else "–",
                f"{target:,}" if target else "–",
                verdict(met) if target else ("ok" if met else "**errors**"),
            ]
        )
    headers = [
        "workload",
        "req/s",
        "p50 ms",
        "p99 ms",
        "unexpected / socket errors",
        "5xx",
        "of floor",
        "original req/s / p50 / p99",
        "× original",
        "10× target req/s",
        "target",
    ]
    return f"### {backend}\n\n" + table(headers, rows), misses


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--duration",
        type=float,
        default=float(os.environ.get("SMS2FA_BENCH_DURATION", "10")),
        help="seconds per wrk run (default 10, or $SMS2FA_BENCH_DURATION)",
    )
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (Debian: apt-get install wrk); cannot run this benchmark.")
        return 2

    notes = []
    sections = []
    misses: list[str] = []
    with tempfile.TemporaryDirectory(prefix="sms2fa-bench-") as tmp_name:
        tmp = Path(tmp_name)
        floor = measure_floor(args.duration, tmp)
        sqlite_url = f"sqlite:///{tmp / 'service.db'}"
        backends: list[tuple[str, str, str | None]] = [("SQLite (WAL file)", sqlite_url, None)]
        pg = _common.postgres_or_note(args.no_postgres, notes)
        if pg is not None:
            backends.append(("PostgreSQL", pg, f"sms2fa_bench_{os.getpid()}"))
        for name, url, schema in backends:
            if schema is None:
                results = measure_service(url, args.duration, tmp)
            else:
                with _common.postgres_schema(url, schema) as scoped:
                    results = measure_service(scoped, args.duration, tmp)
            text, more = render(name, results, floor)
            sections.append(text)
            misses += more

    print("## Service throughput: `sms2fa serve --workers 4`\n")
    print(
        f"`wrk -t{THREADS} -c{CONNECTIONS} -d{max(1, round(args.duration))}s`, console SMS "
        f"backend to /dev/null, budgets off. {_common.machine_line()}\n"
    )
    print(
        table(
            ["floor (same run)", "req/s", "p50 ms", "p99 ms", "socket errors"],
            [
                [
                    LABELS["floor"],
                    fmt(floor.rps, 0),
                    fmt(floor.p50_ms, 1),
                    fmt(floor.p99_ms, 1),
                    str(floor.socket_errors),
                ]
            ],
        )
    )
    print("\n_Reference on this kind of machine: 27,800 req/s for the floor (performance.md)._\n")
    for text in sections:
        print(text + "\n")
    print(
        "Target: ≥ 10× the original's requests/s, no 5xx, no unexpected answer, no socket "
        'error. "unexpected" = any answer but the workload\'s (status and reason checked).'
    )
    for note in notes:
        print(f"\n_{note}_")
    if misses:
        print("\nMissed:\n" + "\n".join(f"- {m}" for m in misses))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
