"""The run: attempts dialogues until ``n`` are kept, writes each as it finishes.

Each attempt has its own seed derived from the run seed with sha256, its own sampled
tools and environment, and its own ledger of LLM work. Kept and rejected dialogues are
appended (and synced) as they finish, so whatever stops the run, finished work stays.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from naig.config import RunConfig, derive_seed
from naig.dialogue import Meta, Record, Usage, Verification
from naig.envs.registry import ToolSource
from naig.errors import ModelOutputError
from naig.llm.accounting import AccountedLLM, Ledger, ledger
from naig.llm.base import LLM
from naig.methods import naig as naig_method
from naig.pools import Sampling, sample
from naig.stages.draft import Draft
from naig.stages.verify import verify
from naig.store import JsonlWriter


@dataclass
class Summary:
    wanted: int
    attempts_allowed: int
    attempted: int = 0
    kept: int = 0
    rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    """Rejections by the first check that failed (or ``model_output``)."""
    kept_usage: Ledger = field(default_factory=Ledger)
    """LLM work of the kept dialogues, as first measured."""
    all_usage: Ledger = field(default_factory=Ledger)
    new_calls: Ledger = field(default_factory=Ledger)
    cache_hits: Ledger = field(default_factory=Ledger)
    seconds: float = 0.0

    @property
    def exhausted(self) -> bool:
        return self.kept < self.wanted


Progress = Callable[[Summary], None]


def _unavailable(pool: list, tools: list, rng: random.Random) -> list:  # type: ignore[type-arg]
    others = [t for t in pool if t not in tools]
    return rng.sample(others, 1) if others else []


async def attempt(index: int, config: RunConfig, llm: LLM, source: ToolSource) -> Record:
    """Generate and verify one dialogue; a model that never gives a valid answer yields a
    rejected record with the reason, not an exception."""
    seed = derive_seed(config.seed, index)
    s = config.method
    rng = random.Random(derive_seed(seed, "tools"))
    tools = sample(source.pool, rng, Sampling(s.tools_min, s.tools_max, s.distractors_max))
    env = source.make(tools, llm, seed)
    d = Draft(llm=llm, env=env, tools=tools, seed=seed, settings=s,
              unavailable=_unavailable(source.pool, tools, rng))
    error = None
    verification: Verification | None = None
    with ledger() as book:
        try:
            await naig_method.run(d)
            verification = await verify(llm, d.messages, tools, env,
                                        seed=derive_seed(seed, "verify"), experts=s.experts)
        except ModelOutputError as e:
            error = str(e)
    usage: Usage = book.usage()
    meta = Meta(method="naig", seed=seed, model=llm.name, config_hash=config.config_hash(),
                environment=env.info(), plan=d.plan, injections=d.injections,
                refinements=d.refinements, verification=verification, usage=usage, error=error)
    return Record(id=f"d-{index:06d}", tools=[t.openai() for t in tools], messages=d.messages,
                  meta=meta)


def rejection_reason(record: Record) -> str:
    v = record.meta.verification
    if v is None:
        return "model_output"
    return v.failed[0].name if v.failed else ""


def _charge(book: Ledger, usage: Usage) -> None:
    for stage, u in usage.by_stage.items():
        book.by_stage.setdefault(stage, type(u)()).add(u)


async def run(config: RunConfig, backend: LLM, source: ToolSource,
              progress: Progress | None = None) -> Summary:
    llm = AccountedLLM(backend)
    summary = Summary(wanted=config.n, attempts_allowed=config.attempts)
    start = time.perf_counter()
    slots = asyncio.Semaphore(config.concurrency)
    tasks: list[asyncio.Task[None]] = []
    with JsonlWriter(config.output) as kept_out, JsonlWriter(config.rejected_output) as rej_out:

        async def one(index: int) -> None:
            record = await attempt(index, config, llm, source)
            summary.attempted += 1
            _charge(summary.all_usage, record.meta.usage)
            if record.meta.verification is not None and record.meta.verification.passed:
                if summary.kept >= config.n:
                    return  # a surplus finished alongside the last one wanted
                summary.kept += 1
                _charge(summary.kept_usage, record.meta.usage)
                kept_out.write(record)
                if summary.kept >= config.n:
                    for t in tasks:
                        if t is not asyncio.current_task():
                            t.cancel()
            else:
                summary.rejected += 1
                summary.reasons[rejection_reason(record)] += 1
                rej_out.write(record)
            if progress:
                progress(summary)

        try:
            async with asyncio.TaskGroup() as group:
                for index in range(config.attempts):
                    await slots.acquire()
                    if summary.kept >= config.n:
                        break
                    task = group.create_task(one(index))
                    task.add_done_callback(lambda _: slots.release())
                    tasks.append(task)
        finally:
            summary.seconds = time.perf_counter() - start
            summary.new_calls = llm.totals.new
            summary.cache_hits = llm.totals.cached
    return summary
