"""The Ray engine against the local engine, through the real CLI.

A run on a local Ray cluster (``--engine ray``, two shards) must write exactly what a
local run with ``--concurrency 1`` writes, record for record, when both are served by the
same response cache (the records carry the LLM work as first measured). The model is the
scripted backend: these tests exercise orchestration, not a model. Tests that start Ray
are skipped when ``ray`` is not installed; the merge itself is tested without it.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from naig.config import RunConfig
from naig.dialogue import Record, StageUsage
from naig.engines import ray as ray_engine
from naig.errors import ConfigError
from naig.runner import Summary
from naig.store import RunStore, attempt_index

from .contract import assert_contract

N = 6
needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason="ray is not installed: pip install 'naig[ray]'")


def _cmd(out: Path, cache: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "naig.cli", "generate", "--tools", "builtin", "-n", str(N),
            "--model", "scripted:0.01", "--seed", "1", "--subtasks", "2", "--steps", "1-2",
            "--refine-steps", "2", "-o", str(out), "--cache-path", str(cache), *extra]


def _generate(out: Path, cache: Path, *extra: str, env: dict[str, str] | None = None,
              ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_cmd(out, cache, *extra), text=True, capture_output=True,
                          timeout=240, env={**os.environ, **(env or {})})


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _shard_files(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if ".shard-" in p.name)


def _same_as_local(out: Path, local: Path) -> None:
    got, want = _lines(out), _lines(local)
    ids = [Record.from_json(line).id for line in got]
    assert len(ids) == N and len(set(ids)) == N, ids  # complete, no duplicates
    assert got == want  # same ids, same order, same JSON
    assert _lines(out.with_name(out.stem + ".rejected.jsonl")) == _lines(
        local.with_name(local.stem + ".rejected.jsonl"))
    for line in got:
        assert_contract(Record.from_json(line), kept=True)
    assert not _shard_files(out)  # merged, then removed


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local run with --concurrency 1; its cache (beside it) serves the Ray runs."""
    out = tmp_path_factory.mktemp("local") / "local.jsonl"
    p = _generate(out, out.parent / "cache.sqlite", "--concurrency", "1")
    assert p.returncode == 0, p.stderr
    assert len(_lines(out)) == N
    return out


@needs_ray
def test_ray_run_equals_local_run(local: Path, tmp_path: Path) -> None:
    out = tmp_path / "ray.jsonl"
    # two dialogues at once in each shard: the timing differs from the local run's, the
    # output does not
    p = _generate(out, local.parent / "cache.sqlite", "--engine", "ray", "--shards", "2",
                  "--concurrency", "4")
    assert p.returncode == 0, p.stderr
    assert f"kept {N} of {N} wanted" in p.stdout
    _same_as_local(out, local)


@needs_ray
def test_a_shard_whose_worker_dies_is_retried_and_resumes(local: Path, tmp_path: Path) -> None:
    out = tmp_path / "ray.jsonl"
    marker = tmp_path / "shard-1-died"
    p = _generate(out, local.parent / "cache.sqlite", "--engine", "ray", "--shards", "2",
                  "--concurrency", "2", env={ray_engine.CRASH_HOOK: f"1:{marker}"})
    assert p.returncode == 0, p.stderr
    assert marker.exists()  # shard 1's worker died after writing its first record...
    _same_as_local(out, local)  # ...and its attempts (the odd ones) are all there


@needs_ray
def test_a_stopped_ray_run_keeps_its_shards_and_resumes(tmp_path: Path) -> None:
    out, cache = tmp_path / "ray.jsonl", tmp_path / "cache.sqlite"
    # what the whole run costs, measured on a cache of its own: the limit is half of it
    probe = _generate(tmp_path / "probe.jsonl", tmp_path / "probe.sqlite")
    spent = re.search(r"this run: \d+ new LLM calls \((\d+) prompt \+ (\d+) completion",
                      probe.stdout)
    assert spent, probe.stdout
    half = (int(spent[1]) + int(spent[2])) // 2
    ray_args = ("--engine", "ray", "--shards", "2", "--concurrency", "2")
    stopped = _generate(out, cache, *ray_args, "--max-tokens", str(half))
    assert stopped.returncode == 5, stopped.stderr
    assert "stopped:" in stopped.stdout
    merged = _lines(out)
    assert len(merged) < N and _shard_files(out)  # the final part merged, the rest kept
    resumed = _generate(out, cache, *ray_args)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed:" in resumed.stdout
    assert _lines(out)[: len(merged)] == merged
    # the local engine, on the cache the Ray runs filled, writes the same records
    local = tmp_path / "local.jsonl"
    p = _generate(local, cache, "--concurrency", "1")
    assert p.returncode == 0, p.stderr
    _same_as_local(out, local)


def test_without_ray_the_error_names_the_install(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails
    config = RunConfig(tools=("builtin",), n=1, output=tmp_path / "o.jsonl", model="scripted")
    with pytest.raises(ConfigError) as caught:
        asyncio.run(ray_engine.run(config))
    assert "pip install 'naig[ray]'" in str(caught.value) and ray_engine.RAY_PIN in str(
        caught.value)


def test_ray_flags_need_the_ray_engine(tmp_path: Path) -> None:
    p = _generate(tmp_path / "o.jsonl", tmp_path / "c.sqlite", "--shards", "2")
    assert p.returncode == 2 and "--engine ray" in p.stderr and "Traceback" not in p.stderr


# The merge, without Ray: shard files written by hand, with the local run's records.

def _write_shards(config: RunConfig, local: Path, shards: list[str]) -> None:
    """``shards[k]`` marks shard k's attempts by index: ``k`` kept, ``r`` rejected, ``.``
    not written (the records are the local run's, by attempt index)."""
    records = {attempt_index(r): r for r in map(Record.from_json, _lines(local))}
    assert sorted(records) == list(range(N))
    for k, marks in enumerate(shards):
        store = RunStore(ray_engine.shard_config(config, k, len(shards)))
        store.open(config)
        for i, mark in enumerate(marks):
            if mark != ".":
                store.write(records[i], kept=mark == "k")
        store.close()


def _merge(config: RunConfig) -> tuple[bool, list[int], list[int], Summary]:
    store = RunStore(config)
    earlier = store.open(config)
    summary = Summary(wanted=config.n, attempts_allowed=config.attempts)
    try:
        complete = ray_engine._merge(config, store, earlier.kept, earlier.rejected, summary)
    finally:
        store.close()
    kept = [attempt_index(Record.from_json(x)) for x in _lines(config.output)]
    rejected = [attempt_index(Record.from_json(x)) for x in _lines(config.rejected_output)]
    return complete, kept, rejected, summary


def _config(tmp_path: Path, n: int) -> RunConfig:
    return RunConfig(tools=("builtin",), n=n, output=tmp_path / "out.jsonl",
                     model="scripted:0", max_attempts=N)


@pytest.mark.parametrize(("n", "kept", "rejected"), [
    (3, [0, 1, 2], []),            # the n lowest kept; nothing above the last of them
    (4, [0, 1, 2, 5], [3, 4]),     # rejected ones below the last kept are kept too
    (5, [0, 1, 2, 5], [3, 4]),     # every attempt done, fewer kept than wanted
])
def test_merge_keeps_what_a_sequential_run_keeps(local: Path, tmp_path: Path, n: int,
                                                 kept: list[int], rejected: list[int]) -> None:
    config = _config(tmp_path, n)
    _write_shards(config, local, ["k.k.r.", ".k.r.k"])
    complete, got_kept, got_rejected, summary = _merge(config)
    assert complete
    assert (got_kept, got_rejected) == (kept, rejected)
    assert (summary.kept, summary.rejected, summary.attempted) == (len(kept), len(rejected), N)


def test_merge_stops_at_the_first_attempt_not_written_and_goes_on_later(
        local: Path, tmp_path: Path) -> None:
    config = _config(tmp_path, 4)
    _write_shards(config, local, ["k.k.r.", ".k...k"])  # 3 not written yet
    complete, kept, rejected, _ = _merge(config)
    assert not complete and (kept, rejected) == ([0, 1, 2], [])
    _write_shards(config, local, ["", "...r"])  # shard 1 resumes: 3 rejected
    complete, kept, rejected, _ = _merge(config)
    assert complete and (kept, rejected) == ([0, 1, 2, 5], [3, 4])


def test_shard_spend_moves_into_the_run_manifest_and_limits_count_it(tmp_path: Path) -> None:
    config = _config(tmp_path, 2).model_copy(update={"max_tokens": 1000})
    store = RunStore(config)
    store.open(config)
    for k, tokens in enumerate((300, 200)):
        shard = RunStore(ray_engine.shard_config(config, k, 2))
        shard.open(config)
        shard.save_spent(StageUsage(calls=1, prompt_tokens=tokens))
        shard.close()
    earlier = StageUsage(calls=1, prompt_tokens=100)
    total = ray_engine._collect_spent(config, store, earlier)
    assert (total.calls, total.prompt_tokens) == (3, 600)
    assert store.spent_on_disk().prompt_tokens == 600  # saved in the run's manifest ...
    for k in (0, 1):  # ... and cleared from the shards', so a restart counts it once
        shard = RunStore(ray_engine.shard_config(config, k, 2))
        assert shard.spent_on_disk().calls == 0
    assert ray_engine._collect_spent(config, store, total).prompt_tokens == 600
    left = ray_engine._remaining(config, total, None)
    assert left.max_tokens == 400 and ray_engine.shard_config(left, 0, 2).max_tokens == 200
    assert ray_engine._remaining(config.model_copy(update={"max_tokens": 500}), total,
                                 None).max_tokens == 0
    store.close()
