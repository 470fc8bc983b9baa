"""The run: attempts dialogues until ``n`` are kept, writes each as it finishes.

Each attempt has its own seed derived from the run seed with sha256, its own sampled
tools and environment, and its own ledger of LLM work. Kept and rejected dialogues are
appended (and synced) as they finish, so whatever stops the run, finished work stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from naig import methods
from naig.config import RunConfig, derive_seed
from naig.dialogue import Meta, Record, StageUsage, Usage, Verification
from naig.envs.registry import ToolSource, combine
from naig.errors import BudgetExhausted, ModelOutputError, OutputError, ToolEnvironmentError
from naig.llm.accounting import AccountedLLM, Ledger, ledger
from naig.llm.base import LLM
from naig.llm.pricing import Budget, Price, load_prices, price_of
from naig.llm.registry import open_backend, stack
from naig.pools import Sampling, sample
from naig.stages.draft import Draft
from naig.stages.judge import JudgeMonitor
from naig.stages.refine import repair
from naig.stages.verify import verify
from naig.store import Resumed, RunStore
from naig.tools import Tool


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
    resumed: int = 0
    """Dialogues an earlier run on the same output had already written."""
    interrupted: bool = False
    stopped: str = ""
    """Why the run stopped before its goal (a spending limit reached), if it did."""
    price: Price | None = None
    earlier_spent: StageUsage = field(default_factory=StageUsage)
    """What earlier runs on the same output spent (calls that reached a model)."""
    judge: JudgeMonitor = field(default_factory=JudgeMonitor)
    """The refinement judge's record in this run (whether it is worth its calls)."""

    @property
    def out_of_attempts(self) -> bool:
        """Attempts ran out with fewer kept than wanted (``Budget.exhausted`` is about
        money and tokens)."""
        return self.kept < self.wanted and not self.interrupted and not self.stopped


Progress = Callable[[Summary], None]

SAVE_EVERY = 5.0
"""Seconds between saves of the run's spend to its manifest (also saved with each record)."""

SharedGoal = Callable[[Record | None], Awaitable[int]]
"""For a run that is one of several working towards one goal (the Ray engine's shards):
told each record the run writes (or None, to ask), answers the highest attempt index still
needed. Attempts above it are not started, and those in flight are cancelled."""


def _unavailable(pool: list[Tool], tools: list[Tool], rng: random.Random) -> list[Tool]:
    """One tool of the pool the dialogue lacks: what a tool-awareness request may ask for."""
    others = [t for t in pool if t not in tools]
    return rng.sample(others, 1) if others else []


async def attempt(index: int, config: RunConfig, llm: LLM, source: ToolSource,
                  price: Price | None = None, judge: JudgeMonitor | None = None) -> Record:
    """Generate and verify one dialogue; a model that never gives a valid answer yields a
    rejected record with the reason, not an exception. ``judge`` is the run's record of its
    refinement judge, shared by its dialogues (a fresh one where not given)."""
    seed = derive_seed(config.seed, index)
    s = config.settings
    rng = random.Random(derive_seed(seed, "tools"))
    tools = sample(source.pool, rng, Sampling(s.tools_min, s.tools_max, s.distractors_max))
    env = source.make(tools, llm, seed)
    d = Draft(llm=llm, env=env, tools=tools, seed=seed, settings=s,
              judge=judge or JudgeMonitor(), unavailable=_unavailable(source.pool, tools, rng))
    error = None
    verification: Verification | None = None
    with ledger() as book:
        try:
            await methods.get(config.method)(d)
            verification = await _verify(d, derive_seed(seed, "verify"))
            if methods.repairs(config.method):
                for round_ in range(1, s.repair_rounds + 1):
                    if verification.passed or not await _repaired(d, verification, round_):
                        break
                    verification = await _verify(d, derive_seed(seed, "verify", round_))
        except ModelOutputError as e:
            error = str(e)
        except ToolEnvironmentError as e:  # a server that died: this dialogue, not the run
            error = f"{ENVIRONMENT}: {e}"
        finally:
            try:
                await env.aclose()
            except ToolEnvironmentError as e:
                error = error or f"{ENVIRONMENT}: {e}"
    usage: Usage = book.usage(price)
    meta = Meta(method=config.method, seed=seed, model=llm.name,
                config_hash=config.config_hash(), environment=env.info(), plan=d.plan,
                injections=d.injections, refinements=d.refinements,
                verification=verification, usage=usage, error=error)
    return Record(id=f"d-{index:06d}", tools=[t.openai() for t in tools], messages=d.messages,
                  meta=meta)


async def _verify(d: Draft, seed: int) -> Verification:
    return await verify(d.llm, d.messages, d.tools, d.env, seed=seed,
                        experts=d.settings.experts)


async def _repaired(d: Draft, verification: Verification, round_: int) -> bool:
    """One repair round on a dialogue that failed verification; True if a rewrite was
    kept (verification must then run again)."""
    record = await repair(d, verification.failed, round_)
    if record is None or "new" not in record.kept:
        return False
    d.number_calls()
    return True


ENVIRONMENT = "environment"
"""The rejection reason of a dialogue whose tool environment failed (``meta.error``
starts with it)."""


def rejection_reason(record: Record) -> str:
    v = record.meta.verification
    if v is None:
        error = record.meta.error or ""
        return ENVIRONMENT if error.startswith(f"{ENVIRONMENT}:") else "model_output"
    return v.failed[0].name if v.failed else ""


def _charge(book: Ledger, usage: Usage) -> None:
    for stage, u in usage.by_stage.items():
        book.by_stage.setdefault(stage, type(u)()).add(u)


@contextlib.asynccontextmanager
async def model_for(config: RunConfig) -> AsyncIterator[tuple[LLM, Budget | None]]:
    """The model a run of ``config`` calls (its backend under the concurrency limit, the
    cache and the spending limits) and the budget inside it; closed at the end."""
    budget = None
    if config.max_cost is not None or config.max_tokens is not None:
        budget = Budget.for_model(config.model, max_cost=config.max_cost,
                                  max_tokens=config.max_tokens, prices=load_prices(config.prices))
    llm = stack(open_backend(config.model, config.base_url), concurrency=config.concurrency,
                cache=config.cache, cache_path=config.cache_path, budget=budget)
    try:
        yield llm, budget
    finally:
        await llm.aclose()


async def execute(config: RunConfig, progress: Progress | None = None, *,
                   overwrite: bool = False, indices: Iterable[int] | None = None,
                   shared: SharedGoal | None = None) -> Summary:
    """The library's entry point: a run of ``config`` on its own model and tools (``run``
    with the parts ``config`` names). The CLI calls it, and so does each Ray shard."""
    source = combine(list(config.tools))
    async with model_for(config) as (llm, budget):
        return await run(config, llm, source, progress, overwrite=overwrite, indices=indices,
                         shared=shared, budget=budget)


async def run(config: RunConfig, backend: LLM, source: ToolSource,
              progress: Progress | None = None, *, overwrite: bool = False,
              indices: Iterable[int] | None = None,
              shared: SharedGoal | None = None, budget: Budget | None = None) -> Summary:
    """Attempt dialogues until ``config.n`` are kept or attempts run out.

    Resumes what an earlier run on the same output wrote. Cancelling the calling task
    (Ctrl-C) stops cleanly: in-flight dialogues are abandoned, written ones stay, and the
    summary comes back with ``interrupted`` set. ``indices`` (increasing) restricts the run
    to those attempts instead of ``range(config.attempts)``; ``shared`` stops it when a goal
    shared with other runs is met. ``budget`` (the one inside ``backend``'s stack) is
    charged first with what earlier runs on this output spent, so its limits hold across
    restarts; the spend is kept in the output's manifest as each dialogue is written.
    """
    job = _Run(config, AccountedLLM(backend), source, progress, shared)
    job.resume(overwrite, budget)
    return await job.go(range(config.attempts) if indices is None else indices)


class _Run:
    """One run in progress: its output, its summary and the attempts in flight."""

    def __init__(self, config: RunConfig, llm: AccountedLLM, source: ToolSource,
                 progress: Progress | None, shared: SharedGoal | None):
        self.config, self.llm, self.source = config, llm, source
        self.progress, self.shared = progress, shared
        self.summary = Summary(wanted=config.n, attempts_allowed=config.attempts)
        self.summary.price = price_of(config.model, load_prices(config.prices))
        self.store = RunStore(config)
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.earlier = Resumed()

    def resume(self, overwrite: bool, budget: Budget | None) -> None:
        """Open the output and count what earlier runs on it wrote and spent."""
        s = self.summary
        self.earlier = self.store.open(self.config, overwrite=overwrite)
        s.resumed = s.attempted = len(self.earlier.done)
        s.earlier_spent = self.earlier.spent
        if budget is not None:
            budget.spent.add(self.earlier.spent)
        for r in self.earlier.kept:
            s.kept += 1
            _charge(s.kept_usage, r.meta.usage)
        for r in self.earlier.rejected:
            s.rejected += 1
            s.reasons[rejection_reason(r)] += 1

    def save_spent(self) -> None:
        spent = StageUsage()
        spent.add(self.earlier.spent)
        spent.add(self.llm.totals.new.usage(self.summary.price))
        self.store.save_spent(spent)

    async def keep_saving(self) -> None:
        """Save the spend every ``SAVE_EVERY`` seconds: a crash loses at most that much."""
        while True:
            await asyncio.sleep(SAVE_EVERY)
            with contextlib.suppress(OutputError):  # the next record's write reports it
                self.save_spent()

    def stop_others(self, above: int = -1) -> None:
        for i, t in self.tasks.items():
            if i > above and t is not asyncio.current_task():
                t.cancel()

    async def one(self, index: int) -> None:
        s = self.summary
        try:
            record = await attempt(index, self.config, self.llm, self.source, s.price, s.judge)
        except BudgetExhausted as e:
            if not s.stopped:
                s.stopped = str(e)
                self.stop_others()
            return
        if not self.keep(record):
            return
        self.save_spent()
        if self.shared is not None:
            self.stop_others(above=await self.shared(record))
        if self.progress:
            self.progress(s)

    def keep(self, record: Record) -> bool:
        """Count and write a finished dialogue; False for a surplus one, not written."""
        s = self.summary
        s.attempted += 1
        _charge(s.all_usage, record.meta.usage)
        v = record.meta.verification
        if v is not None and v.passed:
            if s.kept >= self.config.n:
                return False  # a surplus finished alongside the last one wanted
            s.kept += 1
            _charge(s.kept_usage, record.meta.usage)
            self.store.write(record, kept=True)
            if s.kept >= self.config.n:
                self.stop_others()
        else:
            s.rejected += 1
            s.reasons[rejection_reason(record)] += 1
            self.store.write(record, kept=False)
        return True

    async def attempts(self, indices: Iterable[int]) -> None:
        """Start the attempts not done yet, ``concurrency`` at a time, until enough are
        kept, the budget stops the run, or the shared goal needs no more; the spend is saved
        meanwhile by a task of the same group."""
        s = self.summary
        slots = asyncio.Semaphore(self.config.concurrency)
        async with asyncio.TaskGroup() as group:
            saver = group.create_task(self.keep_saving())
            try:
                for index in indices:
                    if index in self.earlier.done:
                        continue
                    await slots.acquire()
                    if s.kept >= self.config.n or s.stopped:
                        break
                    if self.shared is not None and index > await self.shared(None):
                        break
                    task = group.create_task(self.one(index))
                    task.add_done_callback(lambda _: slots.release())
                    self.tasks[index] = task
                if self.tasks:
                    await asyncio.wait(self.tasks.values())
            finally:
                saver.cancel()  # the last attempt is done: nothing more to save

    async def go(self, indices: Iterable[int]) -> Summary:
        s = self.summary
        if self.progress:
            self.progress(s)
        start = time.perf_counter()
        failing = False
        try:
            await self.attempts(indices)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is None or current.uncancel() > 0:
                raise  # cancelled from further out than one interrupt: not ours to swallow
            s.interrupted = True
        except BaseException:
            failing = True
            raise
        finally:
            try:
                self.save_spent()
            except OutputError:
                if not failing:
                    raise  # else the error on its way out says what went wrong first
            finally:
                self.store.close()
            s.seconds = time.perf_counter() - start
            _charge(s.all_usage, s.judge.spent.usage())  # the run's, no dialogue's
            s.new_calls = self.llm.totals.new
            s.cache_hits = self.llm.totals.cached
        return s
