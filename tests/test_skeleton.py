"""The skeleton, written step by step: what each part asks for, grounded steps, repeats,
and, where tools really execute (the bank of ``tests/tools_module.py``), results that are
always the environment's and refusals that never stay in the dialogue."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from naig.config import MethodSettings
from naig.dialogue import Message, Plan, Subtask
from naig.envs.python_module import PythonEnvironment, pool
from naig.errors import ModelOutputError
from naig.llm.base import Request
from naig.stages.draft import Draft
from naig.stages.skeleton import skeleton, unstated
from naig.testing import ScriptedLLM

from .conftest import good_dialogue, make_draft


def _plan(d: Draft, *subtasks: tuple[str, list[str], int]) -> None:
    d.plan = Plan(task="t", subtasks=[Subtask(goal=g, tools=t, steps=s) for g, t, s in subtasks])


def _offered(request: Request) -> list[str]:
    calls = request.schema_["properties"]["calls"]["items"] if request.schema_ else {}
    branches = calls.get("anyOf", [calls])
    return [b["properties"]["name"]["const"] for b in branches]


WEATHER = {"name": "get_weather", "arguments": {"city": "Paris"}, "result": {"temp": 18}}


def test_simulated_tools_write_calls_with_results_and_the_last_step_carries_the_reply() -> None:
    book = {"name": "book_hotel", "arguments": {"hotel_id": "H-1", "nights": 2},
            "result": {"booking_id": "B-7"}}
    llm = ScriptedLLM([{"calls": [WEATHER], "user": "Weather in Paris? Then book H-1, 2 nights."},
                       {"calls": [book], "reply": "18 degrees; booked B-7."}])
    d = make_draft(llm)
    _plan(d, ("weather then hotel", ["get_weather", "book_hotel"], 2))
    asyncio.run(skeleton(d))
    assert [m.role for m in d.messages[1:]] == ["user", "assistant", "tool", "assistant",
                                                "tool", "assistant"]
    assert json.loads(d.messages[3].content) == {"temp": 18}  # the written result
    assert d.messages[-1].content == "18 degrees; booked B-7."
    first, second = llm.requests
    assert list(first.schema_["properties"]) == ["calls", "user"]  # the call, then the words
    assert list(second.schema_["properties"]) == ["calls", "reply"]
    # the second step can only name the hotel the user stated
    branch = next(b for b in second.schema_["properties"]["calls"]["items"]["anyOf"]
                  if b["properties"]["name"]["const"] == "book_hotel")
    assert branch["properties"]["arguments"]["properties"]["hotel_id"]["enum"] == ["H-1"]


def test_a_reply_out_of_voice_beside_good_calls_is_asked_again_alone() -> None:
    llm = ScriptedLLM([{"calls": [WEATHER], "user": "What is the weather in Paris?",
                        "reply": "The assistant has found that it is 18 degrees."},
                       {"reply": "It is 18 degrees in Paris."}])
    d = make_draft(llm)
    _plan(d, ("weather", ["get_weather"], 1))
    asyncio.run(skeleton(d))
    assert [m.role for m in d.messages[1:]] == ["user", "assistant", "tool", "assistant"]
    assert d.messages[-1].content == "It is 18 degrees in Paris."  # the calls stood
    assert list(llm.requests[1].schema_["properties"]) == ["reply"]  # the reply, alone
    narrates = "The assistant has found that it is 18 degrees."
    llm = ScriptedLLM([{"calls": [WEATHER], "user": "What is the weather in Paris?",
                        "reply": narrates}] + [{"reply": f"{narrates} {n}"} for n in range(3)])
    d = make_draft(llm, subtask_tries=1)
    _plan(d, ("weather", ["get_weather"], 1))
    with pytest.raises(ModelOutputError, match="narrates"):  # alone, it is refused
        asyncio.run(skeleton(d))


def test_an_opening_whose_user_states_what_only_the_result_gives_is_asked_again() -> None:
    book = {"name": "book_hotel", "arguments": {"hotel_id": "H-1", "nights": 2},
            "result": {"booking_id": "B-7", "total_usd": 398.5}}
    llm = ScriptedLLM([{"calls": [book], "user": "Book H-1 for 2 nights, $398.5 in all.",
                        "reply": "Booked: B-7."},
                       {"calls": [book], "user": "Book H-1 for 2 nights.",
                        "reply": "Booked: B-7, $398.5."}])
    d = make_draft(llm)
    _plan(d, ("hotel", ["book_hotel"], 1))
    asyncio.run(skeleton(d))
    assert d.messages[1].content == "Book H-1 for 2 nights."
    assert "'398.5', which only the result gives" in llm.requests[1].messages[-1].content


def test_a_reply_claiming_what_no_call_did_is_asked_again_alone_and_told_why() -> None:
    llm = ScriptedLLM([{"calls": [WEATHER], "user": "What is the weather in Paris?",
                        "reply": "It is 18 degrees, and I have booked your hotel."},
                       {"reply": "Your booking is B-99."},  # an ID nothing returned
                       {"reply": "It is 18 degrees in Paris."}])
    d = make_draft(llm)
    _plan(d, ("weather", ["get_weather"], 1))
    asyncio.run(skeleton(d))
    assert d.messages[-1].content == "It is 18 degrees in Paris."
    assert "'reply' names 'B-99', which no earlier turn" in llm.requests[2].messages[-1].content


def test_a_reply_that_echoes_the_users_my_is_given_back_to_the_user() -> None:
    # built-in at 6fd7c24 and 67b6bdc: "to my cart" in the reply, three times, and the
    # dialogue was lost; the pronoun is the user's, the rest of the reply is sound
    book = {"name": "book_hotel", "arguments": {"hotel_id": "H-1", "nights": 2},
            "result": {"booking_id": "B-7"}}
    llm = ScriptedLLM([{"calls": [book], "user": "Book H-1 for 2 nights into my calendar.",
                        "reply": "Booked B-7; it is now in my calendar."}])
    d = make_draft(llm)
    _plan(d, ("hotel", ["book_hotel"], 1))
    asyncio.run(skeleton(d))
    assert d.messages[-1].content == "Booked B-7; it is now in your calendar."
    assert len(llm.requests) == 1


def test_a_reply_giving_nothing_the_results_returned_is_asked_again_alone() -> None:
    llm = ScriptedLLM([{"calls": [WEATHER], "user": "What is the weather in Paris?",
                        "reply": "I'm glad I could help."},
                       {"reply": "Thank you for asking."},
                       {"reply": "It is 18 degrees in Paris."}])
    d = make_draft(llm)
    _plan(d, ("weather", ["get_weather"], 1))
    asyncio.run(skeleton(d))
    assert d.messages[-1].content == "It is 18 degrees in Paris."
    assert list(llm.requests[1].schema_["properties"]) == ["reply"]
    assert "(18)" in llm.requests[1].schema_["properties"]["reply"]["pattern"]  # by grammar
    assert "'reply' gives none of what the results" in llm.requests[2].messages[-1].content


def test_a_reply_is_written_with_earlier_replies_hidden_and_its_request_pointed_at() -> None:
    hotel = {"name": "book_hotel", "arguments": {"hotel_id": "H-1", "nights": 2},
             "result": {"booking_id": "B-7"}}
    llm = ScriptedLLM([{"calls": [WEATHER], "user": "Weather in Paris?",
                        "reply": "It is 18 degrees in Paris today."},
                       {"calls": [hotel], "user": "Now book hotel H-1 for 2 nights.",
                        "reply": "Hotel H-1 is booked: B-7."}])
    d = make_draft(llm)
    _plan(d, ("weather", ["get_weather"], 1), ("hotel", ["book_hotel"], 1))
    asyncio.run(skeleton(d))
    second = llm.requests[1].messages[-1].content
    # the first reply ([4]) is hidden while the second is written
    assert "[4] [HIDDEN]" in second and "18 degrees in Paris today" not in second
    assert "about this request" in " ".join(second.split())  # the one written beside it
    assert "[HIDDEN]" not in llm.requests[0].messages[-1].content


def test_a_step_that_repeats_a_call_is_asked_again_without_that_tool() -> None:
    book = {"name": "book_hotel", "arguments": {"hotel_id": "H-1", "nights": 2},
            "result": {"booking_id": "B-7"}}
    again = {"name": "book_hotel", "arguments": {"hotel_id": "H-1", "nights": 3},
             "result": {"booking_id": "B-8"}}
    llm = ScriptedLLM([{"calls": [WEATHER], "user": "Weather in Paris? Then book H-1, 2 nights, "
                                                    "and 3 nights too."},
                       {"calls": [book]},
                       {"calls": [WEATHER], "reply": "r"},  # the same call again
                       {"calls": [again], "reply": "18 degrees; booked B-7 and B-8."}])
    d = make_draft(llm)
    _plan(d, ("weather then hotel", ["get_weather", "book_hotel"], 3))
    asyncio.run(skeleton(d))
    assert [_offered(r) for r in llm.requests[:3]] == [["get_weather", "book_hotel"]] * 3
    assert _offered(llm.requests[3]) == ["book_hotel"]  # the repeated tool left out
    assert sum(bool(m.tool_calls) for m in d.messages) == 3


def test_a_step_whose_own_tools_only_repeat_ends_the_subtask_rather_than_drift() -> None:
    llm = ScriptedLLM([{"calls": [WEATHER], "user": "Weather in Paris? I may book H-1."},
                       {"calls": [WEATHER], "reply": "r"},  # the same call again
                       {"reply": "18 degrees in Paris."}])
    d = make_draft(llm)
    _plan(d, ("weather", ["get_weather"], 2))
    asyncio.run(skeleton(d))
    # no step offered book_hotel (a later subtask's work): the subtask ends at its reply
    assert not any("book_hotel" in _offered(r) for r in llm.requests
                   if "calls" in r.schema_["properties"])
    assert len(llm.requests) == 3 and "calls" not in llm.requests[2].schema_["properties"]
    assert [c.function.name for m in d.messages for c in m.tool_calls or []] == ["get_weather"]


def test_an_opening_whose_id_the_user_never_states_gets_a_sentence_that_states_it() -> None:
    unstated = {"calls": [{"name": "book_hotel", "arguments": {"hotel_id": "H-9", "nights": 2},
                           "result": {"booking_id": "B-1"}}],
                "user": "Book me a hotel for 2 nights.", "reply": "Booked B-1."}
    llm = ScriptedLLM([unstated])
    d = make_draft(llm)
    _plan(d, ("book", ["book_hotel"], 1))
    asyncio.run(skeleton(d))
    assert d.messages[1].content == "Book me a hotel for 2 nights. The hotel ID is H-9."  # 2: said
    assert len(llm.requests) == 1


def test_where_the_state_is_known_only_what_exists_is_stated_for_the_user() -> None:
    from naig.grounding import vocabulary

    llm = ScriptedLLM()
    d = make_draft(llm)
    d.env.vocabulary = lambda: vocabulary({"hotels": {"H-1": {"hotel_id": "H-1"}}})  # type: ignore[method-assign]
    book = next(t for t in d.tools if t.name == "book_hotel")
    assert unstated(d, book, {"hotel_id": "H-1", "nights": 1}, "") == \
        "The hotel ID is H-1. Details: nights 1."
    # invented: not stated for the user (the call is refused); stated values: nothing to add
    assert unstated(d, book, {"hotel_id": "H-7", "nights": 1}, "") == "Details: nights 1."
    assert unstated(d, book, {"hotel_id": "H-1", "nights": 1}, "book H-1, 1 night") == ""
    # a name the state holds is said as the state writes it; any other, as words
    d.env.vocabulary = lambda: vocabulary({"cities": ["new_york"]})  # type: ignore[method-assign]
    weather = next(t for t in d.tools if t.name == "get_weather")
    assert unstated(d, weather, {"city": "new_york"}, "") == "Details: city new_york."
    assert unstated(d, weather, {"city": "los_angeles"}, "") == "Details: city los angeles."
    assert unstated(d, weather, {"city": "paris_2.txt"}, "") == "Details: city paris_2.txt."


def test_a_later_step_states_its_values_in_the_request_that_opened_the_subtask() -> None:
    book = {"name": "book_hotel", "arguments": {"hotel_id": "H-1", "nights": 3},
            "result": {"booking_id": "B-7"}}
    llm = ScriptedLLM([{"calls": [WEATHER], "user": "Weather in Paris? Then book H-1."},
                       {"calls": [book], "reply": "18 degrees; booked B-7."}])
    d = make_draft(llm)
    _plan(d, ("weather then hotel", ["get_weather", "book_hotel"], 2))
    asyncio.run(skeleton(d))
    assert d.messages[1].content == "Weather in Paris? Then book H-1. Details: nights 3."


def _bank(llm: ScriptedLLM) -> Draft:
    tools = pool("tests.tools_module")
    env = PythonEnvironment(tools, "tests.tools_module", name="python:tests.tools_module")
    return Draft(llm=llm, env=env, tools=tools, seed=3, settings=MethodSettings())


def test_where_tools_execute_a_reply_retried_is_owed_a_value_by_grammar() -> None:
    fine = {"name": "get_balance", "arguments": {"account_id": "A-1"}}
    llm = ScriptedLLM([{"calls": [fine], "user": "What is the balance of A-1?"},
                       {"reply": "I checked your account for you."},  # reports nothing
                       {"reply": "A-1 holds 100."}])
    d = _bank(llm)
    _plan(d, ("balance", ["get_balance"], 1))
    asyncio.run(skeleton(d))
    assert d.messages[-1].content == "A-1 holds 100."
    first, retry = (r.schema_["properties"]["reply"] for r in llm.requests[1:])
    assert "(100" in retry["pattern"] and "(100" not in first["pattern"]  # free at first


def test_where_tools_execute_results_are_real_and_a_refused_call_is_tried_again() -> None:
    broke = {"name": "transfer", "arguments": {"order": {"source": "A-1", "target": "A-2",
                                                         "amount": 5}}}
    fine = {"name": "get_balance", "arguments": {"account_id": "A-1"}}
    llm = ScriptedLLM([{"calls": [broke], "user": "Move 5 from A-1 to A-2."},
                       {"calls": [fine], "user": "What is the balance of A-1?"},
                       {"reply": "A-1 holds 100."}])
    d = _bank(llm)
    _plan(d, ("balance", ["transfer", "get_balance"], 1))
    asyncio.run(skeleton(d))
    # the transfer was refused (EUR to USD): it is not in the dialogue, and the second
    # request was told why; the reply was asked after the real result
    assert "A-1 is in EUR, A-2 in USD" in llm.requests[1].messages[-1].content
    assert _offered(llm.requests[0]) == ["transfer", "get_balance"]  # the subtask's
    # refused: any tool but the one just refused
    assert set(_offered(llm.requests[1])) == {t.name for t in d.tools} - {"transfer"}
    assert [m.role for m in d.messages[1:]] == ["user", "assistant", "tool", "assistant"]
    assert json.loads(d.messages[3].content) == 100.0
    assert not any(m.is_error for m in d.messages)
    assert "reply" in llm.requests[2].schema_["properties"]
    assert "calls" not in llm.requests[2].schema_["properties"]
    # the transfer asked for was never made: the reply is told so, to say it and why
    assert "Not done: transfer." in llm.requests[2].messages[-1].content


def test_after_a_refusal_something_else_comes_first_and_the_refused_tool_later() -> None:
    def move(target: str) -> dict[str, Any]:
        return {"name": "transfer",
                "arguments": {"order": {"source": "A-1", "target": target, "amount": 5}}}
    grace = {"name": "open_account", "arguments": {"owner": "Grace Hopper"}}
    llm = ScriptedLLM([{"calls": [move("A-3")], "user": "Move 5 from A-1 to A-3."},
                       {"calls": [grace], "user": "Open an account for Grace Hopper, then "
                                                  "move 5 from A-1 into it."},
                       {"calls": [move("A-3")]},
                       {"reply": "Opened A-3; A-1 now holds 95 and A-3 holds 5."}])
    d = _bank(llm)
    _plan(d, ("open and move", ["transfer", "open_account"], 2))
    asyncio.run(skeleton(d))
    assert "transfer" not in _offered(llm.requests[1])  # refused (no A-3 yet): not again
    assert "transfer" in _offered(llm.requests[2])  # at the next step it may be
    calls = [c.function.name for m in d.messages for c in m.tool_calls or []]
    assert calls == ["open_account", "transfer"]
    assert json.loads(d.messages[-2].content) == {"A-1": 95.0, "A-3": 5.0}


def test_an_executed_call_that_returns_what_the_same_call_returned_is_a_repeat() -> None:
    balance = {"name": "get_balance", "arguments": {"account_id": "A-1"}}
    grace = {"name": "open_account", "arguments": {"owner": "Grace Hopper"}}
    other = {"name": "get_balance", "arguments": {"account_id": "A-2"}}
    llm = ScriptedLLM([{"calls": [balance], "user": "What do A-1 and A-2 hold?"},
                       {"calls": [other]},
                       {"reply": "A-1 holds 100, A-2 20."},
                       {"calls": [balance], "user": "Check A-1 again, then open one."},
                       {"calls": [grace], "user": "Open an account for Grace Hopper."},
                       {"reply": "Opened A-3 for Grace Hopper."}])
    d = _bank(llm)
    _plan(d, ("balances", ["get_balance"], 2), ("open", ["get_balance", "open_account"], 1))
    asyncio.run(skeleton(d))
    # the second subtask's lookup of A-1 (not right after the first) ran, told nothing
    # new, and was undone; it was asked again without that tool
    assert "get_balance" in _offered(llm.requests[3])
    assert "get_balance" not in _offered(llm.requests[4])
    calls = [c.function.arguments for m in d.messages for c in m.tool_calls or []]
    assert calls == ['{"account_id": "A-1"}', '{"account_id": "A-2"}', '{"owner": "Grace Hopper"}']
    assert d.messages[-4].content == "Open an account for Grace Hopper."


def test_an_executing_step_that_is_always_refused_fails_the_dialogue() -> None:
    broke = {"name": "transfer", "arguments": {"order": {"source": "A-1", "target": "A-2",
                                                         "amount": 5}}}
    llm = ScriptedLLM(respond=lambda r: {"calls": [broke], "user": "Move 5 from A-1 to A-2."})
    d = _bank(llm)
    _plan(d, ("move", ["transfer"], 1))
    with pytest.raises(ModelOutputError, match="transfer"):
        asyncio.run(skeleton(d))
    assert [m.role for m in d.messages] == ["system"]  # nothing of it stays
    # in each of the two tries at the subtask: the transfer, refused; then, not offered
    # it, the model names it anyway, twice (the same answer again ends the part)
    assert ["transfer" in _offered(r) for r in llm.requests] == [True, False, False] * 2


def test_a_subtask_that_finds_no_valid_part_is_undone_and_written_again() -> None:
    balance = {"name": "get_balance", "arguments": {"account_id": "A-1"}}
    grace = {"name": "open_account", "arguments": {"owner": "Grace Hopper"}}
    llm = ScriptedLLM([{"calls": [balance], "user": "What does A-1 hold?"},
                       {"reply": "A-1 holds 100."},
                       {"calls": [grace], "user": "Open an account for Grace Hopper."},
                       *[{"reply": f"The user has an account now ({n})."} for n in range(3)],
                       {"calls": [grace], "user": "Please open one for Grace Hopper."},
                       {"reply": "Opened A-3 for Grace Hopper."}])
    d = _bank(llm)
    _plan(d, ("balance", ["get_balance"], 1), ("open", ["open_account"], 1))
    asyncio.run(skeleton(d))
    # the first subtask stands; the second's first try (an account opened, a reply out of
    # voice three times) is gone from the dialogue and from the state
    assert [m.content for m in d.messages if m.role == "user"] == \
        ["What does A-1 hold?", "Please open one for Grace Hopper."]
    assert json.loads(d.messages[-2].content)["id"] == "A-3"  # not A-4: undone
    assert d.messages[-1].content == "Opened A-3 for Grace Hopper."


def test_a_subtask_whose_calls_do_none_of_what_it_asks_is_written_again() -> None:
    from naig.stages.skeleton import off_plan

    d = make_draft(ScriptedLLM(), good_dialogue())  # the weather, then a booking
    weather = Subtask(goal="weather", tools=["get_weather"], steps=1)
    assert off_plan(d, weather, 1) is None
    assert off_plan(d, Subtask(goal="book", tools=["book_hotel"], steps=2), 1) is None
    d = make_draft(ScriptedLLM(), good_dialogue()[:4])  # only the weather was looked up
    why = off_plan(d, Subtask(goal="book", tools=["book_hotel"], steps=1), 1)
    assert why == "its calls (get_weather) do none of what it asks (book_hotel)"
    # in the bank: asked to move money, refused, it looked up a balance (any tool is
    # offered after a refusal) and the one step was spent; the subtask is written again
    broke = {"name": "transfer", "arguments": {"order": {"source": "A-1", "target": "A-2",
                                                         "amount": 5}}}
    balance = {"name": "get_balance", "arguments": {"account_id": "A-2"}}

    def respond(request: Request) -> dict[str, Any]:
        if "transfer" in _offered(request):
            return {"calls": [broke], "user": "Move 5 from A-1 to A-2."}
        return {"calls": [balance], "user": "What does A-2 hold?"}
    llm = ScriptedLLM(respond=respond)
    d = _bank(llm)
    _plan(d, ("move", ["transfer"], 1))
    with pytest.raises(ModelOutputError, match="do none of what it asks"):
        asyncio.run(skeleton(d))
    # no reply was asked for a subtask not done, in either try
    assert not any("reply" in (r.schema_ or {}).get("properties", {}) for r in llm.requests)


def test_a_subtask_whose_steps_all_went_to_what_comes_first_gets_one_more() -> None:
    def move(amount: int) -> dict[str, Any]:
        return {"name": "transfer",
                "arguments": {"order": {"source": "A-1", "target": "A-3", "amount": amount}}}
    grace = {"name": "open_account", "arguments": {"owner": "Grace Hopper"}}
    balance = {"name": "get_balance", "arguments": {"account_id": "A-1"}}
    llm = ScriptedLLM([{"calls": [grace], "user": "Open an account for Grace Hopper."},
                       {"reply": "Opened A-3 for Grace Hopper."},
                       {"calls": [move(500)], "user": "Move 500 from A-1 to A-3."},
                       {"calls": [balance], "user": "What does A-1 hold? Then move 50 of "
                                                    "it from A-1 to A-3."},
                       {"calls": [move(50)]},
                       {"reply": "A-1 held 100; it now holds 50, and A-3 holds 50."}])
    d = _bank(llm)
    _plan(d, ("open", ["open_account"], 1), ("move", ["transfer"], 1))
    asyncio.run(skeleton(d))
    # 500 was refused (A-1 holds 100); the one drawn step went to the balance: one more
    # step, offered the subtask's tool, moves the money
    assert "call 2 of 2" in llm.requests[4].messages[-1].content
    assert _offered(llm.requests[4]) == ["transfer"]
    calls = [c.function.name for m in d.messages for c in m.tool_calls or []]
    assert calls == ["open_account", "get_balance", "transfer"]
    assert d.messages[-1].content.startswith("A-1 held 100")


def test_each_steps_calls_are_one_by_default() -> None:
    llm = ScriptedLLM([{"calls": [WEATHER], "user": "Weather in Paris?", "reply": "18."}])
    d = make_draft(llm)
    _plan(d, ("weather", ["get_weather"], 1))
    asyncio.run(skeleton(d))
    items: Any = llm.requests[0].schema_["properties"]["calls"]
    assert items["maxItems"] == 1


def test_details_a_later_step_adds_join_the_details_already_there() -> None:
    from naig.stages.skeleton import _amend_request

    d = make_draft(ScriptedLLM())
    d.append(Message(role="user", content="Book a flight. Details: date 2023-09-15."))
    _amend_request(d, "Details: passenger name John Doe.")
    assert d.messages[-1].content == \
        "Book a flight. Details: date 2023-09-15; passenger name John Doe."


def test_a_step_is_refused_an_empty_required_value_and_a_placeholder() -> None:
    empty = {"name": "get_weather", "arguments": {"city": ""}, "result": {"temp": 18}}
    dressed = {"name": "get_weather", "arguments": {"city": "your city"}, "result": {"temp": 18}}
    llm = ScriptedLLM([{"calls": [empty], "user": "What is the weather?", "reply": "18."},
                       {"calls": [dressed], "user": "Weather in my city?", "reply": "18."},
                       {"calls": [WEATHER], "user": "What is the weather in Paris?",
                        "reply": "It is 18 degrees in Paris."}])
    d = make_draft(llm)
    _plan(d, ("weather", ["get_weather"], 1))
    asyncio.run(skeleton(d))
    told = [r.messages[-1].content for r in llm.requests[1:]]
    assert "'city' is required" in told[0]
    assert "'your city' is not a real value" in told[1]
    assert d.messages[1].content == "What is the weather in Paris?"


def test_a_step_takes_the_value_its_request_names_over_others_shown() -> None:
    # asked about reservation I45O37, the small model looked up IWKGVL, another one the
    # dialogue showed (tau2:airline): where the request names a value of the argument's
    # kind that exists in the state, the step is offered only that one
    from naig.grounding import vocabulary
    from naig.stages.skeleton import _params

    from .conftest import call, result

    d = make_draft(ScriptedLLM())
    d.env.vocabulary = lambda: vocabulary(  # type: ignore[method-assign]
        {"hotels": {"H-1": {"hotel_id": "H-1"}, "H-2": {"hotel_id": "H-2"}}})
    book = [t for t in d.tools if t.name == "book_hotel"]
    sub = Subtask(goal="book", tools=["book_hotel"], steps=2)

    def offered(request: str) -> list[str]:
        del d.turns[1:]
        d.append(Message(role="user", content=request), call("c1", "get_weather", city="Paris"),
                 result("c1", hotel_id="H-1", nearby={"hotel_id": "H-2"}))
        params = _params(d, book, "step", sub)
        assert params is not None
        return list(params["book_hotel"]["properties"]["hotel_id"]["enum"])

    assert offered("Weather in Paris, then book hotel H-2 for 2 nights.") == ["H-2"]
    assert offered("Weather in Paris, then book a hotel there.") == ["H-1", "H-2"]
    assert offered("Weather in Paris, then book hotel H-9.") == ["H-1", "H-2"]  # no such hotel


def test_a_subtask_that_looked_up_but_never_made_its_change_gets_one_step_for_it() -> None:
    # a reply written after a lookup alone mostly claimed the change anyway and was refused
    # three times, losing the dialogue
    book = {"name": "book_hotel", "arguments": {"hotel_id": "H-1", "nights": 2},
            "result": {"booking_id": "B-7"}}
    llm = ScriptedLLM([{"calls": [WEATHER], "user": "Weather in Paris, then book H-1 for 2 "
                                                    "nights.", "reply": "It is 18 degrees."},
                       {"calls": [book], "reply": "18 degrees; booked B-7."}])
    d = make_draft(llm)
    _plan(d, ("weather then hotel", ["get_weather", "book_hotel"], 1))
    asyncio.run(skeleton(d))
    assert _offered(llm.requests[1]) == ["book_hotel"]  # only the change left undone
    calls = [c.function.name for m in d.messages for c in m.tool_calls or []]
    assert calls == ["get_weather", "book_hotel"]
    assert d.messages[-1].content == "18 degrees; booked B-7."


def test_a_reply_stopped_at_its_bound_keeps_its_whole_sentences() -> None:
    import jsonschema

    from naig.stages.skeleton import REPLY_CHARS, _schema, _whole

    schema = _schema("reply", [], None, results=False, reply=True, most=1)
    reply = schema["properties"]["reply"]  # the JSON closes: the grammar bounds the length
    jsonschema.validate("a" * REPLY_CHARS, reply)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate("a" * (REPLY_CHARS + 1), reply)
    long = ("Your order holds a vacuum cleaner. " * 40)[:REPLY_CHARS - 10] + " and a desk la"
    long = long[:REPLY_CHARS]
    assert len(long) == REPLY_CHARS
    assert _whole(long).endswith("vacuum cleaner.") and len(_whole(long)) < REPLY_CHARS
    assert _whole("Booked B-7, and") == "Booked B-7, and"  # short: the model meant it


def test_a_subtask_whose_tools_the_state_refuses_is_offered_the_look_ups_that_feed_them(
        ) -> None:
    # tau2:retail: cancel_pending_order with only delivered orders; offered every tool,
    # the small model answered with a calculator
    look = {"name": "list_accounts", "arguments": {"owner": "Ada"}}
    llm = ScriptedLLM([{"calls": [look], "user": "Which accounts does Ada hold?"},
                       {"reply": "Ada holds A-1; its balance cannot be read now."}])
    d = _bank(llm)
    d.env.narrow = lambda name, schema: None if name == "get_balance" else schema  # type: ignore[method-assign]
    _plan(d, ("balance", ["get_balance"], 1))
    asyncio.run(skeleton(d))
    feeders = {"list_accounts", "open_account"}  # what returns an account ID
    assert set(_offered(llm.requests[0])) == feeders
    assert [c.function.name for m in d.messages for c in m.tool_calls or []] == ["list_accounts"]


def test_a_path_of_dots_is_not_stated_for_the_user() -> None:
    # GorillaFileSystem: "Details: folder .." added to a request to delete a folder
    from naig.tools import tool_from_dict

    d = make_draft(ScriptedLLM())
    cd = tool_from_dict({"name": "cd", "parameters": {"type": "object", "properties": {
        "folder": {"type": "string"}}}}, "fs")
    assert unstated(d, cd, {"folder": ".."}, "delete Archives") == ""
    assert unstated(d, cd, {"folder": "Reports"}, "delete Archives") == "Details: folder Reports."


def test_a_refusal_that_asks_for_a_log_in_gets_it_first_with_the_users_own_account() -> None:
    pytest.importorskip("bfcl_eval")
    from naig.envs import bfcl

    tools = bfcl.pool(["TwitterAPI"])
    state = bfcl.choose_state(["TwitterAPI"], 1)  # a scenario that sets no account
    env = bfcl.BfclEnvironment(tools, state["initial_config"], name="bfcl:TwitterAPI")
    post = {"name": "post_tweet", "arguments": {"content": "Hello world", "tags": [],
                                                "mentions": []}}
    login = {"name": "authenticate_twitter",
             "arguments": {"username": "john", "password": "john123"}}
    llm = ScriptedLLM([{"calls": [post], "user": "Post 'Hello world' for me."},
                       {"calls": [login], "user": "Post 'Hello world' for me."},
                       {"calls": [post]},
                       {"reply": "Logged in and posted your tweet 'Hello world'."}])
    d = Draft(llm=llm, env=env, tools=tools, seed=3, settings=MethodSettings())
    _plan(d, ("post a tweet", ["post_tweet"], 1))
    asyncio.run(skeleton(d))
    # refused ("Please authenticate before posting"): the log-in is what is offered next,
    # with the account's own name and password as the only values
    assert _offered(llm.requests[1]) == ["authenticate_twitter"]
    branch = llm.requests[1].schema_["properties"]["calls"]["items"]
    assert branch["properties"]["arguments"]["properties"]["password"]["enum"] == ["john123"]
    # logged in, the post the plan asks for gets its step, and now runs
    assert _offered(llm.requests[2]) == ["post_tweet"]
    calls = [c.function.name for m in d.messages for c in m.tool_calls or []]
    assert calls == ["authenticate_twitter", "post_tweet"]
    assert not any(m.is_error for m in d.messages)
    assert "john123" in (d.messages[1].content or "")  # the user states their own login


def test_only_a_refusals_instruction_names_the_tools_to_call_first() -> None:
    from naig.stages.skeleton import asked_for
    from naig.tools import Tool

    tools = [Tool(name=n) for n in ("authenticate_twitter", "ticket_login", "post_tweet",
                                    "get_user_tweets")]
    names = lambda text: [t.name for t in asked_for(text, tools)]  # noqa: E731
    assert names("User not authenticated. Please authenticate before posting.") == [
        "authenticate_twitter"]
    assert names("User not authenticated. Please log in to create a ticket.") == [
        "ticket_login"]
    assert names("Tweet with ID 3 not found.") == []  # no instruction
    assert names("Please use YYYY-MM-DD.") == []  # one no tool's name holds


def test_an_opening_whose_tools_name_nothing_that_exists_is_offered_what_feeds_them() -> None:
    pytest.importorskip("bfcl_eval")
    from naig.envs import bfcl

    tools = bfcl.pool(["TwitterAPI"])
    state = bfcl.choose_state(["TwitterAPI"], 1)  # no tweet exists yet
    assert not state["initial_config"]["TwitterAPI"]["tweets"]
    env = bfcl.BfclEnvironment(tools, state["initial_config"], name="bfcl:TwitterAPI")
    search = {"name": "search_tweets", "arguments": {"keyword": "AI"}}
    llm = ScriptedLLM([{"calls": [search], "user": "Find a tweet about AI for me."},
                       {"reply": "I found no tweet about AI."}])
    d = Draft(llm=llm, env=env, tools=tools, seed=3, settings=MethodSettings())
    _plan(d, ("get a tweet", ["get_tweet"], 1))
    asyncio.run(skeleton(d))
    offered = _offered(llm.requests[0])
    assert "get_tweet" not in offered  # no tweet ID to call it with: none is invented
    assert {"search_tweets", "get_user_tweets"} <= set(offered)  # what returns tweet IDs
    assert [c.function.name for m in d.messages for c in m.tool_calls or []] == ["search_tweets"]


def test_a_call_may_not_fill_a_parameter_with_other_than_what_its_request_states() -> None:
    from naig.stages.skeleton import contradicted

    request = "Book H-1 in Los Angeles. Details: check in 2023-10-15; guest name Jane Smith."
    why = contradicted(request, {"hotel_id": "H-1", "guest_name": "John Doe"})
    assert why is not None and "Jane Smith" in why
    assert contradicted(request, {"hotel_id": "H-1", "guest_name": "Jane Smith"}) is None
    assert contradicted(request, {"check_in": "2023-10-15", "nights": 2}) is None
    assert contradicted("Book a room for me.", {"guest_name": "John Doe"}) is None  # unsaid
    assert contradicted("Hotels in the city of Paris.", {"city": "Paris"}) is None  # words
    assert contradicted("Details: seat window seat.", {"seat": "window_seat"}) is None
    assert contradicted("Details: file name1 a.txt; file name2 b.txt.",
                        {"file_name1": "a.txt", "file_name2": "b.txt"}) is None


def test_an_opening_request_asks_for_nothing_a_later_subtask_does() -> None:
    # built-in at 3a9de5d: the first request asked for the next subtask's booking too, and
    # the next request could only copy it (two dialogues of eight lost)
    from naig.stages.skeleton import ahead

    later = ["I want to book a seat on a flight for a passenger."]
    said = ("I want to search one-way flights between two airports on a date, then book a "
            "seat on a flight for a passenger. Details: date 2023-10-15.")
    assert ahead(said, "I want to search one-way flights on a date.", later) == \
        "I want to search one-way flights between two airports on a date. Details: date 2023-10-15."
    said = "I want to find laptops. Then I want to add two of them to my cart."
    assert ahead(said, "Find laptops", ["Add two laptops to the cart"]) == "I want to find laptops."
    # its own "then" stays, and so does "the next two nights"
    said = "I want to search the catalogue, then details and stock of one product."
    assert ahead(said, "Search the catalogue; then details and stock of one product.",
                 ["Add a product to the cart"]) == said
    said = "I want a hotel in New York for the next two nights."
    assert ahead(said, "Find a hotel", ["Find hotels in New York for two nights"]) == said


def test_a_simulated_result_is_told_the_names_a_later_request_asks_about() -> None:
    # built-in at 3a9de5d: events were listed without 'Birthday Party', which the next
    # subtask asked to delete; the deletion took another event
    llm = ScriptedLLM([
        {"calls": [WEATHER], "user": "What is the weather in Paris?", "reply": "It is 18."},
        {"calls": [{"name": "book_hotel", "arguments": {"hotel_id": "H-1", "nights": 2},
                    "result": {"booking_id": "B-7"}}],
         "user": "Book the hotel 'Ritz Paris', H-1, for 2 nights.", "reply": "Booked B-7."}])
    d = make_draft(llm)
    _plan(d, ("weather", ["get_weather"], 1), ("book the hotel 'Ritz Paris'", ["book_hotel"], 1))
    asyncio.run(skeleton(d))
    first, second = (r.messages[-1].content for r in llm.requests)
    assert "The user asks later about Ritz Paris" in first
    assert "asks later" not in second  # nothing later to tell
