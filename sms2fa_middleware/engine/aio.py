"""AsyncVerifier: the Verifier's twin for event loops -- the same policy, awaited.

A start's and a check's steps are the Verifier's own coroutines (:class:`.checking.Checks`,
:class:`.sending.Sends`), awaited here over the store's awaitable side
(:func:`~..store.aio.awaitable`): on PostgreSQL, async connections on this loop, no thread
hop; on SQLite, the sync store run right on the loop (a local file, microseconds a
statement, writes queued for one lock anyway). The cold paths (schema, recovery codes,
trusted browsers, revocation, purge) run in worker threads unless blocking on the store is
cheap; the SMS is always sent in a thread; a uniform check's timing floor is awaited, never
spun, so the loop serves others meanwhile.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

from ..sms import SendError
from ..store.aio import awaitable
from ..threads import SENDS, WORK
from .checking import Checks
from .results import Pending, SendWait, Started, Verified
from .sending import Sends, StartOptions
from .timing import wait_async
from .trust import TrustedBrowser
from .verifier import Verifier

T = TypeVar("T")

InThread = Callable[[Callable[[], Any]], Awaitable[Any]]
"""Runs a blocking call in a worker thread and awaits it (default: the package's one hop,
:mod:`~sms2fa_middleware.threads`)."""


class AsyncVerifier:
    """Awaitable ``start``/``check``/``cancel``/... over a :class:`Verifier` (shared state:
    the same store, budgets, timing floor and namespace)."""

    def __init__(self, verifier: Verifier, in_thread: InThread | None = None) -> None:
        self.verifier = verifier
        # Given one hop, everything goes through it (the service: one pool a worker). By
        # default, store work and sends have a pool each, as in the ASGI middleware: a slow
        # SMS provider never holds the threads the store work needs.
        self._in_thread: InThread = in_thread or WORK.run
        self._send_in_thread: InThread = in_thread or SENDS.run
        self._on_loop = verifier.store.blocking_is_cheap
        #: The store's awaitable side, which a start's and a check's steps are awaited over.
        v = verifier
        self.store = awaitable(v.store)
        self.sends = Sends(
            v.settings, self.store, v.keys, v.audit, v.clock, v.sends.purger, v.spent
        )
        self.checks = Checks(v.settings, self.store, v.keys, v.audit, v.clock, v.spent)

    async def _store(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)``: store work, here if that is cheap, else in a thread."""
        if self._on_loop:
            return fn(*args)
        return await self._in_thread(partial(fn, *args))  # type: ignore[no-any-return]

    async def create_schema(self) -> None:
        """See :meth:`Verifier.create_schema`."""
        await self._store(self.verifier.create_schema)

    async def start(
        self,
        auth_id: str,
        recipient: str | int,
        *,
        code_length: int | None = None,
        expiration: int | None = None,
        retries: int | None = None,
        message: str | None = None,
        client_address: str | None = None,
        otp_domain: str | None = None,
        binding: str | None = None,
    ) -> Started:
        """See :meth:`Verifier.start`; the SMS is sent in a worker thread."""
        v = self.verifier
        if v.schema.missing:
            await self._store(v.schema.ensure)
        plan = await self.sends.prepare(
            auth_id,
            recipient,
            StartOptions(
                code_length, expiration, retries, message, client_address, otp_domain, binding
            ),
        )
        try:
            message_id = await self._send_in_thread(partial(v.sender.send, plan.to, plan.body))
        except SendError as exc:
            await self.sends.failed(plan, exc)
        return await self.sends.sent(plan, message_id)

    async def check(
        self,
        auth_id: str,
        code: str,
        *,
        client_address: str | None = None,
        uniform: bool | None = None,
        binding: str | None = None,
    ) -> Verified:
        """See :meth:`Verifier.check`; a uniform answer's wait is awaited."""
        v = self.verifier
        if v.schema.missing:
            await self._store(v.schema.ensure)
        result = await self.checks.check(auth_id, code, client_address, uniform, binding)
        if (deadline := result.deadline(v.floor)) is not None:
            await wait_async(deadline)
        return result.settle()

    async def new_recovery_codes(self, auth_id: str) -> list[str]:
        """See :meth:`Verifier.new_recovery_codes`."""
        return await self._store(self.verifier.new_recovery_codes, auth_id)

    async def recovery_codes_left(self, auth_id: str) -> int:
        """See :meth:`Verifier.recovery_codes_left`."""
        return await self._store(self.verifier.recovery_codes_left, auth_id)

    async def use_recovery_code(
        self, auth_id: str, code: str, *, recipient: str | None = None
    ) -> int:
        """See :meth:`Verifier.use_recovery_code`; in a worker thread (it may text)."""
        use = partial(self.verifier.use_recovery_code, auth_id, code, recipient=recipient)
        return await self._send_in_thread(use)  # type: ignore[no-any-return]

    async def trust_browser(
        self,
        auth_id: str,
        seconds: int,
        *,
        user_agent: str = "",
        address: str | None = None,
        recipient: str | None = None,
    ) -> TrustedBrowser:
        """See :meth:`Verifier.trust_browser`."""
        trust = partial(
            self.verifier.trust_browser,
            auth_id,
            seconds,
            user_agent=user_agent,
            address=address,
            recipient=recipient,
        )
        return await self._store(trust)

    async def use_trusted_browser(
        self, auth_id: str, browser_id: str, *, recipient: str | None = None
    ) -> bool:
        """See :meth:`Verifier.use_trusted_browser`."""
        use = partial(self.verifier.use_trusted_browser, auth_id, browser_id, recipient=recipient)
        return await self._store(use)

    async def trusted_browsers(self, auth_id: str) -> list[TrustedBrowser]:
        """See :meth:`Verifier.trusted_browsers`."""
        return await self._store(self.verifier.trusted_browsers, auth_id)

    async def forget_browser(self, auth_id: str, browser_id: str) -> bool:
        """See :meth:`Verifier.forget_browser`."""
        return await self._store(self.verifier.forget_browser, auth_id, browser_id)

    async def forget_browsers(self, auth_id: str) -> int:
        """See :meth:`Verifier.forget_browsers`."""
        return await self._store(self.verifier.forget_browsers, auth_id)

    async def number_changed(self, auth_id: str, old: str, new: str) -> int:
        """See :meth:`Verifier.number_changed`; in a worker thread (it texts)."""
        changed = partial(self.verifier.number_changed, auth_id, old, new)
        return await self._send_in_thread(changed)  # type: ignore[no-any-return]

    async def cancel(self, auth_id: str) -> bool:
        """See :meth:`Verifier.cancel`."""
        return await self._store(self.verifier.cancel, auth_id)

    async def pending(self, auth_id: str) -> Pending | None:
        """See :meth:`Verifier.pending`."""
        return await self._store(self.verifier.pending, auth_id)

    async def revoke(self, auth_id: str, *, browsers: bool = True) -> datetime:
        """See :meth:`Verifier.revoke`."""
        return await self._store(partial(self.verifier.revoke, auth_id, browsers=browsers))

    async def end_cooldown(self, auth_id: str) -> bool:
        """See :meth:`Verifier.end_cooldown`."""
        return await self._store(self.verifier.end_cooldown, auth_id)

    async def resend_wait(self, auth_id: str) -> int:
        """See :meth:`Verifier.resend_wait`."""
        return await self._store(self.verifier.resend_wait, auth_id)

    async def send_wait(
        self,
        auth_id: str,
        recipient: str | int,
        *,
        client_address: str | None = None,
        otp_domain: str | None = None,
    ) -> SendWait | None:
        """See :meth:`Verifier.send_wait`."""
        v = self.verifier
        if v.schema.missing:
            await self._store(v.schema.ensure)
        return await self.sends.wait(
            auth_id, recipient, StartOptions(client_address=client_address, otp_domain=otp_domain)
        )

    async def purge(self) -> int:
        """See :meth:`Verifier.purge`."""
        return await self._store(self.verifier.purge)

    async def ping(self) -> None:
        """StoreUnavailable if the database cannot answer (health checks)."""
        await self._store(self.verifier.store.ping)
