"""Stage 3, verification: the rules run first, the four experts only where every rule
passed, one after another until one fails."""

from __future__ import annotations

import asyncio

import pytest

from naig.envs.simulated import SimulatedEnvironment
from naig.stages.verify import ASKED, EXPERTS, verify
from naig.testing import ScriptedLLM

from .conftest import TOOLS, call, good_dialogue


def _pass(request):  # type: ignore[no-untyped-def]
    return {"reason": "Every value comes from the user or a result.", "verdict": "pass"}


def test_experts_run_only_where_every_rule_passed() -> None:
    llm = ScriptedLLM(respond=_pass)
    env = SimulatedEnvironment(TOOLS, llm, 1)
    v = asyncio.run(verify(llm, good_dialogue(), TOOLS, env, seed=1))
    assert v.passed and [c.name for c in v.checks][-len(EXPERTS):] == list(ASKED)
    assert set(ASKED) == set(EXPERTS)
    assert len(llm.requests) == len(EXPERTS)
    broken = good_dialogue()
    broken[4] = call("call_2", "book_hotel", hotel_id="H-9999", nights=2)  # never stated
    llm = ScriptedLLM(respond=_pass)
    v = asyncio.run(verify(llm, broken, TOOLS, SimulatedEnvironment(TOOLS, llm, 1), seed=1))
    assert not v.passed and not llm.requests  # a failed rule: no expert is asked


def test_the_experts_after_the_first_that_fails_are_not_asked() -> None:
    def fail_results(request):  # type: ignore[no-untyped-def]
        asked = request.messages[-1].content or ""
        if "plausible for its tool" in asked:
            return {"reason": "[3] contradicts the tool's definition.", "verdict": "fail"}
        return _pass(request)
    llm = ScriptedLLM(respond=fail_results)
    v = asyncio.run(verify(llm, good_dialogue(), TOOLS, SimulatedEnvironment(TOOLS, llm, 1),
                           seed=1))
    experts = [c for c in v.checks if c.name in EXPERTS]
    assert not v.passed and [c.name for c in experts] == list(ASKED[:2])
    assert [c.passed for c in experts] == [True, False]
    assert len(llm.requests) == 2  # the two experts after it were spared


def test_an_expert_that_cannot_answer_rejects_the_dialogue_not_the_run() -> None:
    llm = ScriptedLLM(respond=lambda r: {"nonsense": True})
    v = asyncio.run(verify(llm, good_dialogue(), TOOLS, SimulatedEnvironment(TOOLS, llm, 1),
                           seed=1))
    assert not v.passed and any(c.name in EXPERTS and not c.passed for c in v.checks)


@pytest.mark.parametrize("experts", [False])
def test_without_experts_only_the_rules_decide(experts: bool) -> None:
    llm = ScriptedLLM()
    v = asyncio.run(verify(llm, good_dialogue(), TOOLS, SimulatedEnvironment(TOOLS, llm, 1),
                           seed=1, experts=experts))
    assert v.passed and not llm.requests
