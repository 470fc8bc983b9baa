"""A circuit breaker: stop calling a backend that is down, and say so.

An outage is a ``BackendError`` that is retryable and not a throttle: no answer (refused
or dropped connection, timeout) or a 5xx, as it comes out of ``RetryingLLM``, that is
after the retries gave up. After ``failures`` outages in a row the breaker opens: every
call fails at once with ``BackendDown``, whose message says what to check, so a run
against a dead server stops instead of spinning through its attempts. After ``window``
seconds it lets one call through as a probe (half-open): a success closes it, a failure
opens it for another ``window``. Any success resets the count. Other errors (a 4xx, a 429
that outlasted the retries) say nothing about whether the backend is up, and neither
count nor reset.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from naig.errors import BackendDown, BackendError
from naig.llm.base import LLM, Completion, Request, Wrapper


def is_outage(e: BackendError) -> bool:
    """Whether ``e`` says the backend is not answering at all (or only with 5xx)."""
    return e.retryable and (e.status is None or e.status >= 500)


class CircuitBreakerLLM(Wrapper):
    def __init__(self, inner: LLM, *, failures: int = 5, window: float = 60.0,
                 clock: Callable[[], float] = time.monotonic):
        super().__init__(inner)
        if failures < 1 or window < 0:
            raise ValueError("need failures >= 1 and window >= 0")
        self.failures = failures
        self.window = window
        self._clock = clock
        self.consecutive = 0
        """Outages in a row since the last success."""
        self.opened_at: float | None = None
        """When the breaker last opened (by ``clock``); None while closed."""
        self._probing = False
        self._last: BackendError | None = None

    @property
    def open(self) -> bool:
        return self.opened_at is not None

    async def complete(self, request: Request) -> Completion:
        probe = self._admit()
        try:
            completion = await self.inner.complete(request)
        except BackendError as e:
            if is_outage(e):
                self._failed(e)
            raise
        finally:
            if probe:
                self._probing = False
        self.consecutive = 0
        self.opened_at = None
        return completion

    def _admit(self) -> bool:
        """Whether this call is the half-open probe; raises while the breaker is open."""
        if self.opened_at is None:
            return False
        if self._probing or self._clock() - self.opened_at < self.window:
            raise self._down()
        self._probing = True
        return True

    def _failed(self, e: BackendError) -> None:
        self.consecutive += 1
        self._last = e
        if self.consecutive >= self.failures:
            self.opened_at = self._clock()

    def _down(self) -> BackendDown:
        last = f"; the last error: {self._last}" if self._last else ""
        return BackendDown(
            f"{self.name} looks down: {self.consecutive} calls in a row failed{last}. "
            "Check that the server is running and reachable at the --base-url given (or "
            "that the hosted API is up), then run the same command again: finished "
            "dialogues are kept and answered calls are cached.", retryable=False)
