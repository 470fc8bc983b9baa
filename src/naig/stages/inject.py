"""Stage 2a, complexity injection (mask-and-extend).

One chosen turn is rewritten and new turns are added around it, for one of four types:
clarification, tool awareness, error simulation, non-function-calling need. A dialogue
gets 1 to 3 distinct types; turns an injection touched are not injected again.
Every call stays valid against its tool's schema: a simulated error is a well-formed
call that the world refuses.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from naig.dialogue import FunctionCall, Injection, Message, call_key, made_calls
from naig.envs.base import error_result
from naig.errors import ModelOutputError
from naig.llm.structured import ask
from naig.prompts import instructions, render
from naig.stages.calls import closed, encode, make_calls
from naig.stages.draft import Draft
from naig.transcript import transcript

Kind = Literal["clarification", "tool_awareness", "error_simulation", "non_function_calling"]
KINDS: tuple[Kind, ...] = ("clarification", "tool_awareness", "error_simulation",
                           "non_function_calling")


def choose_kinds(d: Draft) -> list[Kind]:
    """1 to 3 (by settings) distinct injection types, in the order they will be applied."""
    lo, hi = d.settings.injections_min, max(d.settings.injections_min, d.settings.injections_max)
    return d.rng.sample(KINDS, d.rng.randint(lo, min(hi, len(KINDS))))


def _text(*names: str) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "required": list(names),
            "properties": {n: {"type": "string", "minLength": 1} for n in names}}


def _nonempty(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ValueError("expected a JSON object")
    for k, v in raw.items():
        if isinstance(v, str) and not v.strip():
            raise ValueError(f"'{k}' must not be empty")
    return raw


def _fits(kind: Kind, m: Message, nxt: Message | None) -> bool:
    """Whether an injection of ``kind`` can start at message ``m`` (followed by ``nxt``)."""
    if kind == "clarification":  # a subtask's opening request
        return m.role == "user" and nxt is not None and bool(nxt.tool_calls)
    if kind == "error_simulation":
        return bool(m.tool_calls)
    # tool awareness, non-function-calling need: after a text reply
    return m.role == "assistant" and not m.tool_calls and (nxt is None or nxt.role == "user")


def _eligible(d: Draft, kind: Kind) -> list[int]:
    msgs = d.messages
    return [i for i in range(1, len(msgs))
            if not d.turns[i].injected
            and _fits(kind, msgs[i], msgs[i + 1] if i + 1 < len(msgs) else None)]


async def _ask(d: Draft, kind: Kind, schema: dict[str, Any], **variables: Any) -> dict[str, Any]:
    shown = transcript(d.messages)
    messages, digest = render(f"inject_{kind}", transcript=shown, **variables)
    return await ask(d.llm, messages, schema, _nonempty, stage="refine",
                     seed=d.request_seed(kind), template_hash=digest,
                     temperature=d.settings.temperature, attempts=d.settings.attempts_per_output,
                     instructions=instructions(messages, shown, *variables.values()))


async def _clarification(d: Draft, at: int) -> int:
    raw = await _ask(d, "clarification", _text("vague_request", "question", "answer"), at=at,
                     original=d.turns[at].message.content)
    d.replace(at, 1, [Message(role="user", content=raw["vague_request"].strip()),
                      Message(role="assistant", content=raw["question"].strip()),
                      Message(role="user", content=raw["answer"].strip())],
              keep=0, injected=True)
    return 2


async def _after_reply(d: Draft, kind: Kind, at: int) -> int:
    if kind == "tool_awareness":
        names = ("request", "reply")
        missing = d.unavailable[0].description if d.unavailable else ""
        raw = await _ask(d, kind, _text(*names), at=at, missing=missing,
                         tools=[t.openai()["function"] for t in d.tools])
    else:
        names = ("message", "reply")
        raw = await _ask(d, kind, _text(*names), at=at)
    d.replace(at + 1, 0, [Message(role="user", content=raw[names[0]].strip()),
                          Message(role="assistant", content=raw["reply"].strip())],
              injected=True)
    d.turns[at].injected = True
    return 2


async def _error_simulation(d: Draft, at: int) -> int:
    message = d.turns[at].message
    call = (message.tool_calls or [])[0].function
    tool = d.tool(call.name)
    if tool is None:
        return 0
    schema = {"type": "object", "additionalProperties": False,
              "required": ["failing_arguments", "error", "recovery"],
              "properties": {"failing_arguments": closed(tool.parameters),
                             "error": {"type": "string", "minLength": 1},
                             "recovery": {"type": "string", "minLength": 1}}}
    raw = await _ask(d, "error_simulation", schema, at=at, name=call.name,
                     arguments=call.arguments)
    failing = raw["failing_arguments"]
    succeeded = {c.key for c in made_calls(d.messages) if c.result is not None}
    if (failing == json.loads(call.arguments) or tool.validate_arguments(failing)
            or call_key(call.name, failing) in succeeded):
        return 0  # not a different well-formed new call: no injection rather than bad data
    d.env.suggest(FunctionCall(name=call.name, arguments=encode(failing)),
                  error_result(raw["error"].strip()))
    failed = await make_calls(d, [{"name": call.name, "arguments": failing}])
    if not failed[1].is_error:
        return 0  # the environment accepted the call: nothing failed
    d.replace(at, 0, failed, injected=True)
    d.turns[at + 2].message = message.model_copy(update={"content": raw["recovery"].strip()})
    d.turns[at + 2].injected = True
    return 2


async def inject(d: Draft, kind: Kind) -> Injection | None:
    """Apply one injection of ``kind`` at a randomly chosen eligible turn, if any."""
    places = _eligible(d, kind)
    if not places:
        return None
    at = d.rng.choice(places)
    try:
        if kind == "clarification":
            added = await _clarification(d, at)
        elif kind == "error_simulation":
            added = await _error_simulation(d, at)
        else:
            added = await _after_reply(d, kind, at)
    except ModelOutputError:
        return None  # the model gave no usable injection: the dialogue goes on without it
    if not added:
        return None
    record = Injection(type=kind, at=at, added=added)
    d.injections.append(record)
    return record
