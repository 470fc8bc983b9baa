"""Complexity injection: distinct types, 1 to 3, the right shape, valid calls only."""

import asyncio
import json

from naig.stages.checks import RULES
from naig.stages.inject import KINDS, choose_kinds, inject
from naig.testing import ScriptedLLM

from .conftest import TOOLS, good_dialogue, make_draft


def test_types_are_distinct_and_one_to_three() -> None:
    seen = set()
    for seed in range(300):
        d = make_draft(ScriptedLLM())
        d.rng.seed(seed)
        kinds = choose_kinds(d)
        assert 1 <= len(kinds) <= 3
        assert len(set(kinds)) == len(kinds)
        assert set(kinds) <= set(KINDS)
        seen.add(len(kinds))
    assert seen == {1, 2, 3}


def _apply(kind, answer, *, only=None):  # type: ignore[no-untyped-def]
    llm = ScriptedLLM([answer])
    d = make_draft(llm, good_dialogue())
    for i, t in enumerate(d.turns):
        t.injected = only is not None and i != only
    record = asyncio.run(inject(d, kind))
    return d, record, llm


def _rules_pass(d) -> None:  # type: ignore[no-untyped-def]
    for rule in RULES:
        v = rule(d.messages, TOOLS)
        assert v.passed or rule.__name__ == "no_repetition", (rule.__name__, v.detail)


def test_clarification_asks_then_answers() -> None:
    d, record, _ = _apply("clarification", {
        "vague_request": "What's the weather like? Also book hotel H-1001.",
        "question": "Which city do you mean?", "answer": "Paris, and 2 nights please."})
    assert record is not None and (record.at, record.added) == (1, 2)
    roles = [m.role for m in d.messages[1:5]]
    assert roles == ["user", "assistant", "user", "assistant"] and d.messages[4].tool_calls
    assert all(t.injected for t in d.turns[1:4])
    _rules_pass(d)


def test_error_simulation_is_a_valid_call_that_fails_then_recovers() -> None:
    d, record, _ = _apply("error_simulation", {
        "failing_arguments": {"city": "Atlantis"}, "error": "city not found",
        "recovery": "That city was not found; let me check Paris instead."}, only=2)
    assert record is not None and (record.at, record.added) == (2, 2)
    at = record.at
    failing, error, retry = d.messages[at], d.messages[at + 1], d.messages[at + 2]
    assert failing.tool_calls and json.loads(failing.tool_calls[0].function.arguments)
    assert "error" in json.loads(error.content)
    assert retry.tool_calls and retry.content
    _rules_pass(d)


def test_error_simulation_refuses_an_identical_or_malformed_call() -> None:
    d, record, _ = _apply("error_simulation", {
        "failing_arguments": {"hotel_id": "H-1001", "nights": 2},
        "error": "nope", "recovery": "retrying"}, only=4)
    assert record is None and d.injections == []
    assert d.messages == good_dialogue()
    for m in d.messages:
        for c in m.tool_calls or []:
            tool = next(t for t in TOOLS if t.name == c.function.name)
            assert tool.validate_arguments(json.loads(c.function.arguments)) == []


def test_tool_awareness_and_chit_chat_follow_a_reply() -> None:
    for kind, answer in (("tool_awareness", {"request": "Can you rent me a car?",
                                             "reply": "I have no tool for car rental."}),
                         ("non_function_calling", {"message": "Thanks! Is Paris nice in May?",
                                                   "reply": "Yes, May is lovely there."})):
        d, record, llm = _apply(kind, answer)
        assert record is not None and record.at == 6 and record.added == 2
        assert [m.role for m in d.messages[6:]] == ["assistant", "user", "assistant"]
        assert not any(m.tool_calls for m in d.messages[7:])
        assert llm.requests[0].stage == "refine"
        _rules_pass(d)


def test_an_injected_turn_is_not_injected_again() -> None:
    d, _, _ = _apply("tool_awareness", {"request": "Rent a car?", "reply": "No tool for that."})
    llm = ScriptedLLM([{"message": "Thanks!", "reply": "You're welcome."}])
    d.llm = llm
    record = asyncio.run(inject(d, "non_function_calling"))
    assert record is None  # the only reply left is injected; nothing eligible
