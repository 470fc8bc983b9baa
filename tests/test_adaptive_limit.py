"""The adaptive concurrency limit: at the wire for 429s and timeouts (a scripted local
server), and on small fakes at the ``LLM`` interface for latency and for calls held in
flight while the limit drops."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from naig.errors import BackendError
from naig.llm.base import LLM, Completion, Request, messages
from naig.llm.limits import WINDOW, AdaptiveLimitedLLM
from naig.llm.openai_compat import OpenAICompatLLM
from naig.llm.retry import RetryingLLM

from .openai_fake import HANG, FakeOpenAI, error, ok

REQUEST = Request(messages=messages(("user", "hi")), max_tokens=8)


async def _no_wait(seconds: float) -> None:
    return None


def _still(*_: object) -> float:
    """A clock that never moves: every call looks equally fast (latency plays no part)."""
    return 0.0


def test_a_burst_of_429s_halves_the_limit_once_and_it_recovers() -> None:
    storm = threading.Barrier(8)  # all 8 are in flight before any is refused
    with FakeOpenAI(*[error(429, retry_after="0", barrier=storm)] * 8,
                    default=ok()) as server:
        backend = OpenAICompatLLM("m", base_url=server.base_url, timeout=5.0)
        limited = AdaptiveLimitedLLM(backend, start=8, ceiling=8, clock=_still)
        limits_seen: list[int] = []

        def on_retry(e: BackendError, n: int, wait: float) -> None:
            limits_seen.append(limited.limit)
            limited.peak = limited.in_flight  # from here on: in flight after the storm

        llm = RetryingLLM(limited, sleep=_no_wait, on_retry=on_retry)

        async def go() -> list[int]:
            try:
                await asyncio.gather(*(llm.complete(REQUEST) for _ in range(8)))
                after_retries = [limited.peak, limited.limit]
                await asyncio.gather(*(llm.complete(REQUEST) for _ in range(30)))
                return [*after_retries, limited.limit]
            finally:
                await llm.aclose()

        peak, after_retries, recovered = asyncio.run(go())

    assert limits_seen == [4] * 8  # halved once, not once per 429
    assert peak <= 4  # the retries went out at most 4 at a time
    assert after_retries == 5  # +1 after 4 successes at limit 4
    assert recovered == 8  # back to the ceiling, and no further
    assert len(server.requests) == 8 + 8 + 30 and server.unexpected == 0


def test_a_timeout_halves_the_limit() -> None:
    with FakeOpenAI(HANG) as server:
        backend = OpenAICompatLLM("m", base_url=server.base_url, timeout=0.3)
        limited = AdaptiveLimitedLLM(backend, start=6, ceiling=8, clock=_still)

        async def go() -> None:
            try:
                with pytest.raises(BackendError):
                    await limited.complete(REQUEST)
            finally:
                await limited.aclose()

        asyncio.run(go())

    assert limited.limit == 3 and limited.in_flight == 0


def test_other_errors_leave_the_limit_alone() -> None:
    with FakeOpenAI(error(500), error(400)) as server:
        backend = OpenAICompatLLM("m", base_url=server.base_url, timeout=5.0)
        limited = AdaptiveLimitedLLM(backend, start=6, ceiling=8, clock=_still)

        async def go() -> None:
            try:
                for _ in range(2):
                    with pytest.raises(BackendError):
                        await limited.complete(REQUEST)
            finally:
                await limited.aclose()

        asyncio.run(go())

    assert limited.limit == 6


class Paced(LLM):
    """Answers at once, but moves a fake clock by ``latency`` seconds per call."""

    name = "paced:test"

    def __init__(self) -> None:
        self.now = 0.0
        self.latency = 1.0

    def clock(self) -> float:
        return self.now

    async def complete(self, request: Request) -> Completion:
        self.now += self.latency
        return Completion(text="ok", completion_tokens=10)


def test_rising_latency_lowers_the_limit_by_one_per_window() -> None:
    inner = Paced()
    limited = AdaptiveLimitedLLM(inner, start=6, ceiling=6, clock=inner.clock)

    def calls(n: int, latency: float) -> list[int]:
        inner.latency = latency

        async def go() -> list[int]:
            seen = []
            for _ in range(n):
                await limited.complete(REQUEST)
                seen.append(limited.limit)
            return seen

        return asyncio.run(go())

    assert calls(WINDOW, 1.0) == [6] * WINDOW  # the baseline: 0.1 s per token
    assert limited.baseline == pytest.approx(0.1)
    slow = calls(3 * WINDOW, 3.0)  # three times slower
    assert slow[:3] == [6, 6, 5]  # the median turns slow at the third slow call
    assert all(a - b in (0, 1) for a, b in zip(slow, slow[1:], strict=False))  # by one
    assert slow[-1] == 3  # one step per window of slow calls
    back = calls(40, 1.0)  # fast again: no more drops, and it grows back
    assert back == sorted(back) and back[-1] == 6


class Held(LLM):
    """Every call waits until the test answers it: ``answer(i)`` or ``fail(i, e)``."""

    name = "held:test"

    def __init__(self) -> None:
        self.calls: list[asyncio.Future[Completion]] = []

    async def complete(self, request: Request) -> Completion:
        call: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()
        self.calls.append(call)
        return await call

    def answer(self, i: int) -> None:
        self.calls[i].set_result(Completion(text=str(i)))

    def fail(self, i: int, e: Exception) -> None:
        self.calls[i].set_exception(e)


async def until(condition: Callable[[], bool]) -> None:
    """Let other tasks run until ``condition`` holds (no sleeping for a fixed time)."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never came true")


def test_the_limit_can_shrink_below_what_is_in_flight_without_deadlock() -> None:
    inner = Held()
    limited = AdaptiveLimitedLLM(inner, start=4, ceiling=4, clock=_still)

    async def go() -> list[str]:
        tasks = [asyncio.create_task(limited.complete(REQUEST)) for _ in range(8)]
        await until(lambda: len(inner.calls) == 4)
        assert limited.in_flight == 4  # four more are waiting
        inner.fail(0, BackendError("slow down", status=429, retryable=True))
        await until(lambda: limited.limit == 2)
        assert limited.in_flight == 3  # over the new limit
        inner.answer(1)
        await until(lambda: limited.in_flight == 2)
        limited.peak = limited.in_flight
        for _ in range(3):
            await asyncio.sleep(0)
        assert len(inner.calls) == 4  # at the limit: nobody admitted
        for i in range(2, 8):  # each answer lets one more in, until none wait
            inner.answer(i)
            await until(lambda i=i: len(inner.calls) == min(8, i + 3))  # type: ignore[misc]
        done = await asyncio.gather(*tasks, return_exceptions=True)
        return [d.text if isinstance(d, Completion) else type(d).__name__ for d in done]

    results = asyncio.run(go())

    assert results == ["BackendError", "1", "2", "3", "4", "5", "6", "7"]
    assert limited.peak == 2 and limited.in_flight == 0


def test_cancelled_calls_give_their_slots_back() -> None:
    inner = Held()
    limited = AdaptiveLimitedLLM(inner, start=1, ceiling=1, clock=_still)

    async def go() -> str:
        running = asyncio.create_task(limited.complete(REQUEST))
        waiting = asyncio.create_task(limited.complete(REQUEST))
        await until(lambda: len(inner.calls) == 1)
        waiting.cancel()
        running.cancel()
        await asyncio.gather(running, waiting, return_exceptions=True)
        assert limited.in_flight == 0
        last = asyncio.create_task(limited.complete(REQUEST))
        await until(lambda: len(inner.calls) == 2)
        inner.answer(1)
        return (await last).text

    assert asyncio.run(go()) == "1"
    assert limited.limit == 1 and limited.in_flight == 0


def test_a_fixed_latency_server_with_mixed_answer_lengths_keeps_the_limit() -> None:
    """Long plan answers and short verdicts at the same latency per call are not a
    slowing server (found by benchmarks/orchestrator.py: the limit used to collapse)."""

    class Fixed(LLM):
        name = "fixed:test"
        now = 0.0

        def clock(self) -> float:
            return self.now

        async def complete(self, request: Request) -> Completion:
            self.now += 0.2
            tokens = 100 if request.stage == "plan" else 4
            return Completion(text="ok", completion_tokens=tokens)

    inner = Fixed()
    limited = AdaptiveLimitedLLM(inner, start=8, ceiling=8, clock=inner.clock)

    async def go() -> list[int]:
        seen = []
        for i in range(60):
            stage = "plan" if i % 4 == 0 else "verify"
            await limited.complete(REQUEST.model_copy(update={"stage": stage}))
            seen.append(limited.limit)
        return seen

    assert set(asyncio.run(go())) == {8}
