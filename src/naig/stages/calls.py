"""Tool calls as the model writes them: their decoding schemas, and their execution.

A call schema is an ``anyOf`` over the allowed tools, each branch fixing the tool's name
and taking that tool's parameter schema for the arguments, so constrained decoding can
only produce calls that name a real tool with well-formed arguments.
"""

from __future__ import annotations

import json
from typing import Any

from naig.dialogue import FunctionCall, Message, ToolCall, call_key, made_calls
from naig.envs.base import ToolResult
from naig.stages.draft import Draft
from naig.tools import Tool


def closed(schema: Any) -> Any:
    """A copy of a schema for decoding: objects admit only their declared properties."""
    if isinstance(schema, dict):
        out = {k: (v if k == "enum" or k == "const" else closed(v)) for k, v in schema.items()}
        if out.get("type") == "object" and "properties" in out:
            out.setdefault("additionalProperties", False)
        return out
    if isinstance(schema, list):
        return [closed(v) for v in schema]
    return schema


def call_schema(tools: list[Tool], *, with_result: bool = False) -> dict[str, Any]:
    branches = []
    for t in tools:
        props: dict[str, Any] = {"name": {"const": t.name}, "arguments": closed(t.parameters)}
        if with_result:
            props["result"] = closed(t.results())
        branches.append({"type": "object", "properties": props, "required": list(props),
                         "additionalProperties": False})
    return {"anyOf": branches} if len(branches) > 1 else branches[0]


def calls_schema(tools: list[Tool], *, with_result: bool = False, most: int = 3) -> dict[str, Any]:
    return {"type": "array", "items": call_schema(tools, with_result=with_result),
            "minItems": 1, "maxItems": most}


def encode(arguments: Any) -> str:
    return json.dumps(arguments, ensure_ascii=False)


Made = list[tuple[tuple[str, str], bool]]
"""The calls made so far, in order: ``call_key`` and whether the call succeeded."""


def made(messages: list[Message]) -> Made:
    return [(c.key, c.result is not None) for c in made_calls(messages)]


class RepeatedCall(ValueError):
    """A call that repeats one already made (``require_new``)."""


def require_new(calls: list[dict[str, Any]], history: Made, *, strict: bool) -> None:
    """Refuse (``ValueError``, worded for the model) a call made twice in ``calls``, or
    one made again right after it succeeded; with ``strict`` (a simulated environment,
    which answers the same call the same way), one made again after it succeeded at all.
    Appends ``calls`` to ``history``, as succeeded."""
    if not all(isinstance(c, dict) for c in calls):
        raise ValueError('each call must be {"name": ..., "arguments": {...}}')
    keys = [call_key(str(c.get("name")), c.get("arguments", {})) for c in calls]
    for n, key in enumerate(keys):
        if key in keys[:n]:
            raise RepeatedCall(f"the same call twice: {key[0]}")
        if (history and history[-1] == (key, True)) or (strict and (key, True) in history):
            raise RepeatedCall(f"{key[0]} was already called with these arguments and "
                             "succeeded: use its result, or make a call that does something "
                             "new")
    history.extend((key, True) for key in keys)


async def make_calls(d: Draft, calls: list[dict[str, Any]], content: str | None = None
                     ) -> list[Message]:
    """An assistant message with ``calls`` and the tool messages answering it.

    A call's ``result``, where the model wrote one, is offered to the environment as a
    suggestion (only a simulated environment takes it); the result in the dialogue is
    always the environment's.
    """
    tool_calls = [ToolCall(id=d.call_id(), function=FunctionCall(
        name=c["name"], arguments=encode(c.get("arguments", {})))) for c in calls]
    out = [Message(role="assistant", content=content, tool_calls=tool_calls)]
    for call, raw in zip(tool_calls, calls, strict=True):
        if "result" in raw:
            d.env.suggest(call.function, ToolResult(content=encode(raw["result"])))
        result = await d.env.call(call.function)
        out.append(Message(role="tool", tool_call_id=call.id, content=result.content))
    return out


async def replay(d: Draft) -> None:
    """Re-execute every call from the start state and refresh every tool result."""
    await d.env.reset()
    for i, turn in enumerate(d.turns):
        m = turn.message
        if not m.tool_calls:
            continue
        for k, call in enumerate(m.tool_calls):
            j = i + 1 + k
            result = await d.env.call(call.function)
            if j < len(d.turns) and d.turns[j].message.tool_call_id == call.id:
                d.turns[j].message = d.turns[j].message.model_copy(
                    update={"content": result.content})


def to_model_calls(message: Message) -> list[dict[str, Any]]:
    """A call message as the list the model writes (name and decoded arguments)."""
    return [{"name": c.function.name, "arguments": json.loads(c.function.arguments)}
            for c in message.tool_calls or []]


__all__ = ["RepeatedCall", "call_schema", "calls_schema", "closed", "made", "make_calls",
           "replay", "require_new", "to_model_calls"]
