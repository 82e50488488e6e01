"""Event loop health: does a slow SMS provider stall the app's unprotected routes?

A Starlette app behind the ASGI ``SMS2FAMiddleware`` (``bench/_apps.py``: ``/ping``
unprotected, ``/account`` protected, the API mounted at ``/sms2fa`` with ``public_api=True``)
runs under uvicorn (one worker, httptools + uvloop when installed) in a subprocess. Codes go to
``FakeFlowroute`` with a standing 0.5 s delay on every send. Meanwhile 200 sequential
``GET /ping`` are timed over one keep-alive connection, spread evenly over 3 s so that they
cover several waves of sends and completions:

* with no other load (the floor, same run);
* while 50 clients keep starting verifications through the API (``POST /sms2fa/``, each with a
  fresh auth_id), so 50 are in flight the whole time;
* while 50 clients keep making protected navigations (``GET /account`` as a fresh user each
  time, ``Accept: text/html``: the middleware sends a code, then redirects to the challenge).

The load and the fake provider run in a separate process, so the client's own GIL does not
colour the ping timings. Send budgets are off (every request comes from 127.0.0.1).

Target: /ping p99 < 50 ms under load.

    python bench/event_loop.py [--pings 200] [--concurrency 50] [--delay 0.5] [--window 3]
"""

# ruff: noqa: RUF001  (the tables print multiplication signs and en dashes on purpose)

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import _common
from _common import BENCH_DIR, ROOT, SECRET_KEY, fmt, median, percentile, table, verdict

TARGET_P99_MS = 50.0
PREFIX = "/sms2fa"
SCENARIOS = {
    "api": f"{{n}} concurrent verification starts (POST {PREFIX}/)",
    "navigation": "{n} concurrent protected navigations (GET /account, new user each)",
}


# -- the load: runs in its own process, with the fake provider ----------------------------------


def load_process(
    scenario: str,
    base: str,
    fake_port: int,
    concurrency: int,
    delay: float,
    ready: Any,
    go: Any,
    loaded: Any,
    stop: Any,
    out: Any,
) -> None:
    import requests

    from sms2fa_middleware.testing import FakeFlowroute

    fake = FakeFlowroute(port=fake_port).start()
    fake.delay = delay
    ready.set()
    go.wait()
    lock = threading.Lock()
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    failures: list[str] = []

    def worker(i: int) -> None:
        session = requests.Session()
        k = 0
        while not stop.is_set():
            k += 1
            t0 = time.perf_counter()
            try:
                if scenario == "api":
                    response = session.post(
                        f"{base}{PREFIX}/",
                        timeout=60,
                        json={
                            "auth_id": f"api-{i}-{k}",
                            "recipient": f"1206555{100 + i % 100:04d}",
                        },
                    )
                    expected = 200
                else:
                    response = session.get(
                        f"{base}/account",
                        timeout=60,
                        allow_redirects=False,
                        headers={"X-User": f"u{i + 100 * k}", "Accept": "text/html"},
                    )
                    expected = 303
                    if response.status_code == 303 and "status=" in response.headers.get(
                        "location", ""
                    ):
                        expected = -1  # redirected with an error flag (send failed, ...)
            except requests.RequestException as exc:
                with lock:
                    failures.append(type(exc).__name__)
                continue
            with lock:
                statuses[
                    response.status_code
                    if response.status_code == expected
                    else -response.status_code
                ] += 1
                latencies.append(time.perf_counter() - t0)
                if response.status_code != expected and len(failures) < 3:
                    failures.append(f"{response.status_code} {response.text[:120]}")

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 5
    # "Loaded" once the provider holds as many sends as the server will run at once.
    while fake.requests_seen < min(concurrency, 30) and time.monotonic() < deadline:
        time.sleep(0.01)
    loaded.set()
    for thread in threads:
        thread.join()
    out.put(
        {
            "statuses": dict(statuses),
            "latencies": latencies,
            "failures": failures[:3],
            "sent": len(fake.messages),
        }
    )
    fake.stop()


# -- the probe: sequential pings from this process ----------------------------------------------


def pings(port: int, count: int, window: float = 0.0) -> list[float]:
    """Time ``count`` sequential GET /ping, spread evenly over ``window`` seconds."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    times = []
    start = time.perf_counter()
    try:
        for i in range(count):
            pause = start + i * window / count - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            t0 = time.perf_counter()
            conn.request("GET", "/ping")
            response = conn.getresponse()
            body = response.read()
            times.append(time.perf_counter() - t0)
            assert response.status == 200 and body == b"pong", (response.status, body)
    finally:
        conn.close()
    return times


def server_env(database_url: str, fake_port: int) -> dict[str, str]:
    return {
        "PYTHONPATH": str(ROOT),
        "SMS2FA_SECRET_KEY": SECRET_KEY,
        "SMS2FA_DATABASE_URL": database_url,
        "SMS2FA_SMS_BACKEND": "flowroute",
        "FLOWROUTE_ACCESS_KEY": "fake-access",
        "FLOWROUTE_SECRET_KEY": "fake-secret",
        "FLOWROUTE_NUMBER": "12065550100",
        "SMS2FA_FLOWROUTE_URL": f"http://127.0.0.1:{fake_port}/v2.1",
        "SMS2FA_RECIPIENT_SEND_LIMIT": "0",
        "SMS2FA_ADDRESS_SEND_LIMIT": "0",
        "SMS2FA_GLOBAL_SEND_LIMIT": "0",
        "SMS2FA_RESEND_COOLDOWN": "0",
        "SMS2FA_ADDRESS_CHECK_LIMIT": "0",
    }


def run_scenario(
    scenario: str, args: argparse.Namespace, port: int, fake_port: int
) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    ready, go, loaded, stop = ctx.Event(), ctx.Event(), ctx.Event(), ctx.Event()
    out = ctx.Queue()
    base = f"http://127.0.0.1:{port}"
    process = ctx.Process(
        target=load_process,
        args=(
            scenario,
            base,
            fake_port,
            args.concurrency,
            args.delay,
            ready,
            go,
            loaded,
            stop,
            out,
        ),
    )
    process.start()
    try:
        if not ready.wait(30):
            raise RuntimeError("the load process did not start")
        go.set()
        if not loaded.wait(30):
            raise RuntimeError("the load never reached the provider")
        t0 = time.perf_counter()
        times = pings(port, args.pings, args.window)
        window = time.perf_counter() - t0
        stop.set()
        result: dict[str, Any] = out.get(timeout=120)
    finally:
        stop.set()
        process.join(timeout=120)
        if process.is_alive():
            process.terminate()
            process.join()
    result["pings"] = times
    result["window"] = window
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pings", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--delay", type=float, default=0.5, help="provider delay, seconds")
    parser.add_argument(
        "--window",
        type=float,
        default=3.0,
        help="spread the pings over this many seconds (default 3: six provider "
        "round trips, so completions and new sends fall inside it)",
    )
    args = parser.parse_args()

    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="sms2fa-bench-") as tmp:
        port, fake_port = _common.free_port(), _common.free_port()
        database_url = f"sqlite:///{Path(tmp) / 'event_loop.db'}"
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            "--app-dir",
            str(BENCH_DIR),
            "_apps:event_loop_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ]
        with _common.running(
            cmd, server_env(database_url, fake_port), f"http://127.0.0.1:{port}/ping", cwd=ROOT
        ):
            pings(port, 50)  # warm-up
            results["floor"] = {"pings": pings(port, args.pings, args.window)}
            for scenario in SCENARIOS:
                results[scenario] = run_scenario(scenario, args, port, fake_port)

    rows = []
    misses = []
    for name, result in results.items():
        ms = [t * 1e3 for t in result["pings"]]
        p99 = percentile(ms, 99)
        if name == "floor":
            label, load, check = "no load (floor)", "–", "–"
        else:
            label = SCENARIOS[name].format(n=args.concurrency)
            statuses = result["statuses"]
            good = sum(v for k, v in statuses.items() if k > 0)
            bad = sum(v for k, v in statuses.items() if k <= 0) + len(
                [f for f in result["failures"] if not f[:3].isdigit()]
            )
            lat = result["latencies"]
            load = (
                f"{good} ok, {bad} not ok in {result['window']:.2f} s of pings; "
                f"start p50 {fmt(median(lat) * 1e3, 0)} ms; {result['sent']} SMS"
            )
            check = verdict(p99 < TARGET_P99_MS)
            if p99 >= TARGET_P99_MS:
                misses.append(f"{label}: /ping p99 {fmt(p99, 1)} ms")
            if bad:
                misses.append(f"{label}: {bad} unexpected answers, e.g. {result['failures']}")
        rows.append([label, fmt(median(ms), 2), fmt(p99, 2), fmt(max(ms), 2), load, check])

    print("## Event loop health: /ping latency while verifications wait on a slow provider\n")
    print(
        f"{args.pings} sequential `GET /ping` over {args.window:g} s (one keep-alive "
        "connection); uvicorn, 1 worker; "
        f"FakeFlowroute delay {args.delay} s. {_common.machine_line()}\n"
    )
    print(table(["while", "/ping p50 ms", "/ping p99 ms", "max ms", "load", "p99 < 50 ms"], rows))
    if misses:
        print("\nMissed:\n" + "\n".join(f"- {m}" for m in misses))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
