"""End to end on real environments with the embedded model: a dialogue is kept, every
tool result in the data comes from executing the call (a refused call only where an error
simulation put it, with the recovery after it), and the dialogue replays exactly.

Each run generates on `bfcl:GorillaFileSystem` / `tau2:retail`; the replay check of the
pipeline must pass on every record written (kept or rejected), and an independent
replay here (environment rebuilt from `meta.environment`, calls re-executed in order)
must reproduce every recorded result.
"""

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from naig.dialogue import Record
from naig.envs.registry import restore
from naig.testing import ScriptedLLM
from naig.tools import tool_from_dict

from .contract import assert_contract

pytestmark = pytest.mark.e2e


def _normal(text: str) -> str:
    return json.dumps(json.loads(text), sort_keys=True)


async def _independent_replay(record: Record) -> None:
    tools = [tool_from_dict(t, "record") for t in record.tools]
    env = restore(record.meta.environment, tools, ScriptedLLM())  # no model may be asked
    assert env.executes
    results = {m.tool_call_id: m.content for m in record.messages if m.role == "tool"}
    for m in record.messages:
        for c in m.tool_calls or []:
            fresh = await env.call(c.function)
            assert _normal(fresh.content) == _normal(results[c.id]), (c.function, fresh)
    await env.aclose()


@pytest.mark.parametrize("spec", ["bfcl:GorillaFileSystem", "tau2:retail"])
def test_generate_on_a_real_environment(tmp_path: Path, spec: str) -> None:
    # the run stops at its first kept dialogue (the 1.5B model keeps about one in four on
    # tau2:retail at these settings under today's checks, with an injection in every
    # dialogue; at seed 2 the sixth is the first kept at 4a8d6ab): the test asks that one
    # is kept within 12 attempts, not a kept rate (docs/benchmarks.md has the rates)
    out = tmp_path / "out.jsonl"
    p = subprocess.run(
        [sys.executable, "-m", "naig.cli", "generate", "--tools", spec, "-n", "1",
         "--max-attempts", "12", "--seed", "2", "--subtasks", "2", "--steps", "1-2",
         "--refine-steps", "1", "--injections", "1-1",
         "-o", str(out), "--cache-path", str(tmp_path / "c.sqlite")],
        text=True, capture_output=True, timeout=3600)
    assert p.returncode in (0, 1), p.stderr
    kept = [Record.from_json(x) for x in out.read_text().splitlines()]
    others = tmp_path / "out.rejected.jsonl"
    rejected = [Record.from_json(x) for x in
                (others.read_text().splitlines() if others.exists() else [])]
    records = kept + rejected
    assert kept, f"nothing kept: {[r.meta.error or r.meta.verification for r in rejected]}"
    for r in kept:  # every result true: no refused call but an error simulation's
        errors = [i for i, m in enumerate(r.messages) if m.is_error]
        assert all(r.messages[i + 1].tool_calls for i in errors), errors
    for r in records:
        assert_contract(r, kept=r.meta.verification is not None and r.meta.verification.passed)
        assert r.meta.environment.name == spec
        if r.meta.error:
            continue
        replay = next(c for c in r.meta.verification.checks if c.name == "replay")
        assert replay.passed, replay.detail
        assert any(m.tool_calls for m in r.messages)
        asyncio.run(_independent_replay(r))
