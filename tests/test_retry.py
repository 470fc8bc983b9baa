"""Retrying at the wire: the OpenAI-compatible backend against a scripted local server,
wrapped in ``RetryingLLM`` with a ``sleep`` that records the waits instead of waiting."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from naig.errors import BackendError, BackendTimeout
from naig.llm.base import LLM, Completion, Request, messages
from naig.llm.openai_compat import OpenAICompatLLM, retry_after
from naig.llm.retry import RetryingLLM

from .openai_fake import HANG, FakeOpenAI, Waits, error, ok

REQUEST = Request(messages=messages(("user", "hi")), max_tokens=8)




class Highest(random.Random):
    """Jitter always at the top of its range: the backoff's upper bound, exactly."""

    def uniform(self, a: float, b: float) -> float:
        return b


def call(base_url: str, wrap: Callable[[LLM], LLM], timeout: float = 5.0) -> Completion:
    async def go() -> Completion:
        llm = wrap(OpenAICompatLLM("m", base_url=base_url, timeout=timeout))
        try:
            return await llm.complete(REQUEST)
        finally:
            await llm.aclose()

    return asyncio.run(go())


def test_retry_after_is_honoured() -> None:
    waits = Waits()
    with FakeOpenAI(error(429, retry_after="1"), ok("fine")) as server:
        got = call(server.base_url, lambda b: RetryingLLM(b, base=0.5, sleep=waits))

    assert got.text == "fine"
    assert len(server.requests) == 2
    (wait,) = waits.seconds
    assert 1.0 <= wait <= 1.5  # what the server asked, plus at most `base` of jitter


def test_server_errors_are_retried_until_an_answer() -> None:
    waits = Waits()
    with FakeOpenAI(error(500), error(502), ok("third time")) as server:
        got = call(server.base_url, lambda b: RetryingLLM(b, base=0.5, sleep=waits,
                                                           rng=random.Random(1)))

    assert got.text == "third time"
    assert len(server.requests) == 3
    assert len(waits.seconds) == 2
    assert 0 <= waits.seconds[0] <= 0.5 and 0 <= waits.seconds[1] <= 1.0  # full jitter


def test_backoff_doubles_up_to_the_cap_then_gives_up_saying_so() -> None:
    waits = Waits()
    with FakeOpenAI(default=error(503)) as server, pytest.raises(BackendError) as caught:
        call(server.base_url, lambda b: RetryingLLM(b, attempts=7, base=0.5, cap=3.0,
                                                     sleep=waits, rng=Highest()))

    assert waits.seconds == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    assert len(server.requests) == 7
    assert caught.value.status == 503 and caught.value.retryable
    assert "gave up after 7 tries" in str(caught.value)
    assert server.base_url in str(caught.value)


def test_a_client_error_is_not_retried() -> None:
    waits = Waits()
    with FakeOpenAI(error(400), ok()) as server, pytest.raises(BackendError) as caught:
        call(server.base_url, lambda b: RetryingLLM(b, sleep=waits))

    assert caught.value.status == 400 and not caught.value.retryable
    assert len(server.requests) == 1
    assert waits.seconds == []


def test_a_retry_after_beyond_the_cap_is_not_waited_for() -> None:
    waits = Waits()
    with FakeOpenAI(error(429, retry_after="3600"), ok()) as server, \
            pytest.raises(BackendError) as caught:
        call(server.base_url, lambda b: RetryingLLM(b, cap=60.0, sleep=waits))

    assert waits.seconds == [] and len(server.requests) == 1
    assert caught.value.retry_after == 3600.0
    assert "asked to wait 3600 s, more than the 60 s cap" in str(caught.value)


def test_a_server_that_never_answers_is_retried_after_the_timeout() -> None:
    waits = Waits()
    with FakeOpenAI(HANG, ok("late but fine")) as server:
        got = call(server.base_url, lambda b: RetryingLLM(b, sleep=waits), timeout=0.3)

    assert got.text == "late but fine"
    assert len(server.requests) == 2 and len(waits.seconds) == 1


def test_a_refused_connection_is_retried_then_reported() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        base_url = f"http://127.0.0.1:{s.getsockname()[1]}/v1"  # nothing listens on it
    waits = Waits()
    seen: list[tuple[str, int]] = []

    with pytest.raises(BackendError) as caught:
        call(base_url, lambda b: RetryingLLM(
            b, attempts=3, sleep=waits,
            on_retry=lambda e, n, _: seen.append((type(e).__name__, n))))

    assert not isinstance(caught.value, BackendTimeout)
    assert caught.value.status is None and caught.value.retryable
    assert "cannot reach" in str(caught.value) and "gave up after 3 tries" in str(caught.value)
    assert seen == [("BackendError", 1), ("BackendError", 2)] and len(waits.seconds) == 2


@pytest.mark.parametrize(("headers", "seconds"), [
    ({"retry-after": "2"}, 2.0),
    ({"retry-after": "0.25"}, 0.25),
    ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
    ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 30.0),  # 30 s after `now` below
    ({"retry-after": "Wed, 21 Oct 2015 07:27:00 GMT"}, 0.0),  # already past
    ({"retry-after": "soon"}, None),
    ({}, None),
])
def test_retry_after_header_forms(headers: dict[str, str], seconds: float | None) -> None:
    now = 1445412480.0 - 30  # 2015-10-21 07:27:30 UTC
    assert retry_after(headers, now=now) == seconds


@pytest.mark.parametrize("message", [
    "This model's maximum context length is 8192 tokens. However, you requested 9000 tokens",
    "Requested token count exceeds the model's maximum context length of 4096 tokens",
    "the prompt is too long"])
def test_a_prompt_too_long_fails_the_dialogue_not_the_run(message: str) -> None:
    from naig.errors import ModelOutputError

    with FakeOpenAI(error(400, message=message), ok()) as server, \
            pytest.raises(ModelOutputError, match="context window"):
        call(server.base_url, lambda b: RetryingLLM(b, sleep=Waits()))
    assert len(server.requests) == 1  # not retried: the same prompt would not fit again


def test_a_dialogue_whose_prompt_outgrew_the_model_is_rejected_and_the_run_goes_on(
        tmp_path: Path) -> None:
    from naig.config import MethodSettings, RunConfig
    from naig.envs.registry import resolve
    from naig.errors import PromptTooLong
    from naig.runner import run
    from naig.store import read_records
    from naig.testing import ScriptedLLM, schema_example

    class Overflows(LLM):
        """The scripted model, but every request of the first dialogue's skeleton is too
        long for it."""

        name = "scripted:overflow"

        def __init__(self) -> None:
            self.inner = ScriptedLLM(respond=schema_example)
            self.skeletons = 0

        async def complete(self, request: Request) -> Completion:
            if request.stage == "skeleton":
                self.skeletons += 1
                if self.skeletons == 1:
                    raise PromptTooLong("scripted: the prompt is longer than the model's "
                                        "context window")
            return await self.inner.complete(request)

    config = RunConfig(tools=("builtin",), n=2, max_attempts=3, output=tmp_path / "o.jsonl",
                       cache=False, settings=MethodSettings(subtasks_min=1, subtasks_max=1,
                                                          steps_min=1, steps_max=1))
    summary = asyncio.run(run(config, Overflows(), resolve("builtin")))
    rejected = read_records(tmp_path / "o.rejected.jsonl")
    assert summary.kept == 2 and len(rejected) == 1
    assert "context window" in (rejected[0].meta.error or "")
