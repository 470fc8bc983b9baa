"""Stage 1a, the plan: drawn sizes kept, tools chosen by code along the data flow where it
is known, goals in the user's words."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from naig.config import MethodSettings
from naig.dialogue import Plan
from naig.envs.simulated import SimulatedEnvironment
from naig.errors import ModelOutputError
from naig.llm.base import Request
from naig.pools import load_builtin
from naig.stages.draft import Draft
from naig.stages.plan import plan
from naig.testing import ScriptedLLM, schema_example
from naig.tools import tool_from_dict

from .conftest import make_draft


def test_the_drawn_step_counts_are_kept() -> None:
    answer = {"task": "Trip", "subtasks": [
        {"goal": "Cancel booking B-1", "tools": ["book_hotel"]},
        {"goal": "Weather in Paris, then book H-1", "tools": ["get_weather", "book_hotel"]}]}
    d = make_draft(ScriptedLLM([answer]), subtasks_min=2, subtasks_max=2, steps_min=3,
                   steps_max=3)
    p = asyncio.run(plan(d))
    assert [s.steps for s in p.subtasks] == [3, 3]


def test_where_data_flow_is_known_code_chooses_the_tools_and_the_model_the_goals() -> None:
    shop = load_builtin("shop")
    first: list[bool] = []

    def off_then_example(request: Request) -> Any:  # first goals that speak of no tool
        if not first:
            first.append(True)
            return {"task": "Shop", "subtasks": [{"goal": "I want a nice day"}] * 2}
        return schema_example(request)

    llm = ScriptedLLM(respond=off_then_example)
    d = Draft(llm=llm, env=SimulatedEnvironment(shop, llm, 1), tools=shop, seed=1,
              settings=MethodSettings(subtasks_min=2, subtasks_max=2, steps_min=2,
                                      steps_max=2))
    p = asyncio.run(plan(d))
    sent = llm.requests[0]  # its goals speak of no tool: asked again, told what they do
    assert "subtask 1's goal speaks of none of its tools: it must ask for what its own " \
        "tools do: search the store catalogue" in llm.requests[1].messages[-1].content
    subtask = sent.schema_["properties"]["subtasks"]["items"]
    assert list(subtask["properties"]) == ["goal"]  # the model is not asked for tools
    assert [len(s.tools) for s in p.subtasks] == [2, 2]
    by_name = {t.name: t for t in shop}
    for k, s in enumerate(p.subtasks, 1):  # told what the tools do, in words, not names
        does = "; then ".join(by_name[t].description.split(".")[0].lower() for t in s.tools)
        assert f"Subtask {k}: {does}." in sent.messages[-1].content


def _one_step_plan(llm: ScriptedLLM) -> Plan:
    return asyncio.run(plan(make_draft(llm, subtasks_min=1, subtasks_max=1, steps_min=1,
                                       steps_max=1)))


def test_a_goal_that_names_a_function_is_asked_again() -> None:
    bad = {"task": "Trip", "subtasks": [{"goal": "Call the get_weather function for Paris",
                                         "tools": ["get_weather"]}]}
    good = {"task": "Trip", "subtasks": [{"goal": "I want the weather in Paris",
                                          "tools": ["get_weather"]}]}
    llm = ScriptedLLM([bad, good])
    p = _one_step_plan(llm)
    assert p.subtasks[0].goal == "I want the weather in Paris" and len(llm.requests) == 2
    assert "speaks of the function 'get_weather'" in llm.requests[1].messages[-1].content
    echo = {"task": "Trip", "subtasks": [{"goal": "Get the weather found in subtask 1",
                                          "tools": ["get_weather"]}]}
    prompt = {**good, "task": "Design one overall task made of exactly 1 subtasks."}
    llm = ScriptedLLM([echo, prompt])  # tau2:airline: the prompt's words, in a goal
    p = _one_step_plan(llm)  # and the prompt copied as the task
    assert "copies the instructions' word 'subtask'" in llm.requests[1].messages[-1].content
    assert len(llm.requests) == 2 and p.task == "I want the weather in Paris."  # the goals
    extra = {"task": "Trip", "subtasks": [{"goal": "I want the weather in Paris",
                                           "tools": ["get_weather", "book_hotel"]}]}
    llm = ScriptedLLM([extra])  # a picked tool whose action the goal does not ask for
    p = _one_step_plan(llm)
    assert p.subtasks[0].tools == ["get_weather"] and len(llm.requests) == 1  # dropped
    # a model that never stops: the plan is drawn again once, then the attempt is
    # rejected, without a crash
    llm = ScriptedLLM([bad] * 6)
    with pytest.raises(ModelOutputError):
        asyncio.run(plan(make_draft(llm, subtasks_min=1, subtasks_max=1)))
    fresh = [r for r in llm.requests if "An earlier answer" not in r.messages[-1].content]
    assert len(fresh) == 2  # two draws, each asked again until the same answer came back


def test_a_goal_that_asks_for_what_a_later_subtask_does_is_asked_again() -> None:
    from naig.stages.plan import about, asked, unasked

    shop = {t.name: t for t in load_builtin("shop")}
    search, cart = [shop["search_products"]], [shop["add_to_cart"]]
    assert about("I want to search the store for a lamp", search, cart) is None
    assert about("I want a nice day", search, cart) == "speaks of none of its tools"
    why = about("Search the store for a lamp and add two to my cart", search, cart)
    assert why is not None and "a later subtask" in why and "add" in why
    assert about("Search for a lamp for my cart", search, cart) is None  # a noun: no act
    # tau2:airline: the goal of the subtask that cancels and changes flights asked for
    # neither; a goal must ask for each of its tools' actions, in the user's words
    cancel, update = (tool_from_dict({"name": n, "description": d}, "t") for n, d in (
        ("cancel_reservation", "Cancel the whole reservation."),
        ("update_reservation_flights", "Update the flight information of a reservation.")))
    assert unasked("I want to get the details of my reservation", [cancel, update]) == \
        "does not ask to cancel or update"
    assert asked("I want to get the details of my reservation", [cancel, update]) == []
    assert unasked("Cancel my reservation, then change its flights", [cancel, update]) is None
    assert asked("Cancel my reservation and get its flights", [cancel, update]) == [cancel]
    place = shop["place_order"]  # told "check out the cart and ship it to an address"
    assert unasked("I want to check out my cart and ship it to 1 Main St", [place]) is None


def test_a_goal_that_asks_for_a_change_none_of_its_tools_makes_overreaches() -> None:
    # TwitterAPI: "post a tweet and then retweet it" for a subtask that posts and reads
    from naig.stages.plan import overreach

    def tool(name: str) -> Any:
        return tool_from_dict({"name": name, "parameters": {"type": "object"}}, "t")

    post, read, retweet = tool("post_tweet"), tool("get_tweet"), tool("retweet")
    pool = [post, read, retweet]
    goal = "I want to post a tweet and then retweet it."
    assert overreach(goal, [post, read], pool) == "asks to retweet, which none of its tools does"
    assert overreach(goal, [post, retweet], pool) is None
    assert overreach("Show me my posts and retweets.", [read], pool) is None  # nouns


def test_a_goal_must_speak_of_the_tools_left_when_the_unasked_ones_are_dropped() -> None:
    # built-in at 34a30af: "add a quantity of the selected product to your cart" for
    # place_order and get_order_status; place_order was dropped (not asked for), and the
    # subtask went on with get_order_status alone ("order 1000", then nothing to report)
    from naig.stages.plan import fitted, overreach

    shop = {t.name: t for t in load_builtin("shop")}
    goal = "add a quantity of the selected product to your cart"
    own = [shop["place_order"], shop["get_order_status"]]
    kept, why = fitted(goal, own, [], shop.values())
    assert kept == [shop["get_order_status"]] and why == "speaks of none of its tools"
    kept, why = fitted("check out my cart, then the order's status", own, [], shop.values())
    assert kept == own and why is None
    # and a goal that opens with a change none of its tools makes asks for it
    assert overreach(goal, kept, shop.values()) == "asks to add, which none of its tools does"
    assert overreach(goal, [shop["add_to_cart"]], shop.values()) is None


def test_a_picked_tool_the_goal_does_not_speak_of_is_asked_again() -> None:
    off = {"task": "Trip", "subtasks": [{"goal": "I want a quiet room for two nights",
                                         "tools": ["get_weather"]}]}
    good = {"task": "Trip", "subtasks": [{"goal": "I want the weather in Paris",
                                          "tools": ["get_weather"]}]}
    llm = ScriptedLLM([off, good])
    p = _one_step_plan(llm)
    assert p.subtasks[0].goal == "I want the weather in Paris"
    assert "speaks of none of its tools" in llm.requests[1].messages[-1].content
