"""Run every benchmark in turn and print their tables (Markdown).

    python bench/run_all.py                 # the full runs (several minutes)
    python bench/run_all.py --quick         # shorter runs, same tables
    python bench/run_all.py --only service --only scaling
    python bench/run_all.py --no-postgres   # SQLite only
    python bench/run_all.py --output bench-results.md

Each script measures its own floor in the same run, so the ratios hold on any machine; the
absolute numbers do not (and suffer on a busy one: see the load average each table prints).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent

# name -> (full-run arguments, quick-run arguments)
SCRIPTS: dict[str, tuple[list[str], list[str]]] = {
    "passthrough": ([], ["--calls", "5000", "--rounds", "3"]),
    "verified": ([], ["--calls", "5000", "--rounds", "3"]),
    "service": ([], ["--duration", "3"]),
    "scaling": ([], ["--big", "100000", "--samples", "300"]),
    "event_loop": ([], ["--window", "1.5"]),
    "timing": ([], ["--probes", "500"]),
    "slow_clients": ([], ["--header-timeout", "3"]),
    "path_matching": ([], ["--runs", "3"]),
}
POSTGRES_AWARE = {"service", "scaling", "timing"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(SCRIPTS),
        help="run only this benchmark (repeatable)",
    )
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--output", type=Path, help="also write the tables to this file")
    args = parser.parse_args()

    chosen = args.only or list(SCRIPTS)
    outputs: list[str] = []
    failed: list[str] = []
    for name in chosen:
        full, quick = SCRIPTS[name]
        cmd = [sys.executable, str(BENCH_DIR / f"{name}.py"), *(quick if args.quick else full)]
        if args.no_postgres and name in POSTGRES_AWARE:
            cmd.append("--no-postgres")
        print(f"<!-- running {' '.join(cmd[1:])} -->", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=BENCH_DIR.parent)
        took = time.monotonic() - t0
        text = proc.stdout.rstrip()
        if proc.returncode != 0:
            failed.append(name)
            text += (
                f"\n\n**{name} failed (exit {proc.returncode})**\n\n```\n"
                f"{proc.stderr.strip()[-4000:]}\n```"
            )
        text += f"\n\n_{name}: {took:.0f} s_"
        print(text + "\n", flush=True)
        outputs.append(text)
    if args.output:
        args.output.write_text("\n\n".join(outputs) + "\n")
    if failed:
        print(f"Failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
