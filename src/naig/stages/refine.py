"""Stage 2b, reasonability refinement (mask-and-fill) with an LLM judge.

Each step masks several non-adjacent turns, chosen with weights that decay each time a
turn is chosen (``decay**k`` after ``k`` selections), regenerates each with the whole
dialogue as context, and lets a judge compare candidate and original: the original
stays unless the candidate is better, so quality never drifts down. An edited call is
re-executed, and every later result refreshed, before the judge sees it.
"""

from __future__ import annotations

import json
import random
import re
from typing import Any, Literal

from naig.dialogue import Message, Refinement
from naig.errors import ModelOutputError
from naig.llm.structured import REASON_CHARS, ask
from naig.prompts import instructions, render
from naig.stages.calls import calls_schema, make_calls, replay, to_model_calls
from naig.stages.checks import RULES
from naig.stages.draft import Draft
from naig.transcript import describe, transcript


def maskable(d: Draft) -> list[int]:
    """Turns refinement may rewrite: user and assistant messages (results follow calls)."""
    return [i for i, t in enumerate(d.turns) if t.message.role in ("user", "assistant")]


def choose_masks(weights: dict[int, float], count: int, rng: random.Random) -> list[int]:
    """Draw up to ``count`` distinct, pairwise non-adjacent indices, by weight."""
    pool = dict(weights)
    chosen: list[int] = []
    while pool and len(chosen) < count:
        keys = sorted(pool)
        pick = rng.choices(keys, weights=[pool[k] for k in keys])[0]
        chosen.append(pick)
        for k in (pick - 1, pick, pick + 1):
            pool.pop(k, None)
    return sorted(chosen)


_TURN = re.compile(r"^\[(\d+)\]")


def flagged(d: Draft) -> dict[int, str]:
    """Turns a rule check blames (its detail starts with ``[i]``), with the reason.

    A call that uses a value nowhere earlier also blames the user message that opened its
    subtask: stating the value there is one way to fix it.
    """
    out: dict[int, str] = {}
    msgs = d.messages
    for rule in RULES:
        check = rule(msgs, d.tools)
        hit = _TURN.match(check.detail) if not check.passed else None
        if hit is None or int(hit.group(1)) >= len(msgs):
            continue
        at = int(hit.group(1))
        out.setdefault(at, check.detail)
        if check.name == "grounded_ids":
            opener = max((i for i in range(at) if msgs[i].role == "user"), default=None)
            if opener is not None:
                out.setdefault(opener, check.detail)
    return out


def values_to_state(d: Draft, at: int) -> list[str]:
    """Argument values of the calls answering user turn ``at`` that no earlier turn
    states: the user's words must carry them."""
    msgs = d.messages
    said = "\n".join(m.content or "" for m in msgs[:at])
    values: list[str] = []
    for m in msgs[at + 1:]:
        if m.role == "user":
            break
        for c in m.tool_calls or []:
            for v in _scalars(json.loads(c.function.arguments)):
                if v not in said and v not in values:
                    values.append(v)
    return values


def _scalars(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for x in node.values() for v in _scalars(x)]
    if isinstance(node, list):
        return [v for x in node for v in _scalars(x)]
    if isinstance(node, bool) or node is None:
        return []
    return [str(node)]


def _kind(m: Message) -> str:
    if m.tool_calls:
        return "assistant tool call"
    return "user message" if m.role == "user" else "assistant reply"


async def _candidate(d: Draft, at: int, masked: list[int], problem: str) -> list[Message]:
    original = d.turns[at].message
    kind = _kind(original)
    marks = {j: "[HIDDEN]" for j in masked if j != at} | {at: "[MASK]"}
    state = values_to_state(d, at) if original.role == "user" else []
    shown = transcript(d.messages, marks)
    messages, digest = render("refine_turn", system=d.env.system_prompt(), kind=kind,
                              others=len(masked) > 1, transcript=shown,
                              problem=_strip_index(problem), values=state)
    banned = instructions(messages, shown, *state)
    if original.tool_calls:
        names = {c.function.name for c in original.tool_calls}
        tools = [t for t in d.tools if t.name in names] or d.tools
        schema: dict[str, Any] = {"type": "object", "additionalProperties": False,
                                  "required": ["calls"],
                                  "properties": {"calls": calls_schema(tools)}}
    else:
        schema = {"type": "object", "additionalProperties": False, "required": ["content"],
                  "properties": {"content": {"type": "string", "minLength": 1}}}
    raw = await ask(d.llm, messages, schema, _object, stage="refine",
                    seed=d.request_seed("refine"), template_hash=digest,
                    temperature=d.settings.temperature, attempts=d.settings.attempts_per_output,
                    instructions=banned)
    if original.tool_calls:
        return await make_calls(d, raw["calls"], content=original.content)
    return [Message(role=original.role, content=raw["content"].strip())]


def _strip_index(detail: str) -> str:
    return _TURN.sub("", detail).strip()


def _object(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ValueError("expected a JSON object")
    if isinstance(raw.get("content"), str) and not raw["content"].strip():
        raise ValueError("'content' must not be empty")
    return raw


def _same(d: Draft, at: int, candidate: list[Message]) -> bool:
    original = d.turns[at].message
    if original.tool_calls:
        return to_model_calls(original) == to_model_calls(candidate[0])
    return (original.content or "").strip() == (candidate[0].content or "").strip()


def _show(messages: list[Message]) -> str:
    return " | ".join(describe(m) for m in messages)


def _failing(messages: list[Message], d: Draft) -> dict[str, str]:
    return {c.name: c.detail for r in RULES if not (c := r(messages, d.tools)).passed}


def _rule_change(d: Draft, at: int, candidate: list[Message]) -> tuple[list[str], list[str]]:
    """Rule checks the candidate would break, and those it would fix."""
    span = 1 + d.results_after(at)
    now = d.messages
    before = _failing(now, d)
    after = _failing(now[:at] + candidate + now[at + span:], d)
    broken = [f"{k}: {v}" for k, v in after.items() if k not in before]
    fixed = [k for k in before if k not in after]
    return broken, fixed


async def _prefers(d: Draft, at: int, first: list[Message], second: list[Message]) -> bool:
    """One judge call: True when it prefers the version shown first (as A)."""
    messages, digest = render("judge", transcript=transcript(d.messages, {at: "[TURN]"}),
                              kind=_kind(d.turns[at].message), a=_show(first),
                              b=_show(second))
    schema = {"type": "object", "additionalProperties": False, "required": ["better", "reason"],
              "properties": {"better": {"enum": ["A", "B"]},
                             "reason": {"type": "string", "maxLength": REASON_CHARS}}}
    raw = await ask(d.llm, messages, schema, _object, stage="refine",
                    seed=d.request_seed("judge"), template_hash=digest, temperature=0.0,
                    max_tokens=200, attempts=d.settings.attempts_per_output)
    return bool(raw["better"] == "A")


async def _judge(d: Draft, at: int, candidate: list[Message], fixes: list[str]
                 ) -> tuple[bool, str]:
    """Whether the candidate is better than the original, and why.

    The judge sees both versions in both orders and the candidate wins if it is preferred
    both times. A judge whose choice follows the position has no preference; then the rule
    checks break the tie: a candidate that fixes a failing check (and, as checked before,
    breaks none) is better.
    """
    span = 1 + d.results_after(at)
    original = [t.message for t in d.turns[at:at + span]]
    if d.settings.judge_both_orders:
        new_as_a = await _prefers(d, at, candidate, original)
        new_as_b = not await _prefers(d, at, original, candidate)
        if new_as_a and new_as_b:
            return True, "judge preferred the candidate in both orders"
        if new_as_a or new_as_b:
            if fixes:
                return True, "judge had no consistent preference; the candidate fixes " + \
                    ", ".join(fixes)
            return False, "judge's preference followed position: kept the original"
        return False, "judge preferred the original in both orders"
    new_first = d.rng.random() < 0.5
    a, b = (candidate, original) if new_first else (original, candidate)
    wins = await _prefers(d, at, a, b) == new_first
    return wins, f"judge preferred the {'candidate' if wins else 'original'}"


async def refine_step(d: Draft, step: int) -> Refinement | None:
    candidates = maskable(d)
    if not candidates:
        return None
    count = d.settings.masks_per_step if len(candidates) >= 6 else 1
    problems = flagged(d)
    weights = {i: d.settings.decay ** d.turns[i].selections
               * (d.settings.flag_boost if i in problems else 1.0) for i in candidates}
    masked = choose_masks(weights, count, d.rng)
    kept: dict[int, Literal["new", "original"]] = {}
    reasons: dict[int, str] = {}
    for at in sorted(masked, reverse=True):  # from the end, so earlier indices hold
        d.turns[at].selections += 1
        try:
            candidate = await _candidate(d, at, masked, problems.get(at, ""))
        except ModelOutputError as e:  # no usable rewrite: the original stays
            kept[at], reasons[at] = "original", f"no valid candidate: {e}"
            continue
        broken, fixes = _rule_change(d, at, candidate)
        if _same(d, at, candidate) or broken:
            kept[at] = "original"
            reasons[at] = ("candidate breaks " + broken[0]) if broken else "candidate identical"
            if candidate[0].tool_calls:
                await replay(d)
            continue
        try:
            better, reasons[at] = await _judge(d, at, candidate, fixes)
        except ModelOutputError as e:
            better, reasons[at] = False, f"no valid judgement: {e}"
        kept[at] = "new" if better else "original"
        if better:
            d.replace(at, 1 + d.results_after(at), candidate, keep=0)
        if candidate[0].tool_calls:
            await replay(d)  # the candidate ran out of order; rebuild every result in order
    record = Refinement(step=step, masked=masked, kept=[kept[i] for i in masked],
                        reasons=[reasons[i] for i in masked])
    d.refinements.append(record)
    return record


def all_refined(d: Draft) -> bool:
    return all(d.turns[i].selections > 0 for i in maskable(d))
