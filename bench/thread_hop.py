"""The thread hop: what one await of a blocking call in a worker thread costs.

Each mechanism runs a trivial function (``int``) in a worker thread and awaits it on an
asyncio event loop, first one call at a time (the wall time per call is the hop's latency),
then from 16 tasks at once (CPU time per call: what a busy worker pays, the GIL shared with
the loop). Mechanisms:

* ``Threads``: :class:`sms2fa_middleware.threads.Threads` (SimpleQueue + call_soon_threadsafe);
* ``asyncio.to_thread`` (the default executor, with a context copy);
* ``run_in_executor``: ``loop.run_in_executor`` on a ThreadPoolExecutor of its own;
* ``anyio.to_thread``: ``anyio.to_thread.run_sync`` with a CapacityLimiter (as the ASGI
  middleware used it).

Both the standard loop and uvloop (when installed: uvicorn uses it) are measured.

    python bench/thread_hop.py [--calls 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import _common
from _common import fmt, median, table

Hop = Callable[[Callable[..., Any], Any], Awaitable[Any]]
CONCURRENCY = 16
ROUNDS = 5


def hops() -> dict[str, Callable[[], Hop]]:
    """Name -> a factory made on the loop (limiters and pools belong to it)."""
    import anyio

    from sms2fa_middleware.threads import Threads

    def threads() -> Hop:
        return Threads(limit=40).run

    def to_thread() -> Hop:
        return asyncio.to_thread

    def executor() -> Hop:
        pool = ThreadPoolExecutor(40)

        def run(fn: Callable[..., Any], *args: Any) -> Awaitable[Any]:
            return asyncio.get_running_loop().run_in_executor(pool, fn, *args)

        return run

    def anyio_hop() -> Hop:
        limiter = anyio.CapacityLimiter(40)

        def run(fn: Callable[..., Any], *args: Any) -> Awaitable[Any]:
            return anyio.to_thread.run_sync(fn, *args, limiter=limiter)

        return run

    return {
        "Threads": threads,
        "asyncio.to_thread": to_thread,
        "run_in_executor": executor,
        "anyio.to_thread": anyio_hop,
    }


async def one_at_a_time(hop: Hop, calls: int) -> float:
    """Wall seconds per call, one caller."""
    for _ in range(200):  # warm: threads started
        await hop(int, 1)
    began = time.perf_counter()
    for _ in range(calls):
        await hop(int, 1)
    return (time.perf_counter() - began) / calls


async def concurrently(hop: Hop, calls: int) -> float:
    """Process CPU seconds per call, CONCURRENCY callers."""

    async def caller(n: int) -> None:
        for _ in range(n):
            await hop(int, 1)

    await asyncio.gather(*(caller(50) for _ in range(CONCURRENCY)))  # warm
    began = time.process_time()
    await asyncio.gather(*(caller(calls // CONCURRENCY) for _ in range(CONCURRENCY)))
    return (time.process_time() - began) / calls


def measure(
    loop_factory: Callable[[], asyncio.AbstractEventLoop], make: Callable[[], Hop], calls: int
) -> tuple[float, float]:
    async def both() -> tuple[float, float]:
        hop = make()
        return await one_at_a_time(hop, calls), await concurrently(hop, calls)

    walls, cpus = [], []
    for _ in range(ROUNDS):
        loop = loop_factory()
        try:
            wall, cpu = loop.run_until_complete(both())
        finally:
            loop.close()
        walls.append(wall)
        cpus.append(cpu)
    return median(walls), median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=20000)
    args = parser.parse_args()
    loops: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {"asyncio": asyncio.new_event_loop}
    try:
        import uvloop

        loops["uvloop"] = uvloop.new_event_loop
    except ImportError:
        pass
    rows = []
    for loop_name, loop_factory in loops.items():
        for name, make in hops().items():
            wall, cpu = measure(loop_factory, make, args.calls)
            rows.append([loop_name, name, fmt(wall * 1e6, 1), fmt(cpu * 1e6, 1)])
    print(
        f"Thread hop, median of {ROUNDS} rounds of {args.calls:,} calls "
        f"({_common.machine_line()})\n"
    )
    print(
        table(
            ["loop", "hop", "µs wall / call, 1 caller", f"µs CPU / call, {CONCURRENCY} callers"],
            rows,
        )
    )


if __name__ == "__main__":
    main()
