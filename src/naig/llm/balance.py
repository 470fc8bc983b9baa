"""Load balancing over a fleet of servers of the same model (several vLLM or SGLang
servers, one per GPU node).

Each request goes to the endpoint with the fewest requests in flight; ties go round-robin,
so sequential requests alternate and concurrent ones spread evenly. An endpoint that fails
with a retryable ``BackendError`` (refused or dropped connection, timeout, 408, 429, 5xx)
is set aside for a cool-down (the server's ``Retry-After`` when it sent one) and the
request is tried on another endpoint, each endpoint at most once per request. When every
endpoint is set aside, the one back soonest is tried anyway, as a probe; a success brings
it back at once. When every endpoint failed, the last error goes up, still retryable and
saying that every endpoint failed, to ``RetryingLLM`` and the circuit breaker above (they
wrap the balanced LLM, not each endpoint). Errors that say nothing about an endpoint's
health (a 400 for a prompt too long, a refused key) pass through at once and set nothing
aside.

The balanced LLM takes the name of its endpoints (``openai:<model>``): records and cache
keys do not depend on which server answered.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from naig.errors import BackendError
from naig.llm.base import LLM, Completion, Request

COOLDOWN = 15.0
"""Seconds a failing endpoint is set aside when its server did not say how long."""


class BalancedLLM(LLM):
    def __init__(self, backends: Sequence[LLM], *, cooldown: float = COOLDOWN,
                 clock: Callable[[], float] = time.monotonic):
        if not backends:
            raise ValueError("a balanced LLM needs at least one backend")
        names = {(b.name, b.fingerprint) for b in backends}
        if len(names) > 1:
            raise ValueError(f"balanced backends must serve one model, got {sorted(names)}")
        self.backends = list(backends)
        self.name = backends[0].name
        self.fingerprint = backends[0].fingerprint
        self.serializes = False
        self.cooldown = cooldown
        self._clock = clock
        self.in_flight = [0] * len(backends)
        self.sent = [0] * len(backends)
        """Requests sent to each endpoint so far (tries, failed ones included)."""
        self.failovers = 0
        """Requests moved to another endpoint after one failed."""
        self.down_until = [0.0] * len(backends)
        """When each endpoint's cool-down ends (by ``clock``); in the past: healthy."""
        self._turn = 0

    def healthy(self, i: int) -> bool:
        return self.down_until[i] <= self._clock()

    def _pick(self, tried: set[int]) -> int | None:
        untried = [i for i in range(len(self.backends)) if i not in tried]
        if not untried:
            return None
        healthy = [i for i in untried if self.healthy(i)]
        if not healthy:
            return min(untried, key=lambda i: self.down_until[i])
        n = len(self.backends)
        choice = min(healthy, key=lambda i: (self.in_flight[i], (i - self._turn) % n))
        self._turn = (choice + 1) % n
        return choice

    async def complete(self, request: Request) -> Completion:
        tried: set[int] = set()
        last: BackendError | None = None
        while (i := self._pick(tried)) is not None:
            tried.add(i)
            if last is not None:
                self.failovers += 1
            self.in_flight[i] += 1
            self.sent[i] += 1
            try:
                completion = await self.backends[i].complete(request)
            except BackendError as e:
                if not e.retryable:
                    raise
                wait = e.retry_after if e.retry_after is not None else self.cooldown
                self.down_until[i] = max(self.down_until[i], self._clock() + wait)
                last = e
                continue
            finally:
                self.in_flight[i] -= 1
            self.down_until[i] = 0.0
            return completion
        assert last is not None  # every endpoint was tried, and each failed
        if len(self.backends) == 1:
            raise last
        raise type(last)(f"{last} (and every other of the {len(self.backends)} endpoints "
                         "failed too)", status=last.status, retryable=last.retryable,
                         retry_after=last.retry_after)

    async def aclose(self) -> None:
        for b in self.backends:
            await b.aclose()
