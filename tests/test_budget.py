"""Prices and the budget: the price table and its files, and ``BudgetLLM`` at the wire
(a scripted local server whose usage counts the prompt a real one would)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from naig.dialogue import StageUsage
from naig.errors import BudgetExhausted, ConfigError, NaigError
from naig.llm.base import Completion, Request, messages
from naig.llm.cache import CachedLLM
from naig.llm.openai_compat import OpenAICompatLLM
from naig.llm.pricing import (
    DEFAULT_PRICES,
    FREE,
    Budget,
    BudgetLLM,
    Price,
    cost,
    load_prices,
    price_of,
)

from .openai_fake import FakeOpenAI, ok

# 400 characters: the server counts 100 prompt tokens, the budget reserves 134 (chars / 3).
REQUEST = Request(messages=messages(("user", "x" * 400)), max_tokens=100)
DOLLAR_PER_KTOK = Price(1000.0, 1000.0)  # round numbers: 1 USD per 1,000 tokens
# Each call costs 200 tokens (100 + 100) and reserves 234 before it is sent.


def _calls(base_url: str, budget: Budget, n: int, *, together: bool = False,
           cache: Path | None = None) -> list[str]:
    """Make ``n`` calls (one after another, or all at once); each gives its text or
    ``refused``."""

    async def one(llm: BudgetLLM | CachedLLM, request: Request) -> str:
        try:
            return (await llm.complete(request)).text
        except BudgetExhausted:
            return "refused"

    async def go() -> list[str]:
        backend = OpenAICompatLLM("m", base_url=base_url, timeout=5.0)
        llm: BudgetLLM | CachedLLM = BudgetLLM(backend, budget)
        if cache is not None:
            llm = CachedLLM(llm, cache)
        try:
            if together:
                return list(await asyncio.gather(*(one(llm, REQUEST) for _ in range(n))))
            return [await one(llm, REQUEST.model_copy(update={"seed": i})) for i in range(n)]
        finally:
            await llm.aclose()

    return asyncio.run(go())


def test_the_cost_limit_stops_calls_before_they_could_cross_it() -> None:
    budget = Budget(max_cost=1.0, price=DOLLAR_PER_KTOK)
    with FakeOpenAI(default=ok(completion_tokens=100)) as server:
        got = _calls(server.base_url, budget, 6)

    assert got == ["ok"] * 4 + ["refused"] * 2  # the 5th could cost 0.8 + 0.234 > 1
    assert len(server.requests) == 4  # refused calls never reach the server
    assert budget.cost == pytest.approx(0.8) and budget.spent.calls == 4
    assert budget.tokens == 800 and not budget.exhausted


def test_calls_in_flight_together_cannot_overspend() -> None:
    budget = Budget(max_cost=1.0, price=DOLLAR_PER_KTOK)
    with FakeOpenAI(default=ok(completion_tokens=100)) as server:
        got = _calls(server.base_url, budget, 10, together=True)

    assert sorted(got) == ["ok"] * 4 + ["refused"] * 6
    assert len(server.requests) == 4 and budget.cost <= 1.0


def test_the_token_limit_stops_calls_too() -> None:
    budget = Budget(max_tokens=1000)
    with FakeOpenAI(default=ok(completion_tokens=100)) as server:
        got = _calls(server.base_url, budget, 6)

    assert got == ["ok"] * 4 + ["refused"] * 2
    assert budget.tokens == 800 <= 1000 and budget.cost == 0.0


def test_the_refusal_says_what_was_spent_and_what_to_do() -> None:
    budget = Budget(max_cost=0.1, price=DOLLAR_PER_KTOK)  # less than one call may cost
    with FakeOpenAI() as server, pytest.raises(BudgetExhausted) as caught:
        llm = BudgetLLM(OpenAICompatLLM("m", base_url=server.base_url), budget)
        try:
            asyncio.run(llm.complete(REQUEST))
        finally:
            asyncio.run(llm.aclose())

    assert caught.value.exit_code == 5 and isinstance(caught.value, NaigError)
    message = str(caught.value)
    assert "$0.0000 and 0 tokens over 0 calls" in message and "--max-cost $0.1" in message
    assert "run the same command again" in message


def test_cache_hits_are_free_and_served_after_the_budget_is_spent(tmp_path: Path) -> None:
    budget = Budget(max_tokens=300)  # room for one call
    cache = tmp_path / "c.sqlite"
    with FakeOpenAI(default=ok(completion_tokens=100)) as server:
        first = _calls(server.base_url, budget, 2, cache=cache)  # seeds 0 and 1
        again = _calls(server.base_url, budget, 1, cache=cache)  # seed 0: a hit

    assert first == ["ok", "refused"] and again == ["ok"]
    assert len(server.requests) == 1 and budget.spent.calls == 1


def test_only_calls_that_reached_a_model_are_charged() -> None:
    budget = Budget(max_tokens=10)
    budget.charge(Completion(text="", prompt_tokens=50, completion_tokens=50, cached=True))
    assert budget.tokens == 0 and not budget.exhausted
    budget.charge(Completion(text="", prompt_tokens=6, completion_tokens=4))
    assert budget.tokens == 10 and budget.exhausted


def test_cost_is_per_million_tokens() -> None:
    usage = StageUsage(calls=3, prompt_tokens=2_000_000, completion_tokens=500_000)
    assert cost(usage, Price(0.15, 0.6)) == pytest.approx(0.6)
    assert cost(usage, FREE) == 0.0


def test_prices_of_known_dated_local_and_unknown_models() -> None:
    assert price_of("openai:gpt-4o-mini") == Price(0.15, 0.60, 0.075)
    assert price_of("openai:gpt-4o-mini-2024-07-18") == Price(0.15, 0.60, 0.075)
    assert price_of("openai:gpt-4.1-mini") == Price(0.40, 1.60, 0.10)
    assert price_of("local:qwen2.5-coder-0.5b") == FREE and price_of("local") == FREE
    assert price_of("scripted:0.05") == FREE
    assert price_of("openai:my-own-model") is None
    assert price_of("openai:gpt-4o-audio-preview") is None  # not a dated gpt-4o


def test_a_prices_file_overrides_and_extends_the_defaults(tmp_path: Path) -> None:
    as_json = tmp_path / "prices.json"
    as_json.write_text(json.dumps({"openai:my-model": {"prompt": 0.15, "completion": 0.6},
                                   "openai:gpt-4o": {"prompt": 1, "completion": 2}}))
    as_toml = tmp_path / "prices.toml"
    as_toml.write_text('["openai:my-model"]\nprompt = 0.15\ncompletion = 0.6\n')

    for path in (as_json, as_toml):
        prices = load_prices(path)
        assert prices["openai:my-model"] == Price(0.15, 0.6)
        assert price_of("openai:my-model", prices) == Price(0.15, 0.6)
    assert load_prices(as_json)["openai:gpt-4o"] == Price(1.0, 2.0)
    assert load_prices(as_toml)["openai:gpt-4o"] == DEFAULT_PRICES["openai:gpt-4o"]
    assert load_prices() == DEFAULT_PRICES
    as_toml.write_text('["openai:my-model"]\nprompt = 0.2\ncompletion = 0.8\n'
                       'cached_prompt = 0.05\n')
    assert load_prices(as_toml)["openai:my-model"] == Price(0.2, 0.8, 0.05)


@pytest.mark.parametrize(("name", "text", "says"), [
    ("p.json", '{"openai:m": {"prompt": 1}}', "completion: Field required"),
    ("p.json", '{"openai:m": {"prompt": -1, "completion": 1}}', "prompt: Input should be"),
    ("p.json", '{"openai:m": {"prompt": 1, "completion": 1, "cached": 0.5}}', "cached"),
    ("p.json", '{"m": {"prompt": 1, "completion": 1}}', "should be provider:model"),
    ("p.json", '[1, 2]', "expected a table of models"),
    ("p.json", '{"openai:m": ', "does not parse"),
    ("p.toml", 'prompt = ', "does not parse"),
    ("p.yaml", '{}', "name it .json or .toml"),
])
def test_a_bad_prices_file_is_a_config_error(tmp_path: Path, name: str, text: str,
                                             says: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_prices(path)
    assert says in str(caught.value) and str(path) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_cost_limit_needs_a_price() -> None:
    with pytest.raises(ConfigError) as caught:
        Budget.for_model("openai:my-own-model", max_cost=5.0)
    assert '{"openai:my-own-model": {"prompt": USD, "completion": USD}}' in str(caught.value)
    tokens_only = Budget.for_model("openai:my-own-model", max_tokens=1000)
    assert tokens_only.max_tokens == 1000 and tokens_only.cost == 0.0
    assert Budget.for_model("openai:gpt-4o-mini", max_cost=5.0).price == Price(0.15, 0.6, 0.075)


def test_a_budget_spent_while_the_experts_run_stops_the_run_cleanly(tmp_path: Path) -> None:
    """The experts run in a task group: the spent budget must come out as itself (the run
    stops, with its summary), not as an exception group that crashes the run."""
    from naig.envs.simulated import SimulatedEnvironment
    from naig.stages.verify import verify
    from naig.testing import ScriptedLLM

    from .conftest import TOOLS, good_dialogue

    def respond(request: Request) -> object:
        raise BudgetExhausted("budget spent")
    llm = ScriptedLLM(respond=respond)
    env = SimulatedEnvironment(TOOLS, llm, seed=1)
    with pytest.raises(BudgetExhausted):
        asyncio.run(verify(llm, good_dialogue(), TOOLS, env, seed=1))
