"""Load balancing over a fleet at the wire: two real local OpenAI-compatible servers
(``openai_fake``), ``OpenAICompatLLM`` for each, ``BalancedLLM`` over them."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from naig.errors import BackendError
from naig.llm.balance import BalancedLLM
from naig.llm.base import Completion, Request, messages
from naig.llm.cache import CachedLLM
from naig.llm.openai_compat import OpenAICompatLLM
from naig.llm.registry import open_backend

from .openai_fake import FakeOpenAI, Reply, error, ok

REQUEST = Request(messages=messages(("user", "hi")), max_tokens=8)
T = TypeVar("T")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def fleet(*urls: str, clock: Clock | None = None, cooldown: float = 15.0) -> BalancedLLM:
    return BalancedLLM([OpenAICompatLLM("m", base_url=u, timeout=5.0) for u in urls],
                       cooldown=cooldown, clock=clock or Clock())


def drive(llm: BalancedLLM, go: Callable[[BalancedLLM], Awaitable[T]]) -> T:
    async def main() -> T:
        try:
            return await go(llm)
        finally:
            await llm.aclose()

    return asyncio.run(main())


async def sequential(llm: BalancedLLM, n: int) -> list[Completion]:
    return [await llm.complete(REQUEST) for _ in range(n)]


def _dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"  # nothing listens there


def test_sequential_requests_alternate() -> None:
    with FakeOpenAI(default=ok("a")) as a, FakeOpenAI(default=ok("b")) as b:
        got = drive(fleet(a.base_url, b.base_url), lambda llm: sequential(llm, 10))

    assert [c.text for c in got] == ["a", "b"] * 5
    assert len(a.requests) == len(b.requests) == 5


def test_concurrent_requests_go_to_the_least_busy() -> None:
    # Four requests that each wait until all four are in: only an even spread lets each
    # server see exactly two at once.
    gate = threading.Barrier(4)
    with (FakeOpenAI(Reply(barrier=gate), Reply(barrier=gate)) as a,
          FakeOpenAI(Reply(barrier=gate), Reply(barrier=gate)) as b):
        async def burst(llm: BalancedLLM) -> list[Completion]:
            return list(await asyncio.gather(*(llm.complete(REQUEST) for _ in range(4))))

        got = drive(fleet(a.base_url, b.base_url), burst)

    assert len(got) == 4
    assert a.peak == b.peak == 2
    assert a.unexpected == b.unexpected == 0


def test_a_failing_server_is_set_aside_then_comes_back() -> None:
    clock = Clock()
    with FakeOpenAI(error(500), default=ok("a")) as a, FakeOpenAI(default=ok("b")) as b:
        llm = fleet(a.base_url, b.base_url, clock=clock, cooldown=15.0)

        async def go(llm: BalancedLLM) -> list[str]:
            first = await llm.complete(REQUEST)  # to a: 500, then the same request to b
            assert not llm.healthy(0) and llm.failovers == 1
            during = await sequential(llm, 4)
            clock.now += 16  # the cool-down is over
            after = await sequential(llm, 4)
            return [c.text for c in (first, *during, *after)]

        texts = drive(llm, go)

    assert texts[:5] == ["b"] * 5  # nothing goes to a while it is set aside
    assert sorted(texts[5:]) == ["a", "a", "b", "b"]  # back in the rotation
    assert len(a.requests) == 3


def test_a_server_that_is_down_is_failed_over() -> None:
    with FakeOpenAI(default=ok("b")) as b:
        llm = fleet(_dead_url(), b.base_url)
        got = drive(llm, lambda llm: sequential(llm, 6))

    assert [c.text for c in got] == ["b"] * 6
    assert llm.sent == [1, 6] and llm.failovers == 1  # one try on the dead one, then aside


def test_a_retry_after_sets_the_cool_down() -> None:
    clock = Clock()
    with FakeOpenAI(error(429, retry_after="40"), default=ok("a")) as a, \
         FakeOpenAI(default=ok("b")) as b:
        llm = fleet(a.base_url, b.base_url, clock=clock, cooldown=5.0)
        drive(llm, lambda llm: sequential(llm, 1))

    assert llm.down_until[0] == pytest.approx(clock.now + 40)
    assert len(b.requests) == 1


def test_when_every_server_fails_the_error_is_retryable_and_says_so() -> None:
    with FakeOpenAI(default=error(503)) as a, FakeOpenAI(default=error(502)) as b:
        llm = fleet(a.base_url, b.base_url)
        with pytest.raises(BackendError) as caught:
            drive(llm, lambda llm: sequential(llm, 1))

    assert caught.value.retryable and caught.value.status == 502
    assert "every other of the 2 endpoints failed" in str(caught.value)
    assert len(a.requests) == len(b.requests) == 1


def test_when_all_are_set_aside_they_are_still_tried_soonest_back_first() -> None:
    clock = Clock()
    with FakeOpenAI(error(500), error(500), default=ok("a")) as a, \
         FakeOpenAI(error(500), default=ok("b")) as b:
        llm = fleet(a.base_url, b.base_url, clock=clock, cooldown=10.0)

        async def go(llm: BalancedLLM) -> str:
            with pytest.raises(BackendError):
                await llm.complete(REQUEST)  # a fails, then b: both set aside
            clock.now += 1
            assert not llm.healthy(0) and not llm.healthy(1)
            # a is back first (tie: the first), fails again; b is probed and answers
            return (await llm.complete(REQUEST)).text

        text = drive(llm, go)

    assert text == "b" and llm.healthy(1) and not llm.healthy(0)
    assert len(a.requests) == 2 and len(b.requests) == 2


def test_a_client_error_is_not_failed_over() -> None:
    with FakeOpenAI(error(400)) as a, FakeOpenAI(default=ok("b")) as b:
        llm = fleet(a.base_url, b.base_url)
        with pytest.raises(BackendError) as caught:
            drive(llm, lambda llm: sequential(llm, 1))

    assert caught.value.status == 400
    assert llm.healthy(0) and llm.failovers == 0 and not b.requests


def test_open_backend_balances_several_urls_under_one_name() -> None:
    urls = ["http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1"]
    for given in (",".join(urls), urls, f" {urls[0]} , {urls[1]} "):
        llm = open_backend("openai:m", given)
        assert isinstance(llm, BalancedLLM)
        assert [b.base_url for b in llm.backends] == urls  # type: ignore[attr-defined]
        assert llm.name == "openai:m"
        asyncio.run(llm.aclose())
    single = open_backend("openai:m", urls[0])
    assert isinstance(single, OpenAICompatLLM) and single.fingerprint == llm.fingerprint
    asyncio.run(single.aclose())


def test_the_cache_does_not_depend_on_which_server_answered(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"

    async def ask(*urls: str) -> Completion:
        llm = CachedLLM(fleet(*urls), path)
        try:
            return await llm.complete(REQUEST)
        finally:
            await llm.aclose()

    with FakeOpenAI(default=ok("one")) as a, FakeOpenAI(default=ok("two")) as b:
        first = asyncio.run(ask(a.base_url, b.base_url))
        again = asyncio.run(ask(b.base_url, a.base_url))  # b would answer first now

    assert first.text == "one" and not first.cached
    assert again.text == "one" and again.cached
    assert len(a.requests) == 1 and not b.requests
