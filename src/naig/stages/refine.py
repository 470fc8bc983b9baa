"""Stage 2b, reasonability refinement (mask-and-fill), steered by the checks.

Each step masks non-adjacent turns, chosen with weights that decay each time a turn is
chosen (``decay**k`` after ``k`` selections) and grow where a rule check blames the turn
(``flag_boost``); each masked turn is regenerated with the whole dialogue as context (the
blamed ones told the problem), and the original stays unless the candidate is better, so
quality never drifts down. Better means, in this order:

- the candidate breaks a rule check the original passed: refused, no judge asked;
- it fixes a check the original failed: accepted on that evidence, no judge asked;
- else the judge decides (``naig.stages.judge``: both orders, one call where the first
  decides), where the dialogue trusts it (the run's calibration passed, or ``judge="on"``). Where it
  does not, only turns a check blames are masked, since nothing else could be accepted,
  and a step with none to mask costs nothing.

An edited call is executed where it stands (the state rebuilt from the turns before it);
one the environment refuses is refused; an accepted one replays the dialogue so every
later result follows from it. ``repair`` is the same mechanism aimed at what verification
found: after a failed verification, the turns its checks blame are rewritten once.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from typing import Any, Literal

from naig.dialogue import Check, Message, Pair, Refinement, context_key
from naig.errors import ModelOutputError
from naig.llm.structured import ask
from naig.prompts import instructions, render
from naig.stages.calls import (
    calls_schema,
    grounded,
    make_calls,
    replay,
    requested,
    stated_values,
    to_model_calls,
    values_before,
)
from naig.stages.checks import as_said, cited_turns, spoken, unsayable
from naig.stages.draft import Draft
from naig.stages.judge import judge, trusted
from naig.stages.verify import EXPERTS, expert, rules
from naig.transcript import transcript


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
    for rule in rules(d.env):
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


def _kind(m: Message) -> str:
    if m.tool_calls:
        return "assistant tool call"
    return "user message" if m.role == "user" else "assistant reply"


def _schema(d: Draft, at: int, original: Message) -> dict[str, Any]:
    if not original.tool_calls:
        return {"type": "object", "additionalProperties": False, "required": ["content"],
                "properties": {"content": spoken()}}
    names = {c.function.name for c in original.tool_calls}
    tools = [t for t in d.tools if t.name in names] or d.tools
    params = grounded(d, tools, values_before(d, at), prefer=[requested(d, at)])
    if not params:
        raise ModelOutputError("refine: no tool can be called with the values shown before "
                               "this turn")
    calls = calls_schema(tools, params=params, most=len(original.tool_calls))
    return {"type": "object", "additionalProperties": False, "required": ["calls"],
            "properties": {"calls": calls}}


async def _candidate(d: Draft, at: int, masked: list[int], problem: str) -> list[Message]:
    """A rewrite of turn ``at``; a call is executed in the state the turns before it left
    (the caller replays the whole dialogue after deciding)."""
    original = d.turns[at].message
    marks = {j: "[HIDDEN]" for j in masked if j != at} | {at: "[MASK]"}
    state = stated_values(d.messages, at) if original.role == "user" else []
    shown = transcript(d.messages, marks)
    messages, digest = render("refine_turn", frame=d.frame, kind=_kind(original),
                              others=len(masked) > 1, transcript=shown,
                              problem=_strip_index(problem), values=state)
    schema = _schema(d, at, original)
    others = [m for j, m in enumerate(d.messages) if j != at]
    check = _answer(schema["required"][0], [t.name for t in d.tools], others,
                    user=original.role == "user")
    raw = await ask(d.llm, messages, schema, check, stage="refine",
                    seed=d.request_seed("refine"), template_hash=digest,
                    temperature=d.settings.temperature, attempts=d.settings.attempts_per_output,
                    instructions=instructions(messages, shown, *state))
    if original.tool_calls:
        if d.env.executes:
            await replay(d, upto=at)
        return await make_calls(d, raw["calls"], content=original.content)
    return [Message(role=original.role, content=raw["content"].strip())]


def _strip_index(detail: str) -> str:
    return _TURN.sub("", detail).strip()


def _answer(key: str, tools: list[str], others: list[Message], *, user: bool
            ) -> Callable[[Any], dict[str, Any]]:
    """The validator of a rewrite: an object with a non-empty ``key`` (text or calls), text
    in its speaker's voice."""
    def check(answer: Any) -> dict[str, Any]:
        if not isinstance(answer, dict) or not answer.get(key):
            raise ValueError(f'expected {{"{key}": ...}}, not empty')
        raw = {k: as_said(v, tools, user=user) if isinstance(v, str) else v
               for k, v in answer.items()}
        if isinstance(raw[key], str) and not raw[key].strip():
            raise ValueError(f"'{key}' must not be empty")
        why = unsayable(raw[key], tools, others, user=user) if isinstance(raw[key], str) \
            else None
        if why:
            raise ValueError(f"'{key}' {why}: write only what is said")
        return raw
    return check


def _same(d: Draft, at: int, candidate: list[Message]) -> bool:
    original = d.turns[at].message
    if original.tool_calls:
        return to_model_calls(original) == to_model_calls(candidate[0])
    return (original.content or "").strip() == (candidate[0].content or "").strip()


def _failing(messages: list[Message], d: Draft) -> dict[str, str]:
    return {c.name: c.detail for r in rules(d.env) if not (c := r(messages, d.tools)).passed}


def _rule_change(d: Draft, at: int, candidate: list[Message]) -> tuple[list[str], list[str]]:
    """Rule checks the candidate would break, and those it would fix."""
    span = 1 + d.results_after(at)
    now = d.messages
    before = _failing(now, d)
    after = _failing(now[:at] + candidate + now[at + span:], d)
    broken = [f"{k}: {v}" for k, v in after.items() if k not in before]
    fixed = [k for k in before if k not in after]
    return broken, fixed


async def _decide(d: Draft, at: int, candidate: list[Message], experts: list[str]
                  ) -> tuple[bool, str]:
    """Whether the candidate replaces turn ``at``, and the evidence either way. ``experts``
    (a repair's failed expert checks) are asked again on the dialogue with the candidate:
    it is accepted if they all pass now."""
    if _same(d, at, candidate):
        return False, "candidate identical"
    if any(m.is_error for m in candidate[1:]):
        return False, "the environment refuses the candidate's call"
    broken, fixes = _rule_change(d, at, candidate)
    if broken:
        return False, "candidate breaks " + broken[0]
    if fixes:
        return True, "candidate fixes " + ", ".join(fixes)
    span = 1 + d.results_after(at)
    if experts:
        now = d.messages
        trial = now[:at] + candidate + now[at + span:]
        verdicts = [await expert(d.llm, name, trial, d.tools, d.request_seed("repair"),
                                 executes=d.env.executes)
                    for name in experts]
        still = [v.name for v in verdicts if not v.passed]
        if still:
            return False, "candidate still fails " + ", ".join(still)
        return True, "candidate fixes " + ", ".join(experts)
    if not await trusted(d):
        return False, "no check improved, and the judge is off"
    original = [t.message for t in d.turns[at:at + span]]
    return await judge(d, at, _kind(original[0]), original, candidate)


async def _rewrite(d: Draft, masked: list[int], problems: dict[int, str],
                   experts: Sequence[str] = ()
                   ) -> tuple[list[Literal["new", "original"]], list[str], list[Pair]]:
    """Rewrite each masked turn (from the end, so earlier indices hold) and keep the
    better version; what was kept and why, in the order of ``masked``, and the assistant
    turns decided on evidence as preference pairs."""
    kept: dict[int, Literal["new", "original"]] = {}
    reasons: dict[int, str] = {}
    pairs: list[Pair] = []
    for at in sorted(masked, reverse=True):
        d.turns[at].selections += 1
        try:
            candidate = await _candidate(d, at, masked, problems.get(at, ""))
        except ModelOutputError as e:  # no usable rewrite: the original stays
            kept[at], reasons[at] = "original", f"no valid candidate: {e}"
            continue
        original = [t.message for t in d.turns[at:at + 1 + d.results_after(at)]]
        context = context_key(d.messages[:at])
        better, reasons[at] = await _decide(d, at, candidate, list(experts))
        kept[at] = "new" if better else "original"
        pair = _pair(at, context, original, candidate, better, reasons[at])
        pairs += [pair] if pair else []
        if better:
            d.replace(at, 1 + d.results_after(at), candidate, keep=0)
        if candidate[0].tool_calls:
            await replay(d)  # rebuild every result in order, from the version kept
    return [kept[i] for i in masked], [reasons[i] for i in masked], pairs


_BETTER = ("candidate fixes", "judge preferred the candidate in both orders")
_WORSE = ("candidate breaks", "the environment refuses the candidate's call")


def _pair(at: int, context: str, original: list[Message], candidate: list[Message],
          better: bool, why: str) -> Pair | None:
    """An assistant turn decided on evidence (a check fixed or broken, the environment's
    refusal, an expert asked again, the judge in both orders) as a preference pair; None
    for a user turn or a decision without evidence."""
    if original[0].role != "assistant":
        return None
    if better and why.startswith(_BETTER):
        return Pair(at=at, context=context, chosen=candidate, rejected=original, evidence=why)
    if not better and why.startswith(_WORSE):
        return Pair(at=at, context=context, chosen=original, rejected=candidate, evidence=why)
    return None


async def refine_step(d: Draft, step: int) -> Refinement | None:
    """One mask-and-fill step; None when there is nothing worth masking (the judge is off
    and no check blames a turn)."""
    problems = flagged(d)
    judged = await trusted(d)
    candidates = [i for i in maskable(d) if judged or i in problems]
    if not candidates:
        return None
    count = d.settings.masks_per_step if len(candidates) >= 6 else 1
    weights = {i: d.settings.decay ** d.turns[i].selections
               * (d.settings.flag_boost if i in problems else 1.0) for i in candidates}
    masked = choose_masks(weights, count, d.rng)
    kept, reasons, pairs = await _rewrite(d, masked, problems)
    record = Refinement(step=step, masked=masked, kept=kept, reasons=reasons, pairs=pairs)
    d.refinements.append(record)
    return record


def blamed(d: Draft, failed: list[Check]) -> dict[int, str]:
    """The turns failed checks blame, with the reason: a rule names its turn as ``[i]``;
    an expert cites turns in its reason ("[4]", "turn 4"). Only turns refinement can
    rewrite count."""
    out: dict[int, str] = {}
    rewritable = set(maskable(d))
    for check in failed:
        for at in cited_turns(check.detail):
            if at in rewritable:
                out.setdefault(at, f"{check.name}: {_strip_index(check.detail)}")
    return out


async def repair(d: Draft, failed: list[Check], round_: int) -> Refinement | None:
    """One repair round after a failed verification: the turns the failed checks blame
    (non-adjacent, at most ``masks_per_step`` of them; the last reply where an expert
    cites no turn) are rewritten, told the problem, and kept where the candidate fixes a
    failed rule and breaks none, or where the failed experts, asked again, pass it. None
    when there is nothing to rewrite."""
    experts = [c.name for c in failed if c.name in EXPERTS]
    problems = flagged(d) | blamed(d, failed)
    if not problems and experts:  # an expert that cites no turn: its verdict is mostly
        last = max((i for i, m in enumerate(d.messages)  # about what the replies claim
                    if m.role == "assistant" and not m.tool_calls), default=None)
        problems = {last: f"{experts[0]}: {_strip_index(failed[0].detail)}"} \
            if last is not None else {}
    if not problems:
        return None
    masked = choose_masks({i: 1.0 for i in problems}, d.settings.masks_per_step, d.rng)
    kept, reasons, pairs = await _rewrite(d, masked, problems, experts)
    record = Refinement(step=round_, masked=masked, kept=kept, reasons=reasons, repair=True,
                        pairs=pairs)
    d.refinements.append(record)
    return record


def all_refined(d: Draft) -> bool:
    return all(d.turns[i].selections > 0 for i in maskable(d))
