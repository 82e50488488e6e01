"""Slow clients: trickling connections against ``sms2fa serve``.

Starts ``sms2fa serve --dev`` (one worker) with its open-file limit lowered (``--open-files``,
default 200), opens ``--connections`` connections (default 200) that each send one more byte
of a request header every ``--interval`` seconds and never finish it, and meanwhile probes
``GET /health`` on a fresh connection every 0.25 s. Prints how many connections opened, how
many the server closed within the header deadline (and within 2 s more), and ``/health``'s
latency under the attack. ``--code-dir`` runs another checkout's code (the old one, to see the
finding: without a header deadline nothing is closed and ``/health`` stops answering).

    python bench/slow_clients.py [--connections 200] [--open-files 200] [--header-timeout 10]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import _common
from _common import fmt, percentile, table
from slow_clients import serve_limited, trickle  # tests/, put on the path by _common


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--open-files", type=int, default=200)
    parser.add_argument("--header-timeout", type=float, default=10.0)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--duration", type=float, help="seconds (default: deadline + 10)")
    parser.add_argument("--code-dir", help="run the server from this checkout instead")
    args = parser.parse_args()
    duration = args.duration or args.header_timeout + 10
    env = {
        "SMS2FA_DATA_DIR": tempfile.mkdtemp(prefix="sms2fa-bench-"),
        "SMS2FA_SERVE_HEADER_TIMEOUT": str(args.header_timeout),
    }
    if args.code_dir:
        env["PYTHONPATH"] = args.code_dir
        os.chdir(args.code_dir)
    else:
        os.chdir(_common.ROOT)
    started = time.monotonic()
    with serve_limited(env, args.open_files) as base:
        result = trickle(base, args.connections, duration, interval=args.interval, probe_every=0.25)
    took = time.monotonic() - started
    answered = [t for t in result.health if t is not None]
    rows = [
        ["connections opened", result.opened],
        [
            f"closed by the server within {args.header_timeout:g} s + 1 s",
            result.closed_within(args.header_timeout + 1),
        ],
        [f"closed by the server within {duration:g} s (the run)", len(result.closed_after)],
        ["/health probes answered", f"{len(answered)} of {len(result.health)}"],
        [
            "/health p50 / p99 / worst (ms)",
            " / ".join(
                fmt(v * 1000, 1)
                for v in (
                    percentile(answered, 50),
                    percentile(answered, 99),
                    max(answered, default=float("nan")),
                )
            ),
        ],
    ]
    print(
        f"## Slow clients ({args.connections} trickling connections, open-file limit "
        f"{args.open_files}, a byte every {args.interval:g} s; {took:.0f} s, "
        f"load {os.getloadavg()[0]:.2f})\n"
    )
    print(table(["what", "measured"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
