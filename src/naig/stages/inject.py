"""Stage 2a, complexity injection (mask-and-extend).

One chosen turn is rewritten and new turns are added around it, for one of four types:
clarification, tool awareness, error simulation, non-function-calling need. A dialogue
gets 1 to 3 distinct types; turns an injection touched are not injected again.
Every call stays valid against its tool's schema and grounded: a simulated error is a
well-formed call, with a value the dialogue has shown, that the world refuses.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from naig.dialogue import FunctionCall, Injection, Message, call_key, made_calls
from naig.envs.base import error_result
from naig.envs.simulated import SimulatedEnvironment
from naig.errors import ModelOutputError
from naig.grounding import candidates, entity_values, shown
from naig.llm.structured import ask
from naig.prompts import instructions, render
from naig.stages.calls import (
    encode,
    make_calls,
    replay,
    request_of,
    stated_values,
    values_before,
)
from naig.stages.checks import claimed, spoken, unnamed, unsayable
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
            "properties": {n: spoken() for n in names}}


_USER_KEYS = ("message", "request", "answer")
"""The fields of injection answers that the user says."""


def _nonempty(raw: Any, tools: list[str] | None = None,
              earlier: list[Message] | None = None) -> dict[str, Any]:
    """Every text given, and sayable: no code, no narration, no tool's name, nothing said
    before (an error message is the system's, not speech)."""
    if not isinstance(raw, dict):
        raise ValueError("expected a JSON object")
    out: dict[str, Any] = {k: unnamed(v, tools or []) if isinstance(v, str) and k != "error"
                           else v for k, v in raw.items()}
    for k, v in out.items():
        if isinstance(v, str) and not v.strip():
            raise ValueError(f"'{k}' must not be empty")
        spoken = isinstance(v, str) and k != "error"
        why = unsayable(v, tools or [], earlier or [], user=k in _USER_KEYS) if spoken else None
        if why:
            raise ValueError(f"'{k}' {why}: write only what is said")
    return out


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


async def _ask(d: Draft, kind: Kind, schema: dict[str, Any], check: Any = None,
               **variables: Any) -> dict[str, Any]:
    shown = transcript(d.messages)
    messages, digest = render(f"inject_{kind}", frame=d.frame, transcript=shown, **variables)
    names, before = [t.name for t in d.tools], d.messages
    return await ask(d.llm, messages, schema,
                     check or (lambda raw: _nonempty(raw, names, before)),
                     stage="refine",
                     seed=d.request_seed(kind), template_hash=digest,
                     temperature=d.settings.temperature, attempts=d.settings.attempts_per_output,
                     instructions=instructions(messages, shown, *variables.values()))


_PREPOSITION = r"(?:\s+(?:for|on|in|at|to|from|with|of|by|as|number|id|ID))?"
_STATED = re.compile(r"(The [\w ]+ is [^\s]+\.|Details: [^\n]*\.)$")
"""The sentences code adds to a request to state a value (``skeleton.unstated``): a value
there is not left out (nothing would remain of the sentence)."""
_DANGLING = re.compile(r"\b(between|from|to|and|or|of|for|in|at|on|with|is|are)\s+"
                       r"(and|or|to|[,.;:!?]|$)|\b(than|under|below|above|most|least)\s*"
                       r"(?![\s$€£#\d])|\b(named|called|titled|labell?ed)\s*([,.;:!?]|$)",
                       re.IGNORECASE)


def without(text: str, value: str) -> str | None:
    """``text`` with ``value`` left out (with its quotes and the small word that led to it:
    "book a room for 'Next Week'." becomes "book a room."), or None where it does not
    appear, or where too little would be left to read as a request."""
    pattern = _PREPOSITION + r"\s*['\"]?[$€£#]?(?<![\w-])" + re.escape(value) + \
        r"(?![\w-])['\"]?"
    stated = _STATED.search(text)
    said = text[:stated.start()] if stated else text
    if not re.search(pattern, said) or (stated and re.search(pattern, stated.group(0))):
        return None
    out = re.sub(pattern, "", text)
    out = re.sub(r"\s+([,.;:!?])", r"\1", re.sub(r"\s{2,}", " ", out)).strip()
    out = re.sub(r"([,;:])(?=[.!?]$)", "", out)
    if _DANGLING.search(out):
        return None  # "between and Los Angeles": the value cannot be left out cleanly
    return out if len(re.findall(r"\w+", out)) >= 3 else None


def _withholdable(d: Draft, at: int) -> list[str]:
    """Values the request at ``at`` alone gives its calls, which a vaguer request could
    leave out for the assistant to ask about: entity values first, longer ones first."""
    msgs = d.messages
    values = stated_values(msgs, at)
    entity = {str(v) for m in msgs[at + 1:] for c in m.tool_calls or []
              if (t := d.tool(c.function.name)) is not None
              for _, _, v in entity_values(t, d.tools, json.loads(c.function.arguments))}
    text = msgs[at].content or ""
    usable = [v for v in values if v in text and len(v) > 1]
    return sorted(usable, key=lambda v: (v not in entity, -len(v)))


async def _clarification(d: Draft, at: int) -> int:
    """The request leaves out one value its calls need: code chooses it and takes it out of
    the request (``without``); the model writes the assistant's question and the user's
    answer, which must give it. Every value the calls need is still stated."""
    original = d.turns[at].message.content or ""
    options = [(v, vague) for v in _withholdable(d, at)
               if (vague := without(original, v)) is not None]
    if not options:
        return 0
    (detail, vague), needed = options[0], stated_values(d.messages, at)
    missing = [v for v in needed if v != detail and v not in vague]
    if missing:
        return 0  # taking it out took another value with it

    asked = [*d.messages[:at], Message(role="user", content=vague)]

    def check(raw: Any) -> dict[str, Any]:  # the question must not repeat the vague request
        answer = _nonempty(raw, [t.name for t in d.tools], [*asked, *d.messages[at:]])
        if detail not in str(answer["answer"]):
            raise ValueError(f"'answer' must give {detail!r}")
        return answer
    raw = await _ask(d, "clarification", _text("question", "answer"), check,
                     at=at, original=original, vague=vague, detail=detail)
    d.replace(at, 1, [Message(role="user", content=vague),
                      Message(role="assistant", content=raw["question"].strip()),
                      Message(role="user", content=raw["answer"].strip())],
              keep=0, injected=True)
    return 2


async def _after_reply(d: Draft, kind: Kind, at: int) -> int:
    if kind == "tool_awareness":
        names = ("request", "reply")
        missing = d.unavailable[0].summary if d.unavailable else ""
        raw = await _ask(d, kind, _text(*names), at=at, missing=missing)
    else:
        names = ("message", "reply")
        raw = await _ask(d, kind, _text(*names), at=at)
    d.replace(at + 1, 0, [Message(role="user", content=raw[names[0]].strip()),
                          Message(role="assistant", content=raw["reply"].strip())],
              injected=True)
    d.turns[at].injected = True
    return 2


def _variants(d: Draft, at: int) -> list[tuple[dict[str, Any], str]]:
    """Failing versions of the first call at ``at``: one entity argument swapped for
    another value of its kind that the dialogue has shown (a stale or wrong ID), as
    (arguments, the value swapped in). Each is a valid call not already made. An argument
    whose value the request states is kept: the assistant that calls another than the
    user asked for ignores the user ("the laptop with ID P01" tried as P02 first; the
    experts failed the task, built-in at 6d7b0c7)."""
    call = (d.turns[at].message.tool_calls or [])[0].function
    tool = d.tool(call.name)
    if tool is None:
        return []
    arguments = json.loads(call.arguments)
    values = values_before(d, at)
    done = {c.key for c in made_calls(d.messages)}
    out = []
    returned = [v for v in values if not v.said]  # a stale ID from a result first
    request = request_of(d, at)
    for name, kind, value in entity_values(tool, d.tools, arguments):
        if name not in arguments or arguments[name] != value or shown(str(value), request):
            continue  # nested or in a list, or the user's own: left alone
        for other in candidates(name, kind, returned) or candidates(name, kind, values):
            failing = {**arguments, name: other}
            if other != value and not tool.validate_arguments(failing) \
                    and call_key(tool.name, failing) not in done:
                out.append((failing, str(other)))
    return out


async def _refused(d: Draft, at: int, name: str, variants: list[tuple[dict[str, Any], str]]
                   ) -> tuple[dict[str, Any], str, str] | None:
    """On executing tools: the first variant the environment really refuses at turn
    ``at`` (the state rebuilt from the turns before), with the value and the error."""
    for failing, value in variants:
        await replay(d, upto=at)
        result = await d.env.call(FunctionCall(name=name, arguments=encode(failing)))
        if result.error:
            return failing, value, json.loads(result.content).get("error", result.content)
    return None


_MISSING = re.compile(r"not (be )?found|not exist|doesn't exist|no such|invalid|unknown",
                      re.IGNORECASE)


async def _error_simulation(d: Draft, at: int) -> int:
    """Before the call at ``at``, the assistant makes a valid call with a wrong value that
    the dialogue has shown; the tool refuses it (where tools execute, really: the variant
    is one the environment refuses in that state); the assistant reads the error and
    retries with the right call, which stays as it was."""
    message = d.turns[at].message
    call = (message.tool_calls or [])[0].function
    variants = _variants(d, at)
    if d.env.executes:
        refused = await _refused(d, at, call.name, variants)
        await replay(d)
        if refused is None:
            return 0
        failing, value, error = refused
    elif variants:
        failing, value = d.rng.choice(variants)
        error = ""
    else:
        return 0
    names = ("recovery",) if error else ("error", "recovery")
    tools, before = [t.name for t in d.tools], d.messages
    stale = any(shown(value, m.content or "") for m in d.messages[:at] if m.role == "tool")

    def check(answer: Any) -> dict[str, Any]:
        """An error that names the value and says why (a small model wrote "the reason
        67890 is refused"), which for a value an earlier result gave is never that it does
        not exist (the experts rightly fail that); a recovery that acts, not asks: the
        retry follows at once."""
        out = _nonempty(answer, tools, before)
        said = str(out.get("error", value))
        if not shown(value, said) or re.search(r"\breason\b", said, re.IGNORECASE):
            raise ValueError(f"'error' must name {value} and say why it is refused")
        if stale and "error" in out and _MISSING.search(said):
            raise ValueError(f"'error' must not say {value} does not exist: an earlier "
                             "result showed it")
        if str(out["recovery"]).rstrip().endswith("?"):
            raise ValueError("'recovery' must say what the assistant does now, not ask: "
                             "the retry follows at once")
        claim = claimed(str(out["recovery"]))
        if claim:  # "I have added it to your cart", before the retry has run
            raise ValueError(f"'recovery' says {claim!r} before the retry: say what the "
                             "assistant does now; its result comes after")
        return out

    raw = await _ask(d, "error_simulation", _text(*names), check, at=at, name=call.name,
                     failing=encode(failing), arguments=call.arguments, value=value,
                     error=error, stale=stale)
    if not error and isinstance(d.env, SimulatedEnvironment):
        d.env.suggest(FunctionCall(name=call.name, arguments=encode(failing)),
                      error_result(raw["error"].strip()))
    if d.env.executes:
        await replay(d, upto=at)  # the failing call runs where it will stand
    failed = await make_calls(d, [{"name": call.name, "arguments": failing}])
    if not failed[1].is_error:
        if d.env.executes:
            await replay(d)  # undo it: the dialogue goes on without the injection
        return 0  # the environment accepted the call: nothing failed
    d.replace(at, 0, failed, injected=True)
    d.turns[at + 2].message = message.model_copy(update={"content": raw["recovery"].strip()})
    d.turns[at + 2].injected = True
    if d.env.executes:
        await replay(d)  # the failed call ran out of order; rebuild every result in order
    return 2


def _possible(d: Draft, kind: Kind, at: int) -> bool:
    """What code can tell before asking the model: a value to withhold, a wrong value to
    try (on executing tools, whether the environment refuses it is tried when applied)."""
    if kind == "clarification":
        text = d.turns[at].message.content or ""
        return any(without(text, v) is not None for v in _withholdable(d, at))
    if kind == "error_simulation":
        return bool(_variants(d, at))
    return True


async def inject(d: Draft, kind: Kind) -> Injection | None:
    """Apply one injection of ``kind`` at a randomly chosen turn where it can apply."""
    places = [at for at in _eligible(d, kind) if _possible(d, kind, at)]
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
