"""Refinement: masks are non-adjacent, selection decays, the judge's choice is obeyed."""

import asyncio
import random
from collections import Counter

import pytest

from naig.dialogue import Message
from naig.stages.judge import calibration_cases, trusted
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


def _calibration_answer(prompt: str) -> str | None:
    """For a calibration prompt, the letter of the real reply (None for other prompts)."""
    for case in calibration_cases()[1]:
        if case["wrong"] in prompt:
            a = prompt.split("\nA: ")[1].split("\nB: ")[0]
            return "B" if case["wrong"] in a else "A"
    return None


def _judged(llm: ScriptedLLM) -> list[str]:
    """The judge's prompts, in order: ``calibration`` or ``candidate``."""
    return ["candidate" if _calibration_answer(r.messages[-1].content) is None
            else "calibration"
            for r in llm.requests if r.schema_ and "better" in r.schema_["properties"]]


def _focus_last_reply(d) -> None:  # type: ignore[no-untyped-def]
    for t in d.turns:
        t.selections = 60
    d.turns[6].selections = 0  # make the final reply the overwhelming choice


def test_a_judge_preferring_the_original_decides_in_one_call() -> None:
    llm = ScriptedLLM(respond=_judge_says("original", "A brand new reply: sunny, booking B-77."))
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
    llm = ScriptedLLM(respond=_judge_says("new", "A brand new reply: sunny, booking B-77."))
    d = make_draft(llm, good_dialogue(), masks_per_step=1, judge="on")
    _focus_last_reply(d)
    record = asyncio.run(refine_step(d, 1))
    assert record is not None and record.kept == ["new"]
    assert record.reasons == ["judge preferred the candidate in both orders"]
    assert d.messages[6] == Message(role="assistant",
                                    content="A brand new reply: sunny, booking B-77.")
    assert d.turns[6].selections == 1
    assert _judged(llm) == ["candidate", "candidate"]
    first, second = (r.messages[-1].content for r in llm.requests[1:])
    assert first.index("A brand new") < first.index("It is sunny") or \
        second.index("A brand new") < second.index("It is sunny")  # both orders shown
    assert (d.judge.pairs, d.judge.kept, d.judge.accepted) == (1, 1, 1)


def _always_a(request):  # type: ignore[no-untyped-def]
    if "better" in request.schema_["properties"]:
        return {"better": "A", "reason": "first is best"}
    return {"content": "A different reply: sunny, booking B-77."}


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


def test_a_judge_that_fails_calibration_is_not_asked_and_only_blamed_turns_are_masked(
        ) -> None:
    llm = ScriptedLLM(respond=_always_a)
    d = make_draft(llm, good_dialogue(), masks_per_step=1)  # judge="auto"
    _focus_last_reply(d)
    assert asyncio.run(refine_step(d, 1)) is None  # nothing is blamed: nothing to rewrite
    # the first order of each pair is drawn: a judge that always names A is wrong by its
    # first or second answer
    assert set(_judged(llm)) == {"calibration"} and 1 <= len(llm.requests) <= 2
    assert d.judge_trusted is False and d.judge.calibrated is False
    assert "not asked in this run" in d.judge.describe()
    assert asyncio.run(refine_step(d, 2)) is None and len(llm.requests) <= 2  # no more calls
    other = make_draft(llm, good_dialogue(), masks_per_step=1)
    other.judge = d.judge  # the next dialogue of the same run: the outcome holds
    asked = len(llm.requests)
    assert asyncio.run(refine_step(other, 1)) is None and len(llm.requests) == asked


def test_a_judge_that_always_names_one_position_fails_calibration_within_two_calls(
        ) -> None:
    for letter in "AB":
        llm = ScriptedLLM(respond=lambda r, x=letter: {"better": x, "reason": "-"})
        d = make_draft(llm, good_dialogue(), masks_per_step=1)
        assert asyncio.run(trusted(d)) is False
        assert 1 <= len(llm.requests) <= 2 and d.judge.passed == 0


def _sensible(request):  # type: ignore[no-untyped-def]
    """A judge that knows the calibration's answers and prefers the original's opening."""
    if "better" in request.schema_["properties"]:
        prompt = request.messages[-1].content
        known = _calibration_answer(prompt)
        if known:
            return {"better": known, "reason": "-"}
        a = prompt.split("\nA: ")[1].split("\nB: ")[0]
        return {"better": "A" if a.startswith("assistant: It is") else "B", "reason": "-"}
    return {"content": "A brand new reply: sunny, booking B-77."}


def test_a_judge_that_passes_calibration_is_trusted() -> None:
    llm = ScriptedLLM(respond=_sensible)
    d = make_draft(llm, good_dialogue(), masks_per_step=1)
    _focus_last_reply(d)
    asyncio.run(refine_step(d, 1))
    cases = len(calibration_cases()[1])
    assert d.judge_trusted is True and _judged(llm)[:2 * cases] == ["calibration"] * 2 * cases
    assert "candidate" in _judged(llm)
    assert (d.judge.known_pairs, d.judge.passed, d.judge.calibrated) == (cases, cases, True)


def test_calibration_is_asked_once_per_run_however_many_dialogues_ask_at_once() -> None:
    llm = ScriptedLLM(respond=_sensible)
    drafts = [make_draft(llm, good_dialogue()) for _ in range(5)]
    for d in drafts[1:]:
        d.judge = drafts[0].judge  # one run: one monitor

    async def main() -> list[bool]:
        return list(await asyncio.gather(*(trusted(d) for d in drafts)))
    assert asyncio.run(main()) == [True] * 5
    assert len(llm.requests) == 2 * len(calibration_cases()[1])


def test_the_calibration_pairs_are_well_formed() -> None:
    system, cases = calibration_cases()
    assert system and len(cases) >= 3
    for case in cases:
        last = Message.model_validate(case["messages"][-1])
        assert last.role == "assistant" and not last.tool_calls and last.content
        assert case["wrong"] and case["wrong"] != last.content


def test_the_judge_off_is_never_asked() -> None:
    llm = ScriptedLLM(respond=_always_a)
    d = make_draft(llm, good_dialogue(), judge="off")
    assert asyncio.run(refine_step(d, 1)) is None and not llm.requests


def test_a_candidate_that_breaks_a_rule_never_reaches_the_judge() -> None:
    llm = ScriptedLLM([{"content": "Done: your booking number is B-78."}])  # B-78: no
    d = make_draft(llm, good_dialogue(), masks_per_step=1, judge="on")
    _focus_last_reply(d)
    before = d.messages
    record = asyncio.run(refine_step(d, 1))
    assert record is not None and record.kept == ["original"]
    assert "claims_grounded" in record.reasons[0]
    # the refused reply and the original make a preference pair, the original chosen
    [pair] = record.pairs
    assert pair.at == 6 and pair.chosen == [before[6]] and "B-78" in (
        pair.rejected[0].content or "") and pair.evidence.startswith("candidate breaks")
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
    assert set(_judged(llm)) <= {"calibration"}  # the fix needed no judge


def test_an_auto_judge_that_follows_the_position_once_is_not_asked_again() -> None:
    def sensible_then_biased(request):  # type: ignore[no-untyped-def]
        if "better" not in request.schema_["properties"]:
            return {"content": "A different reply: sunny and confirmed."}  # fits both
        prompt = request.messages[-1].content
        known = _calibration_answer(prompt)
        if known:  # the calibration: it knows the real reply
            return {"better": known, "reason": "-"}
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
    assert d.judge.calibrated is True
    assert d.judge.pairs == 1 and d.judge.kept == 0 and d.judge_trusted is False
    asked = len(llm.requests)
    d.turns[1].selections = 0
    asyncio.run(refine_step(d, 99))
    assert not any("better" in r.schema_["properties"] for r in llm.requests[asked:])


def test_a_monitor_crosses_processes_and_an_interrupted_calibration_is_charged() -> None:
    import pickle

    from naig.errors import BudgetExhausted
    from naig.llm.accounting import AccountedLLM

    inner = ScriptedLLM(respond=_sensible)
    llm = AccountedLLM(inner)  # what charges the ledgers
    drafts = [make_draft(llm, good_dialogue()) for _ in range(2)]  # type: ignore[arg-type]
    drafts[1].judge = drafts[0].judge

    async def both() -> None:  # two at once: the lock is bound to this loop
        await asyncio.gather(*(trusted(d) for d in drafts))
    asyncio.run(both())
    again = pickle.loads(pickle.dumps(drafts[0].judge))  # a Ray shard's summary does this
    assert again.calibrated is True and again.spent.usage().calls == len(inner.requests)

    asked: list[int] = []

    def then_spent(request):  # type: ignore[no-untyped-def]
        asked.append(1)
        if len(asked) > 1:  # right once, then the budget is spent
            raise BudgetExhausted("spent")
        return {"better": _calibration_answer(request.messages[-1].content), "reason": "-"}
    d = make_draft(AccountedLLM(ScriptedLLM(respond=then_spent)),  # type: ignore[arg-type]
                   good_dialogue())
    with pytest.raises(BudgetExhausted):
        asyncio.run(trusted(d))
    # the one call made is the run's, not lost; the calibration is asked again next time
    assert d.judge.spent.usage().calls == 1 and d.judge.calibrated is None
