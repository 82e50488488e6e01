"""The wrong-token budget of the API: wrong bearer tokens counted per client address."""

from __future__ import annotations

import logging
from datetime import datetime

from ..engine import Verifier
from ..errors import RateLimited
from ..policy import retry_after
from ..store.aio import AwaitableStore, InlineStore, resolve

log = logging.getLogger("sms2fa")


class FailedAuthorizations:
    """Wrong API tokens, counted per client address in the store (every worker and host
    shares the count, ``SMS2FA_FAILED_AUTH_LIMIT`` per ``SMS2FA_FAILED_AUTH_WINDOW``).

    Past the limit an address is refused (429) whatever token it sends, so a guesser cannot
    tell a right token from a wrong one by the answer. A right token costs no store work
    unless this process has seen that address send a wrong one while its window lasts: the
    backend that holds the token pays nothing. Once the store refuses an address, the
    refusal is remembered until its window ends (the verifier's :mod:`~..engine.spent`): a
    guesser's further wrong tokens are refused with no store work.
    """

    REMEMBERED = 4096  # addresses this process keeps in mind, the oldest forgotten first

    def __init__(self, verifier: Verifier) -> None:
        self.verifier = verifier
        self.limit = verifier.settings.failed_auth_limit
        self.window = verifier.settings.failed_auth_window
        self._failed: dict[str, datetime] = {}  # address -> when its window ends
        self._inline = InlineStore(verifier.store)

    def count(self, address: str) -> None:
        """Count one wrong token from ``address``; RateLimited when it is over the limit."""
        resolve(self.counted(self._inline, address))

    def refuse_if_over(self, address: str) -> None:
        """RateLimited when ``address`` (which sent the right token) is over the limit."""
        resolve(self.refused_if_over(self._inline, address))

    async def counted(self, store: AwaitableStore, address: str) -> None:
        """:meth:`count` over ``store`` (the verifier's, or its awaitable side on a loop)."""
        if not self.limit:
            return
        v = self.verifier
        now = v.clock.now()
        key = v.keys.failed_auth(address)
        if (until := v.spent.until(key, now)) is not None:
            raise RateLimited("failed_authorization", retry_after(until, now))
        count, reset_at = await store.hit(key, self.window, now)
        self._failed.pop(address, None)
        self._failed[address] = reset_at
        if len(self._failed) > self.REMEMBERED:
            del self._failed[next(iter(self._failed))]
        if count > self.limit:
            v.spent.remember(key, reset_at, now)
            if count == self.limit + 1:
                log.warning(
                    "sms2fa: too many wrong API tokens from one client address; "
                    "refusing it for %ss",
                    retry_after(reset_at, now),
                )
            raise RateLimited("failed_authorization", retry_after(reset_at, now))

    async def refused_if_over(self, store: AwaitableStore, address: str) -> None:
        """:meth:`refuse_if_over` over ``store``."""
        until = self._failed.get(address)
        if until is None:
            return
        v = self.verifier
        now = v.clock.now()
        if until <= now:
            self._failed.pop(address, None)
            return
        key = v.keys.failed_auth(address)
        if (known := v.spent.until(key, now)) is not None:
            raise RateLimited("failed_authorization", retry_after(known, now))
        count, reset_at = await store.peek(key, now)
        if count > self.limit and reset_at is not None:
            raise RateLimited("failed_authorization", retry_after(reset_at, now))
