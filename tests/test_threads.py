"""The service's thread hop: results, errors and the thread limit."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from sms2fa_middleware.threads import Threads


def test_results_and_errors_come_back_to_the_awaiting_task() -> None:
    threads = Threads(limit=2)

    def fail() -> None:
        raise ValueError("from the thread")

    async def main() -> int:
        with pytest.raises(ValueError, match="from the thread"):
            await threads.run(fail)
        return await threads.run(sum, [1, 2, 3])

    assert asyncio.run(main()) == 6


def test_calls_run_in_parallel_up_to_the_limit_and_no_further() -> None:
    threads = Threads(limit=3)
    lock = threading.Lock()
    running = [0]
    most = [0]

    def slow(i: int) -> int:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return i

    async def main() -> list[int]:
        return await asyncio.gather(*(threads.run(slow, i) for i in range(12)))

    assert asyncio.run(main()) == list(range(12))
    assert most[0] == 3  # in parallel, and never more than the limit
