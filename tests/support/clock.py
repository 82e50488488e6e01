"""An injected clock for the engine and the policy: it moves only when a test moves it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

T0 = datetime(2030, 1, 1, 12, 0, 0, tzinfo=timezone.utc)


class FakeClock:
    """An injected clock that moves only when told to."""

    def __init__(self, now: datetime = T0) -> None:
        self.moment = now

    def now(self) -> datetime:
        return self.moment

    def advance(self, seconds: float) -> None:
        self.moment += timedelta(seconds=seconds)
