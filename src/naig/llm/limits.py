"""A concurrency limit: at most ``limit`` requests in flight to the wrapped backend."""

from __future__ import annotations

import asyncio

from naig.llm.base import LLM, Completion, Request, Wrapper


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
