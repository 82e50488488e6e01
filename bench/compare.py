"""Compare two commits' ``sms2fa serve`` under the same loads: BASE and HEAD, alternated.

    python bench/compare.py BASE HEAD [--store sqlite|postgres|both] [--workers 4]
        [--connections 16] [--duration 5] [--rounds 3] [--workloads create,unknown,...]
        [--cache DIR] [--output FILE]

Each commit is exported with ``git archive`` and installed, with its dependencies, into a
virtualenv of its own (``python -m venv``, then ``pip install '<checkout>[serve,postgres]'``).
The venv sees the site-packages of the interpreter running this script after its own, so
pip finds the dependencies already there and installs only the checkout (and whatever the
commit needs that is missing or of another version: that goes into the venv, which wins).
``--cache DIR`` keeps the builds by commit for the next run.

Both commits' servers run at once (``--workers`` each, a console SMS backend to /dev/null, a
database each: a SQLite file, or a private PostgreSQL schema dropped afterwards), and every
round runs each workload on both, BASE first in odd rounds and HEAD first in even ones, so a
machine that slows down or speeds up during the run weighs on both alike. ``wrk -t2
-c<connections> -d<duration>s``; every answer's status and reason are checked in Lua.

Workloads (pending, locked and spent keys are written straight into each store first):

* ``create``: ``POST /``, random auth_ids and numbers -> 200;
* ``unknown``: a check of an auth_id never created -> 400 UnknownAuthId;
* ``wrong``: a wrong code for a pending auth_id (20 attempts each, spread) -> 400;
* ``locked``: the right code for an auth_id locked by failed checks -> 429 failed_checks;
* ``refused_create``: ``POST /`` to a number whose budget is spent -> 429 recipient;
* ``refused_check``: a check from a client address past its check budget (100 per 10 min,
  the default; the address comes through one trusted proxy hop) -> 429;
* ``malformed``: ``POST /check`` with a body that is not JSON -> 400 InvalidAPIUsage.

The send budgets but the recipient's are off (the recipient's is 1,000 per 10 minutes, so
that ``refused_create`` has one to refuse), the per-address check budget is off but for
``refused_check`` (its own pair of servers), and 100 failed checks lock an auth_id.

Printed: per workload, the median of the rounds and their spread (min-max) for req/s and
p99; HEAD/BASE for each, as the median (min-max) of the rounds' ratios (each round ran the
two back to back, so a ratio is taken under one load); and each workload's median req/s as a
share of the same build's unknown-id check. On a shared machine read the ratios of one run,
not absolute figures across runs.
"""

# ruff: noqa: RUF001  (the tables print en dashes on purpose)

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import _common
from _common import ROOT, SECRET_KEY, fmt, median, table, wait_until_up
from service import LUA_COMMON

THREADS = 2
MAX_RETRIES = 20  # the most attempts a code can have
MAX_FAILED = 100  # failed checks before a lock (the setting's maximum)
RIGHT_CODE, WRONG_GUESS, STORED_WRONG = "123456", "000000", "111111"
SPENT_NUMBER = "12065550199"  # its recipient budget is spent before the runs
LOCKED_IDS = 100
SPENT_ADDRESS = "10.9.9.9"  # past its check budget (the warm-up spends it)

LABELS = {
    "create": "create (POST /)",
    "unknown": "check, unknown id",
    "wrong": "check, wrong code on a pending id",
    "locked": "check, locked id (429)",
    "refused_create": "create, recipient budget spent (429)",
    "refused_check": "check, address past its check budget (429)",
    "malformed": "check, malformed body (400)",
}

# Lua: each workload's expected answer and its requests (LUA_COMMON counts and reports).
PENDING = r"""
local N = %(count)d
local i = -1
function request()
  i = i + 1
  local id = (tid + T * i) %% N
  return wrk.format("GET", string.format("/?auth_id=%(prefix)s%%d&code=%(code)s", id))
end
"""
LUA = {
    "create": r"""
EXPECT_STATUS, EXPECT_TEXT = 200, "Verification code created"
local k = 0
local headers = {["Content-Type"] = "application/json"}
local exchanges = {234, 345, 456, 567, 678, 789, 867, 253, 264, 275}
function request()
  k = k + 1
  local body = string.format('{"auth_id":"c%s-%d","recipient":"1206%d%04d"}', tag, k,
                             exchanges[math.random(1, #exchanges)], math.random(0, 9999))
  return wrk.format("POST", "/", headers, body)
end
""",
    "unknown": r"""
EXPECT_STATUS, EXPECT_TEXT = 400, "UnknownAuthId"
local k = 0
function request()
  k = k + 1
  return wrk.format("GET", string.format("/?auth_id=u%s-%d&code=123456", tag, k))
end
""",
    "wrong": 'EXPECT_STATUS, EXPECT_TEXT = 400, "InvalidAuthCode"\n%(wrong)s',
    "locked": 'EXPECT_STATUS, EXPECT_TEXT = 429, \'"budget":"failed_checks"\'\n%(locked)s',
    "refused_create": r"""
EXPECT_STATUS, EXPECT_TEXT = 429, '"budget":"recipient"'
local k = 0
local headers = {["Content-Type"] = "application/json"}
function request()
  k = k + 1
  local body = string.format('{"auth_id":"s%%s-%%d","recipient":"%(spent)s"}', tag, k)
  return wrk.format("POST", "/", headers, body)
end
""",
    "refused_check": r"""
EXPECT_STATUS, EXPECT_TEXT = 429, '"budget":"client_address_checks"'
local k = 0
local headers = {["X-Forwarded-For"] = "%(address)s"}
function request()
  k = k + 1
  return wrk.format("GET", string.format("/?auth_id=a%%s-%%d&code=123456", tag, k), headers)
end
""",
    "malformed": r"""
EXPECT_STATUS, EXPECT_TEXT = 400, "InvalidAPIUsage"
local headers = {["Content-Type"] = "application/json"}
function request()
  return wrk.format("POST", "/check", headers, '{"auth_id": "m1", "code": ')
end
""",
}
WORKLOADS = list(LABELS)

# Settings shared by every server; each group of workloads adds its own.
BASE_ENV = {
    "SMS2FA_SECRET_KEY": SECRET_KEY,
    "SMS2FA_SMS_BACKEND": "console",  # writes to stderr, which goes to /dev/null
    "SMS2FA_RECIPIENT_SEND_LIMIT": "1000",
    "SMS2FA_ADDRESS_SEND_LIMIT": "0",
    "SMS2FA_GLOBAL_SEND_LIMIT": "0",
    "SMS2FA_RESEND_COOLDOWN": "0",
    "SMS2FA_ADDRESS_CHECK_LIMIT": "0",
    "SMS2FA_MAX_FAILED_CHECKS": str(MAX_FAILED),
    "SMS2FA_RETRIES_ALLOWED": str(MAX_RETRIES),
}
# refused_check needs the per-address check budget, which would refuse every other check
# (they all come from 127.0.0.1): it gets servers of its own.
GROUPS = {
    "main": ({}, ["create", "unknown", "wrong", "locked", "refused_create", "malformed"]),
    "address": (
        {"SMS2FA_ADDRESS_CHECK_LIMIT": "100", "SMS2FA_TRUSTED_PROXIES": "1"},
        ["refused_check"],
    ),
}

# Run by each build's own interpreter: its own store writes its own rows.
SETUP = r"""
import json, sys
from datetime import datetime, timedelta, timezone
from functools import partial

import sms2fa_middleware
from sms2fa_middleware.engine.codes import digest
from sms2fa_middleware.policy import Keys
from sms2fa_middleware.store import Store, codes, counters

args = json.loads(sys.argv[1])
store = Store(args["database_url"])
store.create_schema()
now = datetime.now(timezone.utc)
later = now + timedelta(hours=2)


def insert(table, rows, conn):
    conn.execute(table.insert(), rows)


for prefix, count, code, attempts in args["pending"]:
    for start in range(0, count, 5000):
        rows = [
            {
                "auth_id": f"{prefix}{i}", "recipient": "+12065550100",
                "digest": digest(code, f"{prefix}{i}", args["secret"]),
                "attempts_left": attempts, "created_at": now, "expires_at": later,
                "message_id": None,
            }
            for i in range(start, min(count, start + 5000))
        ]
        store.run(partial(insert, codes, rows))
spent = [{"key": Keys.failed(auth_id), "count": args["max_failed"], "reset_at": later}
         for auth_id in args["locked"]]
spent += [{"key": f"recipient:+{n}", "count": 10**6, "reset_at": later} for n in args["numbers"]]
if spent:
    store.run(partial(insert, counters, spent))
store.dispose()
print(json.dumps({"package": sms2fa_middleware.__file__}))
"""


@dataclass
class Build:
    """One commit, installed in a virtualenv of its own."""

    label: str  # BASE or HEAD
    rev: str  # as given
    sha: str
    root: Path  # holds src/ and venv/

    @property
    def python(self) -> Path:
        return self.root / "venv" / "bin" / "python"


@dataclass
class Run:
    rps: float
    p99_ms: float
    requests: int
    unexpected: int
    socket_errors: int
    sample: str


@dataclass
class Measured:
    """Every round of one workload on one build."""

    runs: list[Run] = field(default_factory=list)

    def rps(self) -> list[float]:
        return [r.rps for r in self.runs]

    def p99(self) -> list[float]:
        return [r.p99_ms for r in self.runs]


def git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()


def build(label: str, rev: str, where: Path, log: Path) -> Build:
    """Export ``rev`` and install it into a virtualenv (reused if ``where`` has it)."""
    sha = git("rev-parse", "--verify", f"{rev}^{{commit}}")
    root = where / sha
    made = Build(label, rev, sha, root)
    if (root / "installed").exists():
        return made
    shutil.rmtree(root, ignore_errors=True)
    (root / "src").mkdir(parents=True)
    archive = subprocess.run(
        ["git", "archive", "--format=tar", sha], cwd=ROOT, check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(root / "src")], input=archive, check=True)
    with log.open("a") as out:
        # No pip of its own (the running interpreter's installs into it: seconds saved).
        subprocess.run(
            [sys.executable, "-m", "venv", "--without-pip", str(root / "venv")],
            check=True,
            stdout=out,
            stderr=out,
        )
        site = subprocess.run(
            [str(made.python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        # After the venv's own: what this interpreter has need not be fetched again.
        parent = subprocess.run(
            [sys.executable, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        Path(site, "_sms2fa_compare_parent.pth").write_text(parent + "\n")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "--python",
                str(made.python),
                "install",
                "--quiet",
                f"{root / 'src'}[serve,postgres]",
            ],
            check=True,
            stdout=out,
            stderr=out,
        )
    (root / "installed").write_text(sha + "\n")
    return made


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    """This environment without anything that would change what a server imports or reads
    (PYTHONPATH, SMS2FA_*), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("SMS2FA_")}
    return {**env, **extra}


def setup_store(made: Build, database_url: str, n_wrong: int) -> str:
    """Write the pending, locked and spent keys into the build's store; its package path."""
    args = {
        "database_url": database_url,
        "secret": SECRET_KEY,
        "pending": [
            ["w-", n_wrong, STORED_WRONG, MAX_RETRIES],
            ["l-", LOCKED_IDS, RIGHT_CODE, MAX_RETRIES],
        ],
        "locked": [f"l-{i}" for i in range(LOCKED_IDS)],
        "max_failed": MAX_FAILED,
        "numbers": [SPENT_NUMBER],
    }
    proc = subprocess.run(
        [str(made.python), "-c", SETUP, json.dumps(args)],
        cwd=made.root,
        env=clean_env({}),
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{made.label}: store setup failed:\n{proc.stderr}")
    package = str(json.loads(proc.stdout.strip().splitlines()[-1])["package"])
    if not package.startswith(str(made.root / "venv")):
        raise RuntimeError(f"{made.label} imported {package}, not its own install")
    return package


@contextmanager
def serving(made: Build, database_url: str, env: dict[str, str], workers: int) -> Iterator[str]:
    """``sms2fa serve`` of ``made``; yields its URL."""
    port = _common.free_port()
    cmd = [
        str(made.python),
        "-m",
        "sms2fa_middleware",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    process = subprocess.Popen(
        cmd,
        cwd=made.root,  # not src/: python -m would import the checkout instead
        env=clean_env({**BASE_ENV, **env, "SMS2FA_DATABASE_URL": database_url}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until_up(url + "openapi.json", process, timeout=60)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def lua(workload: str, directory: Path, n_wrong: int) -> Path:
    pieces = {
        "wrong": PENDING % {"count": n_wrong, "prefix": "w-", "code": WRONG_GUESS},
        "locked": PENDING % {"count": LOCKED_IDS, "prefix": "l-", "code": RIGHT_CODE},
        "spent": SPENT_NUMBER,
        "address": SPENT_ADDRESS,
    }
    path = directory / f"{workload}.lua"
    body = LUA[workload]
    if "%(" in body:  # only these escape their own % signs
        body %= pieces
    path.write_text(LUA_COMMON % {"threads": THREADS} + body)
    return path


def wrk(url: str, script: Path, duration: float, connections: int) -> Run:
    cmd = [
        "wrk",
        f"-t{THREADS}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "2s",
        "-s",
        str(script),
        url,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    lines = proc.stdout.splitlines()
    line = next((x for x in lines if x.startswith("BENCH ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stdout}\n{proc.stderr}")
    data = json.loads(line[len("BENCH ") :])
    sample = next((x[len("BENCH_SAMPLE ") :] for x in lines if x.startswith("BENCH_SAMPLE ")), "")
    return Run(
        rps=data["requests"] / (data["duration_us"] / 1e6),
        p99_ms=data["p99"] / 1000,
        requests=data["requests"],
        unexpected=data["bad"],
        socket_errors=data["connect"] + data["read"] + data["write"] + data["timeout"],
        sample=sample.strip(),
    )


@contextmanager
def databases(store: str, builds: list[Build], tmp: Path, group: str) -> Iterator[list[str]]:
    """A fresh database per build: a SQLite file, or a private PostgreSQL schema."""
    if store == "sqlite":
        yield [f"sqlite:///{tmp / f'{group}-{b.label.lower()}.db'}" for b in builds]
        return
    with ExitStack() as stack:
        urls = [
            stack.enter_context(
                _common.postgres_schema(
                    _common.postgres_url(),
                    f"sms2fa_compare_{os.getpid()}_{group}_{b.label.lower()}",
                )
            )
            for b in builds
        ]
        yield urls


def measure(
    store: str, builds: list[Build], args: argparse.Namespace, tmp: Path
) -> dict[str, dict[str, Measured]]:
    """workload -> build label -> its rounds."""
    results: dict[str, dict[str, Measured]] = {}
    n_wrong = max(20_000, int(2_000 * args.duration * args.rounds))
    for group, (env, members) in GROUPS.items():
        chosen = [w for w in members if w in args.workloads]
        if not chosen:
            continue
        with ExitStack() as stack:
            urls = stack.enter_context(databases(store, builds, tmp, group))
            servers = {}
            for made, database_url in zip(builds, urls):
                setup_store(made, database_url, n_wrong)
                servers[made.label] = stack.enter_context(
                    serving(made, database_url, env, args.workers)
                )
            scripts = {w: lua(w, tmp, n_wrong) for w in chosen}
            for workload in chosen:  # warm-up: every worker up, caches full, budgets spent
                for made in builds:
                    wrk(servers[made.label], scripts[workload], 1, args.connections)
            for r in range(args.rounds):
                order = builds if r % 2 == 0 else builds[::-1]
                for workload in chosen:
                    for made in order:
                        run = wrk(
                            servers[made.label], scripts[workload], args.duration, args.connections
                        )
                        results.setdefault(workload, {}).setdefault(
                            made.label, Measured()
                        ).runs.append(run)
                        print(
                            f"  {store} round {r + 1} {workload:<15} {made.label}: "
                            f"{fmt(run.rps, 0)} req/s, p99 {fmt(run.p99_ms, 1)} ms"
                            + (f", {run.unexpected} unexpected" if run.unexpected else ""),
                            file=sys.stderr,
                            flush=True,
                        )
    return results


def spread(values: list[float], digits: int) -> str:
    return f"{fmt(median(values), digits)} ({fmt(min(values), digits)}–{fmt(max(values), digits)})"


def paired(head: list[float], base: list[float]) -> list[float]:
    """HEAD/BASE of each round: the two ran back to back, under the same load."""
    return [h / b for h, b in zip(head, base)]


def render(store: str, results: dict[str, dict[str, Measured]], builds: list[Build]) -> str:
    base, head = builds
    rows = []
    notes = []
    unknown = results.get("unknown")
    for workload in WORKLOADS:
        if workload not in results:
            continue
        b, h = results[workload][base.label], results[workload][head.label]
        share = []
        for made, measured in ((base, b), (head, h)):
            if unknown is not None:
                share.append(f"{median(measured.rps()) / median(unknown[made.label].rps()):.2f}")
            bad = sum(r.unexpected for r in measured.runs)
            socket = sum(r.socket_errors for r in measured.runs)
            if bad or socket:
                sample = next((r.sample for r in measured.runs if r.sample), "-")
                notes.append(
                    f"{made.label} {LABELS[workload]}: {bad} unexpected answers, {socket} "
                    f"socket errors (first: {sample})"
                )
        rows.append(
            [
                LABELS[workload],
                spread(b.rps(), 0),
                spread(h.rps(), 0),
                spread(paired(h.rps(), b.rps()), 2),
                spread(b.p99(), 1),
                spread(h.p99(), 1),
                spread(paired(h.p99(), b.p99()), 2),
                " / ".join(share) if share else "–",
            ]
        )
    headers = [
        "workload",
        "BASE req/s",
        "HEAD req/s",
        "HEAD/BASE req/s",
        "BASE p99 ms",
        "HEAD p99 ms",
        "HEAD/BASE p99",
        "req/s ÷ unknown-id check (BASE / HEAD)",
    ]
    text = f"### {store}\n\n" + table(headers, rows)
    if notes:
        text += "\n\n" + "\n".join(f"- {n}" for n in notes)
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", help="the commit to compare against (any git revision)")
    parser.add_argument("head", help="the commit to compare (any git revision)")
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="sqlite")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--workloads",
        default=",".join(WORKLOADS),
        help=f"comma-separated, of: {', '.join(WORKLOADS)}",
    )
    parser.add_argument("--cache", type=Path, help="keep the builds here, by commit, for reuse")
    parser.add_argument("--output", type=Path, help="also write the tables to this file")
    args = parser.parse_args()
    args.workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = sorted(set(args.workloads) - set(WORKLOADS))
    if unknown:
        parser.error(f"unknown workloads: {', '.join(unknown)}")
    if shutil.which("wrk") is None:
        print("wrk is not installed (Debian: apt-get install wrk); cannot compare.")
        return 2
    stores = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    if "postgres" in stores and (why := _common.postgres_reachable(_common.postgres_url())):
        print(f"PostgreSQL unreachable ({why}); set {_common.POSTGRES_URL_ENV}.")
        return 2

    with tempfile.TemporaryDirectory(prefix="sms2fa-compare-") as tmp_name:
        tmp = Path(tmp_name)
        where = args.cache or tmp / "builds"
        where.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        builds = [
            build("BASE", args.base, where, tmp / "pip.log"),
            build("HEAD", args.head, where, tmp / "pip.log"),
        ]
        print(f"built in {time.monotonic() - started:.0f} s", file=sys.stderr)
        base, head = builds
        heading = "\n".join(
            [
                f"## `{base.rev}` ({base.sha[:7]}) vs `{head.rev}` ({head.sha[:7]}): "
                f"`sms2fa serve --workers {args.workers}`",
                "",
                f"{date.today().isoformat()}. `wrk -t{THREADS} -c{args.connections} "
                f"-d{max(1, round(args.duration))}s`, {args.rounds} rounds alternated, console "
                "SMS backend. Median (min–max) of the rounds; HEAD/BASE is each round's ratio "
                "(the two ran back to back), then their median (min–max). "
                f"{_common.machine_line()}",
                "",
            ]
        )
        emit(heading, args.output, fresh=True)
        for store in stores:  # each table as soon as it is measured
            emit(render(store, measure(store, builds, args, tmp), builds) + "\n", args.output)
    return 0


def emit(text: str, output: Path | None, fresh: bool = False) -> None:
    print(text, flush=True)
    if output is not None:
        with output.open("w" if fresh else "a") as out:
            out.write(text + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
