"""Stage 3, verification: the rules run first, the four experts only where every rule
passed, all of them at once; a failure among them comes out as the caller handles it."""

from __future__ import annotations

import asyncio

import pytest

from naig.envs.simulated import SimulatedEnvironment
from naig.errors import BackendError, BudgetExhausted
from naig.stages.verify import EXPERTS, _first, verify
from naig.testing import ScriptedLLM

from .conftest import TOOLS, call, good_dialogue


def _pass(request):  # type: ignore[no-untyped-def]
    return {"reason": "Every value comes from the user or a result.", "verdict": "pass"}


def test_experts_run_only_where_every_rule_passed() -> None:
    llm = ScriptedLLM(respond=_pass)
    env = SimulatedEnvironment(TOOLS, llm, 1)
    v = asyncio.run(verify(llm, good_dialogue(), TOOLS, env, seed=1))
    assert v.passed and [c.name for c in v.checks][-len(EXPERTS):] == list(EXPERTS)
    assert len(llm.requests) == len(EXPERTS)
    broken = good_dialogue()
    broken[4] = call("call_2", "book_hotel", hotel_id="H-9999", nights=2)  # never stated
    llm = ScriptedLLM(respond=_pass)
    v = asyncio.run(verify(llm, broken, TOOLS, SimulatedEnvironment(TOOLS, llm, 1), seed=1))
    assert not v.passed and not llm.requests  # a failed rule: no expert is asked


def test_a_spent_budget_comes_out_first_and_a_bug_is_never_hidden() -> None:
    group = BaseExceptionGroup("experts", [BackendError("down"), BudgetExhausted("spent")])
    assert isinstance(_first(group), BudgetExhausted)
    assert isinstance(_first(BaseExceptionGroup("e", [BackendError("down")])), BackendError)
    bug = BaseExceptionGroup("e", [BackendError("down"), KeyError("x")])
    assert _first(bug) is bug  # raised whole: the KeyError is seen


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
