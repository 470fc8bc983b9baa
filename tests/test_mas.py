"""The MAS baseline on the scripted LLM: what each agent is sent, how subtasks move on,
the turn limit, and the record it makes through the runner."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from naig.config import MethodSettings, RunConfig
from naig.dialogue import Message
from naig.envs.registry import resolve
from naig.llm.base import Request
from naig.llm.registry import stack
from naig.methods import get, mas
from naig.runner import run
from naig.stages import skeleton
from naig.stages.calls import grounded
from naig.stages.checks import RULES
from naig.store import read_records
from naig.testing import ScriptedLLM, schema_example
from naig.transcript import transcript

from .conftest import TOOLS, good_dialogue, make_draft
from .contract import assert_contract

PLAN = {"task": "A weekend in Paris", "subtasks": [
    {"goal": "Check the weather in Paris", "tools": ["get_weather"]},
    {"goal": "Book hotel H-1001 for 2 nights", "tools": ["book_hotel"]}]}
WEATHER = {"calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}
BOOKING = {"calls": [{"name": "book_hotel", "arguments": {"hotel_id": "H-1001", "nights": 2}}]}


def scripted(**queues: list[Any]) -> Callable[[Request], Any]:
    """Answers by stage from a queue; past its end, the schema's example."""
    left = {stage: list(answers) for stage, answers in queues.items()}

    def respond(request: Request) -> Any:
        if left.get(request.stage):
            return left[request.stage].pop(0)
        return schema_example(request)
    return respond


def _run(llm: ScriptedLLM, **settings: object):  # type: ignore[no-untyped-def]
    d = make_draft(llm, subtasks_min=2, subtasks_max=2, **settings)
    return asyncio.run(mas.run(d))


def _sent(llm: ScriptedLLM, stage: str) -> list[Request]:
    return [r for r in llm.requests if r.stage == stage]


def _text(r: Request) -> str:
    return "\n".join(m.content for m in r.messages)


def _rules_pass(d) -> None:  # type: ignore[no-untyped-def]
    for rule in RULES:
        v = rule(d.messages, TOOLS)
        assert v.passed, (rule.__name__, v.detail)


HAPPY = dict(
    plan=[PLAN],
    user=[{"message": "What's the weather in Paris?"},
          {"next": "Great, then book hotel H-1001 for 2 nights."},
          {"done": True}],
    assistant=[WEATHER, {"reply": "It is sunny and 18 degrees in Paris."},
               BOOKING, {"reply": "Hotel H-1001 is booked for 2 nights, booking B-77."}],
    env=[{"temperature": 18, "conditions": "sunny"}, {"booking_id": "B-77"}])


def test_the_registry_names_both_methods() -> None:
    assert get("mas") is mas.run


def test_a_subtask_ends_on_a_reply_and_the_next_begins() -> None:
    llm = ScriptedLLM(respond=scripted(**HAPPY))
    d = _run(llm)
    roles = [("call" if m.tool_calls else m.role) for m in d.messages[1:]]
    assert roles == ["user", "call", "tool", "assistant", "user", "call", "tool", "assistant"]
    assert d.messages[5].content == "Great, then book hotel H-1001 for 2 nights."
    assert [c.id for m in d.messages if m.tool_calls for c in m.tool_calls] == ["call_1", "call_2"]
    assert llm.stages() == ["plan", "user", "assistant", "env", "assistant", "user",
                            "assistant", "env", "assistant", "user"]
    _rules_pass(d)
    assert d.plan is not None and d.plan.subtasks[1].goal == PLAN["subtasks"][1]["goal"]


def test_the_user_agent_is_given_the_plans_subtask() -> None:
    llm = ScriptedLLM(respond=scripted(**HAPPY))
    _run(llm)
    opening, follow, final = _sent(llm, "user")
    assert "Check the weather in Paris" in _text(opening)
    assert "Book hotel H-1001" not in _text(opening)
    assert opening.schema_ == mas.user_schema(opening=True, last=False)
    # after the first reply: the subtask, and the next one to move on to
    assert "Check the weather in Paris" in _text(follow)
    assert "Book hotel H-1001 for 2 nights" in _text(follow)
    assert follow.schema_ == mas.user_schema(opening=False, last=False)
    assert "next" in json.dumps(follow.schema_) and "done" not in json.dumps(follow.schema_)
    # the last subtask may end the dialogue
    assert "Book hotel H-1001 for 2 nights" in _text(final)
    assert final.schema_ == mas.user_schema(opening=False, last=True)
    # the user sees the dialogue from its side: no calls, no results
    assert "get_weather" not in _text(final) and "B-77" in _text(final)
    assert "sunny and 18 degrees" in _text(final)


def test_every_assistant_request_carries_the_whole_dialogue_so_far() -> None:
    llm = ScriptedLLM(respond=scripted(**HAPPY))
    d = _run(llm)
    sent = _sent(llm, "assistant")
    actions = [i for i, m in enumerate(d.messages) if m.role == "assistant"]
    assert len(sent) == len(actions) == 4
    for request, at in zip(sent, actions, strict=True):
        body = _text(request)
        assert transcript(d.messages[:at]) in body
        assert d.system in body
        for t in TOOLS:
            assert t.name in body and json.dumps(t.parameters) in body
    # it grows: the last request holds every earlier turn, results included
    last = _text(sent[-1])
    assert "What's the weather in Paris?" in last and '"conditions": "sunny"' in last
    assert "book hotel H-1001" in last
    assert len(last) > len(_text(sent[0]))


def test_the_user_can_stay_on_a_subtask_to_answer_a_question() -> None:
    llm = ScriptedLLM(respond=scripted(
        plan=[PLAN],
        user=[{"message": "What's the weather like?"}, {"message": "In Paris, please."},
              {"next": "Then book hotel H-1001 for 2 nights."}, {"done": True}],
        assistant=[{"reply": "Which city do you mean?"}, WEATHER, {"reply": "Sunny, 18."},
                   BOOKING, {"reply": "Booked: B-77."}],
        env=[{"temperature": 18}, {"booking_id": "B-77"}]))
    d = _run(llm, mas_max_turns=4)
    users = _sent(llm, "user")
    assert "Check the weather in Paris" in _text(users[1])  # still the first subtask
    assert "next" in json.dumps(users[1].schema_)
    assert [m.content for m in d.messages if m.role == "user"] == [
        "What's the weather like?", "In Paris, please.", "Then book hotel H-1001 for 2 nights."]
    _rules_pass(d)


def test_the_turn_limit_ends_a_runaway_subtask_on_a_reply() -> None:
    # the assistant would call forever; each subtask gets 3 actions, the last a reply
    llm = ScriptedLLM(respond=scripted(plan=[PLAN]))
    d = _run(llm, mas_max_turns=3)
    sent = _sent(llm, "assistant")
    assert len(sent) == 6
    assert [("calls" in json.dumps(r.schema_)) for r in sent] == [True, True, False] * 2
    assert sent[2].schema_ == mas.assistant_schema(TOOLS, None)
    replies = [m for m in d.messages if m.role == "assistant" and not m.tool_calls]
    assert len(replies) == 2 and d.messages[-1] is replies[-1]
    # out of turns, the next subtask opens at once; at the end no user request is made
    users = _sent(llm, "user")
    assert len(users) == 2 and all(u.schema_ == mas.user_schema(True, False) for u in users)
    assert "Book hotel H-1001" in _text(users[1])
    assert [m.role for m in d.messages].count("user") == 2


def test_a_bad_call_is_fed_back_and_answered_again() -> None:
    llm = ScriptedLLM(respond=scripted(
        plan=[PLAN], user=[{"message": "Weather in Paris?"}, {"next": "Book H-1001, 2 nights."},
                           {"done": True}],
        assistant=[{"calls": [{"name": "get_weather", "arguments": {"unit": "c"}}]},
                   WEATHER, {"reply": "Sunny."}, BOOKING, {"reply": "Booked: B-77."}],
        env=[{"temperature": 18}, {"booking_id": "B-77"}]))
    d = _run(llm)
    sent = _sent(llm, "assistant")
    assert "'city' is a required property" in sent[1].messages[-1].content
    assert d.messages[2].tool_calls and "Paris" in d.messages[2].tool_calls[0].function.arguments


def test_runner_with_mas_writes_contract_valid_verified_records(tmp_path: Path) -> None:
    settings = MethodSettings(subtasks_min=2, subtasks_max=3, steps_min=1, steps_max=2,
                              mas_max_turns=3)
    config = RunConfig(tools=("builtin",), n=2, output=tmp_path / "out.jsonl", seed=5,
                       method="mas", cache=False, settings=settings)
    backend = ScriptedLLM(respond=schema_example)
    llm = stack(backend, concurrency=1, cache=False, cache_path=None)
    summary = asyncio.run(run(config, llm, resolve("builtin")))
    kept = read_records(tmp_path / "out.jsonl")
    assert summary.kept == len(kept) == 2
    for r in kept:
        assert_contract(r, kept=True, method="mas")
        assert r.meta.verification is not None
        assert {"expert_task_completed", "replay"} <= {c.name for c in r.meta.verification.checks}
        assert {"plan", "user", "assistant", "verify"} <= set(r.meta.usage.by_stage)
        assert not r.meta.injections and not r.meta.refinements
    assert "skeleton" not in backend.stages() and "refine" not in backend.stages()


def test_an_agent_answer_that_copies_its_instructions_is_retried() -> None:
    copy = {"reply": "To answer the user after the results you need, I reply."}
    llm = ScriptedLLM(respond=scripted(
        plan=[PLAN], user=[{"message": "Weather in Paris?"}, {"next": "Book H-1001, 2 nights."},
                           {"done": True}],
        assistant=[copy, WEATHER, {"reply": "Sunny."}, BOOKING, {"reply": "Booked: B-77."}],
        env=[{"temperature": 18}, {"booking_id": "B-77"}]))
    d = _run(llm)
    assert "copies the instructions" in _sent(llm, "assistant")[1].messages[-1].content
    assert copy["reply"] not in [m.content for m in d.messages]


def _draft_after(before: list[Message], *, executes: bool):  # type: ignore[no-untyped-def]
    d = make_draft(ScriptedLLM(), before)
    d.env.executes = executes  # as where tools really run: only the call right before counts
    return d


def test_neither_method_may_make_a_call_again_that_already_succeeded() -> None:
    before = good_dialogue()[:6]  # get_weather(Paris), then book_hotel(H-1001, 2) succeeded
    weather = {"name": "get_weather", "arguments": {"city": "Paris"}}
    book = {"name": "book_hotel", "arguments": {"nights": 2, "hotel_id": "H-1001"}}
    rome = {"name": "get_weather", "arguments": {"city": "Rome"}}
    # None: the assistant repeats itself, and is asked for its reply instead
    for executes in (False, True):  # right after it: simulated tools or real
        assert mas._action(_draft_after(before, executes=executes))({"calls": [book]}) is None
    # later: a repeat where the tools are simulated (the same call gets the same answer),
    # allowed where they really execute (the state may have changed in between)
    assert mas._action(_draft_after(before, executes=False))({"calls": [weather]}) is None
    assert mas._action(_draft_after(before, executes=True))({"calls": [weather]}) == [weather]
    with pytest.raises(ValueError, match="reply"):
        mas._action(_draft_after(before, executes=False), reply_only=True)({"calls": [rome]})
    assert mas._action(_draft_after(before, executes=False))({"calls": [rome]}) == [rome]
    # the skeleton: an answer that only repeats a call is None, and the tool is noted so
    # that the step is asked again without it (or ends)
    d = _draft_after(before, executes=False)
    repeated: list[str] = []
    step = skeleton._validate(d, "step", TOOLS, repeated)
    assert step({"calls": [weather]}) is None and repeated == ["get_weather"]
    assert step({"calls": [rome]})["calls"] == [rome]
    opening = skeleton._validate(d, "open", TOOLS, repeated)
    assert opening({"calls": [weather], "user": "Weather in Paris?"}) is None


def test_a_call_that_uses_a_value_never_shown_is_refused_by_both_methods() -> None:
    before = good_dialogue()[:4]  # the user named H-1001; the weather was fetched
    book = {"name": "book_hotel", "arguments": {"nights": 2, "hotel_id": "H-2002"}}
    d = _draft_after(before, executes=False)
    with pytest.raises(ValueError, match="hotel_id 'H-2002' appears nowhere before the call"):
        mas._action(d)({"calls": [book]})
    with pytest.raises(ValueError, match="H-2002"):
        skeleton._validate(d, "step", TOOLS, [])({"calls": [book]})
    # decoding cannot produce it at all: the schema offers only the values shown
    schema = mas.assistant_schema(TOOLS, grounded(d, TOOLS))
    assert '"enum": ["H-1001"]' in json.dumps(schema)


def test_a_mas_assistant_that_repeats_a_call_gives_its_reply_instead() -> None:
    weather = {"name": "get_weather", "arguments": {"city": "Paris"}}
    answers: list[Any] = [
        {"calls": [weather]}, {"temperature": 18},  # assistant calls, the simulated result
        {"calls": [weather]},                       # the same call again: not made ...
        {"reply": "18 degrees in Paris."},          # ... its reply is asked for instead
    ]
    d = make_draft(ScriptedLLM(answers), mas_max_turns=4)
    d.append(Message(role="user", content="Weather in Paris?"))
    llm = d.llm
    used = asyncio.run(mas._act_until_reply(d, 0, 4))
    assert used == 2 and len(llm.requests) == 4  # no retries: every answer was valid
    assert [m.role for m in d.messages[-4:]] == ["user", "assistant", "tool", "assistant"]
    assert d.messages[-1].content == "18 degrees in Paris."


def test_the_baseline_writes_a_tool_name_as_words_as_naig_does() -> None:
    # MAS lost a built-in dialogue to three replies naming 'search_products'; NAIG's
    # texts have the name written as words before they are judged
    from naig.methods.mas import _said

    said = _said({"reply": "I looked with search_products and found P1."}, "reply", [],
                 ["search_products"])
    assert said == "I looked with search products and found P1."
