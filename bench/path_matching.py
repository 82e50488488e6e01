"""Classify cost of hostile paths: glob patterns against long paths, old regex vs now.

Globs used to be one regex (``[^/]*-[^/]*-[^/]*``), which backtracks: cubic in the path for
three stars in a segment. Now a glob is matched piece by piece, left to right (linear), and a
path past the cost cap (``MAX_PATH_CHARS`` / ``MAX_PATH_SEGMENTS``) is protected unread.
Each row is the best of N calls of ``PathPolicy.classify`` on a path that matches nothing
(the worst case: every placement is tried); "matcher alone" bypasses the cap. The old regex
is only run where it ends in seconds.

Target: a 60 KB path against the worst pattern classified in < 10 ms.

    python bench/path_matching.py [--runs 5]
"""

# ruff: noqa: RUF001  (the tables print multiplication signs on purpose)

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable

import _common
from _common import fmt, table, verdict

from sms2fa_middleware.guard.paths import MAX_PATH_CHARS, PathPatterns, PathPolicy, normalize

TARGET_S = 0.01
THREE_STARS = "/exports/*-*-*.csv"
SEGMENTS = "/**/*a*a*/*a*a*/b"


def old_regex(pattern: str) -> re.Pattern[str]:
    """The translation globs had before 0.2.0 (``*`` -> ``[^/]*``, ``**`` -> segments)."""
    out = ""
    for segment in pattern.strip("/").split("/"):
        if segment == "**":
            out += "(?:/[^/]+)*"
            continue
        out += "/" + "".join("[^/]*" if c == "*" else re.escape(c) for c in segment)
    return re.compile(out + "(?:/.*)?")


def best(call: Callable[[], object], runs: int) -> float:
    fastest = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        call()
        fastest = min(fastest, time.perf_counter() - start)
    return fastest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    dashes = {n: "/exports/" + "-" * n for n in (200, 400, 800, 1_600)}
    cases: list[tuple[str, str, bool]] = [  # pattern, path, run the old regex too
        *[(THREE_STARS, path, True) for path in dashes.values()],
        (THREE_STARS, "/exports/" + "-" * (MAX_PATH_CHARS - 20), False),
        (THREE_STARS, "/exports/" + "-" * 60_000, False),
        (SEGMENTS, "/a" * 250, False),
        (SEGMENTS, "/a" * 30_000, False),
    ]
    rows: list[list[str]] = []
    worst_60k = 0.0
    for pattern, path, old_too in cases:
        policy = PathPolicy([pattern], [], "/sms2fa")
        patterns = PathPatterns([pattern])
        canonical = normalize(path)
        now = best(lambda p=path: policy.classify(p), args.runs)  # type: ignore[misc]
        alone = best(lambda c=canonical: patterns.match(c), args.runs)  # type: ignore[misc]
        old = "–"
        if old_too:
            regex = old_regex(pattern)
            old = fmt(
                best(lambda c=canonical: regex.fullmatch(c), 1 if len(path) > 900 else args.runs)
                * 1e3,
                1,
            )
        if len(path) >= 60_000:
            worst_60k = max(worst_60k, now, alone)
        capped = "protected unread (cap)" if len(path) > MAX_PATH_CHARS else "read"
        rows.append(
            [f"`{pattern}`", f"{len(path):,}", capped, old, fmt(now * 1e3, 3), fmt(alone * 1e3, 3)]
        )

    print("## Classifying hostile paths (no match: every placement tried)\n")
    print(f"Best of {args.runs} calls. {_common.machine_line()}\n")
    print(
        table(
            ["pattern", "path chars", "classify", "old regex ms", "now ms", "matcher alone ms"],
            rows,
        )
    )
    print(
        f"\nTarget: a 60 KB path in < {TARGET_S * 1e3:.0f} ms (classify and the matcher "
        f"alone): worst {fmt(worst_60k * 1e3, 3)} ms {verdict(worst_60k < TARGET_S)}."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
