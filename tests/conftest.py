"""Shared fixtures: a dialogue-building kit on the scripted LLM, isolated caches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from naig.config import MethodSettings
from naig.dialogue import FunctionCall, Message, ToolCall
from naig.envs.simulated import SimulatedEnvironment
from naig.llm.weights import models_dir
from naig.stages.draft import Draft
from naig.testing import ScriptedLLM
from naig.tools import Tool, tool_from_dict

WEATHER = tool_from_dict({"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city.",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
        "required": ["city"]}}}, "test", "travel")
BOOK = tool_from_dict({"type": "function", "function": {
    "name": "book_hotel", "description": "Book a hotel.",
    "parameters": {"type": "object", "properties": {
        "hotel_id": {"type": "string"}, "nights": {"type": "integer", "minimum": 1}},
        "required": ["hotel_id", "nights"]}}}, "test", "travel")
TOOLS: list[Tool] = [WEATHER, BOOK]


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Responses never go to the user's cache; assembled model weights stay shared."""
    monkeypatch.setenv("NAIG_MODELS_DIR", str(models_dir()))
    monkeypatch.setenv("NAIG_CACHE_DIR", str(tmp_path / "cache"))


def call(cid: str, name: str, **args: object) -> Message:
    return Message(role="assistant", tool_calls=[
        ToolCall(id=cid, function=FunctionCall(name=name, arguments=json.dumps(args)))])


def result(cid: str, **value: object) -> Message:
    return Message(role="tool", tool_call_id=cid, content=json.dumps(value))


def good_dialogue() -> list[Message]:
    return [
        Message(role="system", content="You are a helpful assistant."),
        Message(role="user", content="What is the weather in Paris? Then book hotel H-1001 "
                                     "for 2 nights."),
        call("call_1", "get_weather", city="Paris"),
        result("call_1", temperature=18, conditions="sunny"),
        call("call_2", "book_hotel", hotel_id="H-1001", nights=2),
        result("call_2", booking_id="B-77", status="confirmed"),
        Message(role="assistant", content="It is sunny and 18 degrees in Paris. Your hotel is "
                                          "booked, booking B-77."),
    ]


def make_draft(llm: ScriptedLLM, messages: list[Message] | None = None,
               **settings: object) -> Draft:
    env = SimulatedEnvironment(TOOLS, llm, seed=7)
    d = Draft(llm=llm, env=env, tools=TOOLS, seed=7, settings=MethodSettings(**settings))
    if messages is not None:
        d.turns = []
        d.append(*messages)
        d._call_ids = 100  # new calls get ids the given dialogue does not use
    return d
