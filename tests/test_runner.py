"""The whole pipeline on the scripted LLM: contract, reproducibility, attempts, garbage."""

import asyncio
import hashlib
import random
from pathlib import Path
from typing import Any

from naig.config import MethodSettings, RunConfig, derive_seed
from naig.envs.base import Environment, ToolResult
from naig.envs.python_module import PythonEnvironment
from naig.envs.registry import ToolSource, resolve
from naig.errors import ToolEnvironmentError
from naig.llm.registry import stack
from naig.runner import rejection_reason, run
from naig.store import read_records
from naig.testing import ScriptedLLM, schema_example
from naig.tools import Tool

from .contract import assert_contract

SMALL = MethodSettings(subtasks_min=2, subtasks_max=3, steps_min=1, steps_max=2, refine_steps=3)


def _config(tmp_path: Path, **kw: object) -> RunConfig:
    base = {"tools": ("builtin",), "n": 3, "output": tmp_path / "out.jsonl", "seed": 11,
            "cache_path": tmp_path / "cache.sqlite", "settings": SMALL}
    return RunConfig(**(base | kw))  # type: ignore[arg-type]


def _run(config: RunConfig, backend: ScriptedLLM):  # type: ignore[no-untyped-def]
    llm = stack(backend, concurrency=config.concurrency, cache=config.cache,
                cache_path=config.cache_path)
    return asyncio.run(run(config, llm, resolve("builtin")))


def test_records_follow_the_contract(tmp_path: Path) -> None:
    backend = ScriptedLLM(respond=schema_example)
    # the scripted judge always says "A": judge="on" so that refinement steps happen
    summary = _run(_config(tmp_path, settings=SMALL.model_copy(update={"judge": "on"})), backend)
    kept = read_records(tmp_path / "out.jsonl")
    rejected = read_records(tmp_path / "out.rejected.jsonl") if summary.rejected else []
    assert summary.kept == len(kept) == 3
    for r in kept:
        assert_contract(r, kept=True)
        assert r.meta.refinements
        assert len({i.type for i in r.meta.injections}) == len(r.meta.injections) <= 3
    assert any(r.meta.injections for r in kept)
    for r in rejected:
        assert_contract(r, kept=False)
    stages = set(backend.stages())
    assert {"plan", "skeleton", "refine", "verify"} <= stages


def test_same_seed_rerun_makes_no_new_calls_and_writes_the_same(tmp_path: Path) -> None:
    first = _run(_config(tmp_path), ScriptedLLM(respond=schema_example))
    again = _config(tmp_path, output=tmp_path / "again.jsonl")
    second = _run(again, ScriptedLLM())  # any call reaching it would fail the test
    assert second.new_calls.usage().calls == 0
    assert second.cache_hits.usage().calls == first.new_calls.usage().calls
    a = [r.to_json() for r in read_records(tmp_path / "out.jsonl")]
    b = [r.to_json() for r in read_records(tmp_path / "again.jsonl")]
    assert a == b


def test_concurrent_run_keeps_exactly_n(tmp_path: Path) -> None:
    summary = _run(_config(tmp_path, n=2, concurrency=4), ScriptedLLM(respond=schema_example))
    assert summary.kept == 2 == len(read_records(tmp_path / "out.jsonl"))


def test_garbage_model_yields_rejected_records_not_a_crash(tmp_path: Path) -> None:
    summary = _run(_config(tmp_path, n=2, max_attempts=3),
                   ScriptedLLM(respond=lambda r: "I am not JSON at all"))
    assert (summary.kept, summary.rejected, summary.attempted) == (0, 3, 3)
    assert summary.out_of_attempts and summary.reasons == {"model_output": 3}
    for r in read_records(tmp_path / "out.rejected.jsonl"):
        assert_contract(r, kept=False)
        assert "no valid answer" in (r.meta.error or "")


def test_dialogue_seeds_come_from_sha256_not_hash() -> None:
    expected = int(hashlib.sha256(b"0:1").hexdigest()[:16], 16) >> 1
    assert derive_seed(0, 1) == expected
    seeds = {derive_seed(7, i) for i in range(1000)}
    assert len(seeds) == 1000 and all(0 <= s < 2**63 for s in seeds)
    assert derive_seed(7, 1) != derive_seed(8, 1)
    random.Random(derive_seed(7, 1))  # a valid seed for the standard generator


class _Dying(PythonEnvironment):
    """A real environment whose process has died: every call fails as an MCP server's
    would once it stopped answering."""

    async def _execute(self, tool: Tool, arguments: dict[str, Any]) -> ToolResult:
        raise ToolEnvironmentError(f"the server died while running {tool.name}")


def test_an_environment_that_fails_rejects_its_dialogue_and_the_run_goes_on(
        tmp_path: Path) -> None:
    real = resolve("python:tests.tools_module")

    def make(tools: list[Tool], seed: int) -> Environment:
        return _Dying(tools, "tests.tools_module", name=real.spec)
    source = ToolSource(real.spec, real.pool, real.state, make)
    config = _config(tmp_path, tools=(real.spec,), n=1, max_attempts=2, cache=False)
    llm = stack(ScriptedLLM(respond=schema_example), concurrency=1, cache=False,
                cache_path=None)
    summary = asyncio.run(run(config, llm, source))
    rejected = read_records(tmp_path / "out.rejected.jsonl")
    assert summary.kept == 0 and summary.attempted == summary.rejected == len(rejected) == 2
    assert summary.reasons == {"environment": 2}
    for r in rejected:
        assert rejection_reason(r) == "environment"
        assert r.meta.error is not None and "the server died while running" in r.meta.error


def test_renamed_settings_keep_the_hash_earlier_versions_wrote() -> None:
    """``method`` was ``generator`` and ``settings`` was ``method``: the hash (and the
    manifest's settings, which resume compares) keep the old keys, so a run started before
    the rename resumes after it. The value below was computed by the version before."""
    from naig.config import MethodSettings

    config = RunConfig(tools=("builtin",), n=1, output=Path("o.jsonl"), seed=3, method="mas",
                       settings=MethodSettings(refine_steps=2))
    assert config.config_hash() == "4e06f4758ee46de5"


def test_a_setting_added_later_is_hashed_only_away_from_its_default() -> None:
    from naig.config import MethodSettings

    def hashed(**settings: Any) -> str:
        return RunConfig(tools=("builtin",), n=1, output=Path("o.jsonl"),
                         settings=MethodSettings(**settings)).config_hash()

    assert "subtask_tries" not in MethodSettings().as_written()  # at its default: as before
    assert MethodSettings(subtask_tries=1).as_written()["subtask_tries"] == 1
    assert hashed(subtask_tries=1) != hashed()
