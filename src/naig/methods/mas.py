"""The multi-agent-simulation (MAS) baseline: the dialogue written turn by turn.

The way APIGen-MT and tau-bench's simulated user work: after the shared ``plan`` stage, a
USER agent acts out the plan's subtasks one at a time and an ASSISTANT agent answers,
turn by turn; the tool side is the environment (``make_calls``: real tools execute,
simulated ones ask the LLM). Every agent request reads the whole dialogue so far, which
is what makes MAS costly; that is the point of the comparison, so it stays that way.

LLM requests per dialogue: one ``plan``; one ``user`` request per user message, plus one
at the end where the user says the plan is done (none where the turn limit ended the
last subtask); one ``assistant`` request per assistant action (a set of calls or a
reply); ``env`` requests for simulated results. A subtask moves on when the assistant
has replied and the user either starts the next subtask or ends the dialogue;
``mas_max_turns`` bounds the assistant actions per subtask, the last one allowed being a
text reply, so alternation holds and the dialogue ends on a reply. An assistant that makes
a call again that already succeeded (right after it; on simulated tools, at all) is asked
for its reply instead: without that loop-breaker a 1.5B assistant repeated a call until its
retries ran out in 6 of 8 benchmark dialogues.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from naig.dialogue import Message, Plan
from naig.llm.structured import ask
from naig.prompts import instructions, render
from naig.stages.calls import RepeatedCall, calls_schema, made, make_calls, require_new
from naig.stages.draft import Draft
from naig.stages.plan import plan
from naig.tools import Tool
from naig.transcript import describe, transcript

Calls = list[dict[str, Any]]


@dataclass(frozen=True)
class Move:
    """What the user agent answers: a message, and what it means for the subtask."""

    kind: Literal["stay", "next", "done"]
    """``stay`` on the subtask (an opening is a ``stay`` too), start the ``next`` one, or
    say the plan is ``done`` (no text)."""
    text: str = ""


def _text_field(name: str) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "required": [name],
            "properties": {name: {"type": "string", "minLength": 1}}}


DONE: dict[str, Any] = {"type": "object", "additionalProperties": False, "required": ["done"],
                        "properties": {"done": {"const": True}}}


def user_schema(opening: bool, last: bool) -> dict[str, Any]:
    """An opening is a message; after a reply, stay on the subtask or move on / finish."""
    if opening:
        return _text_field("message")
    return {"anyOf": [_text_field("message"), DONE if last else _text_field("next")]}


def assistant_schema(tools: list[Tool], reply_only: bool) -> dict[str, Any]:
    reply = _text_field("reply")
    if reply_only:
        return reply
    calls = {"type": "object", "additionalProperties": False, "required": ["calls"],
             "properties": {"calls": calls_schema(tools)}}
    return {"anyOf": [calls, reply]}


def _said(raw: Any, key: str) -> str | None:
    if not isinstance(raw, dict) or key not in raw:
        return None
    text = str(raw[key]).strip()
    if not text:
        raise ValueError(f"'{key}' must not be empty")
    return text


def _mover(opening: bool, last: bool):  # type: ignore[no-untyped-def]
    """The validator of the user agent's answer, for the forms ``user_schema`` offers."""
    other = "" if opening else (' or {"done": true}' if last else ' or {"next": "..."}')

    def check(raw: Any) -> Move:
        text = _said(raw, "message")
        if text is not None:
            return Move("stay", text)
        if not opening and not last:
            text = _said(raw, "next")
            if text is not None:
                return Move("next", text)
        if not opening and last and isinstance(raw, dict) and raw.get("done") is True:
            return Move("done")
        raise ValueError(f'answer {{"message": "..."}}{other}')
    return check


def _action(tools: list[Tool], before: list[Message],  # type: ignore[no-untyped-def]
            *, strict: bool, reply_only: bool = False):
    """The validator of the assistant's answer: a reply, or calls that are valid; None for
    calls that repeat one already made (``require_new``): the assistant has nothing new to
    do and is asked for its reply instead."""
    by_name = {t.name: t for t in tools}

    def check(raw: Any) -> Calls | str | None:
        reply = _said(raw, "reply")
        if reply is not None:
            return reply
        if reply_only:
            raise ValueError('answer {"reply": "..."}')
        calls = raw.get("calls") if isinstance(raw, dict) else None
        if not isinstance(calls, list) or not calls:
            raise ValueError('answer {"calls": [...]} or {"reply": "..."}')
        for c in calls:
            tool = by_name.get(str(c.get("name"))) if isinstance(c, dict) else None
            if tool is None:
                raise ValueError(f"unknown tool in {c!r}; use only {sorted(by_name)}")
            arguments = c.get("arguments", {})
            problems = tool.validate_arguments(arguments) if isinstance(arguments, dict) \
                else ["arguments must be a JSON object"]
            if problems:
                raise ValueError(f"{tool.name}: {problems[0]}")
        try:
            require_new(calls, made(before), strict=strict)
        except RepeatedCall:
            return None
        return calls
    return check


def user_view(messages: list[Message]) -> str:
    """The dialogue as the user sees it: user messages and assistant text, no tools."""
    return "\n".join(describe(m) for m in messages
                     if m.role == "user" or (m.role == "assistant" and not m.tool_calls))


async def _user(d: Draft, p: Plan, t: int, *, opening: bool) -> Move:
    last = t + 1 == len(p.subtasks)
    goal = p.subtasks[t].goal
    after = None if opening or last else p.subtasks[t + 1].goal
    history = user_view(d.messages)
    messages, digest = render("mas_user", task=p.task, goal=goal, next=after,
                              opening=opening, last=last, history=history)
    move: Move = await ask(d.llm, messages, user_schema(opening, last), _mover(opening, last),
                           stage="user", seed=d.request_seed("user"), template_hash=digest,
                           temperature=d.settings.temperature, max_tokens=300,
                           attempts=d.settings.attempts_per_output,
                           instructions=instructions(messages, history, p.task, goal, after))
    return move


async def _assistant(d: Draft, reply_only: bool) -> Calls | str | None:
    history = transcript(d.messages)
    tools = [{"name": t.name, "description": t.description,
              "parameters": json.dumps(t.parameters, ensure_ascii=False)} for t in d.tools]
    messages, digest = render("mas_assistant", system=d.system, tools=tools,
                              transcript=history, reply_only=reply_only)
    shown = [v for t in tools for v in t.values()]
    check = _action(d.tools, d.messages, strict=not d.env.executes, reply_only=reply_only)
    action: Calls | str | None = await ask(
        d.llm, messages, assistant_schema(d.tools, reply_only), check,
        stage="assistant", seed=d.request_seed("assistant"), template_hash=digest,
        temperature=d.settings.temperature, max_tokens=800,
        attempts=d.settings.attempts_per_output,
        instructions=instructions(messages, history, *shown))
    return action


async def _act_until_reply(d: Draft, used: int) -> int:
    """Assistant actions until a text reply; returns the subtask's actions so far."""
    limit = d.settings.mas_max_turns
    while True:
        used += 1
        action = await _assistant(d, reply_only=used >= limit)
        if action is None:  # it repeats itself: its turn is the reply
            action = await _assistant(d, reply_only=True)
        if isinstance(action, str):
            d.append(Message(role="assistant", content=action))
            return used
        if action is not None:
            d.append(*await make_calls(d, action))


async def run(d: Draft) -> Draft:
    p = await plan(d)
    t, used = 0, 0
    said = (await _user(d, p, 0, opening=True)).text
    while True:
        d.append(Message(role="user", content=said))
        used = await _act_until_reply(d, used)
        if used >= d.settings.mas_max_turns:  # out of turns: the subtask ends here
            t, used = t + 1, 0
            if t == len(p.subtasks):
                break
            said = (await _user(d, p, t, opening=True)).text
            continue
        move = await _user(d, p, t, opening=False)
        if move.kind == "done":
            break
        if move.kind == "next":
            t, used = t + 1, 0
        said = move.text
    d.number_calls()
    return d
