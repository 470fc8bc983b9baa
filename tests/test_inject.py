"""Complexity injection: distinct types, 1 to 3, the right shape, valid calls only."""

import asyncio
import json

from naig.dialogue import Message
from naig.stages.checks import RULES
from naig.stages.inject import KINDS, choose_kinds, inject, without
from naig.testing import ScriptedLLM

from .conftest import TOOLS, good_dialogue, make_draft, result


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


def test_clarification_withholds_a_value_the_calls_need_then_asks_for_it() -> None:
    d, record, llm = _apply("clarification", {
        "question": "Which hotel should I book?", "answer": "Hotel H-1001, please."})
    assert record is not None and (record.at, record.added) == (1, 2)
    # code chose the value and took it out; the model wrote the question and the answer
    assert d.messages[1].content == "What is the weather in Paris? Then book hotel for 2 nights."
    assert "It no longer says H-1001" in llm.requests[0].messages[-1].content
    roles = [m.role for m in d.messages[1:5]]
    assert roles == ["user", "assistant", "user", "assistant"] and d.messages[4].tool_calls
    assert all(t.injected for t in d.turns[1:4])
    _rules_pass(d)


def test_a_clarification_whose_answer_does_not_give_the_value_is_asked_again() -> None:
    answers = [{"question": "Which hotel?", "answer": "The nice one."},
               {"question": "Which hotel?", "answer": "H-1001, thanks."}]
    llm = ScriptedLLM(answers)
    d = make_draft(llm, good_dialogue())
    record = asyncio.run(inject(d, "clarification"))
    assert record is not None and len(llm.requests) == 2
    assert "'answer' must give 'H-1001'" in llm.requests[1].messages[-1].content
    _rules_pass(d)


def test_a_value_is_left_out_with_its_quotes_and_leading_word() -> None:
    assert without("Book a room for 'Next Week', for 4 people.", "Next Week") == \
        "Book a room, for 4 people."
    assert without("Cancel order #W123 now.", "#W123") == "Cancel order now."
    assert without("Book H-1.", "H-1") is None  # too little left to be a request
    assert without("Find a hotel, $500 a night, in Paris.", "500") == \
        "Find a hotel, a night, in Paris."  # the currency goes with its amount
    assert without("Find a hotel for less than $500 a night.", "500") is None  # "than a"
    assert without("Book a room.", "H-1") is None
    # a name cannot go from after "named": "to a new folder named" reads cut off (seen)
    assert without("Move it to a new folder named 'completed'.", "completed") is None


def test_a_clarification_question_that_repeats_the_vague_request_is_asked_again() -> None:
    vague = "What is the weather in Paris? Then book hotel for 2 nights."
    answers = [{"question": vague + "?", "answer": "H-1001, thanks."},  # seen: echoed
               {"question": "Which hotel should I book?", "answer": "H-1001, thanks."}]
    llm = ScriptedLLM(answers)
    d = make_draft(llm, good_dialogue())
    record = asyncio.run(inject(d, "clarification"))
    assert record is not None and len(llm.requests) == 2
    assert "repeats [1] word for word" in llm.requests[1].messages[-1].content
    assert d.messages[2].content == "Which hotel should I book?"


def _two_hotels() -> list[Message]:
    """The weather result also lists two hotels: the booking could name the wrong one
    (the request does not name it: a hotel the user named is theirs to keep)."""
    m = good_dialogue()
    m[1] = Message(role="user", content="What is the weather in Paris? Then book the hotel "
                                        "there for 2 nights.")
    m[3] = result("call_1", temperature=18, hotels=[{"hotel_id": "H-1002"},
                                                    {"hotel_id": "H-1001"}])
    return m


def test_error_simulation_tries_a_wrong_value_the_dialogue_showed_then_recovers() -> None:
    llm = ScriptedLLM([{"error": "the reason H-1002 is refused",  # the prompt's words
                        "recovery": "H-1002 is full; shall I book H-1001?"},
                       {"error": "Hotel H-1002 does not exist.",  # a result showed it
                        "recovery": "H-1002 is full; let me book H-1001 as you asked."},
                       {"error": "Hotel H-1002 has no rooms left.",
                        "recovery": "H-1002 is full; shall I book H-1001?"},  # asks, acts
                       {"error": "Hotel H-1002 has no rooms left.",  # done before it ran
                        "recovery": "H-1002 is full; I have booked H-1001 for you."},
                       {"error": "Hotel H-1002 has no rooms left.",
                        "recovery": "H-1002 is full; let me book H-1001 as you asked."}])
    d = make_draft(llm, _two_hotels(), attempts_per_output=5)
    record = asyncio.run(inject(d, "error_simulation"))
    assert "'error' must name H-1002 and say why" in llm.requests[1].messages[-1].content
    assert "'error' must not say H-1002 does not exist" in llm.requests[2].messages[-1].content
    assert "'recovery' must say what the assistant does now" in \
        llm.requests[3].messages[-1].content
    assert "'recovery' says 'I have booked' before the retry" in \
        llm.requests[4].messages[-1].content
    assert record is not None and (record.at, record.added) == (4, 2)
    failing, error, retry = d.messages[4], d.messages[5], d.messages[6]
    assert json.loads(failing.tool_calls[0].function.arguments) == {"hotel_id": "H-1002",
                                                                     "nights": 2}
    assert json.loads(error.content) == {"error": "Hotel H-1002 has no rooms left."}
    assert retry.tool_calls and retry.content.startswith("H-1002 is full")
    assert json.loads(retry.tool_calls[0].function.arguments)["hotel_id"] == "H-1001"
    sent = llm.requests[0].messages[-1].content
    assert '{"hotel_id": "H-1002", "nights": 2}' in sent and "error" in sent
    _rules_pass(d)


def test_error_simulation_needs_a_wrong_value_the_dialogue_showed() -> None:
    llm = ScriptedLLM()  # no answer is scripted: no request may be made
    d = make_draft(llm, good_dialogue())  # only H-1001 was ever named
    assert asyncio.run(inject(d, "error_simulation")) is None
    assert d.messages == good_dialogue() and not llm.requests
    named = _two_hotels()  # two hotels shown, but the user asked for H-1001 by name
    named[1] = good_dialogue()[1]
    d = make_draft(llm, named)
    assert asyncio.run(inject(d, "error_simulation")) is None and not llm.requests


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


def test_a_value_in_a_sentence_code_added_or_inside_another_token_is_not_left_out() -> None:
    assert without("Cancel my order. The order ID is #W123.", "#W123") is None
    assert without("Book a flight for me. Details: passenger name John Doe.", "John Doe") is None
    assert without("Order W1234512 please, item 12 of it.", "12") == \
        "Order W1234512 please, item of it."
