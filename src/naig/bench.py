"""The side-by-side benchmark: NAIG and the MAS baseline, measured alike.

Every method attempts the same dialogues: the same attempt indices, so the same seeds,
sampled tools and plan stage, on the same model, with the same verification. The cache
is always off, so every count is work a model did in this benchmark. Per method the
report gives dialogues attempted and kept, LLM calls, prompt and completion tokens and
seconds (total, per kept dialogue and per stage), and data statistics (``naig.stats``)
over the kept dialogues (over all of them where none was kept, which the report says).
Counts are the sums of the records' ``meta.usage`` and the judge's calibration (asked once
per method's run, charged to no record); the run's own count of requests that
reached the model is kept beside them as a check (they agree: nothing is cached).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Group
from rich.table import Table

from naig import methods as registry
from naig.config import RunConfig
from naig.dialogue import Record, StageUsage, Usage
from naig.envs.registry import ToolSource
from naig.llm.accounting import AccountedLLM, Ledger
from naig.llm.base import LLM
from naig.llm.registry import stack
from naig.runner import attempt, rejection_reason
from naig.stages.judge import JudgeMonitor
from naig.stats import BEHAVIOURS, CorpusStats, corpus_stats, refinement_stats

BenchProgress = Callable[[str, Record, int, int], None]
"""Called as ``(method, record, done, total)`` each time an attempt finishes."""


def total_usage(usages: Iterable[Usage]) -> Usage:
    """The sum of several dialogues' usage, per stage and in total."""
    book = Ledger()
    for u in usages:
        for stage, s in u.by_stage.items():
            book.by_stage.setdefault(stage, StageUsage()).add(s)
    return book.usage()


def _per(value: float, count: int) -> float | None:
    return value / count if count else None


@dataclass
class MethodResult:
    method: str
    attempted: int
    kept: int
    usage: Usage
    """The LLM work of every attempt: the sum of the records' ``meta.usage``, and the
    judge's calibration (the run's, stage ``calibrate``)."""
    run_usage: Usage
    """What reached the model in this benchmark, counted by the run (the check)."""
    cache_hits: int
    wall_seconds: float
    """Elapsed time of this method's attempts (methods run one after the other)."""
    reasons: dict[str, int]
    """Rejections by the first failed check (``model_output``: no valid answer)."""
    stats: CorpusStats
    stats_over: str
    """``kept``, or ``all (none kept)`` where no dialogue was kept."""
    records: list[Record] = field(repr=False, default_factory=list)
    outputs: tuple[Path, Path] | None = None
    judge: str = ""
    """What the refinement judge did in this method's run (``JudgeMonitor.describe``)."""
    refinement: dict[str, int] = field(default_factory=dict)
    """``naig.stats.refinement_stats`` over every attempt."""

    @property
    def kept_rate(self) -> float:
        return self.kept / self.attempted if self.attempted else 0.0

    def per_kept(self) -> dict[str, float | None]:
        u = self.usage
        return {"calls": _per(u.calls, self.kept),
                "prompt_tokens": _per(u.prompt_tokens, self.kept),
                "completion_tokens": _per(u.completion_tokens, self.kept),
                "tokens": _per(u.prompt_tokens + u.completion_tokens, self.kept),
                "llm_seconds": _per(u.seconds, self.kept),
                "wall_seconds": _per(self.wall_seconds, self.kept)}

    def to_dict(self) -> dict[str, Any]:
        u = self.usage
        return {
            "attempted": self.attempted, "kept": self.kept, "kept_rate": self.kept_rate,
            "total": {"calls": u.calls, "prompt_tokens": u.prompt_tokens,
                      "completion_tokens": u.completion_tokens,
                      "tokens": u.prompt_tokens + u.completion_tokens,
                      "llm_seconds": u.seconds, "wall_seconds": self.wall_seconds},
            "per_kept": self.per_kept(),
            "by_stage": {stage: {**s.model_dump(), "per_kept": {
                "calls": _per(s.calls, self.kept),
                "tokens": _per(s.prompt_tokens + s.completion_tokens, self.kept),
                "seconds": _per(s.seconds, self.kept)}} for stage, s in u.by_stage.items()},
            "run_check": {"new_calls": self.run_usage.calls, "cache_hits": self.cache_hits,
                          "matches_records": self.run_usage.calls == u.calls
                          and self.run_usage.prompt_tokens == u.prompt_tokens
                          and self.run_usage.completion_tokens == u.completion_tokens},
            "rejections": dict(self.reasons),
            "judge": self.judge,
            "refinement": self.refinement,
            "stats_over": self.stats_over,
            "stats": self.stats.to_dict(),
            "outputs": [str(p) for p in self.outputs] if self.outputs else None,
        }


HEADLINE = (("calls", "calls"), ("tokens", "tokens"), ("seconds", "wall_seconds"))


@dataclass
class BenchReport:
    model: str
    tools: tuple[str, ...]
    seed: int
    attempts: int
    """Dialogues each method attempted."""
    results: dict[str, MethodResult]

    def headline(self) -> dict[str, float | None]:
        """NAIG / MAS per kept dialogue, for calls, tokens and wall seconds (``None``
        where either side kept nothing or spent nothing)."""
        a, b = self.results.get("naig"), self.results.get("mas")
        out: dict[str, float | None] = {}
        for name, key in HEADLINE:
            x = a.per_kept()[key] if a else None
            y = b.per_kept()[key] if b else None
            out[name] = x / y if x is not None and y else None
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "tools": list(self.tools), "seed": self.seed,
                "attempts": self.attempts, "headline_naig_over_mas": self.headline(),
                "methods": {m: r.to_dict() for m, r in self.results.items()}}

    def sections(self) -> list[tuple[str, list[str], list[list[str]]]]:
        """The report as titled tables of text: what both renderings show."""
        return _sections(self)

    def to_markdown(self) -> str:
        lines = [f"# naig bench: {', '.join(self.results)}", "",
                 f"Model `{self.model}`, tools `{', '.join(self.tools)}`, seed {self.seed}, "
                 f"{self.attempts} dialogues attempted per method, cache off.", ""]
        for title, header, rows in self.sections():
            lines += [f"## {title}", "", "| " + " | ".join(header) + " |",
                      "|" + "|".join("---" for _ in header) + "|"]
            lines += ["| " + " | ".join(row) + " |" for row in rows]
            lines.append("")
        return "\n".join(lines)

    def rich(self) -> Group:
        tables = []
        for title, header, rows in self.sections():
            table = Table(title=title, title_justify="left")
            for k, col in enumerate(header):
                table.add_column(col, justify="left" if k == 0 else "right")
            for row in rows:
                table.add_row(*row)
            tables.append(table)
        return Group(*tables)


def _num(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}" if isinstance(value, float) else f"{value:,}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _sections(r: BenchReport) -> list[tuple[str, list[str], list[list[str]]]]:
    names = list(r.results)
    res = [r.results[m] for m in names]
    out: list[tuple[str, list[str], list[list[str]]]] = []
    head = r.headline()
    if any(v is not None for v in head.values()):
        out.append(("Headline: NAIG / MAS per kept dialogue", ["measure", "ratio"],
                    [[k, _ratio(v)] for k, v in head.items()]))
    cost: list[list[str]] = [
        ["attempted", *(_num(x.attempted) for x in res)],
        ["kept", *(_num(x.kept) for x in res)],
        ["kept rate", *(f"{x.kept_rate:.0%}" for x in res)]]
    totals: dict[str, Callable[[MethodResult], float]] = {
        "calls": lambda x: x.usage.calls, "prompt_tokens": lambda x: x.usage.prompt_tokens,
        "completion_tokens": lambda x: x.usage.completion_tokens,
        "tokens": lambda x: x.usage.prompt_tokens + x.usage.completion_tokens,
        "llm_seconds": lambda x: x.usage.seconds, "wall_seconds": lambda x: x.wall_seconds}
    for key, get in totals.items():
        cost.append([f"{key} (total)", *(_num(get(x)) for x in res)])
        cost.append([f"{key} / kept", *(_num(x.per_kept()[key]) for x in res)])
    cost.append(["cache hits", *(_num(x.cache_hits) for x in res)])
    out.append(("Cost", ["measure", *names], cost))
    stages: list[list[str]] = []
    for x in res:
        for stage, s in sorted(x.usage.by_stage.items()):
            stages.append([x.method, stage, _num(s.calls), _num(s.prompt_tokens),
                           _num(s.completion_tokens), _num(s.seconds),
                           _num(_per(s.calls, x.kept)),
                           _num(_per(s.prompt_tokens + s.completion_tokens, x.kept), 0),
                           _num(_per(s.seconds, x.kept))])
    out.append(("LLM work by stage", ["method", "stage", "calls", "prompt tok", "compl tok",
                                      "seconds", "calls/kept", "tok/kept", "s/kept"], stages))
    over = ", ".join(f"{x.method}: {x.stats_over}" for x in res)
    fields = list(res[0].stats.to_dict()) if res else []
    stats = []
    for f in fields:
        values = [x.stats.to_dict()[f] for x in res]
        share = f in BEHAVIOURS
        stats.append([f, *((f"{v:.0%}" if share else _num(v, 3)) for v in values)])
    out.append((f"Data statistics (dialogues used: {over})", ["statistic", *names], stats))
    refined = [x for x in res if x.refinement["masked"]]
    if refined:
        keys = list(refined[0].refinement)
        out.append(("Refinement and repair (all attempts)", ["measure", *(x.method
                                                                         for x in refined)],
                    [[k, *(_num(x.refinement[k]) for x in refined)] for k in keys]
                    + [["judge", *(x.judge.removeprefix("judge: ") for x in refined)]]))
    reasons = sorted({k for x in res for k in x.reasons})
    if reasons:
        out.append(("Rejections by first failed check", ["check", *names],
                    [[k, *(_num(x.reasons.get(k, 0)) for x in res)] for k in reasons]))
    return out


def _paths(config: RunConfig, method: str) -> tuple[Path, Path]:
    """Where a method's kept and rejected dialogues go."""
    out = config.output
    return (out.with_name(f"{out.stem}.{method}{out.suffix}"),
            out.with_name(f"{out.stem}.{method}.rejected{out.suffix}"))


def _write(paths: tuple[Path, Path], records: list[Record]) -> None:
    """Both files, in attempt order, each replaced whole (no half-written file)."""
    for path, keep in zip(paths, (True, False), strict=True):
        part = path.with_name(path.name + ".part")
        part.write_text("".join(r.to_json() + "\n" for r in records if _kept(r) == keep),
                        "utf-8")
        part.replace(path)


def _kept(record: Record) -> bool:
    v = record.meta.verification
    return v is not None and v.passed


async def _measure(config: RunConfig, backend: LLM, source: ToolSource, attempts: int,
                   progress: BenchProgress | None) -> MethodResult:
    method = config.method
    llm = AccountedLLM(stack(backend, concurrency=config.concurrency, cache=False,
                             cache_path=None))
    slots = asyncio.Semaphore(config.concurrency)
    records: dict[int, Record] = {}
    judge = JudgeMonitor()

    paths = _paths(config, method)
    paths[0].parent.mkdir(parents=True, exist_ok=True)

    async def one(index: int) -> None:
        async with slots:
            record = records[index] = await attempt(index, config, llm, source, judge=judge)
        # rewritten whole after each attempt (a benchmark has tens, not thousands): an
        # interrupted benchmark keeps what it did
        _write(paths, [records[i] for i in sorted(records)])
        if progress:
            progress(method, record, len(records), attempts)

    start = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for index in range(attempts):
            group.create_task(one(index))
    wall = time.perf_counter() - start
    done = [records[i] for i in sorted(records)]
    kept = [r for r in done if _kept(r)]
    rejected = Counter(rejection_reason(r) for r in done if not _kept(r))
    return MethodResult(
        method=method, attempted=len(done), kept=len(kept),
        usage=total_usage([*(r.meta.usage for r in done), judge.spent.usage()]),
        run_usage=llm.totals.new.usage(),
        cache_hits=llm.totals.cached.usage().calls, wall_seconds=round(wall, 3),
        reasons=dict(rejected.most_common()),
        stats=corpus_stats([r.messages for r in (kept or done)]),
        stats_over="kept" if kept else "all (none kept)", records=done, outputs=paths,
        judge=judge.describe(),
        refinement=refinement_stats(x for r in done for x in r.meta.refinements))


async def bench(config: RunConfig, backend: LLM, source: ToolSource,
                methods: Sequence[str] = ("naig", "mas"), *, attempts: int | None = None,
                progress: BenchProgress | None = None) -> BenchReport:
    """Run each method on the same ``attempts`` dialogues (default ``config.n``) and
    measure them alike.

    ``backend`` is the bare model: the benchmark adds the concurrency limit and never a
    cache. Methods run one after the other, each with ``config.concurrency`` dialogues at
    once. Each method's dialogues are written beside ``config.output`` as
    ``<stem>.<method>.jsonl`` (kept) and ``<stem>.<method>.rejected.jsonl``.
    """
    names = list(dict.fromkeys(methods))
    for name in names:
        registry.get(name)  # an unknown method fails before any work
    count = attempts if attempts is not None else config.n
    for name in names:  # an earlier benchmark's dialogues must not pass for this one's
        for path in _paths(config, name):
            path.unlink(missing_ok=True)
    results = {}
    for name in names:
        results[name] = await _measure(config.model_copy(update={"method": name}),
                                       backend, source, count, progress)
    return BenchReport(model=backend.name, tools=config.tools, seed=config.seed,
                       attempts=count, results=results)


__all__ = ["BenchProgress", "BenchReport", "MethodResult", "bench", "total_usage"]
