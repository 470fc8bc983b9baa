"""The wrappers stacked in the order a run uses, against a scripted local server:
accounting > cache > budget > breaker > retry > adaptive limit > backend."""

from __future__ import annotations

import asyncio
from pathlib import Path

from naig.errors import BackendError
from naig.llm.accounting import AccountedLLM
from naig.llm.base import LLM, Request, messages
from naig.llm.breaker import CircuitBreakerLLM
from naig.llm.cache import CachedLLM
from naig.llm.limits import AdaptiveLimitedLLM
from naig.llm.openai_compat import OpenAICompatLLM
from naig.llm.pricing import Budget, BudgetLLM
from naig.llm.retry import RetryingLLM

from .openai_fake import FakeOpenAI, Waits, error, ok

REQUEST = Request(messages=messages(("user", "hi")), max_tokens=8)




class Stack:
    """The recommended stack, each layer kept for the assertions."""

    def __init__(self, base_url: str, cache: Path, budget: Budget, waits: Waits):
        self.backend = OpenAICompatLLM("m", base_url=base_url, timeout=5.0)
        self.limit = AdaptiveLimitedLLM(self.backend, start=4, ceiling=4, clock=lambda: 0.0)
        self.breaker = CircuitBreakerLLM(RetryingLLM(self.limit, attempts=3, sleep=waits),
                                         failures=2)
        self.llm: LLM = AccountedLLM(CachedLLM(BudgetLLM(self.breaker, budget), cache))

    async def outcomes(self, *requests: Request) -> list[str]:
        seen = []
        try:
            for request in requests:
                try:
                    seen.append((await self.llm.complete(request)).text)
                except BackendError as e:
                    seen.append(type(e).__name__)
        finally:
            await self.llm.aclose()
        return seen


def test_a_throttled_then_failing_call_is_retried_limited_and_charged_once(
        tmp_path: Path) -> None:
    budget = Budget(max_tokens=10_000)
    waits = Waits()
    with FakeOpenAI(error(429, retry_after="2"), error(500), ok("done")) as server:
        stack = Stack(server.base_url, tmp_path / "c.sqlite", budget, waits)
        seen = asyncio.run(stack.outcomes(REQUEST, REQUEST))  # the second: a cache hit

    assert seen == ["done", "done"]
    assert len(server.requests) == 3 and len(waits.seconds) == 2
    assert 2.0 <= waits.seconds[0] <= 2.5  # Retry-After honoured
    assert stack.limit.limit == 2  # the 429 halved it; the 500 did not
    assert budget.spent.calls == 1  # one answer reached the run; the hit was free
    accounted = stack.llm
    assert isinstance(accounted, AccountedLLM)
    assert accounted.totals.new.usage().calls == 1
    assert accounted.totals.cached.usage().calls == 1


def test_a_dead_server_stops_the_stack_fast(tmp_path: Path) -> None:
    waits = Waits()
    with FakeOpenAI(default=error(502)) as server:
        stack = Stack(server.base_url, tmp_path / "c.sqlite", Budget(), waits)
        requests = [REQUEST.model_copy(update={"seed": i}) for i in range(4)]
        seen = asyncio.run(stack.outcomes(*requests))

    assert seen == ["BackendError", "BackendError", "BackendDown", "BackendDown"]
    assert len(server.requests) == 2 * 3 and len(waits.seconds) == 2 * 2
    assert stack.limit.in_flight == 0 and stack.breaker.open
