"""End to end on the real embedded model: `naig generate` as a user runs it.

Slow (minutes on 2 cores): the dialogue is small (2 subtasks of 1 to 2 steps, 2
refinement steps) but every stage really runs on the default embedded model
(Qwen2.5-Coder-1.5B) through llama.cpp.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from naig.dialogue import Record

from .contract import assert_contract

pytestmark = pytest.mark.e2e

ARGS = ["--tools", "builtin", "-n", "1", "--max-attempts", "1", "--seed", "3",
        "--subtasks", "2", "--steps", "1-2", "--refine-steps", "2"]


def _generate(tmp_path: Path, out: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "naig.cli", "generate", *ARGS, "-o", str(tmp_path / out),
         "--cache-path", str(tmp_path / "cache.sqlite")],
        text=True, capture_output=True, timeout=1800)


def _records(path: Path) -> list[Record]:
    if not path.exists():
        return []
    return [Record.from_json(line) for line in path.read_text().splitlines()]


def test_generate_on_the_embedded_model(tmp_path: Path) -> None:
    first = _generate(tmp_path, "out.jsonl")
    assert first.returncode in (0, 1), first.stderr  # 1: nothing kept, which is allowed
    assert "Traceback" not in first.stderr
    kept = _records(tmp_path / "out.jsonl")
    rejected = _records(tmp_path / "out.rejected.jsonl")
    assert kept or rejected
    assert len(kept) + len(rejected) == 1
    for r in kept:
        assert_contract(r, kept=True)
    for r in rejected:
        assert_contract(r, kept=False)
    for r in kept + rejected:
        assert r.meta.model == "local:qwen2.5-coder-1.5b"
        assert r.meta.usage.calls > 0 and r.meta.usage.completion_tokens > 0
    assert "kept" in first.stdout and "LLM" in first.stdout  # the summary

    # the same command again: served from the cache, zero new calls, the same records
    second = _generate(tmp_path, "again.jsonl")
    assert second.returncode == first.returncode
    assert "this run: 0 new LLM calls" in second.stdout, second.stdout
    assert [r.to_json() for r in _records(tmp_path / "again.jsonl")] == \
        [r.to_json() for r in kept]
    assert [r.to_json() for r in _records(tmp_path / "again.rejected.jsonl")] == \
        [r.to_json() for r in rejected]


def test_the_embedded_model_reuses_a_shared_prefix_and_says_so() -> None:
    import asyncio

    from naig.llm.base import Request, messages
    from naig.llm.llamacpp import LlamaCppLLM

    llm = LlamaCppLLM("qwen2.5-coder-1.5b")
    frame = "You list things. " + " ".join(f"Item {k} is a colour." for k in range(40))

    def ask(question: str) -> Request:
        return Request(messages=messages(("system", frame), ("user", question)),
                       temperature=0.0, max_tokens=4)

    first = asyncio.run(llm.complete(ask("Name one colour.")))
    second = asyncio.run(llm.complete(ask("Name one fruit.")))
    assert first.cached_prompt_tokens == 0
    assert 100 < second.cached_prompt_tokens < second.prompt_tokens  # the frame, not the end
