"""``--dry-run``: estimate what a run will cost from a small sample, before spending.

The sample is a real run of a few attempts into a scratch folder, through the same cache
as the real run, so its calls are not paid for twice when the run goes ahead.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

from naig.config import RunConfig
from naig.envs.registry import ToolSource
from naig.llm.base import LLM
from naig.runner import run


@dataclass(frozen=True)
class Estimate:
    sample: int
    kept: int
    attempts: int
    """Attempts the real run is expected to need (at most ``--max-attempts``)."""
    calls: int
    tokens: int
    seconds: float
    """LLM seconds, as first measured (the embedded model runs one call at a time)."""
    cost_usd: float | None
    """None where the model has no known price."""

    def lines(self, n: int) -> list[str]:
        rate = self.kept / self.sample if self.sample else 0.0
        cost = f"${self.cost_usd:.2f}" if self.cost_usd is not None else "unknown (no price)"
        return [f"sample: {self.sample} dialogues attempted, {self.kept} kept ({rate:.0%})",
                f"estimate for {n} kept: ~{self.attempts} attempts, ~{self.calls} LLM calls, "
                f"~{self.tokens:,} tokens, ~{self.seconds / 3600:.1f} h of LLM time, cost "
                f"{cost}"]


async def estimate(config: RunConfig, llm: LLM, source: ToolSource, sample: int) -> Estimate:
    with tempfile.TemporaryDirectory(prefix="naig-dry-run-") as scratch:
        trial = config.model_copy(update={"output": Path(scratch) / "sample.jsonl",
                                          "n": sample, "max_attempts": sample})
        summary = await run(trial, llm, source)
    used = summary.all_usage.usage(summary.price)
    per_attempt = 1 / max(summary.attempted, 1)
    rate = summary.kept / max(summary.attempted, 1)
    attempts = config.attempts if rate == 0 else min(config.attempts, math.ceil(config.n / rate))
    scale = attempts * per_attempt
    return Estimate(
        sample=summary.attempted, kept=summary.kept, attempts=attempts,
        calls=round(used.calls * scale),
        tokens=round((used.prompt_tokens + used.completion_tokens) * scale),
        seconds=used.seconds * scale,
        cost_usd=used.cost_usd * scale if summary.price is not None else None)
