"""What LLM calls cost, and a budget that stops a run before it spends more than allowed.

Prices are USD per million tokens, keyed by model name (``openai:gpt-4o-mini``). A few
hosted models are known; the embedded model (``local:*``) is free; anything else comes
from a file given to ``load_prices``, JSON or TOML, of the form::

    {"openai:my-model": {"prompt": 0.15, "completion": 0.6, "cached_prompt": 0.075}}

    ["openai:my-model"]        # TOML
    prompt = 0.15
    completion = 0.6
    cached_prompt = 0.075      # optional: prompt tokens served from the prefix cache

A dated snapshot (``openai:gpt-4o-mini-2024-07-18``) takes the price of its undated name.
A model served by your own server (``--base-url``) has no known price: list it (at 0 if
it costs nothing per token), or limit tokens instead of dollars.

How a run uses the budget: wrap the backend in ``BudgetLLM`` inside the cache (cache
hits are free and pass even when the budget is spent) and outside retry, breaker and
limit. Before each call it reserves the most the call can cost (its prompt, estimated
from its length, plus ``max_tokens``), and refuses with ``BudgetExhausted`` when that
would cross a limit; after it, it charges what the call really cost. So calls in flight
together can never take the run past its limit, only the estimate of prompt length can be
off. The runner should catch ``BudgetExhausted`` per dialogue: stop starting new
dialogues, let the ones in flight end (each stops at its next call), write none of the
unfinished ones, and exit with ``BudgetExhausted.exit_code`` (5) and the message, after
the summary. Everything the run paid for is in the cache, so the same command with a
higher limit redoes the unfinished dialogues for free up to where they stopped.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from naig.dialogue import StageUsage
from naig.errors import BudgetExhausted, ConfigError
from naig.llm.base import LLM, Completion, Request, Wrapper


@dataclass(frozen=True)
class Price:
    prompt_per_mtok: float
    """USD per million prompt (input) tokens."""
    completion_per_mtok: float
    """USD per million completion (output) tokens."""
    cached_prompt_per_mtok: float | None = None
    """USD per million prompt tokens served from the provider's prefix cache (None: as
    other prompt tokens)."""


FREE = Price(0.0, 0.0)
FREE_PROVIDERS = ("local", "scripted")
"""The embedded model, and the scripted one for tests and demos."""

DEFAULT_PRICES: dict[str, Price] = {
    # OpenAI's list prices in 2025 (standard tier): input, output, cached input.
    "openai:gpt-4o": Price(2.50, 10.00, 1.25),
    "openai:gpt-4o-mini": Price(0.15, 0.60, 0.075),
    "openai:gpt-4.1": Price(2.00, 8.00, 0.50),
    "openai:gpt-4.1-mini": Price(0.40, 1.60, 0.10),
    "openai:gpt-4.1-nano": Price(0.10, 0.40, 0.025),
}

_SNAPSHOT = re.compile(r"-\d{4}-\d{2}-\d{2}$")

CHARS_PER_TOKEN = 3
"""For the estimate of a prompt's tokens before it is sent: low, so the estimate is high."""


def cost(usage: StageUsage, price: Price) -> float:
    """USD for ``usage`` at ``price``: cached prompt tokens at the cached price, if any."""
    cached = min(usage.cached_prompt_tokens, usage.prompt_tokens)
    cached_price = price.prompt_per_mtok if price.cached_prompt_per_mtok is None \
        else price.cached_prompt_per_mtok
    return ((usage.prompt_tokens - cached) * price.prompt_per_mtok + cached * cached_price
            + usage.completion_tokens * price.completion_per_mtok) / 1e6


def price_of(model: str, prices: dict[str, Price] | None = None) -> Price | None:
    """The price of ``model`` (``provider:name``), None when unknown."""
    table = DEFAULT_PRICES if prices is None else prices
    if model in table:
        return table[model]
    if model.partition(":")[0] in FREE_PROVIDERS:
        return FREE
    undated = _SNAPSHOT.sub("", model)
    return table.get(undated) if undated != model else None


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: float = Field(ge=0)
    completion: float = Field(ge=0)
    cached_prompt: float | None = Field(None, ge=0)


def load_prices(path: Path | None = None) -> dict[str, Price]:
    """The known prices, overridden and extended by the file at ``path`` (.json or
    .toml), if given."""
    prices = dict(DEFAULT_PRICES)
    if path is None:
        return prices
    where = f"prices file {path}"
    if path.suffix not in (".json", ".toml"):
        raise ConfigError(f"{where}: name it .json or .toml")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read the {where}: {e.strerror}") from None
    try:
        raw = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except ValueError as e:  # JSONDecodeError and TOMLDecodeError both are
        raise ConfigError(f"{where} does not parse: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a table of models, {_FORM}")
    for model, entry in raw.items():
        if ":" not in model:
            raise ConfigError(f"{where}: {model!r} should be provider:model, e.g. "
                              f"openai:{model}")
        try:
            listed = _Entry.model_validate(entry)
        except ValidationError as e:
            problems = "; ".join(f"{'.'.join(map(str, err['loc'])) or 'entry'}: {err['msg']}"
                                 for err in e.errors())
            raise ConfigError(f"{where}: {model}: {problems} ({_FORM})") from None
        prices[model] = Price(listed.prompt, listed.completion, listed.cached_prompt)
    return prices


_FORM = ('{"openai:<model>": {"prompt": USD, "completion": USD, "cached_prompt": USD}} per '
         'million tokens ("cached_prompt" optional)')


class Budget:
    """A run's spending limits and what it spent: USD (needs a price) and tokens.

    Only calls that reached a model count; cache hits are free.
    """

    def __init__(self, *, max_cost: float | None = None, max_tokens: int | None = None,
                 price: Price | None = None):
        if max_cost is not None and price is None:
            raise ConfigError("a cost limit needs the model's price")
        self.max_cost = max_cost
        self.max_tokens = max_tokens
        self.price = price or FREE
        self.spent = StageUsage()
        """Tokens of the calls that reached a model."""
        self._held_cost = 0.0
        self._held_tokens = 0

    @classmethod
    def for_model(cls, model: str, *, max_cost: float | None = None,
                  max_tokens: int | None = None, prices: dict[str, Price] | None = None,
                  ) -> Budget:
        """A budget at ``model``'s price; a cost limit on a model of unknown price is a
        ``ConfigError`` that says how to give the price."""
        price = price_of(model, prices)
        if price is None and max_cost is not None:
            raise ConfigError(
                f"--max-cost needs the price of {model}: give a prices file with "
                f'{{"{model}": {{"prompt": USD, "completion": USD}}}} (USD per million '
                "tokens; 0 for a server of your own), or limit tokens instead")
        return cls(max_cost=max_cost, max_tokens=max_tokens, price=price)

    @property
    def cost(self) -> float:
        """USD spent so far."""
        return cost(self.spent, self.price)

    @property
    def tokens(self) -> int:
        return self.spent.prompt_tokens + self.spent.completion_tokens

    @property
    def exhausted(self) -> bool:
        """Whether the limit is reached: no call can be afforded any more."""
        return ((self.max_cost is not None and self.cost >= self.max_cost)
                or (self.max_tokens is not None and self.tokens >= self.max_tokens))

    def reserve(self, request: Request) -> tuple[float, int]:
        """Hold the most ``request`` can cost, or raise ``BudgetExhausted`` if that would
        cross a limit. Give it back with ``release``."""
        chars = sum(len(m.content) for m in request.messages)
        worst = StageUsage(prompt_tokens=math.ceil(chars / CHARS_PER_TOKEN),
                           completion_tokens=request.max_tokens)
        held = (cost(worst, self.price), worst.prompt_tokens + worst.completion_tokens)
        if self.max_cost is not None and self.cost + self._held_cost + held[0] > self.max_cost:
            raise BudgetExhausted(self._why(f"--max-cost ${self.max_cost:g}"))
        if (self.max_tokens is not None
                and self.tokens + self._held_tokens + held[1] > self.max_tokens):
            raise BudgetExhausted(self._why(f"the limit of {self.max_tokens} tokens"))
        self._held_cost += held[0]
        self._held_tokens += held[1]
        return held

    def release(self, held: tuple[float, int]) -> None:
        self._held_cost -= held[0]
        self._held_tokens -= held[1]

    def charge(self, completion: Completion) -> None:
        """Count what a call cost; cache hits cost nothing."""
        if not completion.cached:
            self.spent.add(StageUsage(calls=1, prompt_tokens=completion.prompt_tokens,
                                      completion_tokens=completion.completion_tokens,
                                      cached_prompt_tokens=completion.cached_prompt_tokens))

    def _why(self, limit: str) -> str:
        return (f"budget spent: ${self.cost:.4f} and {self.tokens} tokens over "
                f"{self.spent.calls} calls, and the next call could cross {limit}. "
                "Finished dialogues are kept and answered calls are cached: raise the "
                "limit and run the same command again to go on.")


class BudgetLLM(Wrapper):
    """Refuses calls the budget cannot afford (``BudgetExhausted``) and charges the rest."""

    def __init__(self, inner: LLM, budget: Budget):
        super().__init__(inner)
        self.budget = budget

    async def complete(self, request: Request) -> Completion:
        held = self.budget.reserve(request)
        try:
            completion = await self.inner.complete(request)
        finally:
            self.budget.release(held)
        self.budget.charge(completion)
        return completion
