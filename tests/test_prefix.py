"""The shared-prefix layout: consecutive requests for one dialogue open the same way.

Every generation request of a NAIG dialogue (plan, skeleton, injections, refinement, the
judge) carries the same system message, the dialogue's frame (instructions, tools, start
state), and puts the dialogue before the instruction, so a server's prefix cache (and
llama.cpp's, in process) evaluates the long stable part once. The four experts share
their system message and the dialogue too, and differ only in the question at the end.
"""

from __future__ import annotations

import asyncio
import os

from naig.llm.base import Request
from naig.methods import naig
from naig.stages.verify import verify
from naig.testing import ScriptedLLM, schema_example

from .conftest import make_draft

GENERATION = ("plan", "skeleton", "refine")


def _shared(a: Request, b: Request) -> int:
    first = "\n".join(m.content for m in a.messages)
    second = "\n".join(m.content for m in b.messages)
    return len(os.path.commonprefix([first, second]))


def test_every_generation_request_opens_with_the_dialogues_frame() -> None:
    llm = ScriptedLLM(respond=schema_example)
    d = make_draft(llm, subtasks_min=2, subtasks_max=2, steps_min=2, steps_max=2,
                   refine_steps=2, judge="on")
    asyncio.run(naig.run(d))
    sent = [r for r in llm.requests if r.stage in GENERATION]
    assert {r.stage for r in sent} == set(GENERATION)
    assert all(r.messages[0].role == "system" and r.messages[0].content == d.frame
               for r in sent)
    assert all(t.name in d.frame for t in d.tools) and d.system in d.frame
    # the skeleton's requests grow the dialogue at the end: each shares with the next
    # the frame and every turn the earlier one showed
    skeleton = [r for r in sent if r.stage == "skeleton"]
    # (a step may add to its subtask's request what its call used: the dialogue up to
    # that request stays as it was)
    for a, b in zip(skeleton, skeleton[1:], strict=False):
        shown = a.messages[1].content.split("\n\nThe user's overall task")[0]
        if "(it has not started)" not in shown:
            stable = shown[:shown.rfind("] user: ")]
            assert _shared(a, b) >= len(d.frame) + len(stable)


def test_the_experts_differ_only_in_their_question() -> None:
    llm = ScriptedLLM(respond=lambda r: {"reason": "all turns look fine", "verdict": "pass"})
    from .conftest import good_dialogue

    d = make_draft(llm, good_dialogue())
    asyncio.run(verify(llm, d.messages, d.tools, d.env, seed=1))
    experts = [r for r in llm.requests if r.stage == "verify"]
    assert len(experts) == 4
    body = experts[0].messages[-1].content
    question = body.index("Question:")
    for r in experts[1:]:
        assert r.messages[0] == experts[0].messages[0]
        assert _shared(experts[0], r) >= len(experts[0].messages[0].content) + question
