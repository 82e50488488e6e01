"""What this process has seen the store refuse, until the refusal's window ends.

A spent budget stays spent until its window ends, and a locked auth_id stays locked until its
lock ends: once the store has refused key K until T, asking it again before T can only be
refused again -- at the cost of a write (a counter's upsert, a transaction on the one SQLite
write lock). :class:`Spent` remembers "K is spent until T" so that a worker refuses the
repeats from memory, writing at most once per window per key, and an attacker's cheapest
request is the one refused.

It only ever refuses, and only what the store itself refused, with the store's own end: an
entry is made from a store's refusal and read with the clock the store's statements are
given, so it never outlives the store's window and never allows anything. What the engine
lifts early it forgets here (a right code resets the failed checks; a send the provider
refused gives back its budgets); other processes keep refusing until their entry's end, at
most the window they saw -- a refusal, never an answer the store would not give.

A budget is refused for what a request costs (a message's billed segments): the store's
refusal of an amount says nothing of a smaller one, so an entry refuses that amount and more.

Keys are the store's counter keys, kept only as keyed digests (a random key per process):
phone numbers and addresses in them never sit in memory as text. Bounded: past ``size``
entries the oldest is dropped (its key is then asked of the store again).
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from datetime import datetime

SIZE = 8192  # entries: ~1 MB at most; an evicted key costs one store write, nothing more


class Spent:
    """Store keys known to refuse until a moment. Thread-safe; one per Verifier."""

    def __init__(self, size: int = SIZE) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self.size = size
        self._key = secrets.token_bytes(32)  # never leaves this process
        # name -> (when the refusal ends, the least amount refused); the oldest first
        self._until: dict[bytes, tuple[datetime, int]] = {}
        self._lock = threading.Lock()

    def _name(self, key: str) -> bytes:
        return hashlib.blake2b(key.encode(), key=self._key, digest_size=16).digest()

    def until(self, key: str, now: datetime, amount: int = 1) -> datetime | None:
        """When the store's refusal of ``amount`` from ``key`` ends, if it is known and has
        not ended at ``now`` (the store's own test: a window ending at ``now`` has ended)."""
        name = self._name(key)
        with self._lock:
            known = self._until.get(name)
            if known is None:
                return None
            until, least = known
            if until <= now:
                del self._until[name]
                return None
            return until if amount >= least else None

    def remember(self, key: str, until: datetime, now: datetime, amount: int = 1) -> None:
        """The store refused ``amount`` from ``key`` until ``until``: refuse that much, or
        more, from memory until then."""
        if until <= now:
            return
        name = self._name(key)
        with self._lock:
            self._until.pop(name, None)  # re-inserted last: the newest is evicted last
            self._until[name] = (until, amount)
            while len(self._until) > self.size:
                del self._until[next(iter(self._until))]

    def forget(self, *keys: str) -> None:
        """What was refused for ``keys`` was lifted early here: ask the store again."""
        names = [self._name(key) for key in keys]
        with self._lock:
            for name in names:
                self._until.pop(name, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._until)
