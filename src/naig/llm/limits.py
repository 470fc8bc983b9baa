"""Concurrency limits: at most ``limit`` requests in flight to the wrapped backend.

``LimitedLLM`` holds a fixed limit. ``AdaptiveLimitedLLM`` moves its limit between
``floor`` and ``ceiling`` the way TCP moves its window (AIMD):

* throttled (HTTP 429 or 503, or a timeout): halve the limit;
* slower (the median latency of the last few calls above twice a running baseline; a
  self-hosted vLLM never sends 429, it queues and gets slow): lower it by one;
* otherwise: raise it by one after ``limit`` successes (answers in normal time) in a row.

Calls that were already in flight when the limit dropped neither drop it again nor
count towards raising it: a burst of 429s answering one round of calls halves the limit
once. Latency is measured per completion token (per call when the server reports no
usage), so long answers are not taken for a slow server. It is a heuristic: it finds a
limit the server copes with, not the best one.

It goes inside ``RetryingLLM``, so that it sees every try and a call waiting to retry
holds no slot; the embedded model, which runs one call at a time, needs neither.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import deque
from collections.abc import Callable

from naig.errors import BackendError, BackendTimeout
from naig.llm.base import LLM, Completion, Request, Wrapper

THROTTLE_STATUSES = frozenset({429, 503})
"""Statuses a server sends when it wants fewer requests (503: "overloaded")."""
WINDOW = 5
"""Latency samples whose median is compared with the baseline."""
SLOWER = 2.0
TINY = 1e-9  # seconds per token: a floor for baselines measured on instant fakes
"""The median over the baseline that counts as "slower"."""
FASTER_WEIGHT = 0.2
SLOWER_WEIGHT = 0.01
"""How fast the baseline (a moving average) follows a faster and a slower sample: it
tracks the fast end, like TCP Vegas' base RTT, so a slowdown is noticed for dozens of
calls before it becomes the new normal (longer prompts later in a run, say)."""


class LimitedLLM(Wrapper):
    def __init__(self, inner: LLM, limit: int):
        super().__init__(inner)
        self.limit = limit
        self._sem = asyncio.Semaphore(limit)
        self.in_flight = 0
        self.peak = 0

    async def complete(self, request: Request) -> Completion:
        async with self._sem:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            try:
                return await self.inner.complete(request)
            finally:
                self.in_flight -= 1


class AdaptiveLimitedLLM(Wrapper):
    def __init__(self, inner: LLM, *, start: int, floor: int = 1, ceiling: int,
                 clock: Callable[[], float] = time.perf_counter):
        super().__init__(inner)
        if not 1 <= floor <= ceiling:
            raise ValueError(f"need 1 <= floor <= ceiling, got {floor} and {ceiling}")
        self.floor = floor
        self.ceiling = ceiling
        self.limit = min(max(start, floor), ceiling)
        """Requests allowed in flight now."""
        self.in_flight = 0
        self.peak = 0
        """Most requests ever in flight at once."""
        self.baselines: dict[str, float] = {}
        """Running typical latency per stage, seconds per completion token. Per stage,
        because stages differ in answer length and a server's fixed cost per call (prefill,
        queueing, network) makes short answers slower per token: one shared baseline
        would read a stage's mix as a slowing server."""
        self._clock = clock
        self._recent: deque[float] = deque(maxlen=WINDOW)  # latency / its stage's baseline
        self._warmup: dict[str, list[float]] = {}
        self._streak = 0
        self._epoch = 0  # bumped on every decrease
        # A Condition, not a Semaphore: the limit can drop below what is in flight, and
        # waiters must then wait for more than one release.
        self._ready = asyncio.Condition()

    async def complete(self, request: Request) -> Completion:
        async with self._ready:
            await self._ready.wait_for(lambda: self.in_flight < self.limit)
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            epoch = self._epoch
        throttled = False
        stage = request.stage
        latency: float | None = None  # per completion token; None: no answer
        start = self._clock()
        try:
            completion = await self.inner.complete(request)
            latency = (self._clock() - start) / max(1, completion.completion_tokens)
            return completion
        except BackendError as e:
            throttled = isinstance(e, BackendTimeout) or e.status in THROTTLE_STATUSES
            raise
        finally:
            # Shielded: a second cancellation must not lose the release (nor wake-ups).
            await asyncio.shield(self._release(epoch, throttled, latency, stage))

    @property
    def baseline(self) -> float | None:
        """The baseline of requests with no stage (tests and single-stage use)."""
        return self.baselines.get("")

    async def _release(self, epoch: int, throttled: bool, latency: float | None,
                       stage: str) -> None:
        async with self._ready:
            self.in_flight -= 1
            if throttled:
                self._decrease(epoch, self.limit // 2)
            elif latency is not None:
                self._observe(epoch, latency, stage)
            self._ready.notify_all()

    def _observe(self, epoch: int, sample: float, stage: str = "") -> None:
        """Compare a call with its own stage's baseline; the window holds those ratios."""
        base = self.baselines.get(stage)
        if base is None:
            warm = self._warmup.setdefault(stage, [])
            warm.append(sample)
            if len(warm) == WINDOW:
                base = self.baselines[stage] = max(statistics.median(warm), TINY)
                self._recent.extend(s / base for s in self._warmup.pop(stage))
            self._succeeded(epoch)
            return
        self._recent.append(sample / base)
        threshold = SLOWER * base
        slower = len(self._recent) == WINDOW and statistics.median(self._recent) > SLOWER
        weight = FASTER_WEIGHT if sample < base else SLOWER_WEIGHT
        # Clipped, so one very slow call does not drag the baseline up with it.
        self.baselines[stage] = base + weight * (min(sample, threshold) - base)
        if slower:
            self._decrease(epoch, self.limit - 1)
        elif sample <= threshold:  # a slow call is no sign the limit could grow
            self._succeeded(epoch)

    def _decrease(self, epoch: int, to: int) -> None:
        self._streak = 0
        if epoch != self._epoch:
            return  # started before the last decrease: that one already answered it
        self.limit = max(self.floor, to)
        self._epoch += 1
        self._recent.clear()

    def _succeeded(self, epoch: int) -> None:
        if epoch != self._epoch:
            return  # started before the last decrease: says nothing about the new limit
        self._streak += 1
        if self._streak >= self.limit and self.limit < self.ceiling:
            self.limit += 1
            self._streak = 0
