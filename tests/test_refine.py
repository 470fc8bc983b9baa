"""Refinement: masks are non-adjacent, selection decays, the judge's choice is obeyed."""

import asyncio
import random
from collections import Counter

from naig.dialogue import Message
from naig.stages.refine import choose_masks, maskable, refine_step
from naig.testing import ScriptedLLM

from .conftest import good_dialogue, make_draft


def test_masks_are_never_adjacent() -> None:
    rng = random.Random(0)
    for _ in range(2000):
        n = rng.randint(1, 20)
        weights = {i: rng.random() + 0.01 for i in rng.sample(range(30), n)}
        chosen = choose_masks(weights, rng.randint(1, 4), rng)
        assert chosen == sorted(set(chosen))
        assert all(b - a > 1 for a, b in zip(chosen, chosen[1:], strict=False))
        assert set(chosen) <= set(weights)


def test_selection_probability_decays_with_each_selection() -> None:
    # turn 1 chosen twice before (weight 0.25), turn 3 once (0.5), turn 5 never (1.0)
    weights = {1: 0.5**2, 3: 0.5**1, 5: 1.0}
    rng = random.Random(1)
    counts = Counter(choose_masks(weights, 1, rng)[0] for _ in range(20000))
    assert counts[1] < counts[3] < counts[5]
    assert abs(counts[5] / counts[1] - 4.0) < 0.5


def _judge_says(choice: str, candidate_text: str):  # type: ignore[no-untyped-def]
    """Responder: the filler writes ``candidate_text``; the judge names the original or the
    candidate by its letter, whichever position it was shown in."""
    def respond(request):  # type: ignore[no-untyped-def]
        if request.schema_ and "better" in request.schema_["properties"]:
            prompt = request.messages[-1].content
            a_is_candidate = f"A: assistant: {candidate_text}" in prompt
            pick_a = a_is_candidate if choice == "new" else not a_is_candidate
            return {"reason": "because", "better": "A" if pick_a else "B"}
        return {"content": candidate_text}
    return respond


def _judged(llm: ScriptedLLM) -> list[str]:
    """The judge's prompts, in order: ``canary`` or ``candidate``."""
    return ["candidate" if "A brand new" in r.messages[-1].content or "A different" in
            r.messages[-1].content else "canary"
            for r in llm.requests if r.schema_ and "better" in r.schema_["properties"]]


def _focus_last_reply(d) -> None:  # type: ignore[no-untyped-def]
    for t in d.turns:
        t.selections = 60
    d.turns[6].selections = 0  # make the final reply the overwhelming choice


def test_a_judge_preferring_the_original_decides_in_one_call() -> None:
    llm = ScriptedLLM(respond=_judge_says("original", "A brand new reply."))
    d = make_draft(llm, good_dialogue(), masks_per_step=1, judge="on")
    _focus_last_reply(d)
    before = [m.model_copy() for m in d.messages]
    record = asyncio.run(refine_step(d, 1))
    assert record is not None and record.masked == [6] and record.kept == ["original"]
    assert record.reasons == ["judge preferred the original"]
    assert d.messages == before
    assert [r.stage for r in llm.requests] == ["refine", "refine"]  # the fill, one judgement
    sent = llm.requests[0].messages[-1].content
    assert "[6] [MASK]" in sent and "[5] tool result" in sent  # context around the hole


def test_a_judge_preferring_the_candidate_is_asked_again_in_the_other_order() -> None:
    llm = ScriptedLLM(respond=_judge_says("new", "A brand new reply."))
    d = make_draft(llm, good_dialogue(), masks_per_step=1, judge="on")
    _focus_last_reply(d)
    record = asyncio.run(refine_step(d, 1))
    assert record is not None and record.kept == ["new"]
    assert record.reasons == ["judge preferred the candidate in both orders"]
    assert d.messages[6] == Message(role="assistant", content="A brand new reply.")
    assert d.turns[6].selections == 1
    assert _judged(llm) == ["candidate", "candidate"]
    first, second = (r.messages[-1].content for r in llm.requests[1:])
    assert first.index("A brand new") < first.index("It is sunny") or \
        second.index("A brand new") < second.index("It is sunny")  # both orders shown
    assert (d.judge.pairs, d.judge.kept, d.judge.accepted) == (1, 1, 1)


def _always_a(request):  # type: ignore[no-untyped-def]
    if "better" in request.schema_["properties"]:
        return {"better": "A", "reason": "first is best"}
    return {"content": "A different reply."}


def test_a_position_biased_judge_keeps_the_original() -> None:
    d = make_draft(ScriptedLLM(respond=_always_a), good_dialogue(), masks_per_step=1,
                   judge="on")
    _focus_last_reply(d)
    before = d.messages
    for _ in range(6):  # the order is random: some judgements end at the first call
        record = asyncio.run(refine_step(d, 1))
        assert record is not None and record.kept == ["original"]
        assert record.reasons[0] in ("judge preferred the original",
                                     "judge's preference followed position: kept the original")
        d.turns[6].selections = 0
    assert d.messages == before
    assert d.judge.pairs > 0 and d.judge.kept == 0 and d.judge.accepted == 0


def test_a_judge_that_fails_its_canary_is_not_asked_and_only_blamed_turns_are_masked() -> None:
    llm = ScriptedLLM(respond=_always_a)
    d = make_draft(llm, good_dialogue(), masks_per_step=1)  # judge="auto"
    _focus_last_reply(d)
    assert asyncio.run(refine_step(d, 1)) is None  # nothing is blamed: nothing to rewrite
    # seed 7 draws the wrong reply first: a judge that always names A fails at once
    assert _judged(llm) == ["canary"] and len(llm.requests) == 1
    assert d.judge_trusted is False and (d.judge.canaries, d.judge.passed) == (1, 0)
    assert "--judge off" in d.judge.describe() or d.judge.signal  # says so once it is clear
    assert asyncio.run(refine_step(d, 2)) is None and len(llm.requests) == 1  # no more calls


def test_the_canarys_first_order_is_drawn_so_a_position_judge_fails_at_once_half_the_time(
        ) -> None:
    calls = []
    for seed in range(20):
        llm = ScriptedLLM(respond=_always_a)
        d = make_draft(llm, good_dialogue(), masks_per_step=1)
        d.seed = seed
        _focus_last_reply(d)
        asyncio.run(refine_step(d, 1))
        assert d.judge_trusted is False
        calls.append(len(llm.requests))
    assert set(calls) == {1, 2} and 5 <= calls.count(1) <= 15


def test_a_judge_that_passes_its_canary_is_trusted() -> None:
    def sensible(request):  # type: ignore[no-untyped-def]
        if "better" in request.schema_["properties"]:  # picks whichever reads naturally
            a = request.messages[-1].content.split("\nA: ")[1].split("\nB: ")[0]
            return {"better": "A" if a.startswith("assistant: It is") else "B", "reason": "-"}
        return {"content": "A brand new reply."}
    llm = ScriptedLLM(respond=sensible)
    d = make_draft(llm, good_dialogue(), masks_per_step=1)
    _focus_last_reply(d)
    asyncio.run(refine_step(d, 1))
    assert d.judge_trusted is True and _judged(llm)[:2] == ["canary", "canary"]
    assert "candidate" in _judged(llm)


def test_the_judge_off_is_never_asked() -> None:
    llm = ScriptedLLM(respond=_always_a)
    d = make_draft(llm, good_dialogue(), judge="off")
    assert asyncio.run(refine_step(d, 1)) is None and not llm.requests


def test_a_candidate_that_breaks_a_rule_never_reaches_the_judge() -> None:
    llm = ScriptedLLM([{"content": "Sure thing, here is the [MASK] you wanted."}])
    d = make_draft(llm, good_dialogue(), masks_per_step=1, judge="on")
    _focus_last_reply(d)
    before = d.messages
    record = asyncio.run(refine_step(d, 1))
    assert record is not None and record.kept == ["original"]
    assert "no_instruction_echo" in record.reasons[0]
    assert d.messages == before and len(llm.requests) == 1


def test_maskable_turns_exclude_system_and_tool_results() -> None:
    d = make_draft(ScriptedLLM(), good_dialogue())
    assert maskable(d) == [1, 2, 4, 6]


def test_rule_failures_steer_refinement_to_the_blamed_turns() -> None:
    from naig.stages.calls import stated_values
    from naig.stages.refine import flagged

    from .conftest import call

    dialogue = good_dialogue()
    dialogue[4] = call("call_2", "book_hotel", hotel_id="H-9999", nights=2)
    llm = ScriptedLLM(respond=_judge_says("new", "x"))
    d = make_draft(llm, dialogue, judge="off")
    problems = flagged(d)
    assert set(problems) == {1, 4} and "H-9999" in problems[4]
    assert stated_values(d.messages, 1) == ["Paris", "H-9999", "2"]  # turn 1 must say them
    for t in d.turns:
        t.selections = 5
    d.turns[1].selections = 0
    llm._respond = lambda r: ({"better": "A", "reason": "-"} if "better" in
                              r.schema_["properties"] else {"content": "Book H-9999, 2 nights."})
    asyncio.run(refine_step(d, 1))
    sent = llm.requests[0].messages[-1].content
    assert "H-9999" in sent and "Problem:" in sent


def test_a_candidate_that_fixes_a_failing_check_is_kept_without_a_judge() -> None:
    from .conftest import call

    dialogue = good_dialogue()
    dialogue[1] = Message(role="user", content="Weather in Paris, then book my hotel for 2 nights.")
    dialogue[4] = call("call_2", "book_hotel", hotel_id="H-1001", nights=2)  # H-1001 unsaid

    def biased(request):  # type: ignore[no-untyped-def]
        if "better" in request.schema_["properties"]:
            return {"better": "A", "reason": "first is best"}
        return {"content": "What's the weather in Paris? Then book hotel H-1001 for 2 nights."}
    llm = ScriptedLLM(respond=biased)
    d = make_draft(llm, dialogue, masks_per_step=1)
    for t in d.turns:
        t.selections = 5
    d.turns[1].selections = 0
    record = asyncio.run(refine_step(d, 1))
    assert record is not None and record.masked == [1] and record.kept == ["new"]
    assert record.reasons == ["candidate fixes grounded_ids"]  # the evidence, no judge
    assert "H-1001" in (d.messages[1].content or "")
    assert set(_judged(llm)) == {"canary"}  # the canary only: the fix needed no judge


def test_an_auto_judge_that_follows_the_position_once_is_not_asked_again() -> None:
    def sensible_then_biased(request):  # type: ignore[no-untyped-def]
        if "better" not in request.schema_["properties"]:
            return {"content": "A different reply."}
        prompt = request.messages[-1].content
        if "A different" not in prompt:  # the canary: it prefers the real last reply
            a = prompt.split("\nA: ")[1].split("\nB: ")[0]
            return {"better": "A" if "It is sunny" in a else "B", "reason": "-"}
        return {"better": "A", "reason": "first"}  # candidates: always the first shown
    llm = ScriptedLLM(respond=sensible_then_biased)
    m = good_dialogue()
    m.insert(4, Message(role="assistant", content="Paris looks sunny today for you."))
    m.insert(5, Message(role="user", content="Great, now the hotel please."))
    d = make_draft(llm, m, masks_per_step=1)
    for step in range(1, 12):
        for t in d.turns:
            t.selections = 0
        asyncio.run(refine_step(d, step))
        if d.judge_trusted is False:
            break
    assert d.judge.canaries == 1 and d.judge.passed == 1
    assert d.judge.pairs == 1 and d.judge.kept == 0 and d.judge_trusted is False
    asked = len(llm.requests)
    d.turns[1].selections = 0
    asyncio.run(refine_step(d, 99))
    assert not any("better" in r.schema_["properties"] for r in llm.requests[asked:])
