"""Tool calls as the model writes them: their decoding schemas, and their execution.

A call schema is an ``anyOf`` over the allowed tools, each branch fixing the tool's name
and taking that tool's parameter schema for the arguments, so constrained decoding can
only produce calls that name a real tool with well-formed arguments.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from naig.dialogue import FunctionCall, Message, ToolCall, call_key, made_calls
from naig.envs.base import ToolResult
from naig.envs.simulated import SimulatedEnvironment
from naig.errors import ModelOutputError
from naig.grounding import Seen, candidates, ground, id_like, scalars, seen, unfounded
from naig.stages.draft import Draft
from naig.tools import Tool, degenerate, out_of_bounds, same_ends, simulated_results

_KINDS = ("type", "anyOf", "oneOf", "allOf", "enum", "const", "$ref", "properties", "items",
          "prefixItems", "pattern", "additionalProperties")
"""Keywords that say what kind of value a schema admits; a schema with none admits any."""


def _any(schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """Any JSON value, in words llama.cpp's grammar takes (it reads ``{}`` as an object,
    and fails on ``true`` or on an item schema that names no kind)."""
    kinds = ("string", "number", "boolean", "object", "array", "null")
    return {**(schema or {}), "anyOf": [{"type": k} for k in kinds]}


def closed(schema: Any) -> Any:
    """A copy of a schema for decoding: objects admit only their declared properties; a
    schema that names no kind of value (``{}``, ``true``) admits any JSON value; an
    object of any shape beside a declared one is left out (``_shaped``)."""
    if schema is True:
        return _any()
    if not isinstance(schema, dict):
        return schema
    if not any(k in schema for k in _KINDS):
        return _any(schema)
    out: dict[str, Any] = {}
    for k, v in schema.items():
        if k == "properties" and isinstance(v, dict):
            out[k] = {name: closed(sub) for name, sub in v.items()}
        elif k in ("items", "additionalProperties", "not") and isinstance(v, dict):
            out[k] = closed(v)
        elif k in ("anyOf", "oneOf") and isinstance(v, list):
            out[k] = [closed(sub) for sub in _shaped(v)]
        elif k in ("prefixItems", "allOf", "items") and isinstance(v, list):
            out[k] = [closed(sub) for sub in v]
        else:
            out[k] = v
    if out.get("type") == "object" and "properties" in out:
        out.setdefault("additionalProperties", False)
    return out


def _shaped(branches: list[Any]) -> list[Any]:
    """The alternatives of an ``anyOf`` to decode with: an object of any shape beside one
    with declared properties (``Passenger | dict``) is left out, as what the tool reads is
    the declared one (tau2 refuses a passenger without ``dob``). A map whose values have a
    declared kind (``dict[str, int]``) stays."""
    declared = [b for b in branches if isinstance(b, dict) and b.get("properties")]
    free = [b for b in branches if isinstance(b, dict) and b.get("type") == "object"
            and not b.get("properties")
            and not isinstance(b.get("additionalProperties"), dict)]
    return [b for b in branches if b not in free] if declared and free else branches


Parameters = Mapping[str, dict[str, Any]]
"""Tool name -> the parameter schema to decode its arguments with (``grounded``)."""


def call_schema(tools: list[Tool], *, with_result: bool = False,
                params: Parameters | None = None) -> dict[str, Any]:
    """An ``anyOf`` over ``tools`` (those in ``params`` only, with those schemas, where
    given), each fixing the tool's name and taking its parameters as the arguments."""
    branches = []
    for t in tools:
        if params is not None and t.name not in params:
            continue
        arguments = params[t.name] if params is not None else t.parameters
        props: dict[str, Any] = {"name": {"const": t.name}, "arguments": closed(arguments)}
        if with_result:
            props["result"] = closed(simulated_results(t.results()))
        branches.append({"type": "object", "properties": props, "required": list(props),
                         "additionalProperties": False})
    if not branches:
        raise ModelOutputError("no tool can be called with the values that exist here")
    return {"anyOf": branches} if len(branches) > 1 else branches[0]


def calls_schema(tools: list[Tool], *, most: int, with_result: bool = False,
                 params: Parameters | None = None) -> dict[str, Any]:
    return {"type": "array", "items": call_schema(tools, with_result=with_result, params=params),
            "minItems": 1, "maxItems": most}


def values_before(d: Draft, at: int | None = None, extra: Iterable[Message] = ()
                  ) -> list[Seen]:
    """The values the dialogue has shown before turn ``at`` (so far, by default), with
    ``extra`` messages after them."""
    return seen([*d.messages[:at], *extra], d.env.vocabulary())


def named(d: Draft, text: str) -> list[Seen]:
    """The values of the state that ``text`` names as such (a token that exists there,
    with the fields it exists under); none where the state is not known."""
    vocabulary = d.env.vocabulary()
    if vocabulary is None:
        return []
    return [v for v in seen([Message(role="user", content=text)], vocabulary) if v.key]


def request_of(d: Draft, at: int | None = None) -> str:
    """The last user message before turn ``at`` (so far, by default): the request a call
    there answers."""
    return next((m.content or "" for m in reversed(d.messages[:at]) if m.role == "user"), "")


def requested(d: Draft, at: int | None = None) -> list[Seen]:
    """The values of the state the last user message before turn ``at`` (so far, by
    default) names: a call answering it takes those where it names any of its kind (asked
    about reservation I45O37, the small model looked up IWKGVL, another of the user's, and
    the experts rejected the dialogue)."""
    return named(d, request_of(d, at))


def grounded(d: Draft, tools: list[Tool], values: list[Seen] | None = None,
             prefer: Sequence[list[Seen]] = ()) -> Parameters:
    """The ``tools`` that can be called now, each with its parameter schema grounded in the
    values the dialogue has shown (``naig.grounding.ground``, ``prefer`` first, in order);
    tools whose required entity argument has no value yet are left out."""
    values = values_before(d) if values is None else values
    out = {}
    for t in tools:
        schema = ground(t, d.tools, values, prefer)
        if schema is not None:
            out[t.name] = schema
    return out


def existing(d: Draft, params: Parameters | None, tools: list[Tool]) -> Parameters | None:
    """``params`` (every tool's, where None) narrowed by the environment to the values
    that exist in its state now (``Environment.narrow``); a tool with a required argument
    that has no such value is left out. Steps run in order, so the state is the one the
    call will meet."""
    if not d.env.executes:
        return params
    base = params if params is not None else {t.name: t.parameters for t in tools}
    narrowed = {name: d.env.narrow(name, schema) for name, schema in base.items()}
    out = {name: schema for name, schema in narrowed.items() if schema is not None}
    if params is None and out == base:
        return None  # nothing narrowed: the arguments stay free
    return out


def check_call(tool: Tool | None, raw: Any, tools: list[Tool], values: list[Seen],
               names: list[str], *, said: str, user_states: bool = False) -> None:
    """Refuse (``ValueError``, worded for the model) a call that names no allowed tool, has
    invalid arguments, gives an entity argument a value the dialogue has not shown, or
    any argument an ID-like value (a code, a zip) that ``said`` (the dialogue's text so
    far) never holds, as ``grounded_ids`` would (``user_states``: the answer's own user
    message may state it)."""
    if tool is None:
        raise ValueError(f"unknown tool in {raw!r}; use only {names}")
    arguments = raw.get("arguments", {})
    if not isinstance(arguments, dict):
        raise ValueError(f"{tool.name}: arguments must be a JSON object")
    problems = tool.validate_arguments(arguments)
    if problems:
        raise ValueError(f"{tool.name}: {problems[0]}")
    empty = tool.empty_required(arguments)
    if empty is not None:
        raise ValueError(f"{tool.name}: {empty!r} is required: give it a real value")
    junk = degenerate([arguments, raw.get("result")])
    if junk is not None:
        raise ValueError(f"{tool.name}: {junk!r} is not a real value; write real values")
    broken = out_of_bounds(arguments, raw.get("result"))
    if broken is not None:
        raise ValueError(f"{tool.name}: the result's {broken}; a result keeps to its call")
    nowhere = same_ends(arguments)
    if nowhere is not None:
        raise ValueError(f"{tool.name}: {nowhere}")
    loose = unfounded(tool, tools, arguments, values)
    if loose is not None:
        raise ValueError(_ungrounded(tool, *loose, values, user_states))
    unsaid = next((v for v in id_like(arguments) if v not in said), None)
    if unsaid is not None:
        where = "have the user's message state it" if user_states else "use only values given"
        raise ValueError(f"{tool.name}: {unsaid!r} appears nowhere before the call; {where}")


def _ungrounded(tool: Tool, name: str, value: str | int, values: list[Seen],
                user_states: bool) -> str:
    """Why an entity argument value is refused, and what would do instead."""
    keys = sorted({v.key for v in values if str(v.value) == str(value) and v.key})
    options = [v for v in candidates(name, "integer" if isinstance(value, int) else "string",
                                     values) if v != value][:3]
    why = (f"{tool.name}: {value!r} is a {keys[0]}, not a {name}" if keys
           else f"{tool.name}: {name} {value!r} appears nowhere before the call")
    ways = [f"use {' or '.join(repr(o) for o in options)}"] if options else []
    if user_states:
        ways.append(f"have the user's message state the {name}")
    return why + ("; " + ", or ".join(ways) if ways else "")


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
        if "result" in raw and isinstance(d.env, SimulatedEnvironment):
            d.env.suggest(call.function, ToolResult(content=encode(raw["result"])))
        result = await d.env.call(call.function)
        out.append(Message(role="tool", tool_call_id=call.id, content=result.content))
    return out


async def replay(d: Draft, upto: int | None = None) -> None:
    """Re-execute every call (before turn ``upto``, where given) from the start state and
    refresh every tool result."""
    await d.env.reset()
    for i, turn in enumerate(d.turns[:upto]):
        m = turn.message
        if not m.tool_calls:
            continue
        for k, call in enumerate(m.tool_calls):
            j = i + 1 + k
            result = await d.env.call(call.function)
            if j < len(d.turns) and d.turns[j].message.tool_call_id == call.id:
                d.turns[j].message = d.turns[j].message.model_copy(
                    update={"content": result.content})


def stated_values(messages: list[Message], at: int) -> list[str]:
    """Argument values of the calls answering user turn ``at`` that only that turn can
    have given: no earlier message states them and no result before the call returned
    them. The user's words there must carry them."""
    values: list[str] = []
    for j in range(at + 1, len(messages)):
        m = messages[j]
        if m.role == "user":
            break
        shown = "\n".join(x.content or "" for k, x in enumerate(messages[:j])
                          if k < at or x.role == "tool")
        for c in m.tool_calls or []:
            for v in scalars(json.loads(c.function.arguments)):
                if v not in shown and v not in values:
                    values.append(v)
    return values


def to_model_calls(message: Message) -> list[dict[str, Any]]:
    """A call message as the list the model writes (name and decoded arguments)."""
    return [{"name": c.function.name, "arguments": json.loads(c.function.arguments)}
            for c in message.tool_calls or []]


__all__ = ["Parameters", "RepeatedCall", "call_schema", "calls_schema", "check_call", "closed",
           "grounded", "made", "make_calls", "replay", "request_of", "require_new",
           "stated_values", "to_model_calls", "values_before"]
