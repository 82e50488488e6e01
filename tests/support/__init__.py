"""Helpers shared by the tests (not tests themselves): servers, apps, databases, proxies."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]  # the repository
SUPPORT = Path(__file__).resolve().parent
SECRET = "test-secret-key-0123456789abcdef"


def in_threads(target: Callable[[int], object], n: int) -> None:
    """Run ``target(0)`` .. ``target(n - 1)`` each in a thread of its own; wait for them all."""
    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)


# Settings that turn the send budgets off, for tests that send more than a user would.
NO_BUDGETS: dict[str, Any] = {
    "resend_cooldown": 0,
    "recipient_send_limit": 0,
    "address_send_limit": 0,
}

# make_client (conftest.py): keyword arguments override the settings; (client, its Verifier).
Client = Callable[..., tuple[Any, Any]]
