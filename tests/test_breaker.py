"""The circuit breaker at the wire: a scripted local server (or none at all) behind
``CircuitBreakerLLM(RetryingLLM(OpenAICompatLLM))``, the order a run stacks them in."""

from __future__ import annotations

import asyncio
import socket

import pytest

from naig.errors import BackendDown, BackendError
from naig.llm.base import Request, messages
from naig.llm.breaker import CircuitBreakerLLM
from naig.llm.openai_compat import OpenAICompatLLM
from naig.llm.retry import RetryingLLM

from .openai_fake import FakeOpenAI, error, ok

REQUEST = Request(messages=messages(("user", "hi")), max_tokens=8)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _no_wait(seconds: float) -> None:
    return None


def _breaker(base_url: str, *, failures: int, clock: Clock | None = None,
             attempts: int = 2) -> CircuitBreakerLLM:
    backend = OpenAICompatLLM("m", base_url=base_url, timeout=5.0)
    return CircuitBreakerLLM(RetryingLLM(backend, attempts=attempts, sleep=_no_wait),
                             failures=failures, window=60.0, clock=clock or Clock())


async def _outcomes(llm: CircuitBreakerLLM, calls: int) -> list[str]:
    """What each of ``calls`` calls in turn came to: its text or its error's class."""
    seen = []
    for _ in range(calls):
        try:
            seen.append((await llm.complete(REQUEST)).text)
        except BackendError as e:
            seen.append(type(e).__name__)
    return seen


def _run(llm: CircuitBreakerLLM, calls: int) -> list[str]:
    async def go() -> list[str]:
        try:
            return await _outcomes(llm, calls)
        finally:
            await llm.aclose()

    return asyncio.run(go())


def test_opens_after_n_failed_calls_and_then_fails_fast() -> None:
    with FakeOpenAI(default=error(500)) as server:
        llm = _breaker(server.base_url, failures=3)
        seen = _run(llm, 5)

        assert seen == ["BackendError"] * 3 + ["BackendDown"] * 2
        assert len(server.requests) == 3 * 2  # open: nothing more reached the server
    assert llm.open


def test_a_dead_server_stops_with_a_message_that_says_what_to_check() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        base_url = f"http://127.0.0.1:{s.getsockname()[1]}/v1"  # nothing listens on it
    llm = _breaker(base_url, failures=2)

    async def go() -> BackendDown:
        try:
            for _ in range(2):
                with pytest.raises(BackendError):
                    await llm.complete(REQUEST)
            with pytest.raises(BackendDown) as caught:
                await llm.complete(REQUEST)
            return caught.value
        finally:
            await llm.aclose()

    down = asyncio.run(go())

    message = str(down)
    assert not down.retryable and isinstance(down, BackendError)
    assert "looks down" in message and "2 calls in a row failed" in message
    assert f"cannot reach {base_url}" in message  # the last error, with the address
    assert "Check that the server is running" in message
    assert "\n" not in message


def test_a_success_resets_the_count() -> None:
    script = [error(500), error(500), ok("up"), error(500), error(500), ok("up")]
    with FakeOpenAI(*script) as server:
        llm = _breaker(server.base_url, failures=3, attempts=1)
        seen = _run(llm, 6)

    assert seen == ["BackendError", "BackendError", "up"] * 2
    assert not llm.open and len(server.requests) == 6


def test_client_errors_and_throttles_say_nothing_about_an_outage() -> None:
    # A 4xx answer, or a 429 that outlasted the retries, comes from a server that is up.
    script = [error(500), error(400), error(429), error(500), ok()]
    with FakeOpenAI(*script) as server:
        llm = _breaker(server.base_url, failures=2, attempts=1)
        seen = _run(llm, 5)

    assert seen == ["BackendError"] * 4 + ["BackendDown"]  # the second 500 opens it
    assert len(server.requests) == 4


def test_after_the_window_one_probe_goes_through() -> None:
    clock = Clock()
    with FakeOpenAI(error(500), error(500), ok("back"), ok("still")) as server:
        llm = _breaker(server.base_url, failures=1, clock=clock, attempts=1)

        async def go() -> list[str]:
            try:
                seen = await _outcomes(llm, 2)
                clock.now += 59
                seen += await _outcomes(llm, 1)
                clock.now += 1
                seen += await _outcomes(llm, 2)  # the probe fails: open for another window
                clock.now += 60
                return seen + await _outcomes(llm, 2)  # the probe succeeds: closed
            finally:
                await llm.aclose()

        seen = asyncio.run(go())

    assert seen == ["BackendError", "BackendDown", "BackendDown",
                    "BackendError", "BackendDown", "back", "still"]
    assert len(server.requests) == 4 and not llm.open
