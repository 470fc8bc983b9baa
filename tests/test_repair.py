"""Repair: a dialogue that fails verification gets one targeted round before rejection.

A planted defect is found by verification, the turn the failed check blames is rewritten,
and the rewrite is kept on evidence: a rule it fixes, or the failed expert passing it when
asked again. The record says what was repaired.
"""

from __future__ import annotations

import asyncio

from naig.dialogue import Check, Message
from naig.stages.refine import blamed, repair
from naig.stages.verify import verify
from naig.testing import ScriptedLLM

from .conftest import call, good_dialogue, make_draft


def _unstated_hotel() -> list[Message]:
    m = good_dialogue()
    m[1] = Message(role="user", content="Weather in Paris, then book my hotel for 2 nights.")
    m[4] = call("call_2", "book_hotel", hotel_id="H-1001", nights=2)  # H-1001 never said
    return m


def test_a_planted_rule_failure_is_repaired_and_then_passes() -> None:
    fix = {"content": "What's the weather in Paris? Then book hotel H-1001 for 2 nights."}
    llm = ScriptedLLM([fix])
    d = make_draft(llm, _unstated_hotel(), experts=False)
    before = asyncio.run(verify(llm, d.messages, d.tools, d.env, seed=1, experts=False))
    assert [c.name for c in before.failed] == ["grounded_ids"]
    record = asyncio.run(repair(d, before.failed, 1))
    # both blamed turns are masked: the call cannot be rewritten (no hotel ID was said, so
    # its grounded schema offers none, and no request is made); the request can
    assert record is not None and record.repair and record.masked == [1, 4]
    assert record.kept == ["new", "original"]
    assert record.reasons[0] == "candidate fixes grounded_ids" and len(llm.requests) == 1
    assert "H-1001" in (llm.requests[0].messages[-1].content)  # told what to state
    after = asyncio.run(verify(llm, d.messages, d.tools, d.env, seed=1, experts=False))
    assert after.passed and d.refinements == [record]


def test_a_failed_expert_is_asked_again_on_the_rewrite() -> None:
    answers = [{"content": "It is sunny and 18 degrees in Paris; hotel H-1001 is booked, "
                           "booking B-77."},
               {"reason": "[6] now reports the booking", "verdict": "pass"}]
    llm = ScriptedLLM(answers)
    d = make_draft(llm, good_dialogue())
    failed = [Check(name="expert_task_completed", passed=False,
                    detail="[6] does not mention the hotel")]
    assert blamed(d, failed) == {6: "expert_task_completed: does not mention the hotel"}
    record = asyncio.run(repair(d, failed, 1))
    assert record is not None and record.kept == ["new"]
    assert record.reasons == ["candidate fixes expert_task_completed"]
    assert [r.stage for r in llm.requests] == ["refine", "verify"]
    assert "hotel H-1001 is booked" in (llm.requests[1].messages[-1].content)  # the rewrite


def test_a_rewrite_the_expert_still_fails_is_not_kept() -> None:
    llm = ScriptedLLM([{"content": "Done: 18 degrees; booked B-77."},
                       {"reason": "[6] is still vague", "verdict": "fail"}])
    d = make_draft(llm, good_dialogue())
    before = d.messages
    failed = [Check(name="expert_task_completed", passed=False, detail="turn 6 is vague")]
    record = asyncio.run(repair(d, failed, 1))
    assert record is not None and record.kept == ["original"]
    assert record.reasons == ["candidate still fails expert_task_completed"]
    assert d.messages == before


def test_an_expert_that_cites_no_turn_has_the_last_reply_rewritten() -> None:
    llm = ScriptedLLM([{"content": "It is sunny and 18 degrees in Paris; hotel H-1001 is "
                                   "booked, booking B-77."},
                       {"reason": "the reply now matches the results", "verdict": "pass"}])
    d = make_draft(llm, good_dialogue())
    failed = [Check(name="expert_consistency", passed=False, detail="inconsistent somewhere")]
    record = asyncio.run(repair(d, failed, 1))
    assert record is not None and record.masked == [6] and record.kept == ["new"]
    assert "inconsistent somewhere" in llm.requests[0].messages[-1].content  # told why


def test_nothing_to_rewrite_means_no_repair() -> None:
    llm = ScriptedLLM()
    d = make_draft(llm, good_dialogue())
    failed = [Check(name="replay", passed=False, detail="the environment is gone")]
    assert asyncio.run(repair(d, failed, 1)) is None and not llm.requests
