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
``mas_max_turns`` (by default the subtask's planned steps plus one, as NAIG gets) bounds
the assistant actions per subtask, the last one allowed being a text reply, so alternation
holds and the dialogue ends on a reply. The assistant's calls are decoded under grounded
schemas, as NAIG's are (``naig.grounding``). An assistant that makes a call again that
already succeeded (right after it; on simulated tools, at all) is asked for its reply
instead: without that loop-breaker a 1.5B assistant repeated a call until its
retries ran out in 6 of 8 benchmark dialogues.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from naig.dialogue import Message, Plan, Subtask
from naig.llm.structured import ask
from naig.prompts import instructions, render
from naig.stages.calls import (
    Parameters,
    RepeatedCall,
    calls_schema,
    check_call,
    existing,
    grounded,
    made,
    make_calls,
    requested,
    require_new,
    values_before,
)
from naig.stages.checks import as_said, spoken, unsayable
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
            "properties": {name: spoken()}}


DONE: dict[str, Any] = {"type": "object", "additionalProperties": False, "required": ["done"],
                        "properties": {"done": {"const": True}}}


def user_schema(opening: bool, last: bool) -> dict[str, Any]:
    """An opening is a message; after a reply, stay on the subtask or move on / finish."""
    if opening:
        return _text_field("message")
    return {"anyOf": [_text_field("message"), DONE if last else _text_field("next")]}


def assistant_schema(tools: list[Tool], params: Parameters | None, most: int = 1
                     ) -> dict[str, Any]:
    """A reply, or up to ``most`` calls to the tools in ``params`` (with those argument
    schemas); a reply only where ``params`` is None or empty."""
    reply = _text_field("reply")
    if not params:
        return reply
    calls = {"type": "object", "additionalProperties": False, "required": ["calls"],
             "properties": {"calls": calls_schema(tools, params=params, most=most)}}
    return {"anyOf": [calls, reply]}


def _said(raw: Any, key: str, earlier: list[Message], tools: list[str]) -> str | None:
    if not isinstance(raw, dict) or key not in raw:
        return None
    text = as_said(str(raw[key]).strip(), tools, user=key != "reply")  # as NAIG's texts
    if not text:
        raise ValueError(f"'{key}' must not be empty")
    why = unsayable(text, tools, earlier, user=key != "reply")  # the user agent's keys
    if why:
        raise ValueError(f"'{key}' {why}: write only what is said")
    return text


def _mover(opening: bool, last: bool, earlier: list[Message],  # type: ignore[no-untyped-def]
           tools: list[str]):
    """The validator of the user agent's answer, for the forms ``user_schema`` offers."""
    other = "" if opening else (' or {"done": true}' if last else ' or {"next": "..."}')

    def check(raw: Any) -> Move:
        text = _said(raw, "message", earlier, tools)
        if text is not None:
            return Move("stay", text)
        if not opening and not last:
            text = _said(raw, "next", earlier, tools)
            if text is not None:
                return Move("next", text)
        if not opening and last and isinstance(raw, dict) and raw.get("done") is True:
            return Move("done")
        raise ValueError(f'answer {{"message": "..."}}{other}')
    return check


def _action(d: Draft, *, reply_only: bool = False):  # type: ignore[no-untyped-def]
    """The validator of the assistant's answer: a reply, or calls that are valid and
    grounded in the values the dialogue has shown; None for calls that repeat one already
    made (``require_new``): the assistant has nothing new to do and is asked for its reply
    instead."""
    by_name = {t.name: t for t in d.tools}
    values = values_before(d)
    said = "\n".join(m.content or "" for m in d.messages)

    def check(raw: Any) -> Calls | str | None:
        reply = _said(raw, "reply", d.messages, list(by_name))
        if reply is not None:
            return reply
        if reply_only:
            raise ValueError('answer {"reply": "..."}')
        calls = raw.get("calls") if isinstance(raw, dict) else None
        if not isinstance(calls, list) or not calls:
            raise ValueError('answer {"calls": [...]} or {"reply": "..."}')
        for c in calls:
            if not isinstance(c, dict):
                raise ValueError(f"a call must be an object, not {c!r}")
            check_call(by_name.get(str(c.get("name"))), c, d.tools, values, sorted(by_name),
                       said=said)
        try:
            require_new(calls, made(d.messages), strict=not d.env.executes)
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
    check = _mover(opening, last, d.messages, [t.name for t in d.tools])
    move: Move = await ask(d.llm, messages, user_schema(opening, last), check,
                           stage="user", seed=d.request_seed("user"), template_hash=digest,
                           temperature=d.settings.temperature, max_tokens=300,
                           attempts=d.settings.attempts_per_output,
                           instructions=instructions(messages, history, p.task, goal, after))
    return move


async def _assistant(d: Draft, reply_only: bool) -> Calls | str | None:
    history = transcript(d.messages)
    tools = [{"name": t.name, "description": t.summary,
              "parameters": json.dumps(t.parameters, ensure_ascii=False)} for t in d.tools]
    params = None if reply_only else existing(
        d, grounded(d, d.tools, prefer=[requested(d)]), d.tools)
    messages, digest = render("mas_assistant", system=d.system, tools=tools,
                              transcript=history, reply_only=not params)
    shown = [v for t in tools for v in t.values()]
    check = _action(d, reply_only=not params)
    action: Calls | str | None = await ask(
        d.llm, messages, assistant_schema(d.tools, params, d.settings.calls_per_step), check,
        stage="assistant", seed=d.request_seed("assistant"), template_hash=digest,
        temperature=d.settings.temperature, max_tokens=800,
        attempts=d.settings.attempts_per_output,
        instructions=instructions(messages, history, *shown))
    return action


def _limit(d: Draft, sub: Subtask) -> int:
    return d.settings.mas_max_turns or sub.steps + 1


async def _act_until_reply(d: Draft, used: int, limit: int) -> int:
    """Assistant actions until a text reply; returns the subtask's actions so far."""
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
        limit = _limit(d, p.subtasks[t])
        used = await _act_until_reply(d, used, limit)
        if used >= limit:  # out of turns: the subtask ends here
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
