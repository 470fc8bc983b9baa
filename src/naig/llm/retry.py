"""Retrying transient backend failures, the one place in naig that does.

A ``BackendError`` marked ``retryable`` (429, 5xx, timeouts, refused or dropped
connections) is tried again, up to ``attempts`` tries in all. Between tries the wait is
exponential backoff with full jitter: uniform in ``[0, min(cap, base * 2**k))`` before the
k-th retry, so that many callers failing together do not come back together. When the
server said how long to wait (``retry_after``), the wait is that, plus up to ``base``
seconds of jitter; a server that asks for more than ``cap`` seconds is not retried, and the
error says what it asked. Anything else (a non-retryable error, a cancellation) passes
through at once.

Retry sits outside the concurrency limit: a call waiting to retry holds no slot, and the
adaptive limit sees each try's outcome.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

from naig.errors import BackendError
from naig.llm.base import LLM, Completion, Request, Wrapper

Sleep = Callable[[float], Awaitable[None]]
OnRetry = Callable[[BackendError, int, float], None]
"""Told ``(error, retry number from 1, seconds it will wait)`` before each wait."""


class RetryingLLM(Wrapper):
    def __init__(self, inner: LLM, *, attempts: int = 6, base: float = 0.5, cap: float = 60.0,
                 sleep: Sleep = asyncio.sleep, rng: random.Random | None = None,
                 on_retry: OnRetry | None = None):
        super().__init__(inner)
        if attempts < 1 or base < 0 or cap < 0:
            raise ValueError("need attempts >= 1, base >= 0 and cap >= 0")
        self.attempts = attempts
        self.base = base
        self.cap = cap
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._on_retry = on_retry
        self.retries = 0
        """Retries made so far, over all calls."""

    def delay(self, retry: int, error: BackendError) -> float | None:
        """Seconds to wait before retry number ``retry`` (from 1), or None to give up."""
        if error.retry_after is not None:
            if error.retry_after > self.cap:
                return None
            return error.retry_after + self._rng.uniform(0, self.base)
        return self._rng.uniform(0, min(self.cap, self.base * 2.0 ** min(retry - 1, 64)))

    async def complete(self, request: Request) -> Completion:
        for attempt in range(1, self.attempts + 1):
            try:
                return await self.inner.complete(request)
            except BackendError as e:
                if not e.retryable:
                    raise
                wait = self.delay(attempt, e) if attempt < self.attempts else None
                if wait is None:
                    raise _gave_up(e, attempt, self.cap) from e
                error = e
            self.retries += 1
            if self._on_retry is not None:
                self._on_retry(error, attempt, wait)
            await self._sleep(wait)
        raise AssertionError("unreachable: the last attempt returns or raises")


def _gave_up(e: BackendError, tries: int, cap: float) -> BackendError:
    """The last error, saying how hard we tried (the CLI shows only the message)."""
    if e.retry_after is not None and e.retry_after > cap:
        why = f"the server asked to wait {e.retry_after:.0f} s, more than the {cap:g} s cap"
    else:
        why = f"gave up after {tries} {'try' if tries == 1 else 'tries'}"
    return type(e)(f"{e} ({why})", status=e.status, retryable=e.retryable,
                   retry_after=e.retry_after)
