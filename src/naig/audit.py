"""``naig verify``: check written dialogues again, independently of their generation.

Each record's start state is rebuilt from ``meta.environment``, every rule check runs
again and, where tools really execute, every call is replayed and every recorded result
compared with a fresh execution. The expert panel runs when a model is given.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from naig.dialogue import Record, Verification
from naig.envs.registry import restore
from naig.errors import BackendError
from naig.llm.base import LLM, Completion, Request
from naig.stages.verify import verify
from naig.tools import tool_from_dict


class _NoModel(LLM):
    name = "none"

    async def complete(self, request: Request) -> Completion:
        raise BackendError("this check needs a model: pass --model")


@dataclass
class Audit:
    checked: int = 0
    passed: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    verdicts: list[tuple[str, Verification]] = field(default_factory=list)


async def audit(records: list[Record], llm: LLM | None = None) -> Audit:
    result = Audit()
    model = llm or _NoModel()
    for r in records:
        tools = [tool_from_dict(t, f"{r.id}: tool {i}") for i, t in enumerate(r.tools, 1)]
        env = restore(r.meta.environment, tools, model)
        try:
            v = await verify(model, r.messages, tools, env, seed=r.meta.seed,
                             experts=llm is not None)
        finally:
            await env.aclose()
        result.checked += 1
        result.passed += v.passed
        result.failures.update(c.name for c in v.failed)
        result.verdicts.append((r.id, v))
    return result
