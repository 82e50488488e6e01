"""The uniform-timing floor: failed uniform checks answer no sooner than the slowest kind.

The same store work on every path leaves a small gap (a wrong guess on a live code also
writes the code's row). Each kind's recent times are kept (the last ``size``), and every
answer waits until the slowest kind's 75th percentile: most answers of every kind then take
that long, so the medians meet (at the median the estimate's noise would favour the slowest
kind). Per process. An answer given from memory (a lock remembered, :mod:`.spent`) did no
store work to measure: :meth:`TimingFloor.deadline` pads it to the floor or to a recent time
of its kind, whichever is later, so its times spread like the store's. How the wait is spent
is the caller's: :func:`wait` blocks (sleeping, then spinning the last millisecond, as sleeps
overshoot by more than the gap); :func:`wait_async` awaits, leaving an event loop free.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import deque

SPIN = 0.001  # seconds: below this a blocking wait spins instead of sleeping


class TimingFloor:
    """Recent answer times per kind, and the deadline they set for the next answer."""

    def __init__(self, size: int = 64) -> None:
        self._recent: dict[str, deque[float]] = {}
        self._size = size
        self._floor = 0.0
        self._seen = 0
        self._lock = threading.Lock()

    def record(self, kind: str, started: float, elapsed: float) -> float:
        """Record that ``kind`` took ``elapsed`` seconds; the perf_counter deadline of an
        answer that began at ``started``."""
        with self._lock:
            self._recent.setdefault(kind, deque(maxlen=self._size)).append(elapsed)
            self._seen += 1
            if self._seen % 16 == 0:  # a percentile per answer would cost more than the gap
                self._floor = max(
                    (
                        sorted(times)[len(times) * 3 // 4]
                        for times in self._recent.values()
                        if len(times) >= 8
                    ),
                    default=0.0,
                )
        return started + self._floor

    def deadline(self, started: float, *kinds: str) -> float:
        """The deadline of an answer that began at ``started`` and did no work worth
        recording: the floor, or a recent time of the first of ``kinds`` with any, if later
        (so its tail past the floor looks like the store's)."""
        with self._lock:
            times = next((self._recent[k] for k in kinds if self._recent.get(k)), None)
            recent = random.choice(times) if times else 0.0  # noise, not a secret
            return started + max(self._floor, recent)


def wait(deadline: float) -> None:
    """Block until ``deadline`` (perf_counter): sleep while more than SPIN is left, then spin."""
    if (left := deadline - time.perf_counter()) > SPIN:
        time.sleep(left - SPIN)
    while time.perf_counter() < deadline:
        pass


async def wait_async(deadline: float) -> None:
    """Await ``deadline`` (perf_counter) without holding the event loop."""
    if (left := deadline - time.perf_counter()) > 0:
        await asyncio.sleep(left)
