"""Stage 3, offline verification: rule checks, then the model-based expert panel.

Rules run first (cheap); the experts, each an independent LLM asked one sub-question,
run only on a dialogue the rules passed, and all must pass. The arguments expert is told
which argument values code could not find earlier in the dialogue, to judge them
closely: a small model misjudges a whole dialogue far more often than a short list. The
verdict lists every check that ran with its reason.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from typing import Any

from naig.dialogue import Check, Message, Verification
from naig.envs.base import Environment
from naig.errors import ModelOutputError
from naig.grounding import scalars, shown
from naig.llm.base import LLM
from naig.llm.structured import REASON_CHARS, ask
from naig.prompts import render, render_text
from naig.stages.checks import (
    RULES,
    Rule,
    claims_grounded,
    users_know_no_results,
    values_wellformed,
)
from naig.tools import Tool
from naig.transcript import tool_line, transcript

EXPERTS = ("expert_arguments_grounded", "expert_task_completed", "expert_results_consistent",
           "expert_consistency")
"""The experts, each a question in ``prompts/expert_question.j2``."""

_REASON = {"type": "string", "minLength": 12, "maxLength": REASON_CHARS}
_VERDICT: dict[str, Any] = {"type": "object", "additionalProperties": False,
                            "required": ["reason", "verdict"],
                            "properties": {"reason": _REASON,
                                           "verdict": {"enum": ["pass", "fail"]}}}


def _verdict(raw: Any) -> dict[str, Any]:
    """A verdict with a reason that is one: a small model sometimes writes only "pass" as
    its reason and then "fail" as its verdict."""
    if not isinstance(raw, dict) or raw.get("verdict") not in ("pass", "fail"):
        raise ValueError("'verdict' must be \"pass\" or \"fail\"")
    reason = str(raw.get("reason", ""))
    words = len(reason.split())
    if words < 3 or (words < 5 and re.match(r"\W*(pass|fail)\b", reason, re.IGNORECASE)):
        raise ValueError("'reason' must say why, citing turn numbers; the verdict comes after")
    return raw


GROUNDED = "expert_arguments_grounded"
TASK = "expert_task_completed"


def unshown(messages: list[Message]) -> list[str]:
    """The call arguments whose values no earlier turn shows as a whole (``shown``), as
    ``[turn] tool: name = value``: where the arguments expert should look hardest."""
    out = []
    for i, m in enumerate(messages):
        earlier = "\n".join(x.content or "" for x in messages[:i])
        for c in m.tool_calls or []:
            try:
                arguments = json.loads(c.function.arguments)
            except ValueError:
                continue
            for key, value in (arguments.items() if isinstance(arguments, dict) else []):
                out += [f"[{i}] {c.function.name}: {key} = {v}" for v in scalars(value)
                        if not shown(v, earlier)]
    return out


def asides(messages: list[Message]) -> list[int]:
    """The replies that answer a user message on their own: no call between, not a
    question back (a clarification, answered later), and followed by the next request or
    the end (a request declined that no tool can do, thanks answered)."""
    return [r for r in range(2, len(messages)) if messages[r].role == "assistant"
            and not messages[r].tool_calls and messages[r - 1].role == "user"
            and not (messages[r].content or "").rstrip().endswith("?")
            and (r + 1 == len(messages) or messages[r + 1].role == "user")]


_THANKS = re.compile(r"\W*(thanks|thank you|many thanks|i appreciate|much appreciated|"
                     r"great|perfect|awesome|wonderful)\b", re.IGNORECASE)
"""A user message that opens with thanks or praise: an aside no tool can serve."""
ASIDE = "(an aside, judged on its own)"
"""What the task expert reads in place of an aside's two turns."""


def question(name: str, messages: list[Message], executes: bool = False) -> str:
    """What expert ``name`` is asked about this dialogue. The arguments expert is also told
    what code found: the values no earlier turn shows (to judge closely), or that every
    value is shown (so it checks that each call uses the one the user meant). Where the
    tools execute (``executes``), the results expert is told the results are the
    environment's and asked only whether the replies report them truthfully: asked whether
    they were plausible too, the 1.5B model failed GorillaFileSystem's real ``null`` from
    ``mkdir`` (at 1fc92bf)."""
    return render_text("expert_question", name=name, executes=executes,
                       unshown=unshown(messages) if name == GROUNDED else [])


async def expert(llm: LLM, name: str, messages: list[Message], tools: list[Tool],
                 seed: int, *, executes: bool = False) -> Check:
    """The verdict of expert ``name`` (a key of ``EXPERTS``) on a dialogue.

    The task expert judges each aside on its own, from the turns up to it with the other
    asides marked out, and the rest of the dialogue with every aside marked out
    (``ASIDE``): a small model asked whether the user got what was asked failed every
    dialogue whose assistant rightly declines what no tool can do (read by hand in two
    benchmarks, also when the question said that declining is right)."""
    if name != TASK:
        return await _expert(llm, name, question(name, messages, executes), messages, tools,
                             seed)
    apart = asides(messages)
    check = await _expert(llm, name, question(name, messages), messages, tools, seed,
                          {i: ASIDE for r in apart for i in (r - 1, r)})
    for r in apart if check.passed else []:
        if _THANKS.match(messages[r - 1].content or ""):
            continue  # no tool does what thanks asks: code knows, the model guessed one
        alone = await _aside(llm, messages[:r + 1], tools, seed + r,
                             {i: ASIDE for x in apart if x < r for i in (x - 1, x)})
        if not alone.passed:
            return alone
    return check


async def _aside(llm: LLM, messages: list[Message], tools: list[Tool], seed: int,
                 marks: dict[int, str]) -> Check:
    """The task expert on the aside that ends ``messages``: which tool does what the user
    asked there, picked from a list that starts with "none"; it passes on "none". Asked
    for a verdict, a small model judged a decline wrong by naming any tool it could think
    of ("create_event to remove an event"); it picks from a list far better."""
    at = len(messages) - 1
    names = ["none", *(t.name for t in tools)]
    schema = {**_VERDICT, "required": ["reason", "tool"],
              "properties": {"reason": _REASON, "tool": {"enum": names}}}

    def picked(raw: Any) -> dict[str, Any]:
        if not isinstance(raw, dict) or raw.get("tool") not in names:
            raise ValueError(f"'tool' must be one of {names}")
        return _verdict(raw | {"verdict": "pass" if raw["tool"] == "none" else "fail"})

    try:
        raw = await _ask_expert(llm, render_text("expert_question", name="aside", at=at),
                                messages, tools, seed, marks, schema, picked,
                                then='"tool": its name, or "none"')
    except ModelOutputError as e:
        return Check(name=TASK, passed=False, detail=f"[{at}] no usable answer: {e}")
    if raw["tool"] == "none":
        return Check(name=TASK, passed=True, detail=str(raw["reason"]).strip())
    return Check(name=TASK, passed=False,
                 detail=f"[{at}] the assistant answers without a tool, but {raw['tool']} does "
                        f"what was asked: {str(raw['reason']).strip()}")


async def _expert(llm: LLM, name: str, question: str, messages: list[Message],
                  tools: list[Tool], seed: int, marks: dict[int, str] | None = None
                  ) -> Check:
    try:
        raw = await _ask_expert(llm, question, messages, tools, seed, marks, _VERDICT,
                                _verdict, then='the verdict "pass" or "fail"')
    except ModelOutputError as e:
        return Check(name=name, passed=False, detail=f"no usable verdict: {e}")
    return Check(name=name, passed=raw["verdict"] == "pass", detail=str(raw["reason"]).strip())


async def _ask_expert(llm: LLM, question: str, messages: list[Message], tools: list[Tool],
                      seed: int, marks: dict[int, str] | None, schema: dict[str, Any],
                      validate: Callable[[Any], dict[str, Any]], *, then: str
                      ) -> dict[str, Any]:
    """One expert call under ``schema``, its answer checked by ``validate``."""
    prompt, digest = render("expert", system=messages[0].content if messages else "",
                            tools=[tool_line(t) for t in tools],
                            transcript=transcript(messages, marks), question=question,
                            then=then)
    return await ask(llm, prompt, schema, validate, stage="verify", seed=seed,
                     template_hash=digest, temperature=0.0, max_tokens=300)


async def replay_check(messages: list[Message], env: Environment) -> Check:
    """Executability: rebuild the start state, re-run every call, compare every result."""
    if not env.executes:
        return Check(name="replay", passed=True,
                     detail="not applicable: simulated tools have no ground truth to replay")
    await env.reset()
    results = {m.tool_call_id: m.content for m in messages if m.role == "tool"}
    for i, m in enumerate(messages):
        for c in m.tool_calls or []:
            fresh = await env.call(c.function)
            if _normal(fresh.content) != _normal(results.get(c.id) or ""):
                return Check(name="replay", passed=False,
                             detail=f"[{i}] {c.function.name}: the recorded result differs from "
                                    f"a fresh execution")
    return Check(name="replay", passed=True)


def _normal(text: str) -> str:
    try:
        return json.dumps(json.loads(text), sort_keys=True)
    except ValueError:
        return text.strip()


def rules(env: Environment) -> list[Rule]:
    """``RULES`` as they apply on ``env``: where tools execute, their results are the
    environment's (not checked for well-formed values); where its start state is known,
    what exists there the user may know."""
    own: dict[Rule, Rule] = {
        users_know_no_results: functools.partial(users_know_no_results, known=env.vocabulary()),
        claims_grounded: functools.partial(claims_grounded, known=env.vocabulary())}
    if env.executes:
        own[values_wellformed] = functools.partial(values_wellformed, results=False)
    return [own.get(rule, rule) for rule in RULES]


ASKED = ("expert_task_completed", "expert_results_consistent", "expert_arguments_grounded",
         "expert_consistency")
"""The order the experts are asked in: the one that fails most first (the task expert, 4
of the 6 expert rejections on real environments at 85ef2a2, then the results expert)."""


async def verify(llm: LLM, messages: list[Message], tools: list[Tool], env: Environment,
                 *, seed: int, experts: bool = True) -> Verification:
    """The rules, the replay, then, where all of them passed, the experts one after
    another until one fails: all must pass, so the verdict is the same as asking every
    expert, and a rejected dialogue does not pay for the experts after its first failure
    (the experts were 36 of 119 calls of a built-in bench at b92bfe0). Asked at once, they
    gained nothing on a local model, which answers one request at a time."""
    checks = [rule(messages, tools) for rule in rules(env)]
    checks.append(await replay_check(messages, env))
    for name in ASKED if experts and all(c.passed for c in checks) else ():
        checks.append(await expert(llm, name, messages, tools, seed + EXPERTS.index(name),
                                   executes=env.executes))
        if not checks[-1].passed:
            break
    return Verification(passed=all(c.passed for c in checks), checks=checks)
