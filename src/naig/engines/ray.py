"""The Ray engine: one run's attempts spread over a Ray cluster, in shards.

The attempt indices not yet done are split into ``S`` shards by index: shard ``k`` takes
the indices ``i`` with ``i % S == k``. Each shard is a Ray task that runs the ordinary
pipeline (``naig.runner.run``) on its indices, against the configured LLM endpoint(s), with
``ceil(concurrency / S)`` dialogues at once, and writes its records to its own files beside
the output (``out.shard-003.jsonl``, ``out.shard-003.rejected.jsonl`` and a manifest),
appended and synced as each finishes, like any run's. A shard whose worker dies is run again
by Ray (``SHARD_RETRIES`` times at most) and resumes from its files.

The shards share the run's goal through one small actor, the ``Tally``, which hears of
every attempt written: once ``n`` attempts are kept, no attempt above the ``n``-th lowest
kept index can be in the output, so a shard starts none and cancels those in flight.

At the end the driver merges: it walks the shards' records in attempt-index order and
appends each to the output (kept or rejected) until ``n`` are kept, stopping at the first
index that no shard wrote. The output is then what the local engine writes with
``--concurrency 1``, record for record, whatever the shards' timing: the kept records are
the ``n`` lowest-index kept attempts, the rejected ones those below the last kept. The
surplus (attempts above the last kept that parallel shards finished while the goal was
being met) is dropped with the shard files; its LLM calls stay in the response cache, so a
later run that needs those attempts pays nothing for them.

A run that stops early (Ctrl-C, a spending limit, a shard that failed for good) merges
the part that is final, the records below the first index not written, and keeps the
shard files: the same command again resumes from them, with any number of shards.

On a cluster of several machines the output folder must be shared by them (a shard's files
are written where its task runs, and read by the driver), and the driver's working
directory and the paths in the settings (tool files, ``--cache-path``, ``--prices``) must
exist on every node. Each node keeps its own response cache unless ``--cache-path`` names
a shared one. Variables ``NAIG_*`` and ``OPENAI_*`` (the API key) are passed to the tasks.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import importlib
import math
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from naig import runner
from naig.config import RunConfig
from naig.dialogue import Record, StageUsage
from naig.errors import ConfigError, NaigError
from naig.llm.accounting import Ledger
from naig.llm.pricing import FREE, Price, cost, load_prices, price_of
from naig.runner import Progress, Summary, rejection_reason
from naig.store import RunStore, attempt_index

RAY_PIN = "ray==2.60.0"
INSTALL = f"pip install 'naig[ray]' (or pip install {RAY_PIN})"
SHARD_RETRIES = 3
"""Times Ray runs a shard again after its worker died."""
FORWARDED_ENV = ("NAIG_", "OPENAI_")
"""Prefixes of the environment variables passed on to the shard tasks."""
CRASH_HOOK = "NAIG_TEST_CRASH_SHARD"
"""Test-only: ``<shard>:<marker file>`` makes that shard's worker die (``os._exit(1)``)
right after it writes its first record, if the marker file does not exist yet (it is
created first, so the shard dies once)."""
POLL = 0.5
"""Seconds between progress updates."""
CANCEL_WAIT = 30.0
"""Seconds to wait for cancelled shards to stop before merging."""
CONNECT_TIMEOUT = 5.0
"""Seconds a ``--ray-address`` has to accept a connection."""


def import_ray() -> ModuleType:
    try:
        return importlib.import_module("ray")
    except ImportError:
        raise ConfigError(f"--engine ray needs Ray, an optional extra: {INSTALL}") from None


def shard_config(config: RunConfig, shard: int, shards: int) -> RunConfig:
    """The settings of shard ``shard`` of ``shards``: its own output beside the run's, no
    goal of its own (the tally has it), its share of the concurrency and of the limits."""
    out = config.output
    return config.model_copy(update={
        "output": out.with_name(f"{out.stem}.shard-{shard:03d}{out.suffix}"),
        "n": config.attempts, "max_attempts": config.attempts,
        "concurrency": math.ceil(config.concurrency / shards),
        "max_cost": None if config.max_cost is None else config.max_cost / shards,
        "max_tokens": None if config.max_tokens is None else max(1, config.max_tokens // shards),
    })


def _shard_pattern(output: Path) -> re.Pattern[str]:
    return re.compile(re.escape(output.stem) + r"\.shard-(\d+)(\.|$)")


def shard_numbers(output: Path) -> list[int]:
    """The shards that left files beside ``output``."""
    if not output.parent.is_dir():
        return []
    pattern = _shard_pattern(output)
    return sorted({int(m.group(1)) for p in output.parent.iterdir()
                   if (m := pattern.match(p.name))})


def _remove_shards(output: Path) -> None:
    if output.parent.is_dir():
        pattern = _shard_pattern(output)
        for p in output.parent.iterdir():
            if pattern.match(p.name):
                p.unlink(missing_ok=True)


def _open_shards(config: RunConfig, merged: set[int]) -> dict[int, tuple[Record, bool]]:
    """What the shard files hold and the output does not yet: record and whether kept, by
    attempt index. Checks each shard's settings and cuts off a torn last line; call it only
    while no shard runs."""
    found: dict[int, tuple[Record, bool]] = {}
    for k in shard_numbers(config.output):
        store = RunStore(shard_config(config, k, 1))
        try:
            earlier = store.open(config)
        finally:
            store.close()
        for records, kept in ((earlier.kept, True), (earlier.rejected, False)):
            for r in records:
                if attempt_index(r) not in merged:
                    found.setdefault(attempt_index(r), (r, kept))
    return found


class Tally:
    """The shards' shared goal, held by one small actor: the kept attempts so far."""

    def __init__(self, need: int, last: int, kept: list[int]):
        self.need = need
        self.last = last
        self.kept = sorted(kept)
        self.attempted = 0

    def bound(self) -> int:
        """The highest attempt index still needed."""
        return self.kept[self.need - 1] if len(self.kept) >= self.need else self.last

    def report(self, index: int, kept: bool) -> int:
        self.attempted += 1
        if kept:
            bisect.insort(self.kept, index)
        return self.bound()

    def counts(self) -> tuple[int, int]:
        """Attempts written in this run, and kept attempts known (surplus included)."""
        return self.attempted, len(self.kept)


def _crash_hook(shard: int) -> Progress | None:
    which, _, marker = os.environ.get(CRASH_HOOK, "").partition(":")
    if not marker or which != str(shard):
        return None

    def crash(s: Summary) -> None:
        if s.attempted > s.resumed and not os.path.exists(marker):
            Path(marker).touch()
            os._exit(1)
    return crash


def _shard_task(config: RunConfig, shard: int, indices: list[int], tally: Any, cwd: str,
                env: dict[str, str]) -> Summary:
    """A shard, in a Ray worker. The worker is an edge of the program, like the CLI: this
    is where its event loop runs."""
    os.environ.update(env)
    with contextlib.suppress(OSError):
        os.chdir(cwd)  # relative paths in the settings mean what they meant to the driver
    return asyncio.run(_shard(config, shard, indices, tally))


async def _shard(config: RunConfig, shard: int, indices: list[int], tally: Any) -> Summary:
    async def shared(record: Record | None) -> int:
        if record is None:
            return int(await tally.bound.remote())
        v = record.meta.verification
        return int(await tally.report.remote(attempt_index(record), v is not None and v.passed))

    return await runner.execute(config, _crash_hook(shard), indices=indices, shared=shared)


async def _reachable(address: str) -> bool:
    """Whether a ``host:port`` address answers; other forms (``auto``, ``ray://...``) are
    left to Ray. Ray itself keeps retrying an address that does not answer for many
    minutes, deaf to Ctrl-C while it does."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or "://" in address:
        return True
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)),
                                           CONNECT_TIMEOUT)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


async def _connect(ray: ModuleType, address: str | None) -> bool:
    """Join the cluster at ``address``, or start a local one; True when this call did."""
    if ray.is_initialized():
        return False
    if address is not None and not await _reachable(address):
        raise ConfigError(f"nothing answers at --ray-address {address}: start the cluster "
                          "there (`ray start --head`), or pass auto on a node of a running "
                          "cluster")
    try:
        if address is None:
            ray.init(include_dashboard=False, logging_level="WARNING")
        else:
            ray.init(address=address, logging_level="WARNING")
    except (ConnectionError, RuntimeError, ValueError) as e:
        where = f"the Ray cluster at {address}" if address else "a local Ray cluster"
        raise ConfigError(f"cannot start or reach {where}: {e}; start one with `ray start "
                          "--head` and pass --ray-address auto, or fix --ray-address") from None
    return True


async def run(config: RunConfig, progress: Progress | None = None, *, overwrite: bool = False,
              address: str | None = None, shards: int | None = None) -> Summary:
    """``runner.run`` on a Ray cluster: the cluster at ``address`` (``auto``: the one this
    machine belongs to), or a local one started for the run. ``shards`` defaults to the
    cluster's CPU count. Same outputs, resume and stopping as the local engine; cancelling
    the calling task stops the shards and merges what is final."""
    start = time.perf_counter()
    ray = import_ray()
    started = await _connect(ray, address)
    try:
        return await _drive(ray, config, progress, overwrite, shards, start)
    finally:
        if started:
            ray.shutdown()


async def _drive(ray: ModuleType, config: RunConfig, progress: Progress | None,
                 overwrite: bool, shards: int | None, start: float) -> Summary:
    summary = Summary(wanted=config.n, attempts_allowed=config.attempts)
    summary.price = price_of(config.model, load_prices(config.prices))
    store = RunStore(config)
    resumed = store.open(config, overwrite=overwrite)
    try:
        if overwrite:
            _remove_shards(config.output)
        merged = resumed.done
        written = _open_shards(config, merged)
        earlier = summary.earlier_spent = _collect_spent(config, store, resumed.spent)
        summary.resumed = len(merged) + len(written)
        need = config.n - len(resumed.kept)
        todo = [i for i in range(config.attempts) if i not in merged and i not in written]
        count = shards or int(ray.cluster_resources().get("CPU", 0)) or 2
        results: list[Summary] = []
        failure: BaseException | None = None
        if need > 0 and todo:
            kept = [i for i, (_, ok) in written.items() if ok]
            tally = ray.remote(num_cpus=0)(Tally).remote(need, config.attempts - 1, kept)
            view = _Progress(summary, progress, tally, len(resumed.kept), need)
            left = _remaining(config, earlier, summary.price)
            results, failure = await _run_shards(ray, left, todo, max(1, count), tally, view)
        wrote = sum(s.attempted - s.resumed for s in results)
        if wrote and not shard_numbers(config.output):
            raise ConfigError(f"the shards wrote {wrote} dialogues that are not beside "
                              f"{config.output} here: on a cluster of several machines the "
                              "output folder must be on a filesystem that every node shares")
        complete = _merge(config, store, resumed.kept, resumed.rejected, summary)
        _collect_spent(config, store, earlier)
    finally:
        store.close()
    if complete:
        _remove_shards(config.output)
    for s in results:
        for book, part in ((summary.all_usage, s.all_usage), (summary.new_calls, s.new_calls),
                           (summary.cache_hits, s.cache_hits)):
            _add(book, part.by_stage)
        if s.stopped and not complete and not summary.stopped:
            summary.stopped = s.stopped
    summary.seconds = time.perf_counter() - start
    if failure is not None and not complete:
        raise failure
    return summary


class _Progress:
    """Shows the run's progress from the tally's counts (the summary at the end is exact)."""

    def __init__(self, summary: Summary, show: Progress | None, tally: Any, kept: int,
                 need: int):
        self.summary, self.show, self.tally = summary, show, tally
        self.kept, self.need = kept, need

    async def update(self) -> None:
        if self.show is None:
            return
        attempted, kept = await self.tally.counts.remote()
        s = self.summary
        s.attempted = s.resumed + attempted
        s.kept = self.kept + min(self.need, kept)
        s.rejected = max(0, s.attempted - self.kept - kept)
        self.show(s)


async def _run_shards(ray: ModuleType, config: RunConfig, todo: list[int], count: int,
                      tally: Any, view: _Progress) -> tuple[list[Summary], BaseException | None]:
    """Run the shards until all end, one fails for good, or the caller is cancelled; the
    shards' summaries, and the failure if one failed."""
    env = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV)}
    count = min(count, len(todo))
    task = ray.remote(_shard_task)
    refs: dict[asyncio.Future[Summary], tuple[int, Any]] = {}
    for k in range(count):
        indices = [i for i in todo if i % count == k]
        if indices:
            ref = task.options(name=f"naig-shard-{k:03d}", num_cpus=1,
                               max_retries=SHARD_RETRIES, retry_exceptions=False).remote(
                shard_config(config, k, count), k, indices, tally, os.getcwd(), env)
            refs[asyncio.wrap_future(ref.future())] = (k, ref)
    pending = set(refs)
    failure: BaseException | None = None
    try:
        await view.update()
        while pending and failure is None:
            done, pending = await asyncio.wait(pending, timeout=POLL,
                                               return_when=asyncio.FIRST_EXCEPTION)
            for f in done:
                e = f.exception()
                if e is not None and failure is None:
                    failure = _failure(ray, refs[f][0], e)
            await view.update()
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is None or current.uncancel() > 0:
            raise
        view.summary.interrupted = True
    finally:
        if pending:
            for f in pending:
                ray.cancel(refs[f][1], force=True)
            await asyncio.wait(pending, timeout=CANCEL_WAIT)
    return [f.result() for f in refs if f.done() and not f.cancelled()
            and f.exception() is None], failure


def _failure(ray: ModuleType, shard: int, e: BaseException) -> BaseException:
    """What a failed shard means to the user: its own error when it raised a naig error, a
    bug's error as it is, and for a worker that kept dying, what to do next."""
    if isinstance(e, ray.exceptions.RayTaskError):
        cause = getattr(e, "cause", None)
        return cause if isinstance(cause, NaigError) else e
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return NaigError(f"shard {shard} failed {SHARD_RETRIES + 1} times ({first}); finished "
                     "dialogues are kept: run the same command again to resume")


def _merge(config: RunConfig, store: RunStore, kept: list[Record], rejected: list[Record],
           summary: Summary) -> bool:
    """Append the shard records that are final to the output, in attempt-index order, and
    count the output into ``summary``; True when the run is complete (``n`` kept, or every
    attempt done)."""
    merged = {attempt_index(r) for r in (*kept, *rejected)}
    written = _open_shards(config, merged)
    done = merged | written.keys()
    frontier = next((i for i in range(config.attempts) if i not in done), config.attempts)
    kept, rejected = list(kept), list(rejected)
    for i in sorted(written):
        if len(kept) >= config.n or i >= frontier:
            break
        record, ok = written[i]
        store.write(record, kept=ok)
        (kept if ok else rejected).append(record)
    summary.attempted = len(done)
    summary.kept, summary.rejected = len(kept), len(rejected)
    summary.reasons.clear()
    summary.reasons.update(rejection_reason(r) for r in rejected)
    for r in kept:
        _add(summary.kept_usage, r.meta.usage.by_stage)
    return len(kept) >= config.n or frontier >= config.attempts


def _collect_spent(config: RunConfig, store: RunStore, base: StageUsage) -> StageUsage:
    """Move what the shards spent into the run's manifest, on top of ``base``; returns the
    total. The total is saved before the shards' spend is cleared, so a crash in between
    counts some spend twice (stopping early), never not at all."""
    shards = [RunStore(shard_config(config, k, 1)) for k in shard_numbers(config.output)]
    total = StageUsage()
    for part in (base, *(s.spent_on_disk() for s in shards)):
        total.add(part)
    total.cost_usd = cost(total, price_of(config.model, load_prices(config.prices)) or FREE)
    store.save_spent(total)
    for s in shards:
        s.clear_spent()
    return total


def _remaining(config: RunConfig, spent: StageUsage, price: Price | None) -> RunConfig:
    """The run's spending limits less what earlier runs on its output spent."""
    update: dict[str, float | int] = {}
    if config.max_cost is not None:
        update["max_cost"] = max(0.0, config.max_cost - cost(spent, price or FREE))
    if config.max_tokens is not None:
        update["max_tokens"] = max(0, config.max_tokens - spent.prompt_tokens
                                   - spent.completion_tokens)
    return config.model_copy(update=update)


def _add(book: Ledger, by_stage: Mapping[str, StageUsage]) -> None:
    for stage, u in by_stage.items():
        book.by_stage.setdefault(stage, StageUsage()).add(u)
